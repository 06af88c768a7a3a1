package localaws

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

const s3NS = "http://s3.amazonaws.com/doc/2006-03-01/"

type object struct {
	Key             string            `json:"key"`
	Size            int64             `json:"size"`
	ETag            string            `json:"etag"` // quoted, as S3 sends it
	LastModified    time.Time         `json:"last_modified"`
	ContentType     string            `json:"content_type,omitempty"`
	CacheControl    string            `json:"cache_control,omitempty"`
	ContentEncoding string            `json:"content_encoding,omitempty"`
	ContentDisp     string            `json:"content_disposition,omitempty"`
	Meta            map[string]string `json:"meta,omitempty"`
	ChecksumAlgo    string            `json:"checksum_algo,omitempty"`
	Checksum        string            `json:"checksum,omitempty"`
	Blob            string            `json:"blob"`
}

type s3Bucket struct {
	name    string
	dir     string
	created time.Time
	objects map[string]*object
	sorted  []string // keys in order; nil when stale
	// cfg is the bucket's region and settings (s3config.go), under the
	// service's mu.
	cfg bucketConfig
}

type s3Service struct {
	root    string
	now     func() time.Time
	mu      sync.RWMutex
	buckets map[string]*s3Bucket
	mp      multipart
	// conditional holds the keys ("bucket/key") a conditional write
	// (If-None-Match, If-Match) is uploading to now.
	conditional sync.Map
	// enforced are the buckets whose policy enforces conditional writes
	// (EnforceConditionalWrites).
	enforced sync.Map
	// maxCopy is the largest source CopyObject takes.
	maxCopy int64
}

func newS3(dataDir string, now func() time.Time) (*s3Service, error) {
	s := &s3Service{root: filepath.Join(dataDir, "s3"), now: now, buckets: map[string]*s3Bucket{}}
	if err := os.MkdirAll(s.root, 0o755); err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(s.root)
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		b, err := loadBucket(filepath.Join(s.root, e.Name()), e.Name())
		if err != nil {
			return nil, err
		}
		s.buckets[b.name] = b
	}
	return s, nil
}

func loadBucket(dir, name string) (*s3Bucket, error) {
	info, err := os.Stat(dir)
	if err != nil {
		return nil, err
	}
	cfg, err := loadBucketConfig(dir)
	if err != nil {
		return nil, err
	}
	b := &s3Bucket{name: name, dir: dir, created: info.ModTime(), objects: map[string]*object{}, cfg: cfg}
	metas, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, err
	}
	for _, m := range metas {
		raw, err := os.ReadFile(m)
		if err != nil {
			return nil, err
		}
		var o object
		if err := json.Unmarshal(raw, &o); err != nil {
			return nil, fmt.Errorf("localaws: %s: %w", m, err)
		}
		b.objects[o.Key] = &o
	}
	// Blobs with no metadata are leftovers of a crash mid-write.
	blobs, _ := filepath.Glob(filepath.Join(dir, "*.data"))
	live := map[string]bool{}
	for _, o := range b.objects {
		live[o.Blob] = true
	}
	for _, bl := range blobs {
		if !live[filepath.Base(bl)] {
			os.Remove(bl)
		}
	}
	return b, nil
}

func (b *s3Bucket) keys() []string {
	if b.sorted == nil {
		b.sorted = make([]string, 0, len(b.objects))
		for k := range b.objects {
			b.sorted = append(b.sorted, k)
		}
		sort.Strings(b.sorted)
	}
	return b.sorted
}

func keyFile(key string) string {
	h := sha256.Sum256([]byte(key))
	return hex.EncodeToString(h[:16])
}

// s3Error is an S3 error answer.
type s3Error struct {
	Status  int
	Code    string
	Message string
	Key     string
	// Endpoint and Bucket are a PermanentRedirect's.
	Endpoint, Bucket string
	// BucketRegion, when set, is sent as x-amz-bucket-region.
	BucketRegion string
}

func writeS3Error(w http.ResponseWriter, r *http.Request, e s3Error) {
	w.Header().Set("x-amz-request-id", newRequestID())
	if e.BucketRegion != "" {
		w.Header().Set("x-amz-bucket-region", e.BucketRegion)
	}
	if r.Method == http.MethodHead {
		w.WriteHeader(e.Status)
		return
	}
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(e.Status)
	type errBody struct {
		XMLName   xml.Name `xml:"Error"`
		Code      string
		Message   string
		Key       string `xml:",omitempty"`
		Endpoint  string `xml:",omitempty"`
		Bucket    string `xml:",omitempty"`
		Resource  string
		RequestID string `xml:"RequestId"`
	}
	_, _ = io.WriteString(w, xml.Header)
	_ = xml.NewEncoder(w).Encode(errBody{Code: e.Code, Message: e.Message, Key: e.Key, Endpoint: e.Endpoint, Bucket: e.Bucket, Resource: r.URL.Path, RequestID: newRequestID()})
}

func s3FaultWriter(w http.ResponseWriter, r *http.Request, throttle bool) {
	if throttle {
		writeS3Error(w, r, s3Error{Status: http.StatusServiceUnavailable, Code: "SlowDown", Message: "Please reduce your request rate."})
		return
	}
	writeS3Error(w, r, s3Error{Status: http.StatusInternalServerError, Code: "InternalError", Message: "We encountered an internal error. Please try again."})
}

func writeXML(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/xml")
	w.Header().Set("x-amz-request-id", newRequestID())
	w.WriteHeader(status)
	_, _ = io.WriteString(w, xml.Header)
	_ = xml.NewEncoder(w).Encode(v)
}

// splitPath returns bucket and key of a path-style request.
func splitPath(p string) (bucket, key string) {
	p = strings.TrimPrefix(p, "/")
	bucket, key, _ = strings.Cut(p, "/")
	return bucket, key
}

func s3OpName(r *http.Request) string {
	bucket, key := splitPath(r.URL.Path)
	q := r.URL.Query()
	switch {
	case bucket == "":
		return "ListBuckets"
	case key == "":
		if op := bucketSettingOp(r); op != "" {
			return op
		}
		switch {
		case r.Method == http.MethodPost && q.Has("delete"):
			return "DeleteObjects"
		case r.Method == http.MethodGet && q.Has("location"):
			return "GetBucketLocation"
		case r.Method == http.MethodGet:
			return "ListObjectsV2"
		case r.Method == http.MethodPut:
			return "CreateBucket"
		case r.Method == http.MethodHead:
			return "HeadBucket"
		case r.Method == http.MethodDelete:
			return "DeleteBucket"
		}
	default:
		if op := (&s3Service{}).multipartOp(r); op != "" {
			return op
		}
		switch r.Method {
		case http.MethodPut:
			if r.Header.Get("x-amz-copy-source") != "" {
				return "CopyObject"
			}
			return "PutObject"
		case http.MethodGet:
			return "GetObject"
		case http.MethodHead:
			return "HeadObject"
		case http.MethodDelete:
			return "DeleteObject"
		}
	}
	return r.Method
}

func (s *s3Service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	bucket, key := splitPath(r.URL.Path)
	op := s3OpName(r)
	if bucket != "" && op != "CreateBucket" && op != "GetBucketLocation" && s.wrongRegion(w, r, bucket) {
		return
	}
	if strings.Contains(op, "PublicAccessBlock") || strings.Contains(op, "BucketOwnershipControls") ||
		strings.Contains(op, "BucketEncryption") || strings.Contains(op, "BucketPolicy") {
		s.serveBucketSetting(w, r, op, bucket)
		return
	}
	switch op {
	case "ListBuckets":
		s.listBuckets(w, r)
	case "CreateBucket":
		s.createBucket(w, r, bucket)
	case "HeadBucket":
		s.headBucket(w, r, bucket)
	case "DeleteBucket":
		s.deleteBucket(w, r, bucket)
	case "GetBucketLocation":
		s.getBucketLocation(w, r, bucket)
	case "ListObjectsV2":
		s.listObjects(w, r, bucket)
	case "DeleteObjects":
		s.deleteObjects(w, r, bucket)
	case "PutObject":
		if s.refusedByPolicy(w, r, op, bucket) {
			return
		}
		s.putObject(w, r, bucket, key)
	case "CopyObject":
		if s.refusedByPolicy(w, r, op, bucket) {
			return
		}
		s.copyObject(w, r, bucket, key)
	case "GetObject", "HeadObject":
		s.getObject(w, r, bucket, key)
	case "DeleteObject":
		s.deleteObject(w, r, bucket, key)
	case "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload", "AbortMultipartUpload":
		if op == "CompleteMultipartUpload" && s.refusedByPolicy(w, r, op, bucket) {
			return
		}
		s.serveMultipart(w, r, op, bucket, key)
	default:
		writeS3Error(w, r, s3Error{Status: http.StatusNotImplemented, Code: "NotImplemented", Message: "localaws does not implement this operation"})
	}
}

// bucket returns the named bucket or answers NoSuchBucket. Callers hold no lock.
func (s *s3Service) bucket(w http.ResponseWriter, r *http.Request, name string) *s3Bucket {
	s.mu.RLock()
	b := s.buckets[name]
	s.mu.RUnlock()
	if b == nil {
		writeS3Error(w, r, s3Error{Status: http.StatusNotFound, Code: "NoSuchBucket", Message: "The specified bucket does not exist"})
	}
	return b
}

var errNoBucket = errors.New("no such bucket")
