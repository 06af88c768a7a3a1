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

// managedCachePolicies are the ids of CloudFront's managed cache
// policies
// (https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/using-managed-cache-policies.html).
// The stand-in has no API for policies of one's own, so a behaviour names
// one of these or none.
var managedCachePolicies = map[string]string{
	"658327ea-f89d-4fab-a63d-7e88639e58f6": "CachingOptimized",
	"4135ea2d-6df8-44a3-9df3-4b5a84be39ad": "CachingDisabled",
	"b2884449-e4de-46a7-ac36-70bc7f1ddd6d": "CachingOptimizedForUncompressedObjects",
	"08627262-05a9-4f76-9ded-b50ca2e3a84f": "Elemental-MediaPackage",
	"2e54312d-136d-493c-8eb9-b001f22f67d2": "Amplify",
	"83da9c7e-98b4-4e11-a168-04f0df8e2c65": "UseOriginCacheControlHeaders",
	"4cc15a8a-d715-48a4-82b8-cc0b614638fe": "UseOriginCacheControlHeaders-QueryStrings",
}

// CachingDisabledID is the managed CachingDisabled cache policy's id.
const CachingDisabledID = "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"

// CachingOptimizedID is the managed CachingOptimized cache policy's id.
const CachingOptimizedID = "658327ea-f89d-4fab-a63d-7e88639e58f6"

// lambdaVersionARN is a Lambda@Edge function: a numbered version
// (not $LATEST, not an alias) of a function in us-east-1
// (https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/lambda-at-edge-function-restrictions.html).
var (
	lambdaARN        = regexp.MustCompile(`^arn:aws:lambda:([a-z0-9-]+):\d{12}:function:[A-Za-z0-9_-]+(:[^:]+)?$`)
	lambdaVersionARN = regexp.MustCompile(`:function:[A-Za-z0-9_-]+:\d+$`)
)

// enumError is CloudFront's answer to a value outside an enumeration:
// request validation answers MalformedXML naming the field.
func enumError(field, v string, ok ...string) *cfError {
	if slices.Contains(ok, v) {
		return nil
	}
	return &cfError{Status: 400, Code: "MalformedXML", Message: fmt.Sprintf("1 validation error detected: Value '%s' at '%s' failed to satisfy constraint: Member must satisfy enum value set: [%s]", v, field, strings.Join(ok, ", "))}
}

// checkConfig refuses, as CloudFront does, what the stand-in can know of
// a config beyond its shape (parseConfig): settings outside their
// documented values
// (https://docs.aws.amazon.com/cloudfront/latest/APIReference/API_DistributionConfig.html,
// API_DefaultCacheBehavior.html), a cache policy that does not exist
// (NoSuchCachePolicy), origin access that names an origin access control
// that does not exist (InvalidOriginAccessControl) or has both one and an
// origin access identity (IllegalOriginAccessConfiguration)
// (https://docs.aws.amazon.com/cloudfront/latest/APIReference/API_CreateDistribution.html#API_CreateDistribution_Errors),
// and edge function associations CloudFront refuses (checkEdgeFunctions).
// Callers hold mu.
func (s *cfService) checkConfig(c distConfig) *cfError {
	if c.PriceClass != "" {
		if e := enumError("distributionConfig.priceClass", c.PriceClass, "PriceClass_100", "PriceClass_200", "PriceClass_All", "None"); e != nil {
			return e
		}
	}
	if c.HTTPVersion != "" {
		if e := enumError("distributionConfig.httpVersion", c.HTTPVersion, "http1.1", "http2", "http3", "http2and3"); e != nil {
			return e
		}
	}
	if len(c.Comment) > 128 {
		return &cfError{Status: 400, Code: "InvalidArgument", Message: "The parameter Comment is too long (at most 128 characters)."}
	}
	for _, o := range c.Origins.Items {
		if o.OriginAccessControlID == "" {
			continue
		}
		if o.S3OriginConfig != nil && o.S3OriginConfig.OriginAccessIdentity != "" {
			return &cfError{Status: 400, Code: "IllegalOriginAccessConfiguration", Message: "An origin cannot contain both an origin access control (OAC) and an origin access identity (OAI)."}
		}
		if s.oacs[o.OriginAccessControlID] == nil {
			return &cfError{Status: 400, Code: "InvalidOriginAccessControl", Message: "The origin access control is not valid: " + o.OriginAccessControlID}
		}
	}
	for _, b := range c.behaviors() {
		if b.ViewerProtocolPolicy != "" {
			if e := enumError("distributionConfig.defaultCacheBehavior.viewerProtocolPolicy", b.ViewerProtocolPolicy, "allow-all", "https-only", "redirect-to-https"); e != nil {
				return e
			}
		}
		if id := b.CachePolicyID; id != "" && managedCachePolicies[id] == "" {
			return &cfError{Status: 404, Code: "NoSuchCachePolicy", Message: "The cache policy does not exist: " + id}
		}
		if e := checkEdgeFunctions(b); e != nil {
			return e
		}
	}
	return s.checkAssociations(c)
}

// checkEdgeFunctions applies CloudFront's rules for a cache behaviour's
// Lambda@Edge associations and their combination with CloudFront
// Functions
// (https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/edge-function-restrictions-all.html):
// each event type has at most one edge function, and CloudFront
// Functions and Lambda@Edge cannot be combined in viewer events (a
// function on viewer-request or viewer-response excludes Lambda@Edge on
// either); Lambda@Edge functions are numbered versions in us-east-1
// (lambda-at-edge-function-restrictions.html), refused with
// InvalidLambdaFunctionAssociation.
func checkEdgeFunctions(b cfBehavior) *cfError {
	la := b.LambdaFunctionAssociations
	if la.Quantity != len(la.Items) {
		return &cfError{Status: 400, Code: "InconsistentQuantities", Message: "LambdaFunctionAssociations: the value of Quantity and the size of Items don't match."}
	}
	events := map[string]bool{}
	viewerLambda := false
	for _, a := range la.Items {
		if e := enumError("distributionConfig.defaultCacheBehavior.lambdaFunctionAssociations.member.eventType", a.EventType,
			"viewer-request", "viewer-response", "origin-request", "origin-response"); e != nil {
			return e
		}
		if events[a.EventType] {
			return &cfError{Status: 400, Code: "InvalidLambdaFunctionAssociation", Message: "The event type of a function association must be unique in the cache behavior. Event type " + a.EventType + " cannot be associated with two functions."}
		}
		events[a.EventType] = true
		viewerLambda = viewerLambda || strings.HasPrefix(a.EventType, "viewer-")
		m := lambdaARN.FindStringSubmatch(a.LambdaFunctionARN)
		switch {
		case m == nil:
			return &cfError{Status: 400, Code: "InvalidLambdaFunctionAssociation", Message: "The specified Lambda@Edge function association is invalid: " + a.LambdaFunctionARN}
		case m[1] != "us-east-1":
			return &cfError{Status: 400, Code: "InvalidLambdaFunctionAssociation", Message: "The function must be in region 'us-east-1'. ARN: " + a.LambdaFunctionARN}
		case !lambdaVersionARN.MatchString(a.LambdaFunctionARN):
			return &cfError{Status: 400, Code: "InvalidLambdaFunctionAssociation", Message: "The function ARN must reference a specific function version. (The ARN must end with the version number.) ARN: " + a.LambdaFunctionARN}
		}
	}
	for _, fa := range b.FunctionAssociations.Items {
		if events[fa.EventType] {
			return &cfError{Status: 400, Code: "InvalidFunctionAssociation", Message: "The event type of a function association must be unique in the cache behavior. Event type " + fa.EventType + " cannot be associated with two functions."}
		}
		if viewerLambda {
			return &cfError{Status: 400, Code: "InvalidFunctionAssociation", Message: "You can't combine CloudFront Functions and Lambda@Edge in viewer events (viewer request and viewer response) of one cache behavior."}
		}
	}
	return nil
}

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
