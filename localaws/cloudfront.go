package localaws

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	mrand "math/rand/v2"
)

const cfNS = "http://cloudfront.amazonaws.com/doc/2020-05-31/"
const cfPrefix = "/2020-05-31/distribution"

type distribution struct {
	ID           string     `json:"id"`
	DomainName   string     `json:"domain_name"`
	ETag         string     `json:"etag"`
	Raw          []byte     `json:"raw"`
	Config       distConfig `json:"config"`
	LastModified time.Time  `json:"last_modified"`
	DeployedAt   time.Time  `json:"deployed_at"`
	// Pops is what each point of presence serves: a change reaches each
	// at its own moment before DeployedAt, as CloudFront's propagation
	// does (some edges serve the new origin path while others still serve
	// the old one). Missing entries serve Config.
	Pops          []popState      `json:"pops,omitempty"`
	Invalidations []*invalidation `json:"invalidations"`
	// Tags are the distribution's resource tags (TagResource).
	Tags []cfTag `json:"tags,omitempty"`
}

type cfService struct {
	file         string
	propagation  time.Duration
	invalidation time.Duration
	pops         int
	now          func() time.Time
	mu           sync.Mutex
	rng          *mrand.Rand // under mu
	dists        map[string]*distribution
	// oacs are the origin access controls by id, kept in oacFile.
	oacs    map[string]*originAccessControl
	oacFile string
	// published reports whether a function ARN names a published
	// function (the Functions API lives in functions.go).
	published func(arn string) bool
}

func newCloudFront(dataDir string, opts Options) (*cfService, error) {
	s := &cfService{file: filepath.Join(dataDir, "cloudfront.json"), propagation: opts.Propagation,
		invalidation: opts.Invalidation, pops: opts.Pops, now: opts.Now, dists: map[string]*distribution{},
		rng:  mrand.New(mrand.NewPCG(opts.Seed, opts.Seed^0x9e3779b97f4a7c15)),
		oacs: map[string]*originAccessControl{}, oacFile: filepath.Join(dataDir, "origin-access-controls.json")}
	if err := loadJSON(s.oacFile, &s.oacs); err != nil {
		return nil, err
	}
	return s, loadJSON(s.file, &s.dists)
}

// save writes the state; callers hold mu.
func (s *cfService) save() error { return saveJSON(s.file, s.dists) }

type cfError struct {
	Status  int
	Code    string
	Message string
}

func writeCFError(w http.ResponseWriter, e cfError) {
	typ := "Sender"
	if e.Status >= 500 {
		typ = "Receiver"
	}
	type errXML struct {
		Type    string
		Code    string
		Message string
	}
	type resp struct {
		XMLName   xml.Name `xml:"ErrorResponse"`
		NS        string   `xml:"xmlns,attr"`
		Error     errXML
		RequestID string `xml:"RequestId"`
	}
	id := newRequestID()
	w.Header().Set("x-amzn-RequestId", id)
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(e.Status)
	_, _ = io.WriteString(w, xml.Header)
	_ = xml.NewEncoder(w).Encode(resp{NS: cfNS, Error: errXML{Type: typ, Code: e.Code, Message: e.Message}, RequestID: id})
}

func cfFaultWriter(w http.ResponseWriter, _ *http.Request, throttle bool) {
	if throttle {
		writeCFError(w, cfError{Status: http.StatusBadRequest, Code: "Throttling", Message: "Rate exceeded"})
		return
	}
	writeCFError(w, cfError{Status: http.StatusServiceUnavailable, Code: "ServiceUnavailable", Message: "CloudFront is temporarily unavailable"})
}

// route splits a CloudFront path into distribution id, sub-resource and
// invalidation id.
func route(p string) (id, sub, invID string, ok bool) {
	if !strings.HasPrefix(p, cfPrefix) {
		return "", "", "", false
	}
	rest := strings.Trim(strings.TrimPrefix(p, cfPrefix), "/")
	if rest == "" {
		return "", "", "", true
	}
	parts := strings.Split(rest, "/")
	switch len(parts) {
	case 1:
		return parts[0], "", "", true
	case 2:
		return parts[0], parts[1], "", true
	case 3:
		return parts[0], parts[1], parts[2], true
	}
	return "", "", "", false
}

func (s *cfService) opName(r *http.Request) string {
	if m := functionPath.FindStringSubmatch(r.URL.Path); m != nil {
		return functionOpName(r.Method, m[1], m[2])
	}
	if op := extraOpName(r); op != "" {
		return op
	}
	id, sub, inv, ok := route(r.URL.Path)
	switch {
	case !ok:
		return "Unknown"
	case id == "" && r.Method == http.MethodPost && r.URL.Query().Has("WithTags"):
		return "CreateDistributionWithTags"
	case id == "" && r.Method == http.MethodPost:
		return "CreateDistribution"
	case id == "" && r.Method == http.MethodGet:
		return "ListDistributions"
	case sub == "" && r.Method == http.MethodGet:
		return "GetDistribution"
	case sub == "config" && r.Method == http.MethodGet:
		return "GetDistributionConfig"
	case sub == "config" && r.Method == http.MethodPut:
		return "UpdateDistribution"
	case sub == "invalidation" && inv == "" && r.Method == http.MethodPost:
		return "CreateInvalidation"
	case sub == "invalidation" && inv == "" && r.Method == http.MethodGet:
		return "ListInvalidations"
	case sub == "invalidation" && r.Method == http.MethodGet:
		return "GetInvalidation"
	}
	return "Unknown"
}

// functionOpName names a CloudFront Functions call, as the routes of
// functions.serve take them.
func functionOpName(method, name, sub string) string {
	switch {
	case name == "" && method == http.MethodPost:
		return "CreateFunction"
	case name == "" && method == http.MethodGet:
		return "ListFunctions"
	case sub == "" && method == http.MethodPut:
		return "UpdateFunction"
	case sub == "/publish" && method == http.MethodPost:
		return "PublishFunction"
	case sub == "/describe" && method == http.MethodGet:
		return "DescribeFunction"
	case sub == "" && method == http.MethodGet:
		return "GetFunction"
	case sub == "" && method == http.MethodDelete:
		return "DeleteFunction"
	}
	return "Unknown"
}

func (s *cfService) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id, _, invID, _ := route(r.URL.Path)
	op := s.opName(r)
	if s.serveExtra(w, r, op) {
		return
	}
	switch op {
	case "CreateDistribution", "CreateDistributionWithTags":
		s.create(w, r, op == "CreateDistributionWithTags")
	case "ListDistributions":
		s.list(w)
	case "GetDistribution":
		s.get(w, id, false)
	case "GetDistributionConfig":
		s.get(w, id, true)
	case "UpdateDistribution":
		s.update(w, r, id)
	case "CreateInvalidation":
		s.createInvalidation(w, r, id)
	case "ListInvalidations":
		s.listInvalidations(w, id)
	case "GetInvalidation":
		s.getInvalidation(w, id, invID)
	default:
		writeCFError(w, cfError{Status: http.StatusNotImplemented, Code: "NotImplemented", Message: "localaws does not implement " + r.Method + " " + r.URL.Path})
	}
}

func (s *cfService) status(d *distribution) string {
	if s.now().Before(d.DeployedAt) {
		return "InProgress"
	}
	return "Deployed"
}

func (s *cfService) create(w http.ResponseWriter, r *http.Request, withTags bool) {
	raw, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		writeCFError(w, cfError{Status: 400, Code: "MalformedXML", Message: err.Error()})
		return
	}
	var tags []cfTag
	if withTags {
		var cerr *cfError
		if raw, tags, cerr = splitConfigWithTags(raw); cerr != nil {
			writeCFError(w, *cerr)
			return
		}
	}
	c, cerr := parseConfig(raw)
	if cerr != nil {
		writeCFError(w, *cerr)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if cerr := s.checkConfig(c); cerr != nil {
		writeCFError(w, *cerr)
		return
	}
	for _, d := range s.dists {
		if d.Config.CallerReference == c.CallerReference {
			writeCFError(w, cfError{Status: 409, Code: "DistributionAlreadyExists", Message: "The caller reference you attempted to create the distribution with is associated with another distribution: " + d.ID})
			return
		}
	}
	now := s.now().UTC()
	d := &distribution{ID: newID('E'), ETag: newID('E'), Raw: raw, Config: c, LastModified: now,
		DeployedAt: now.Add(s.propagation), Tags: tags}
	d.DomainName = strings.ToLower("d"+d.ID[1:]) + ".cloudfront.net"
	s.dists[d.ID] = d
	if err := s.save(); err != nil {
		writeCFError(w, cfError{Status: 500, Code: "InternalError", Message: err.Error()})
		return
	}
	w.Header().Set("Location", "/2020-05-31/distribution/"+d.ID)
	w.Header().Set("ETag", d.ETag)
	s.writeDistribution(w, http.StatusCreated, d)
}

func (s *cfService) writeDistribution(w http.ResponseWriter, status int, d *distribution) {
	inProgress := 0
	for _, inv := range d.Invalidations {
		if s.now().Before(inv.Completes) {
			inProgress++
		}
	}
	var b bytes.Buffer
	b.WriteString(xml.Header)
	fmt.Fprintf(&b, `<Distribution xmlns="%s"><Id>%s</Id><ARN>%s</ARN>`, cfNS, d.ID, distributionARN(d.ID))
	fmt.Fprintf(&b, `<Status>%s</Status><LastModifiedTime>%s</LastModifiedTime><InProgressInvalidationBatches>%d</InProgressInvalidationBatches>`,
		s.status(d), d.LastModified.Format(awsTime), inProgress)
	fmt.Fprintf(&b, `<DomainName>%s</DomainName><ActiveTrustedSigners><Enabled>false</Enabled><Quantity>0</Quantity></ActiveTrustedSigners>`, d.DomainName)
	b.Write(stripXMLHeader(d.Raw))
	b.WriteString(`</Distribution>`)
	w.Header().Set("Content-Type", "text/xml")
	w.Header().Set("x-amzn-RequestId", newRequestID())
	w.WriteHeader(status)
	_, _ = w.Write(b.Bytes())
}

func stripXMLHeader(raw []byte) []byte {
	raw = bytes.TrimSpace(raw)
	if bytes.HasPrefix(raw, []byte("<?xml")) {
		if i := bytes.Index(raw, []byte("?>")); i >= 0 {
			raw = bytes.TrimSpace(raw[i+2:])
		}
	}
	return raw
}

func (s *cfService) list(w http.ResponseWriter) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]string, 0, len(s.dists))
	for id := range s.dists {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	writeCFList(w, "DistributionList", len(ids), func(b *bytes.Buffer, i int) {
		d := s.dists[ids[i]]
		fmt.Fprintf(b, `<DistributionSummary><Id>%s</Id><ARN>%s</ARN><ETag>%s</ETag><Status>%s</Status><LastModifiedTime>%s</LastModifiedTime><DomainName>%s</DomainName>`,
			d.ID, distributionARN(d.ID), d.ETag, s.status(d), d.LastModified.Format(awsTime), d.DomainName)
		b.WriteString(innerElement(d.Raw, "Aliases"))
		// The summary carries the config's settings, as
		// https://docs.aws.amazon.com/cloudfront/latest/APIReference/API_DistributionSummary.html lists them.
		for _, name := range []string{"Origins", "OriginGroups", "DefaultCacheBehavior", "CacheBehaviors", "CustomErrorResponses",
			"PriceClass", "ViewerCertificate", "Restrictions", "WebACLId", "HttpVersion", "IsIPV6Enabled"} {
			b.WriteString(innerElement(d.Raw, name))
		}
		fmt.Fprintf(b, `<Comment>%s</Comment><Enabled>%t</Enabled></DistributionSummary>`, xmlEscape(d.Config.Comment), d.Config.Enabled)
	})
}

// writeCFList answers a CloudFront list (DistributionList,
// InvalidationList, OriginAccessControlList) of n items, all in one page;
// item writes the i-th.
func writeCFList(w http.ResponseWriter, root string, n int, item func(b *bytes.Buffer, i int)) {
	var b bytes.Buffer
	b.WriteString(xml.Header)
	fmt.Fprintf(&b, `<%s xmlns="%s"><Marker></Marker><MaxItems>100</MaxItems><IsTruncated>false</IsTruncated><Quantity>%d</Quantity>`, root, cfNS, n)
	if n > 0 {
		b.WriteString("<Items>")
		for i := range n {
			item(&b, i)
		}
		b.WriteString("</Items>")
	}
	b.WriteString("</" + root + ">")
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b.Bytes())
}

func xmlEscape(s string) string {
	var b bytes.Buffer
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

// innerElement returns the first <name>...</name> child of the config's
// root element, as raw XML, or "".
func innerElement(raw []byte, name string) string {
	var c struct {
		Items []struct {
			XMLName xml.Name
			Inner   []byte `xml:",innerxml"`
		} `xml:",any"`
	}
	if xml.Unmarshal(raw, &c) != nil {
		return ""
	}
	for _, it := range c.Items {
		if it.XMLName.Local == name {
			return "<" + name + ">" + string(it.Inner) + "</" + name + ">"
		}
	}
	return ""
}

func (s *cfService) get(w http.ResponseWriter, id string, configOnly bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.dist(w, id)
	if d == nil {
		return
	}
	w.Header().Set("ETag", d.ETag)
	if !configOnly {
		s.writeDistribution(w, http.StatusOK, d)
		return
	}
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, xml.Header)
	_, _ = w.Write(stripXMLHeader(d.Raw))
}

func (s *cfService) update(w http.ResponseWriter, r *http.Request, id string) {
	raw, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		writeCFError(w, cfError{Status: 400, Code: "MalformedXML", Message: err.Error()})
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.dist(w, id)
	if d == nil {
		return
	}
	if !ifMatches(w, r, d.ETag) {
		return
	}
	c, cerr := parseConfig(raw)
	if cerr != nil {
		writeCFError(w, *cerr)
		return
	}
	if cerr := s.checkConfig(c); cerr != nil {
		writeCFError(w, *cerr)
		return
	}
	if c.CallerReference != d.Config.CallerReference {
		writeCFError(w, cfError{Status: 400, Code: "IllegalUpdate", Message: "Origin and CallerReference cannot be updated."})
		return
	}
	now := s.now().UTC()
	// Each PoP goes on serving what it serves now until its own moment
	// inside the propagation window; one that had not yet picked up an
	// earlier change skips it.
	pops := make([]popState, s.pops)
	for i := range pops {
		pops[i] = popState{Old: d.popConfig(i, now), At: now.Add(s.within(s.propagation))}
	}
	d.Raw, d.Config, d.ETag, d.LastModified, d.Pops = raw, c, newID('E'), now, pops
	d.DeployedAt = now.Add(s.propagation)
	if err := s.save(); err != nil {
		writeCFError(w, cfError{Status: 500, Code: "InternalError", Message: err.Error()})
		return
	}
	w.Header().Set("ETag", d.ETag)
	s.writeDistribution(w, http.StatusOK, d)
}

// ifMatches reports whether a change's If-Match names the resource's
// current ETag, answering CloudFront's refusal when not: 400
// InvalidIfMatchVersion without one, 412 PreconditionFailed for another.
func ifMatches(w http.ResponseWriter, r *http.Request, etag string) bool {
	switch im := r.Header.Get("If-Match"); {
	case im == "":
		writeCFError(w, cfError{Status: 400, Code: "InvalidIfMatchVersion", Message: "The If-Match version is missing or not valid for the resource."})
	case im != etag:
		writeCFError(w, cfError{Status: 412, Code: "PreconditionFailed", Message: "The precondition given in one or more of the request-header fields evaluated to false."})
	default:
		return true
	}
	return false
}

// dist returns a distribution, or answers NoSuchDistribution; callers hold mu.
func (s *cfService) dist(w http.ResponseWriter, id string) *distribution {
	d := s.dists[id]
	if d == nil {
		writeCFError(w, cfError{Status: 404, Code: "NoSuchDistribution", Message: "The specified distribution does not exist."})
	}
	return d
}
