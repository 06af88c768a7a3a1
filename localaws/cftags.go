// CloudFront resource tags: CreateDistributionWithTags, TagResource,
// UntagResource, ListTagsForResource.

package localaws

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
)

// cfTag is a resource tag.
type cfTag struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

type tagsXML struct {
	Items []struct {
		Key   string
		Value string
	} `xml:"Items>Tag"`
}

// tagText is what tag keys and values may hold
// (https://docs.aws.amazon.com/cloudfront/latest/APIReference/API_Tag.html).
var tagText = regexp.MustCompile(`^[\p{L}\p{Z}\p{N}_.:/=+\-@]*$`)

// maxTags is CloudFront's quota of tags per distribution
// (https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/cloudfront-limits.html#limits-general).
const maxTags = 50

// checkTags refuses tags CloudFront refuses (InvalidTagging): keys of 1
// to 128 characters and values of up to 256, of the documented
// characters, not in the reserved aws: prefix
// (https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/tagging.html).
func checkTags(tags []cfTag) *cfError {
	for _, t := range tags {
		n := len([]rune(t.Key))
		if n == 0 || n > 128 || len([]rune(t.Value)) > 256 || !tagText.MatchString(t.Key) || !tagText.MatchString(t.Value) ||
			strings.HasPrefix(strings.ToLower(t.Key), "aws:") {
			return &cfError{Status: 400, Code: "InvalidTagging", Message: fmt.Sprintf("The tagging specified is not valid: %q=%q", t.Key, t.Value)}
		}
	}
	return nil
}

func (t tagsXML) tags() []cfTag {
	var out []cfTag
	for _, it := range t.Items {
		out = append(out, cfTag{Key: it.Key, Value: it.Value})
	}
	return out
}

// mergeTags sets add's keys on tags, replacing a key's value.
func mergeTags(tags, add []cfTag) []cfTag {
	out := append([]cfTag(nil), tags...)
	for _, a := range add {
		i := slices.IndexFunc(out, func(t cfTag) bool { return t.Key == a.Key })
		if i >= 0 {
			out[i].Value = a.Value
		} else {
			out = append(out, a)
		}
	}
	return out
}

// splitConfigWithTags takes CreateDistributionWithTags's body apart
// (https://docs.aws.amazon.com/cloudfront/latest/APIReference/API_CreateDistributionWithTags.html):
// the DistributionConfig, kept as sent, and the tags.
func splitConfigWithTags(raw []byte) ([]byte, []cfTag, *cfError) {
	var req struct {
		XMLName xml.Name `xml:"DistributionConfigWithTags"`
		Config  struct {
			Inner []byte `xml:",innerxml"`
		} `xml:"DistributionConfig"`
		Tags tagsXML
	}
	if err := xml.Unmarshal(raw, &req); err != nil {
		return nil, nil, &cfError{Status: 400, Code: "MalformedXML", Message: err.Error()}
	}
	if len(bytes.TrimSpace(req.Config.Inner)) == 0 {
		return nil, nil, &cfError{Status: 400, Code: "MissingBody", Message: "This operation requires a body: DistributionConfig."}
	}
	tags := req.Tags.tags()
	if cerr := checkTags(tags); cerr != nil {
		return nil, nil, cerr
	}
	if len(tags) > maxTags {
		return nil, nil, &cfError{Status: 400, Code: "InvalidTagging", Message: fmt.Sprintf("A distribution can have at most %d tags.", maxTags)}
	}
	config := []byte(`<DistributionConfig xmlns="` + cfNS + `">` + string(req.Config.Inner) + `</DistributionConfig>`)
	return config, tags, nil
}

// serveTags answers TagResource, UntagResource and ListTagsForResource
// for distributions
// (https://docs.aws.amazon.com/cloudfront/latest/APIReference/API_TagResource.html,
// API_UntagResource.html, API_ListTagsForResource.html); a resource ARN
// naming no distribution is NoSuchResource.
func (s *cfService) serveTags(w http.ResponseWriter, r *http.Request, op string) {
	arn := r.URL.Query().Get("Resource")
	var add tagsXML
	var remove struct {
		Keys []string `xml:"Items>Key"`
	}
	switch op {
	case "TagResource":
		if !decodeXML(w, r, &add) {
			return
		}
	case "UntagResource":
		if !decodeXML(w, r, &remove) {
			return
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var d *distribution
	if id, ok := strings.CutPrefix(arn, "arn:aws:cloudfront::"+StandInAccount+":distribution/"); ok {
		d = s.dists[id]
	}
	if d == nil {
		writeCFError(w, cfError{Status: 404, Code: "NoSuchResource", Message: "A resource that was specified is not valid: " + arn})
		return
	}
	switch op {
	case "ListTagsForResource":
		var b bytes.Buffer
		b.WriteString(xml.Header)
		fmt.Fprintf(&b, `<Tags xmlns="%s"><Items>`, cfNS)
		for _, t := range d.Tags {
			fmt.Fprintf(&b, `<Tag><Key>%s</Key><Value>%s</Value></Tag>`, xmlEscape(t.Key), xmlEscape(t.Value))
		}
		b.WriteString(`</Items></Tags>`)
		w.Header().Set("Content-Type", "text/xml")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(b.Bytes())
		return
	case "TagResource":
		tags := add.tags()
		if cerr := checkTags(tags); cerr != nil {
			writeCFError(w, *cerr)
			return
		}
		merged := mergeTags(d.Tags, tags)
		if len(merged) > maxTags {
			writeCFError(w, cfError{Status: 400, Code: "InvalidTagging", Message: fmt.Sprintf("A distribution can have at most %d tags.", maxTags)})
			return
		}
		d.Tags = merged
	case "UntagResource":
		d.Tags = slices.DeleteFunc(d.Tags, func(t cfTag) bool { return slices.Contains(remove.Keys, t.Key) })
	}
	if err := s.save(); err != nil {
		writeCFError(w, cfError{Status: 500, Code: "InternalError", Message: err.Error()})
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
