package localaws

import (
	"bytes"
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/dop251/goja"
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
	c, err := compileFunction(string(code))
	if err != nil {
		return nil, err
	}
	f.compiled.Store(string(code), c)
	return c, nil
}

var functionPath = regexp.MustCompile(`^/2020-05-31/function(?:/([^/]+)(/describe|/publish)?)?$`)

// serve answers the function calls: CreateFunction, UpdateFunction,
// PublishFunction and DescribeFunction. It reports false for other paths.
var functionNameRE = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,64}$`)

func (f *functions) serve(w http.ResponseWriter, r *http.Request, now time.Time) bool {
	m := functionPath.FindStringSubmatch(r.URL.Path)
	if m == nil {
		return false
	}
	name, sub := m[1], m[2]
	switch {
	case name == "" && r.Method == http.MethodPost:
		req, code, ok := decodeFunction(w, r)
		if !ok || !f.storesExist(w, req.FunctionConfig) {
			return true
		}
		// Name: ^[a-zA-Z0-9-_]{1,64}$
		// (https://docs.aws.amazon.com/cloudfront/latest/APIReference/API_CreateFunction.html).
		if !functionNameRE.MatchString(req.Name) {
			writeCFError(w, cfError{Status: 400, Code: "InvalidArgument", Message: "The function name must be 1 to 64 letters, digits, - or _."})
			return true
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		if _, ok := f.byN[req.Name]; ok {
			writeCFError(w, cfError{Status: 409, Code: "FunctionAlreadyExists", Message: "A function with the same name already exists."})
			return true
		}
		fn := &cfFunc{Name: req.Name, ARN: "arn:aws:cloudfront::" + StandInAccount + ":function/" + req.Name, ETag: newID('E'),
			Config: req.FunctionConfig, Dev: code, Created: now, Modified: now}
		f.byN[req.Name] = fn
		if err := f.save(); err != nil {
			writeCFError(w, cfError{Status: 500, Code: "InternalError", Message: err.Error()})
			return true
		}
		w.Header().Set("Location", "/2020-05-31/function/"+fn.ARN)
		writeFunction(w, http.StatusCreated, fn, "DEVELOPMENT")
	case name != "" && sub == "" && r.Method == http.MethodPut:
		req, code, ok := decodeFunction(w, r)
		if !ok || !f.storesExist(w, req.FunctionConfig) {
			return true
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		fn := f.match(w, r, name)
		if fn == nil {
			return true
		}
		fn.Config, fn.Dev, fn.ETag, fn.Modified = req.FunctionConfig, code, newID('E'), now
		if err := f.save(); err != nil {
			writeCFError(w, cfError{Status: 500, Code: "InternalError", Message: err.Error()})
			return true
		}
		// CloudFront's API reference spells this one response header
		// "ETtag", and the SDK reads it under that name.
		w.Header().Set("ETtag", fn.ETag)
		writeFunction(w, http.StatusOK, fn, "DEVELOPMENT")
	case name != "" && sub == "/publish" && r.Method == http.MethodPost:
		f.mu.Lock()
		defer f.mu.Unlock()
		fn := f.match(w, r, name)
		if fn == nil {
			return true
		}
		cfg := fn.Config
		fn.Live, fn.LiveConfig, fn.LiveETag, fn.Modified = fn.Dev, &cfg, newID('E'), now
		if err := f.save(); err != nil {
			writeCFError(w, cfError{Status: 500, Code: "InternalError", Message: err.Error()})
			return true
		}
		writeFunction(w, http.StatusOK, fn, "LIVE")
	case name != "" && (sub == "/describe" || sub == "") && r.Method == http.MethodGet:
		// DescribeFunction (/describe) and GetFunction (the code itself,
		// https://docs.aws.amazon.com/cloudfront/latest/APIReference/API_GetFunction.html),
		// each of one stage: DEVELOPMENT unless Stage says LIVE.
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
			return true
		}
		if fn == nil || stage == "LIVE" && fn.Live == nil {
			writeCFError(w, cfError{Status: 404, Code: "NoSuchFunctionExists", Message: "The function does not exist."})
			return true
		}
		if sub == "" {
			code := fn.Dev
			if stage == "LIVE" {
				code = fn.Live
			}
			w.Header().Set("ETag", fn.etag(stage))
			w.Header().Set("Content-Type", "application/octet-stream")
			_, _ = w.Write(code)
			return true
		}
		writeFunction(w, http.StatusOK, fn, stage)
	default:
		writeCFError(w, cfError{Status: 400, Code: "InvalidArgument", Message: "the stand-in does not model " + r.Method + " " + r.URL.Path})
	}
	return true
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
	switch {
	case fn == nil:
		writeCFError(w, cfError{Status: 404, Code: "NoSuchFunctionExists", Message: "The function does not exist."})
		return nil
	case r.Header.Get("If-Match") == "":
		writeCFError(w, cfError{Status: 400, Code: "InvalidIfMatchVersion", Message: "The If-Match version is missing or not valid for the resource."})
		return nil
	case r.Header.Get("If-Match") != fn.ETag:
		writeCFError(w, cfError{Status: 412, Code: "PreconditionFailed", Message: "The precondition given in one or more of the request-header fields evaluated to false."})
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

// jsFunction is CloudFront Functions code made runnable: goja executes the
// JavaScript itself (the code deploybot ships is what the tests run), with
// the two modules the runtime offers a function of this kind: cloudfront
// (kvs) and crypto (createHmac, createHash). The import lines become those
// globals; goja has no ES modules.
type jsFunction struct {
	src  string
	pool sync.Pool // *jsVM
}

type jsVM struct {
	vm      *goja.Runtime
	handler goja.Callable
	// get reads a key store for the request being run.
	get func(kvsID, key string) (string, bool)
}

var importLine = regexp.MustCompile(`(?m)^\s*import\s+(\w+)\s+from\s+['"](cloudfront|crypto)['"];?\s*$`)

func compileFunction(code string) (*jsFunction, error) {
	imports := importLine.FindAllStringSubmatch(code, -1)
	f := &jsFunction{src: importLine.ReplaceAllString(code, "")}
	vm, err := f.newVM(imports)
	if err != nil {
		return nil, err
	}
	f.pool.New = func() any {
		vm, err := f.newVM(imports)
		if err != nil {
			return nil
		}
		return vm
	}
	f.pool.Put(vm)
	return f, nil
}

func (f *jsFunction) newVM(imports [][]string) (*jsVM, error) {
	j := &jsVM{vm: goja.New()}
	vm := j.vm
	modules := map[string]goja.Value{"cloudfront": j.cloudfrontModule(), "crypto": cryptoModule(vm)}
	for _, im := range imports {
		if err := vm.Set(im[1], modules[im[2]]); err != nil {
			return nil, err
		}
	}
	if _, err := vm.RunString(f.src); err != nil {
		return nil, fmt.Errorf("the function does not compile: %w", err)
	}
	h, ok := goja.AssertFunction(vm.Get("handler"))
	if !ok {
		return nil, errors.New("the function defines no handler(event)")
	}
	j.handler = h
	return j, nil
}

func (j *jsVM) cloudfrontModule() goja.Value {
	vm := j.vm
	cf := vm.NewObject()
	_ = cf.Set("kvs", func(call goja.FunctionCall) goja.Value {
		id := call.Argument(0).String()
		store := vm.NewObject()
		lookup := func(key string) (string, bool) {
			if j.get == nil {
				return "", false
			}
			return j.get(id, key)
		}
		_ = store.Set("get", func(call goja.FunctionCall) goja.Value {
			p, resolve, reject := vm.NewPromise()
			if v, ok := lookup(call.Argument(0).String()); ok {
				_ = resolve(vm.ToValue(v))
			} else {
				_ = reject(vm.NewGoError(fmt.Errorf("key %s not found", call.Argument(0).String())))
			}
			return vm.ToValue(p)
		})
		_ = store.Set("exists", func(call goja.FunctionCall) goja.Value {
			p, resolve, _ := vm.NewPromise()
			_, ok := lookup(call.Argument(0).String())
			_ = resolve(vm.ToValue(ok))
			return vm.ToValue(p)
		})
		return store
	})
	return cf
}

func cryptoModule(vm *goja.Runtime) goja.Value {
	algo := func(name string) func() hash.Hash {
		switch name {
		case "sha256":
			return sha256.New
		case "sha1":
			return sha1.New
		case "md5":
			return md5.New
		}
		panic(vm.NewTypeError("unsupported hash algorithm " + name))
	}
	digester := func(h hash.Hash) *goja.Object {
		o := vm.NewObject()
		_ = o.Set("update", func(call goja.FunctionCall) goja.Value {
			h.Write([]byte(call.Argument(0).String()))
			return o
		})
		_ = o.Set("digest", func(call goja.FunctionCall) goja.Value {
			sum := h.Sum(nil)
			switch enc := call.Argument(0).String(); enc {
			case "hex":
				return vm.ToValue(hex.EncodeToString(sum))
			case "base64":
				return vm.ToValue(base64.StdEncoding.EncodeToString(sum))
			case "base64url":
				return vm.ToValue(base64.RawURLEncoding.EncodeToString(sum))
			default:
				return vm.ToValue(string(sum))
			}
		})
		return o
	}
	c := vm.NewObject()
	_ = c.Set("createHmac", func(call goja.FunctionCall) goja.Value {
		return digester(hmac.New(algo(call.Argument(0).String()), []byte(call.Argument(1).String())))
	})
	_ = c.Set("createHash", func(call goja.FunctionCall) goja.Value {
		return digester(algo(call.Argument(0).String())())
	})
	return c
}

// fnRequest is the viewer request as a function's event carries it.
type fnRequest struct {
	Method      string             `json:"method"`
	URI         string             `json:"uri"`
	Querystring map[string]fnValue `json:"querystring"`
	Headers     map[string]fnValue `json:"headers"`
	Cookies     map[string]fnValue `json:"cookies"`
}

type fnValue struct {
	Value      string `json:"value"`
	Attributes string `json:"attributes,omitempty"`
}

// fnResult is what a viewer-request handler returns: the request (maybe
// changed) or a response generated at the edge (StatusCode set).
type fnResult struct {
	fnRequest
	StatusCode        int                `json:"statusCode"`
	StatusDescription string             `json:"statusDescription"`
	Body              any                `json:"body"`
	RespHeaders       map[string]fnValue `json:"-"`
}

// run calls a viewer-request handler(event) with get as the key stores
// the PoP sees.
func (f *jsFunction) run(req fnRequest, clientIP string, get func(kvsID, key string) (string, bool)) (*fnResult, error) {
	js, err := f.invoke(map[string]any{"version": "1.0", "context": map[string]any{"eventType": "viewer-request"},
		"viewer": map[string]any{"ip": clientIP}, "request": req}, get)
	if err != nil {
		return nil, err
	}
	var res fnResult
	if err := json.Unmarshal(js, &res); err != nil {
		return nil, fmt.Errorf("the function returned %s: %w", js, err)
	}
	var resp struct {
		Headers map[string]fnValue `json:"headers"`
	}
	if res.StatusCode != 0 {
		_ = json.Unmarshal(js, &resp)
		res.RespHeaders = resp.Headers
	}
	return &res, nil
}

// fnResponse is the response as a viewer-response function's event
// carries it (the body is not part of it: the function cannot see or
// change it).
type fnResponse struct {
	StatusCode        int                `json:"statusCode"`
	StatusDescription string             `json:"statusDescription,omitempty"`
	Headers           map[string]fnValue `json:"headers"`
	Cookies           map[string]fnValue `json:"cookies"`
}

// runResponse calls a viewer-response handler(event) and returns the
// response it makes of resp.
func (f *jsFunction) runResponse(req fnRequest, resp fnResponse, clientIP string, get func(kvsID, key string) (string, bool)) (*fnResponse, error) {
	if resp.Cookies == nil {
		resp.Cookies = map[string]fnValue{}
	}
	js, err := f.invoke(map[string]any{"version": "1.0", "context": map[string]any{"eventType": "viewer-response"},
		"viewer": map[string]any{"ip": clientIP}, "request": req, "response": resp}, get)
	if err != nil {
		return nil, err
	}
	var out fnResponse
	if err := json.Unmarshal(js, &out); err != nil || out.StatusCode == 0 {
		return nil, fmt.Errorf("the function returned %s, not a response", js)
	}
	return &out, nil
}

// invoke runs handler(event) and returns what it returned (or what its
// promise resolved to) as JSON.
func (f *jsFunction) invoke(event map[string]any, get func(kvsID, key string) (string, bool)) ([]byte, error) {
	j, _ := f.pool.Get().(*jsVM)
	if j == nil {
		return nil, errors.New("the function cannot run")
	}
	defer f.pool.Put(j)
	j.get = get
	defer func() { j.get = nil }()
	raw, _ := json.Marshal(event)
	ev, err := j.vm.RunString("(" + string(raw) + ")")
	if err != nil {
		return nil, err
	}
	out, err := j.handler(goja.Undefined(), ev)
	if err != nil {
		return nil, fmt.Errorf("the function threw: %w", err)
	}
	if p, ok := out.Export().(*goja.Promise); ok {
		switch p.State() {
		case goja.PromiseStateFulfilled:
			out = p.Result()
		case goja.PromiseStateRejected:
			return nil, fmt.Errorf("the function's promise was rejected: %v", p.Result())
		default:
			return nil, errors.New("the function's promise never settled")
		}
	}
	return json.Marshal(out.Export())
}

// fnRequestOf turns an HTTP request into a function's request object:
// lower-case header names, query parameters and cookies by name.
func fnRequestOf(r *http.Request) fnRequest {
	fr := fnRequest{Method: r.Method, URI: r.URL.Path, Querystring: map[string]fnValue{}, Headers: map[string]fnValue{}, Cookies: map[string]fnValue{}}
	for k, v := range r.URL.Query() {
		fr.Querystring[k] = fnValue{Value: v[0]}
	}
	for k, v := range r.Header {
		if strings.EqualFold(k, "Cookie") {
			continue
		}
		fr.Headers[strings.ToLower(k)] = fnValue{Value: v[0]}
	}
	fr.Headers["host"] = fnValue{Value: r.Host}
	for _, c := range r.Cookies() {
		fr.Cookies[c.Name] = fnValue{Value: c.Value}
	}
	return fr
}
