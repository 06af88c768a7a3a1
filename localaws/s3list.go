// ListObjectsV2: query parsing, the walk over a bucket's sorted keys,
// and the answer's XML.

package localaws

import (
	"encoding/hex"
	"encoding/xml"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// listParams are a ListObjectsV2 request's query parameters.
type listParams struct {
	prefix, delim string
	maxKeys       int
	// startAfter is the start-after parameter as sent; start is where the
	// listing resumes: start-after or the continuation token's key.
	startAfter, start string
	token             string
	urlEnc            bool
}

// enc encodes a key or prefix as the request's encoding-type asks.
func (p listParams) enc(s string) string {
	if p.urlEnc {
		return strings.ReplaceAll(url.QueryEscape(s), "+", "%20")
	}
	return s
}

type listContent struct {
	Key          string
	LastModified string
	ETag         string
	Size         int64
	StorageClass string
}

type listPrefix struct{ Prefix string }

type listResult struct {
	XMLName               xml.Name `xml:"ListBucketResult"`
	NS                    string   `xml:"xmlns,attr"`
	Name                  string
	Prefix                string
	Delimiter             string `xml:",omitempty"`
	MaxKeys               int
	KeyCount              int
	IsTruncated           bool
	EncodingType          string        `xml:",omitempty"`
	ContinuationToken     string        `xml:",omitempty"`
	NextContinuationToken string        `xml:",omitempty"`
	StartAfter            string        `xml:",omitempty"`
	Contents              []listContent `xml:"Contents"`
	CommonPrefixes        []listPrefix  `xml:"CommonPrefixes"`
}

func (s *s3Service) listObjects(w http.ResponseWriter, r *http.Request, name string) {
	b := s.bucket(w, r, name)
	if b == nil {
		return
	}
	p, e := parseListParams(r.URL.Query())
	if e != nil {
		writeS3Error(w, r, *e)
		return
	}
	res := listResult{NS: s3NS, Name: name, Prefix: p.enc(p.prefix), Delimiter: p.enc(p.delim), MaxKeys: p.maxKeys,
		ContinuationToken: p.token, StartAfter: p.enc(p.startAfter)}
	if p.urlEnc {
		res.EncodingType = "url"
	}
	s.mu.Lock() // keys() may rebuild the sorted index
	b.list(p, &res)
	s.mu.Unlock()
	writeXML(w, http.StatusOK, res)
}

func parseListParams(q url.Values) (listParams, *s3Error) {
	if q.Get("list-type") != "2" {
		return listParams{}, &s3Error{Status: http.StatusNotImplemented, Code: "NotImplemented", Message: "localaws implements ListObjectsV2 only"}
	}
	p := listParams{prefix: q.Get("prefix"), delim: q.Get("delimiter"), maxKeys: 1000,
		startAfter: q.Get("start-after"), token: q.Get("continuation-token"), urlEnc: q.Get("encoding-type") == "url"}
	if v := q.Get("max-keys"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return listParams{}, &s3Error{Status: http.StatusBadRequest, Code: "InvalidArgument", Message: "max-keys must be a non-negative integer"}
		}
		p.maxKeys = min(n, 1000)
	}
	p.start = p.startAfter
	if p.token != "" {
		raw, err := hex.DecodeString(p.token)
		if err != nil {
			return listParams{}, &s3Error{Status: http.StatusBadRequest, Code: "InvalidArgument", Message: "The continuation token provided is incorrect"}
		}
		p.start = string(raw)
	}
	return p, nil
}

// list fills res with one page of the keys p asks for. The caller holds
// the service's mu (for writing: keys() may rebuild the sorted index).
func (b *s3Bucket) list(p listParams, res *listResult) {
	keys := b.keys()
	i := sort.SearchStrings(keys, p.prefix)
	if p.start > p.prefix {
		i = sort.SearchStrings(keys, p.start)
		if i < len(keys) && keys[i] == p.start {
			i++
		}
	}
	seen := map[string]bool{}
	last := ""
	for ; i < len(keys); i++ {
		k := keys[i]
		if !strings.HasPrefix(k, p.prefix) {
			break
		}
		if res.KeyCount == p.maxKeys {
			res.IsTruncated = true
			res.NextContinuationToken = hex.EncodeToString([]byte(last))
			break
		}
		if p.delim != "" {
			if j := strings.Index(k[len(p.prefix):], p.delim); j >= 0 {
				cp := k[:len(p.prefix)+j+len(p.delim)]
				if !seen[cp] {
					seen[cp] = true
					res.CommonPrefixes = append(res.CommonPrefixes, listPrefix{Prefix: p.enc(cp)})
					res.KeyCount++
				}
				// Skip the rest of this common prefix in one step.
				last = cp + "\xff"
				i = sort.SearchStrings(keys, last) - 1
				last = keys[i]
				continue
			}
		}
		o := b.objects[k]
		res.Contents = append(res.Contents, listContent{Key: p.enc(k), LastModified: o.LastModified.UTC().Format(awsTime),
			ETag: o.ETag, Size: o.Size, StorageClass: "STANDARD"})
		res.KeyCount++
		last = k
	}
}
