package localaws

import (
	"bytes"
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"slices"
	"sync"
	"time"
)

// cfFunctionConfig is a function's configuration as the API carries it.
type cfFunctionConfig struct {
	Comment                   string
	Runtime                   string
	KeyValueStoreAssociations struct {
		Quantity int
		Items    []string `xml:"Items>KeyValueStoreAssociation>KeyValueStoreARN"`
	}
}

// cfFunc is one CloudFront Function with its two stages.
type cfFunc struct {
	Name   string           `json:"name"`
	ARN    string           `json:"arn"`
	ETag   string           `json:"etag"`
	Config cfFunctionConfig `json:"config"`
	Dev    []byte           `json:"dev"`
	Live   []byte           `json:"live,omitempty"`
	// LiveConfig is the configuration published with Live: the LIVE
	// stage keeps what was published until the next PublishFunction.
	LiveConfig *cfFunctionConfig `json:"live_config,omitempty"`
	// LiveETag is the LIVE stage's version, which is not the DEVELOPMENT
	// stage's: UpdateFunction and PublishFunction take the latter.
	LiveETag string    `json:"live_etag,omitempty"`
	Created  time.Time `json:"created"`
	Modified time.Time `json:"modified"`
}

// etag is the version of one stage of the function.
func (fn *cfFunc) etag(stage string) string {
	if stage == "LIVE" && fn.LiveETag != "" {
		return fn.LiveETag
	}
	return fn.ETag
}

// functions are the stand-in's CloudFront Functions, kept in
// functions.json next to the distributions.
type functions struct {
	file string
	mu   sync.Mutex
	byN  map[string]*cfFunc
	// storeExists reports whether a key value store ARN names a store
	// (kvs.go); nil: every ARN does.
	storeExists func(arn string) bool
	// compiled caches runnable code by its text.
	compiled sync.Map // string -> *jsFunction
	// now is the clock the functions read (Date.now()); nil: the wall
	// clock.
	now func() time.Time
}

// usesStore reports whether a function (either stage) is associated
// with the key value store arn.
func (f *functions) usesStore(arn string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, fn := range f.byN {
		cfgs := []*cfFunctionConfig{&fn.Config, fn.LiveConfig}
		for _, c := range cfgs {
			if c != nil && slices.Contains(c.KeyValueStoreAssociations.Items, arn) {
				return true
			}
		}
	}
	return false
}

func newFunctions(dataDir string) (*functions, error) {
	f := &functions{file: filepath.Join(dataDir, "functions.json"), byN: map[string]*cfFunc{}}
	return f, loadJSON(f.file, &f.byN)
}

func (f *functions) save() error { return saveJSON(f.file, f.byN) }

// published reports whether arn names a function with a LIVE stage.
func (f *functions) published(arn string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, fn := range f.byN {
		if fn.ARN == arn && fn.Live != nil {
			return true
		}
	}
	return false
}

// liveByARN returns the LIVE code of the function with this ARN.
func (f *functions) liveByARN(arn string) (*jsFunction, error) {
	f.mu.Lock()
	var code []byte
	for _, fn := range f.byN {
		if fn.ARN == arn {
			code = fn.Live
		}
	}
	f.mu.Unlock()
	if code == nil {
		return nil, fmt.Errorf("no published function %s", arn)
	}
	if c, ok := f.compiled.Load(string(code)); ok {
		return c.(*jsFunction), nil
	}
	c, err := compileFunctionAt(string(code), f.now)
	if err != nil {
		return nil, err
	}
	f.compiled.Store(string(code), c)
	return c, nil
}

var functionPath = regexp.MustCompile(`^/2020-05-31/function(?:/([^/]+)(/describe|/publish)?)?$`)

var functionNameRE = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,64}$`)

// serve answers the function calls: CreateFunction, UpdateFunction,
// PublishFunction, DescribeFunction and GetFunction. It reports false for
// other paths.
func (f *functions) serve(w http.ResponseWriter, r *http.Request, now time.Time) bool {
	m := functionPath.FindStringSubmatch(r.URL.Path)
	if m == nil {
		return false
	}
	name, sub := m[1], m[2]
	switch {
	case name == "" && r.Method == http.MethodPost:
		f.create(w, r, now)
	case name != "" && sub == "" && r.Method == http.MethodPut:
		f.update(w, r, name, now)
	case name != "" && sub == "/publish" && r.Method == http.MethodPost:
		f.publish(w, r, name, now)
	case name != "" && (sub == "/describe" || sub == "") && r.Method == http.MethodGet:
		f.get(w, r, name, sub == "")
	default:
		writeCFError(w, cfError{Status: 400, Code: "InvalidArgument", Message: "the stand-in does not model " + r.Method + " " + r.URL.Path})
	}
	return true
}

// saved saves the functions, answering the error when that fails;
// callers hold mu.
func (f *functions) saved(w http.ResponseWriter) bool {
	if err := f.save(); err != nil {
		writeCFError(w, cfError{Status: 500, Code: "InternalError", Message: err.Error()})
		return false
	}
	return true
}

func (f *functions) create(w http.ResponseWriter, r *http.Request, now time.Time) {
	req, code, ok := decodeFunction(w, r)
	if !ok || !f.storesExist(w, req.FunctionConfig) {
		return
	}
	// Name: ^[a-zA-Z0-9-_]{1,64}$
	// (https://docs.aws.amazon.com/cloudfront/latest/APIReference/API_CreateFunction.html).
	if !functionNameRE.MatchString(req.Name) {
		writeCFError(w, cfError{Status: 400, Code: "InvalidArgument", Message: "The function name must be 1 to 64 letters, digits, - or _."})
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.byN[req.Name]; ok {
		writeCFError(w, cfError{Status: 409, Code: "FunctionAlreadyExists", Message: "A function with the same name already exists."})
		return
	}
	fn := &cfFunc{Name: req.Name, ARN: "arn:aws:cloudfront::" + StandInAccount + ":function/" + req.Name, ETag: newID('E'),
		Config: req.FunctionConfig, Dev: code, Created: now, Modified: now}
	f.byN[req.Name] = fn
	if !f.saved(w) {
		return
	}
	w.Header().Set("Location", "/2020-05-31/function/"+fn.ARN)
	writeFunction(w, http.StatusCreated, fn, "DEVELOPMENT")
}

func (f *functions) update(w http.ResponseWriter, r *http.Request, name string, now time.Time) {
	req, code, ok := decodeFunction(w, r)
	if !ok || !f.storesExist(w, req.FunctionConfig) {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	fn := f.match(w, r, name)
	if fn == nil {
		return
	}
	fn.Config, fn.Dev, fn.ETag, fn.Modified = req.FunctionConfig, code, newID('E'), now
	if !f.saved(w) {
		return
	}
	// CloudFront's API reference spells this one response header
	// "ETtag", and the SDK reads it under that name.
	w.Header().Set("ETtag", fn.ETag)
	writeFunction(w, http.StatusOK, fn, "DEVELOPMENT")
}

func (f *functions) publish(w http.ResponseWriter, r *http.Request, name string, now time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn := f.match(w, r, name)
	if fn == nil {
		return
	}
	cfg := fn.Config
	fn.Live, fn.LiveConfig, fn.LiveETag, fn.Modified = fn.Dev, &cfg, newID('E'), now
	if f.saved(w) {
		writeFunction(w, http.StatusOK, fn, "LIVE")
	}
}

// get answers DescribeFunction (/describe) and GetFunction (the code
// itself,
// https://docs.aws.amazon.com/cloudfront/latest/APIReference/API_GetFunction.html),
// each of one stage: DEVELOPMENT unless Stage says LIVE.
func (f *functions) get(w http.ResponseWriter, r *http.Request, name string, code bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn := f.byN[name]
	stage := r.URL.Query().Get("Stage")
	switch stage {
	case "":
		// AWS documents no default stage; asked without one, a
		// published function answers for its LIVE stage here, with
		// the LIVE ETag, which UpdateFunction refuses (412): callers
		// must name the stage they mean.
		stage = "DEVELOPMENT"
		if fn != nil && fn.Live != nil {
			stage = "LIVE"
		}
	case "DEVELOPMENT", "LIVE":
	default:
		writeCFError(w, cfError{Status: 400, Code: "InvalidArgument", Message: "Stage must be DEVELOPMENT or LIVE"})
		return
	}
	if fn == nil || stage == "LIVE" && fn.Live == nil {
		writeCFError(w, cfError{Status: 404, Code: "NoSuchFunctionExists", Message: "The function does not exist."})
		return
	}
	if !code {
		writeFunction(w, http.StatusOK, fn, stage)
		return
	}
	body := fn.Dev
	if stage == "LIVE" {
		body = fn.Live
	}
	w.Header().Set("ETag", fn.etag(stage))
	w.Header().Set("Content-Type", "application/octet-stream")
	_, _ = w.Write(body)
}

// functionRequest is the body of CreateFunction and UpdateFunction (the
// latter has no Name).
type functionRequest struct {
	Name           string
	FunctionConfig cfFunctionConfig
	FunctionCode   string
}

// decodeFunction reads and checks a function's configuration and code, or
// answers the error.
func decodeFunction(w http.ResponseWriter, r *http.Request) (functionRequest, []byte, bool) {
	var req functionRequest
	if !decodeXML(w, r, &req) {
		return req, nil, false
	}
	code, err := base64.StdEncoding.DecodeString(req.FunctionCode)
	if err != nil || len(code) == 0 {
		writeCFError(w, cfError{Status: 400, Code: "InvalidArgument", Message: "FunctionCode must be base64 code"})
		return req, nil, false
	}
	if cerr := checkFunction(req.FunctionConfig, code); cerr != nil {
		writeCFError(w, *cerr)
		return req, nil, false
	}
	return req, code, true
}

// storesExist answers, and reports false, when a function's config is
// associated with a key value store that does not exist: an association
// names a store made with CreateKeyValueStore
// (https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/kvs-with-functions-associate.html;
// CreateFunction's and UpdateFunction's error for a bad argument is
// InvalidArgument:
// https://docs.aws.amazon.com/cloudfront/latest/APIReference/API_CreateFunction.html#API_CreateFunction_Errors).
func (f *functions) storesExist(w http.ResponseWriter, c cfFunctionConfig) bool {
	for _, arn := range c.KeyValueStoreAssociations.Items {
		if f.storeExists != nil && !f.storeExists(arn) {
			writeCFError(w, cfError{Status: 400, Code: "InvalidArgument", Message: "The key value store " + arn + " does not exist."})
			return false
		}
	}
	return true
}

// match returns the named function if If-Match carries its ETag, or
// answers the error; callers hold mu.
func (f *functions) match(w http.ResponseWriter, r *http.Request, name string) *cfFunc {
	fn := f.byN[name]
	if fn == nil {
		writeCFError(w, cfError{Status: 404, Code: "NoSuchFunctionExists", Message: "The function does not exist."})
		return nil
	}
	if !ifMatches(w, r, fn.ETag) {
		return nil
	}
	return fn
}

// checkFunction applies CloudFront's rules: the 2.0 runtime (1.0 has no
// KeyValueStore access), 10 KB of code, at most one store, code that
// compiles.
func checkFunction(c cfFunctionConfig, code []byte) *cfError {
	switch {
	case len(c.Comment) > 128:
		// https://docs.aws.amazon.com/cloudfront/latest/APIReference/API_FunctionConfig.html
		return &cfError{Status: 400, Code: "InvalidArgument", Message: "The comment cannot be longer than 128 characters."}
	case c.Runtime != "cloudfront-js-1.0" && c.Runtime != "cloudfront-js-2.0":
		return &cfError{Status: 400, Code: "InvalidArgument", Message: "Runtime must be cloudfront-js-1.0 or cloudfront-js-2.0"}
	case len(code) > 10<<10:
		return &cfError{Status: 413, Code: "FunctionSizeLimitExceeded", Message: "The function is larger than the maximum allowed size (10 KB)."}
	case c.KeyValueStoreAssociations.Quantity != len(c.KeyValueStoreAssociations.Items) || len(c.KeyValueStoreAssociations.Items) > 1:
		return &cfError{Status: 400, Code: "InvalidArgument", Message: "at most one key value store, with Quantity matching"}
	case len(c.KeyValueStoreAssociations.Items) == 1 && c.Runtime != "cloudfront-js-2.0":
		return &cfError{Status: 400, Code: "InvalidArgument", Message: "key value stores need cloudfront-js-2.0"}
	}
	if _, err := compileFunction(string(code)); err != nil {
		return &cfError{Status: 400, Code: "InvalidFunctionCode", Message: err.Error()}
	}
	return nil
}

func writeFunction(w http.ResponseWriter, status int, fn *cfFunc, stage string) {
	cfg := fn.Config
	if stage == "LIVE" && fn.LiveConfig != nil {
		cfg = *fn.LiveConfig
	}
	var b bytes.Buffer
	b.WriteString(xml.Header)
	fmt.Fprintf(&b, `<FunctionSummary xmlns="%s"><Name>%s</Name><Status>%s</Status><FunctionConfig><Comment>%s</Comment><Runtime>%s</Runtime>`,
		cfNS, xmlEscape(fn.Name), map[bool]string{true: "DEPLOYED", false: "UNPUBLISHED"}[fn.Live != nil], xmlEscape(cfg.Comment), cfg.Runtime)
	fmt.Fprintf(&b, `<KeyValueStoreAssociations><Quantity>%d</Quantity>`, len(cfg.KeyValueStoreAssociations.Items))
	if len(cfg.KeyValueStoreAssociations.Items) > 0 {
		b.WriteString("<Items>")
		for _, a := range cfg.KeyValueStoreAssociations.Items {
			fmt.Fprintf(&b, "<KeyValueStoreAssociation><KeyValueStoreARN>%s</KeyValueStoreARN></KeyValueStoreAssociation>", xmlEscape(a))
		}
		b.WriteString("</Items>")
	}
	fmt.Fprintf(&b, `</KeyValueStoreAssociations></FunctionConfig><FunctionMetadata><FunctionARN>%s</FunctionARN><Stage>%s</Stage><CreatedTime>%s</CreatedTime><LastModifiedTime>%s</LastModifiedTime></FunctionMetadata></FunctionSummary>`,
		xmlEscape(fn.ARN), stage, fn.Created.UTC().Format(awsTime), fn.Modified.UTC().Format(awsTime))
	w.Header().Set("ETag", fn.etag(stage))
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(status)
	_, _ = w.Write(b.Bytes())
}

func decodeXML(w http.ResponseWriter, r *http.Request, v any) bool {
	if err := xml.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(v); err != nil {
		writeCFError(w, cfError{Status: 400, Code: "MalformedXML", Message: err.Error()})
		return false
	}
	return true
}
