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

// distConfig is the part of a DistributionConfig the stand-in acts on. The
// whole document is kept as sent (Raw) and returned byte for byte, so fields
// the stand-in does not model survive a read-modify-write.
type distConfig struct {
	XMLName         xml.Name `xml:"DistributionConfig" json:"-"`
	CallerReference string   `json:"caller_reference"`
	Aliases         struct {
		Quantity int      `json:"quantity"`
		Items    []string `xml:"Items>CNAME" json:"items"`
	} `json:"aliases"`
	DefaultRootObject string `json:"default_root_object"`
	Origins           struct {
		Quantity int        `json:"quantity"`
		Items    []cfOrigin `xml:"Items>Origin" json:"items"`
	} `json:"origins"`
	DefaultCacheBehavior cfBehavior `json:"default_cache_behavior"`
	CacheBehaviors       struct {
		Quantity int          `json:"quantity"`
		Items    []cfBehavior `xml:"Items>CacheBehavior" json:"items"`
	} `json:"cache_behaviors"`
	CustomErrorResponses struct {
		Quantity int               `json:"quantity"`
		Items    []cfErrorResponse `xml:"Items>CustomErrorResponse" json:"items"`
	} `json:"custom_error_responses"`
	Comment     string `json:"comment"`
	Enabled     bool   `json:"enabled"`
	PriceClass  string `json:"price_class,omitempty"`
	HTTPVersion string `xml:"HttpVersion" json:"http_version,omitempty"`
}

type cfFunctionAssoc struct {
	FunctionARN string `json:"function_arn"`
	EventType   string `json:"event_type"`
}

// cfBehavior is a cache behaviour: the default one (no PathPattern) or
// one of CacheBehaviors.
type cfBehavior struct {
	PathPattern          string `json:"path_pattern,omitempty"`
	TargetOriginID       string `xml:"TargetOriginId" json:"target_origin_id"`
	FunctionAssociations struct {
		Quantity int               `json:"quantity"`
		Items    []cfFunctionAssoc `xml:"Items>FunctionAssociation" json:"items"`
	} `json:"function_associations"`
	LambdaFunctionAssociations struct {
		Quantity int             `json:"quantity"`
		Items    []cfLambdaAssoc `xml:"Items>LambdaFunctionAssociation" json:"items"`
	} `json:"lambda_function_associations"`
	ViewerProtocolPolicy string `json:"viewer_protocol_policy,omitempty"`
	CachePolicyID        string `xml:"CachePolicyId" json:"cache_policy_id,omitempty"`
}

// cfLambdaAssoc is a Lambda@Edge association of a cache behaviour. The
// stand-in keeps it (the config round-trips) but runs no Lambda code.
type cfLambdaAssoc struct {
	LambdaFunctionARN string `xml:"LambdaFunctionARN" json:"lambda_function_arn"`
	EventType         string `json:"event_type"`
	IncludeBody       bool   `json:"include_body,omitempty"`
}

// viewerRequestFunction is the ARN of the function the behaviour runs on
// viewer requests, or "".
func (b cfBehavior) viewerRequestFunction() string { return b.function("viewer-request") }

// viewerResponseFunction is the ARN of the function the behaviour runs on
// viewer responses, or "".
func (b cfBehavior) viewerResponseFunction() string { return b.function("viewer-response") }

func (b cfBehavior) function(event string) string {
	for _, fa := range b.FunctionAssociations.Items {
		if fa.EventType == event {
			return fa.FunctionARN
		}
	}
	return ""
}

// behaviors lists the cache behaviours in the order CloudFront matches
// them: the path-pattern ones as listed, then the default one.
func (c distConfig) behaviors() []cfBehavior {
	return append(append([]cfBehavior(nil), c.CacheBehaviors.Items...), c.DefaultCacheBehavior)
}

type cfOrigin struct {
	ID             string `xml:"Id" json:"id"`
	DomainName     string `json:"domain_name"`
	OriginPath     string `json:"origin_path"`
	S3OriginConfig *struct {
		OriginAccessIdentity string `json:"oai,omitempty"`
	} `json:"s3,omitempty"`
	CustomOriginConfig    *struct{} `json:"custom,omitempty"`
	OriginAccessControlID string    `xml:"OriginAccessControlId" json:"oac,omitempty"`
}

type invalidation struct {
	ID              string    `json:"id"`
	CallerReference string    `json:"caller_reference"`
	Paths           []string  `json:"paths"`
	Created         time.Time `json:"created"`
	Completes       time.Time `json:"completes"`
	// PopDone is when each PoP purges its cache, all by Completes.
	PopDone []time.Time `json:"pop_done,omitempty"`
}

// purgeAt is when PoP pop purges the invalidation's paths.
func (inv *invalidation) purgeAt(pop int) time.Time {
	if pop < len(inv.PopDone) {
		return inv.PopDone[pop]
	}
	return inv.Completes
}

// covers reports whether the invalidation names viewer path p: "/*"
// everything, "/a/*" a prefix, otherwise the path itself.
func (inv *invalidation) covers(p string) bool {
	for _, pat := range inv.Paths {
		if prefix, ok := strings.CutSuffix(pat, "*"); ok && strings.HasPrefix(p, prefix) || pat == p {
			return true
		}
	}
	return false
}

// popState is one PoP's view of a distribution: it serves Old until At,
// then the distribution's config.
type popState struct {
	Old distConfig `json:"old"`
	At  time.Time  `json:"at"`
}

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

// popConfig is what PoP pop serves at now.
func (d *distribution) popConfig(pop int, now time.Time) distConfig {
	if pop < len(d.Pops) && now.Before(d.Pops[pop].At) {
		return d.Pops[pop].Old
	}
	return d.Config
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

// checkAssociations refuses a config whose function associations name a
// function that does not exist or was never published, as CloudFront does.
func (s *cfService) checkAssociations(c distConfig) *cfError {
	for _, b := range c.behaviors() {
		if err := s.checkBehaviorAssociations(b); err != nil {
			return err
		}
	}
	return nil
}

func (s *cfService) checkBehaviorAssociations(b cfBehavior) *cfError {
	events := map[string]bool{}
	for _, fa := range b.FunctionAssociations.Items {
		// One function per event type and cache behaviour
		// (https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/edge-functions-restrictions.html).
		if events[fa.EventType] {
			return &cfError{Status: 400, Code: "InvalidFunctionAssociation", Message: "A cache behavior can have only one function association for event type " + fa.EventType + "."}
		}
		events[fa.EventType] = true
		if s.published == nil || !s.published(fa.FunctionARN) {
			return &cfError{Status: 400, Code: "InvalidFunctionAssociation", Message: "The function ARN " + fa.FunctionARN + " does not name a published function."}
		}
		if fa.EventType != "viewer-request" && fa.EventType != "viewer-response" {
			return &cfError{Status: 400, Code: "InvalidFunctionAssociation", Message: "CloudFront Functions run on viewer-request or viewer-response, not " + fa.EventType + "."}
		}
	}
	return nil
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

// parseConfig checks a DistributionConfig as CloudFront would for the
// fields the stand-in models.
func parseConfig(raw []byte) (distConfig, *cfError) {
	var c distConfig
	if err := xml.Unmarshal(raw, &c); err != nil {
		return c, &cfError{Status: 400, Code: "MalformedXML", Message: err.Error()}
	}
	if c.CallerReference == "" {
		return c, &cfError{Status: 400, Code: "InvalidArgument", Message: "CallerReference is required"}
	}
	if c.Origins.Quantity != len(c.Origins.Items) || len(c.Origins.Items) == 0 {
		return c, &cfError{Status: 400, Code: "InvalidArgument", Message: "Origins: Quantity must match the number of items and be at least 1"}
	}
	if c.Aliases.Quantity != len(c.Aliases.Items) {
		return c, &cfError{Status: 400, Code: "InvalidArgument", Message: "Aliases: Quantity must match the number of items"}
	}
	for _, o := range c.Origins.Items {
		if p := o.OriginPath; p != "" && (!strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/")) {
			return c, &cfError{Status: 400, Code: "InvalidArgument", Message: fmt.Sprintf("The parameter origin path must begin with / and must not end with /: %q", p)}
		}
		if o.ID == "" || o.DomainName == "" {
			return c, &cfError{Status: 400, Code: "InvalidArgument", Message: "an origin needs an Id and a DomainName"}
		}
	}
	if cerr := checkRouting(c); cerr != nil {
		return c, cerr
	}
	return c, nil
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
	var b bytes.Buffer
	b.WriteString(xml.Header)
	fmt.Fprintf(&b, `<DistributionList xmlns="%s"><Marker></Marker><MaxItems>100</MaxItems><IsTruncated>false</IsTruncated><Quantity>%d</Quantity>`, cfNS, len(ids))
	if len(ids) > 0 {
		b.WriteString("<Items>")
		for _, id := range ids {
			d := s.dists[id]
			fmt.Fprintf(&b, `<DistributionSummary><Id>%s</Id><ARN>%s</ARN><ETag>%s</ETag><Status>%s</Status><LastModifiedTime>%s</LastModifiedTime><DomainName>%s</DomainName>`,
				d.ID, distributionARN(d.ID), d.ETag, s.status(d), d.LastModified.Format(awsTime), d.DomainName)
			b.WriteString(innerElement(d.Raw, "Aliases"))
			// The summary carries the config's settings, as
			// https://docs.aws.amazon.com/cloudfront/latest/APIReference/API_DistributionSummary.html lists them.
			for _, name := range []string{"Origins", "OriginGroups", "DefaultCacheBehavior", "CacheBehaviors", "CustomErrorResponses",
				"PriceClass", "ViewerCertificate", "Restrictions", "WebACLId", "HttpVersion", "IsIPV6Enabled"} {
				b.WriteString(innerElement(d.Raw, name))
			}
			fmt.Fprintf(&b, `<Comment>%s</Comment><Enabled>%t</Enabled></DistributionSummary>`, xmlEscape(d.Config.Comment), d.Config.Enabled)
		}
		b.WriteString("</Items>")
	}
	b.WriteString("</DistributionList>")
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
	ifMatch := r.Header.Get("If-Match")
	if ifMatch == "" {
		writeCFError(w, cfError{Status: 400, Code: "InvalidIfMatchVersion", Message: "The If-Match version is missing or not valid for the resource."})
		return
	}
	if ifMatch != d.ETag {
		writeCFError(w, cfError{Status: 412, Code: "PreconditionFailed", Message: "The precondition given in one or more of the request-header fields evaluated to false."})
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

// countPaths splits invalidation paths into wildcard ones ("/img/*") and
// file ones.
func countPaths(paths []string) (wild, files int) {
	for _, p := range paths {
		if strings.HasSuffix(p, "*") {
			wild++
		} else {
			files++
		}
	}
	return wild, files
}

func (s *cfService) createInvalidation(w http.ResponseWriter, r *http.Request, id string) {
	var batch struct {
		Paths struct {
			Quantity int
			Items    []string `xml:"Items>Path"`
		}
		CallerReference string
	}
	if err := xml.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&batch); err != nil {
		writeCFError(w, cfError{Status: 400, Code: "MalformedXML", Message: err.Error()})
		return
	}
	if batch.CallerReference == "" || batch.Paths.Quantity != len(batch.Paths.Items) || len(batch.Paths.Items) == 0 {
		writeCFError(w, cfError{Status: 400, Code: "InvalidArgument", Message: "an invalidation needs a CallerReference and at least one path, with Quantity matching"})
		return
	}
	for _, p := range batch.Paths.Items {
		if !strings.HasPrefix(p, "/") {
			writeCFError(w, cfError{Status: 400, Code: "InvalidArgument", Message: "Your request contains one or more invalid invalidation paths: " + p})
			return
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.dist(w, id)
	if d == nil {
		return
	}
	// CloudFront answers a repeated caller reference with the invalidation
	// it already made when the batch is the same, and refuses it otherwise.
	for _, inv := range d.Invalidations {
		if inv.CallerReference == batch.CallerReference {
			if strings.Join(inv.Paths, "\n") != strings.Join(batch.Paths.Items, "\n") {
				writeCFError(w, cfError{Status: 409, Code: "InvalidationBatchAlreadyExists", Message: "A different invalidation batch with this caller reference exists."})
				return
			}
			w.Header().Set("Location", "/2020-05-31/distribution/"+d.ID+"/invalidation/"+inv.ID)
			s.writeInvalidation(w, http.StatusCreated, inv)
			return
		}
	}
	now := s.now().UTC()
	// At most 15 wildcard paths and 3,000 file paths in progress per
	// distribution
	// (https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/cloudfront-limits.html#limits-invalidations).
	wild, files := countPaths(batch.Paths.Items)
	for _, inv := range d.Invalidations {
		if now.Before(inv.Completes) {
			w, f := countPaths(inv.Paths)
			wild, files = wild+w, files+f
		}
	}
	if wild > 15 || files > 3000 {
		writeCFError(w, cfError{Status: 400, Code: "TooManyInvalidationsInProgress",
			Message: "Processing your request will cause you to exceed the maximum number of in-progress wildcard invalidations."})
		return
	}
	inv := &invalidation{ID: newID('I'), CallerReference: batch.CallerReference, Paths: batch.Paths.Items,
		Created: now, Completes: now.Add(s.invalidation)}
	for range s.pops {
		inv.PopDone = append(inv.PopDone, now.Add(s.within(s.invalidation)))
	}
	d.Invalidations = append(d.Invalidations, inv)
	if err := s.save(); err != nil {
		writeCFError(w, cfError{Status: 500, Code: "InternalError", Message: err.Error()})
		return
	}
	w.Header().Set("Location", "/2020-05-31/distribution/"+d.ID+"/invalidation/"+inv.ID)
	s.writeInvalidation(w, http.StatusCreated, inv)
}

func (s *cfService) invStatus(inv *invalidation) string {
	if s.now().Before(inv.Completes) {
		return "InProgress"
	}
	return "Completed"
}

func (s *cfService) writeInvalidation(w http.ResponseWriter, status int, inv *invalidation) {
	var b bytes.Buffer
	b.WriteString(xml.Header)
	fmt.Fprintf(&b, `<Invalidation xmlns="%s"><Id>%s</Id><Status>%s</Status><CreateTime>%s</CreateTime><InvalidationBatch><Paths><Quantity>%d</Quantity><Items>`,
		cfNS, inv.ID, s.invStatus(inv), inv.Created.Format(awsTime), len(inv.Paths))
	for _, p := range inv.Paths {
		fmt.Fprintf(&b, "<Path>%s</Path>", xmlEscape(p))
	}
	fmt.Fprintf(&b, `</Items></Paths><CallerReference>%s</CallerReference></InvalidationBatch></Invalidation>`, xmlEscape(inv.CallerReference))
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(status)
	_, _ = w.Write(b.Bytes())
}

func (s *cfService) getInvalidation(w http.ResponseWriter, id, invID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.dist(w, id)
	if d == nil {
		return
	}
	for _, inv := range d.Invalidations {
		if inv.ID == invID {
			s.writeInvalidation(w, http.StatusOK, inv)
			return
		}
	}
	writeCFError(w, cfError{Status: 404, Code: "NoSuchInvalidation", Message: "The specified invalidation does not exist."})
}

func (s *cfService) listInvalidations(w http.ResponseWriter, id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.dist(w, id)
	if d == nil {
		return
	}
	var b bytes.Buffer
	b.WriteString(xml.Header)
	fmt.Fprintf(&b, `<InvalidationList xmlns="%s"><Marker></Marker><MaxItems>100</MaxItems><IsTruncated>false</IsTruncated><Quantity>%d</Quantity>`, cfNS, len(d.Invalidations))
	if len(d.Invalidations) > 0 {
		b.WriteString("<Items>")
		// Newest first, as CloudFront lists them.
		for i := len(d.Invalidations) - 1; i >= 0; i-- {
			inv := d.Invalidations[i]
			fmt.Fprintf(&b, `<InvalidationSummary><Id>%s</Id><CreateTime>%s</CreateTime><Status>%s</Status></InvalidationSummary>`,
				inv.ID, inv.Created.Format(awsTime), s.invStatus(inv))
		}
		b.WriteString("</Items>")
	}
	b.WriteString("</InvalidationList>")
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b.Bytes())
}

// edgeView is what one PoP serves for a distribution at one moment.
type edgeView struct {
	id   string
	cfg  distConfig
	invs []*invalidation // immutable once made
}

// purged reports whether an answer for viewer path p that PoP pop cached
// at stored has been purged by now.
func (v edgeView) purged(pop int, p string, stored, now time.Time) bool {
	for _, inv := range v.invs {
		if at := inv.purgeAt(pop); stored.Before(at) && !now.Before(at) && inv.covers(p) {
			return true
		}
	}
	return false
}

// within is a random moment inside a window of length d; callers hold mu.
func (s *cfService) within(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return time.Duration(s.rng.Int64N(int64(d) + 1))
}

// serving returns what PoP pop serves for host: the distribution whose
// alias or domain name is host, or the only one there is.
func (s *cfService) serving(host string, pop int) (edgeView, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if h, _, ok := strings.Cut(host, ":"); ok {
		host = h
	}
	var pick *distribution
	for _, d := range s.dists {
		if strings.EqualFold(d.DomainName, host) || strings.EqualFold(d.ID, strings.Split(host, ".")[0]) {
			pick = d
		}
		for _, a := range d.Config.Aliases.Items {
			if strings.EqualFold(a, host) {
				pick = d
			}
		}
	}
	if pick == nil && len(s.dists) == 1 {
		for _, d := range s.dists {
			pick = d
		}
	}
	if pick == nil {
		return edgeView{}, false
	}
	return edgeView{id: pick.ID, cfg: pick.popConfig(pop, s.now()), invs: append([]*invalidation(nil), pick.Invalidations...)}, true
}

// dist returns a distribution, or answers NoSuchDistribution; callers hold mu.
func (s *cfService) dist(w http.ResponseWriter, id string) *distribution {
	d := s.dists[id]
	if d == nil {
		writeCFError(w, cfError{Status: 404, Code: "NoSuchDistribution", Message: "The specified distribution does not exist."})
	}
	return d
}
