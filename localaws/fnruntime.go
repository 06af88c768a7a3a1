// The CloudFront Functions runtime: goja runs a function's JavaScript
// with the cloudfront and crypto modules, on viewer request and response
// events.

package localaws

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/dop251/goja"
)

// jsFunction is CloudFront Functions code made runnable: goja executes the
// JavaScript itself (the code deploybot ships is what the tests run), with
// the two modules the runtime offers a function of this kind: cloudfront
// (kvs) and crypto (createHmac, createHash). The import lines become those
// globals; goja has no ES modules.
type jsFunction struct {
	src  string
	pool sync.Pool // *jsVM
	now  func() time.Time
}

type jsVM struct {
	vm      *goja.Runtime
	handler goja.Callable
	// parse is the VM's JSON.parse: an event built that way costs far
	// less than compiling it as a script.
	parse goja.Callable
	// get reads a key store for the request being run.
	get func(kvsID, key string) (string, bool)
}

var importLine = regexp.MustCompile(`(?m)^\s*import\s+(\w+)\s+from\s+['"](cloudfront|crypto)['"];?\s*$`)

func compileFunction(code string) (*jsFunction, error) { return compileFunctionAt(code, nil) }

// compileFunctionAt is compileFunction on the clock now (nil: the wall
// clock), which the code reads as Date.now().
func compileFunctionAt(code string, now func() time.Time) (*jsFunction, error) {
	imports := importLine.FindAllStringSubmatch(code, -1)
	f := &jsFunction{src: importLine.ReplaceAllString(code, ""), now: now}
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
	if f.now != nil {
		vm.SetTimeSource(goja.Now(f.now))
	}
	modules := map[string]goja.Value{"cloudfront": j.cloudfrontModule(), "crypto": cryptoModule(vm)}
	for _, im := range imports {
		if err := vm.Set(im[1], modules[im[2]]); err != nil {
			return nil, err
		}
	}
	var ok bool
	if j.parse, ok = goja.AssertFunction(vm.Get("JSON").ToObject(vm).Get("parse")); !ok {
		return nil, errors.New("the runtime has no JSON.parse")
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
	// MultiValue holds every value of a repeated name, the first included
	// (fncookies.go).
	MultiValue []fnValue `json:"multiValue,omitempty"`
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
	ev, err := j.parse(goja.Undefined(), j.vm.ToValue(string(raw)))
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
