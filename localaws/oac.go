package localaws

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strings"
)

// distributionARN is a distribution's ARN in the stand-in's account.
func distributionARN(id string) string {
	return "arn:aws:cloudfront::" + StandInAccount + ":distribution/" + id
}

// originAccessControl is a CloudFront origin access control
// (https://docs.aws.amazon.com/cloudfront/latest/APIReference/API_OriginAccessControlConfig.html).
type originAccessControl struct {
	ID              string `json:"id"`
	ETag            string `json:"etag"`
	Name            string `json:"name"`
	Description     string `json:"description,omitempty"`
	SigningProtocol string `json:"signing_protocol"`
	SigningBehavior string `json:"signing_behavior"`
	OriginType      string `json:"origin_type"`
}

type oacConfigXML struct {
	XMLName                       xml.Name `xml:"OriginAccessControlConfig"`
	NS                            string   `xml:"xmlns,attr,omitempty"`
	Name                          string
	Description                   string
	SigningProtocol               string
	SigningBehavior               string
	OriginAccessControlOriginType string
}

var (
	oacPath     = regexp.MustCompile(`^/2020-05-31/origin-access-control(?:/([^/]+)(/config)?)?$`)
	taggingPath = "/2020-05-31/tagging"
	kvsCtlPath  = regexp.MustCompile(`^/2020-05-31/key-value-store/?(?:([^/]+))?$`)
)

// extraOpName names the CloudFront calls of this file and kvscontrol.go;
// "" for others.
func extraOpName(r *http.Request) string {
	if m := oacPath.FindStringSubmatch(r.URL.Path); m != nil {
		id, config := m[1], m[2] != ""
		switch {
		case id == "" && r.Method == http.MethodPost:
			return "CreateOriginAccessControl"
		case id == "" && r.Method == http.MethodGet:
			return "ListOriginAccessControls"
		case config && r.Method == http.MethodGet:
			return "GetOriginAccessControlConfig"
		case config && r.Method == http.MethodPut:
			return "UpdateOriginAccessControl"
		case !config && r.Method == http.MethodGet:
			return "GetOriginAccessControl"
		case !config && r.Method == http.MethodDelete:
			return "DeleteOriginAccessControl"
		}
		return "Unknown"
	}
	if r.URL.Path == taggingPath {
		switch {
		case r.Method == http.MethodGet:
			return "ListTagsForResource"
		case r.Method == http.MethodPost && r.URL.Query().Get("Operation") == "Tag":
			return "TagResource"
		case r.Method == http.MethodPost && r.URL.Query().Get("Operation") == "Untag":
			return "UntagResource"
		}
		return "Unknown"
	}
	if m := kvsCtlPath.FindStringSubmatch(r.URL.Path); m != nil {
		switch {
		case m[1] == "" && r.Method == http.MethodPost:
			return "CreateKeyValueStore"
		case m[1] == "" && r.Method == http.MethodGet:
			return "ListKeyValueStores"
		case r.Method == http.MethodGet:
			return "DescribeKeyValueStore"
		case r.Method == http.MethodPut:
			return "UpdateKeyValueStore"
		case r.Method == http.MethodDelete:
			return "DeleteKeyValueStore"
		}
		return "Unknown"
	}
	return ""
}

// serveExtra answers the origin access control and tagging calls; false
// for other ops.
func (s *cfService) serveExtra(w http.ResponseWriter, r *http.Request, op string) bool {
	switch {
	case strings.Contains(op, "OriginAccessControl"):
		m := oacPath.FindStringSubmatch(r.URL.Path)
		s.serveOAC(w, r, op, m[1])
	case op == "ListTagsForResource" || op == "TagResource" || op == "UntagResource":
		s.serveTags(w, r, op)
	default:
		return false
	}
	return true
}

// checkOACConfig applies CloudFront's rules to an origin access control
// configuration
// (https://docs.aws.amazon.com/cloudfront/latest/APIReference/API_OriginAccessControlConfig.html):
// a name of up to 64 characters, SigningProtocol sigv4, SigningBehavior
// always, never or no-override, an origin type of the documented ones.
// Values outside an enumeration are answered MalformedXML, as CloudFront's
// request validation answers them.
func checkOACConfig(c oacConfigXML) *cfError {
	switch {
	case c.Name == "" || len([]rune(c.Name)) > 64:
		return &cfError{Status: 400, Code: "InvalidArgument", Message: "The origin access control name must be 1 to 64 characters."}
	}
	if e := enumError("originAccessControlConfig.signingProtocol", c.SigningProtocol, "sigv4"); e != nil {
		return e
	}
	if e := enumError("originAccessControlConfig.signingBehavior", c.SigningBehavior, "never", "always", "no-override"); e != nil {
		return e
	}
	return enumError("originAccessControlConfig.originAccessControlOriginType", c.OriginAccessControlOriginType, "s3", "mediastore", "mediapackagev2", "lambda")
}

func writeOAC(w http.ResponseWriter, status int, o *originAccessControl, configOnly bool) {
	cfg := oacConfigXML{Name: o.Name, Description: o.Description, SigningProtocol: o.SigningProtocol, SigningBehavior: o.SigningBehavior, OriginAccessControlOriginType: o.OriginType}
	var body any = struct {
		XMLName xml.Name `xml:"OriginAccessControl"`
		NS      string   `xml:"xmlns,attr"`
		ID      string   `xml:"Id"`
		Config  oacConfigXML
	}{NS: cfNS, ID: o.ID, Config: cfg}
	if configOnly {
		cfg.NS = cfNS
		body = cfg
	}
	var b bytes.Buffer
	b.WriteString(xml.Header)
	_ = xml.NewEncoder(&b).Encode(body)
	w.Header().Set("ETag", o.ETag)
	w.Header().Set("Content-Type", "text/xml")
	w.Header().Set("x-amzn-RequestId", newRequestID())
	w.WriteHeader(status)
	_, _ = w.Write(b.Bytes())
}

func (s *cfService) saveOACs() error { return saveJSON(s.oacFile, s.oacs) }

// serveOAC answers the origin access control API
// (https://docs.aws.amazon.com/cloudfront/latest/APIReference/API_CreateOriginAccessControl.html,
// API_GetOriginAccessControl.html, API_GetOriginAccessControlConfig.html,
// API_ListOriginAccessControls.html, API_UpdateOriginAccessControl.html,
// API_DeleteOriginAccessControl.html): names are unique in the account
// (OriginAccessControlAlreadyExists), changes take the current ETag in
// If-Match, and one in use by a distribution cannot be deleted
// (OriginAccessControlInUse).
func (s *cfService) serveOAC(w http.ResponseWriter, r *http.Request, op, id string) {
	c := oacCall{s: s, w: w, r: r}
	if op == "CreateOriginAccessControl" || op == "UpdateOriginAccessControl" {
		if !decodeXML(w, r, &c.cfg) {
			return
		}
		if cerr := checkOACConfig(c.cfg); cerr != nil {
			writeCFError(w, *cerr)
			return
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if id != "" {
		if c.o = s.oacs[id]; c.o == nil {
			writeCFError(w, cfError{Status: 404, Code: "NoSuchOriginAccessControl", Message: "The origin access control does not exist."})
			return
		}
	}
	switch op {
	case "CreateOriginAccessControl":
		c.create()
	case "GetOriginAccessControl", "GetOriginAccessControlConfig":
		writeOAC(w, http.StatusOK, c.o, op == "GetOriginAccessControlConfig")
	case "UpdateOriginAccessControl":
		c.update()
	case "DeleteOriginAccessControl":
		c.delete()
	case "ListOriginAccessControls":
		s.listOACs(w)
	default:
		writeCFError(w, cfError{Status: http.StatusNotImplemented, Code: "NotImplemented", Message: "localaws does not implement " + r.Method + " " + r.URL.Path})
	}
}

// oacCall is one origin access control request, served under the
// service's mu: the config it sends (create, update) and the control its
// path names (nil for create and list).
type oacCall struct {
	s   *cfService
	w   http.ResponseWriter
	r   *http.Request
	cfg oacConfigXML
	o   *originAccessControl
}

// nameTaken answers 409 when another control than except has the
// config's name.
func (c *oacCall) nameTaken(except string) bool {
	for _, o := range c.s.oacs {
		if o.Name == c.cfg.Name && o.ID != except {
			writeCFError(c.w, cfError{Status: 409, Code: "OriginAccessControlAlreadyExists", Message: "An origin access control with the specified parameters already exists."})
			return true
		}
	}
	return false
}

func (c *oacCall) save() bool {
	if err := c.s.saveOACs(); err != nil {
		writeCFError(c.w, cfError{Status: 500, Code: "InternalError", Message: err.Error()})
		return false
	}
	return true
}

func (c *oacCall) create() {
	if c.nameTaken("") {
		return
	}
	o := &originAccessControl{ID: newID('E'), ETag: newID('E'), Name: c.cfg.Name, Description: c.cfg.Description,
		SigningProtocol: c.cfg.SigningProtocol, SigningBehavior: c.cfg.SigningBehavior, OriginType: c.cfg.OriginAccessControlOriginType}
	c.s.oacs[o.ID] = o
	if !c.save() {
		delete(c.s.oacs, o.ID)
		return
	}
	c.w.Header().Set("Location", "/2020-05-31/origin-access-control/"+o.ID)
	writeOAC(c.w, http.StatusCreated, o, false)
}

func (c *oacCall) update() {
	if !ifMatches(c.w, c.r, c.o.ETag) || c.nameTaken(c.o.ID) {
		return
	}
	o, cfg := c.o, c.cfg
	o.Name, o.Description, o.SigningProtocol, o.SigningBehavior, o.OriginType, o.ETag =
		cfg.Name, cfg.Description, cfg.SigningProtocol, cfg.SigningBehavior, cfg.OriginAccessControlOriginType, newID('E')
	if c.save() {
		writeOAC(c.w, http.StatusOK, o, false)
	}
}

func (c *oacCall) delete() {
	if !ifMatches(c.w, c.r, c.o.ETag) {
		return
	}
	for _, d := range c.s.dists {
		for _, or := range d.Config.Origins.Items {
			if or.OriginAccessControlID == c.o.ID {
				writeCFError(c.w, cfError{Status: 409, Code: "OriginAccessControlInUse", Message: "Cannot delete the origin access control because it's in use by one or more distributions."})
				return
			}
		}
	}
	delete(c.s.oacs, c.o.ID)
	if c.save() {
		c.w.WriteHeader(http.StatusNoContent)
	}
}

// listOACs answers ListOriginAccessControls; callers hold mu.
func (s *cfService) listOACs(w http.ResponseWriter) {
	ids := make([]string, 0, len(s.oacs))
	for id := range s.oacs {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	writeCFList(w, "OriginAccessControlList", len(ids), func(b *bytes.Buffer, i int) {
		o := s.oacs[ids[i]]
		fmt.Fprintf(b, `<OriginAccessControlSummary><Id>%s</Id><Description>%s</Description><Name>%s</Name><SigningProtocol>%s</SigningProtocol><SigningBehavior>%s</SigningBehavior><OriginAccessControlOriginType>%s</OriginAccessControlOriginType></OriginAccessControlSummary>`,
			o.ID, xmlEscape(o.Description), xmlEscape(o.Name), o.SigningProtocol, o.SigningBehavior, o.OriginType)
	})
}

// ensureOAC returns the id of the origin access control called name,
// creating it (S3, SigV4, signing always) if missing; callers hold mu.
func (s *cfService) ensureOAC(name string) (string, error) {
	for _, o := range s.oacs {
		if o.Name == name {
			return o.ID, nil
		}
	}
	o := &originAccessControl{ID: newID('E'), ETag: newID('E'), Name: name, SigningProtocol: "sigv4", SigningBehavior: "always", OriginType: "s3"}
	s.oacs[o.ID] = o
	return o.ID, s.saveOACs()
}

// originSigner is how the edge reaches origin o: as CloudFront's service
// principal when an origin access control signs its requests (signing
// always; no-override also signs, the edge's viewers sending no
// Authorization header), else anonymously
// (https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/private-content-restricting-access-to-s3.html#oac-advanced-settings).
func (s *cfService) originSigns(o cfOrigin) bool {
	if o.OriginAccessControlID == "" {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	oac := s.oacs[o.OriginAccessControlID]
	return oac != nil && oac.SigningBehavior != "never"
}
