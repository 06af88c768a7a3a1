package localaws

import (
	"encoding/json"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"
)

// kvStore is one CloudFront KeyValueStore. Keys reach each PoP at its own
// moment inside the propagation window after a write, as they do at the
// edge (AWS: "within seconds").
type kvStore struct {
	ARN      string               `json:"arn"`
	Name     string               `json:"name"`
	Comment  string               `json:"comment,omitempty"`
	ETag     string               `json:"etag"`
	CtlETag  string               `json:"ctl_etag,omitempty"`
	Items    map[string]string    `json:"items"`
	Created  time.Time            `json:"created"`
	Modified time.Time            `json:"modified"`
	Pops     map[string][]kvPopAt `json:"pops,omitempty"` // key -> per PoP
}

// kvPopAt is one PoP's view of one key: Old (Had: it existed) until At.
type kvPopAt struct {
	Old string    `json:"old"`
	Had bool      `json:"had"`
	At  time.Time `json:"at"`
}

// kvStores is the KeyValueStore data plane: DescribeKeyValueStore,
// GetKey, PutKey, DeleteKey and ListKeys over the REST-JSON protocol the
// SDK speaks (SigV4A-signed; signatures are not checked).
type kvStores struct {
	file        string
	propagation time.Duration
	pops        int
	now         func() time.Time
	mu          sync.Mutex
	rng         *mrand.Rand
	byARN       map[string]*kvStore
}

func newKVStores(dataDir string, opts Options) (*kvStores, error) {
	k := &kvStores{file: filepath.Join(dataDir, "kvs.json"), propagation: opts.KVSPropagation, pops: opts.Pops, now: opts.Now,
		rng: mrand.New(mrand.NewPCG(opts.Seed^0x5bd1e995, opts.Seed)), byARN: map[string]*kvStore{}}
	return k, loadJSON(k.file, &k.byARN)
}

func (k *kvStores) save() error { return saveJSON(k.file, k.byARN) }

// ensure creates the store called name if missing and returns its ARN.
func (k *kvStores) ensure(name string) (string, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, s := range k.byARN {
		if s.Name == name {
			return s.ARN, nil
		}
	}
	s := k.newStore(name, "")
	return s.ARN, k.save()
}

// at returns key's value as PoP pop sees it at now; callers hold mu.
func (s *kvStore) at(key string, pop int, now time.Time) (string, bool) {
	if ps := s.Pops[key]; pop < len(ps) && now.Before(ps[pop].At) {
		return ps[pop].Old, ps[pop].Had
	}
	v, ok := s.Items[key]
	return v, ok
}

// edgeGet is a function's kvs.get at PoP pop: the store is named by its
// id (the ARN's last part) or its ARN.
func (k *kvStores) edgeGet(pop int) func(kvsID, key string) (string, bool) {
	return func(kvsID, key string) (string, bool) {
		k.mu.Lock()
		defer k.mu.Unlock()
		for arn, s := range k.byARN {
			if arn == kvsID || strings.HasSuffix(arn, "/"+kvsID) {
				return s.at(key, pop, k.now())
			}
		}
		return "", false
	}
}

var kvsPath = regexp.MustCompile(`^/key-value-stores/([^/]+)(?:/keys(?:/(.+))?)?$`)

func writeKVSError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Amzn-ErrorType", code)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"Message": msg})
}

func writeKVSJSON(w http.ResponseWriter, etag string, v any) {
	w.Header().Set("Content-Type", "application/json")
	if etag != "" {
		w.Header().Set("ETag", etag)
	}
	_ = json.NewEncoder(w).Encode(v)
}

func (s *kvStore) size() (n int, bytes int) {
	for k, v := range s.Items {
		n++
		bytes += len(k) + len(v)
	}
	return n, bytes
}

// ServeHTTP answers the data plane; the path carries the store's ARN.
func (k *kvStores) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	m := kvsPath.FindStringSubmatch(r.URL.EscapedPath())
	if m == nil {
		writeKVSError(w, 404, "ResourceNotFoundException", "unknown path "+r.URL.Path)
		return
	}
	arn, _ := url.PathUnescape(m[1])
	key, _ := url.PathUnescape(m[2])
	k.mu.Lock()
	defer k.mu.Unlock()
	s := k.byARN[arn]
	if s == nil {
		writeKVSError(w, 404, "ResourceNotFoundException", "no key value store "+arn)
		return
	}
	now := k.now().UTC()
	n, size := s.size()
	switch {
	case !strings.Contains(r.URL.Path, "/keys") && r.Method == http.MethodGet:
		writeKVSJSON(w, s.ETag, map[string]any{"KvsARN": s.ARN, "ItemCount": n, "TotalSizeInBytes": size,
			"Created": float64(s.Created.UnixMilli()) / 1000, "LastModified": float64(s.Modified.UnixMilli()) / 1000, "Status": "READY"})
	case key != "" && r.Method == http.MethodGet:
		v, ok := s.Items[key]
		if !ok {
			writeKVSError(w, 404, "ResourceNotFoundException", "Key "+key+" not found")
			return
		}
		writeKVSJSON(w, "", map[string]any{"Key": key, "Value": v, "ItemCount": n, "TotalSizeInBytes": size})
	case key != "" && (r.Method == http.MethodPut || r.Method == http.MethodDelete):
		k.writeKey(w, r, s, key, now)
	case key == "" && r.Method == http.MethodGet:
		var items []map[string]string
		for kk, v := range s.Items {
			items = append(items, map[string]string{"Key": kk, "Value": v})
		}
		writeKVSJSON(w, "", map[string]any{"Items": items})
	default:
		writeKVSError(w, 400, "ValidationException", fmt.Sprintf("the stand-in does not model %s %s", r.Method, r.URL.Path))
	}
}

// within is a random moment inside the propagation window; callers hold mu.
func (k *kvStores) within() time.Duration {
	if k.propagation <= 0 {
		return 0
	}
	return time.Duration(k.rng.Int64N(int64(k.propagation) + 1))
}

// writeKey answers PutKey and DeleteKey: the write takes the store's
// current ETag in If-Match, and each PoP goes on reading the key's old
// value until its own moment; callers hold mu.
func (k *kvStores) writeKey(w http.ResponseWriter, r *http.Request, s *kvStore, key string, now time.Time) {
	ifMatch := r.Header.Get("If-Match")
	if ifMatch == "" {
		writeKVSError(w, 400, "ValidationException", "If-Match is required")
		return
	}
	if ifMatch != s.ETag {
		// The store's ETag changes with every write; a writer that
		// read an older one lost a race and must read again.
		writeKVSError(w, 409, "ConflictException", "Pre-condition failed: the ETag does not match the key value store's")
		return
	}
	var body struct{ Value *string }
	if r.Method == http.MethodPut {
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&body); err != nil || body.Value == nil {
			writeKVSError(w, 400, "ValidationException", "a JSON body with Value is required")
			return
		}
		if len(key) > 512 || len(*body.Value) > 1024 {
			writeKVSError(w, 400, "ValidationException", "keys are at most 512 bytes and values 1 KB")
			return
		}
	} else if _, ok := s.Items[key]; !ok {
		writeKVSError(w, 404, "ResourceNotFoundException", "Key "+key+" not found")
		return
	}
	pops := make([]kvPopAt, k.pops)
	for i := range pops {
		old, had := s.at(key, i, now)
		pops[i] = kvPopAt{Old: old, Had: had, At: now.Add(k.within())}
	}
	if s.Pops == nil {
		s.Pops = map[string][]kvPopAt{}
	}
	s.Pops[key] = pops
	if body.Value != nil {
		s.Items[key] = *body.Value
	} else {
		delete(s.Items, key)
	}
	s.ETag, s.Modified = newID('K'), now
	if err := k.save(); err != nil {
		writeKVSError(w, 500, "InternalServerException", err.Error())
		return
	}
	n, size := s.size()
	writeKVSJSON(w, s.ETag, map[string]any{"ItemCount": n, "TotalSizeInBytes": size})
}
