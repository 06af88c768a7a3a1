package localaws

import (
	"bufio"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

const s3NS = "http://s3.amazonaws.com/doc/2006-03-01/"

// maxDeleteKeys is S3's limit of keys in one DeleteObjects call.
const maxDeleteKeys = 1000

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
		// The bucket's location constraint: empty for us-east-1
		// (https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetBucketLocation.html).
		if b := s.bucket(w, r, bucket); b != nil {
			type loc struct {
				XMLName xml.Name `xml:"LocationConstraint"`
				NS      string   `xml:"xmlns,attr"`
				Region  string   `xml:",chardata"`
			}
			s.mu.RLock()
			region := b.cfg.Region
			s.mu.RUnlock()
			if region == DefaultRegion {
				region = ""
			}
			writeXML(w, http.StatusOK, loc{NS: s3NS, Region: region})
		}
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

func (s *s3Service) listBuckets(w http.ResponseWriter, _ *http.Request) {
	type bucketXML struct {
		Name         string
		CreationDate string
	}
	type result struct {
		XMLName xml.Name    `xml:"ListAllMyBucketsResult"`
		NS      string      `xml:"xmlns,attr"`
		Buckets []bucketXML `xml:"Buckets>Bucket"`
	}
	s.mu.RLock()
	res := result{NS: s3NS}
	for _, b := range s.buckets {
		res.Buckets = append(res.Buckets, bucketXML{Name: b.name, CreationDate: b.created.UTC().Format(awsTime)})
	}
	s.mu.RUnlock()
	sort.Slice(res.Buckets, func(i, j int) bool { return res.Buckets[i].Name < res.Buckets[j].Name })
	writeXML(w, http.StatusOK, res)
}

func validBucketName(name string) bool {
	if len(name) < 3 || len(name) > 63 {
		return false
	}
	for i, c := range name {
		ok := c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || (c == '-' || c == '.') && i > 0 && i < len(name)-1
		if !ok {
			return false
		}
	}
	return true
}

func (s *s3Service) createBucket(w http.ResponseWriter, r *http.Request, name string) {
	body, _ := io.ReadAll(io.LimitReader(readBody(r), 1<<20))
	if !validBucketName(name) {
		writeS3Error(w, r, s3Error{Status: http.StatusBadRequest, Code: "InvalidBucketName", Message: "The specified bucket is not valid."})
		return
	}
	region, e := createBucketRegion(r, body)
	if e != nil {
		writeS3Error(w, r, *e)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.buckets[name]; ok {
		writeS3Error(w, r, s3Error{Status: http.StatusConflict, Code: "BucketAlreadyOwnedByYou", Message: "Your previous request to create the named bucket succeeded and you already own it."})
		return
	}
	if _, err := s.newBucket(name, region); err != nil {
		writeS3Error(w, r, s3Error{Status: 500, Code: "InternalError", Message: err.Error()})
		return
	}
	w.Header().Set("Location", "/"+name)
	w.WriteHeader(http.StatusOK)
}

// headBucket answers 200 with the bucket's region in
// x-amz-bucket-region (a request from another region was answered 301
// with it by wrongRegion), as
// https://docs.aws.amazon.com/AmazonS3/latest/API/API_HeadBucket.html
// documents.
func (s *s3Service) headBucket(w http.ResponseWriter, r *http.Request, name string) {
	if b := s.bucket(w, r, name); b != nil {
		s.mu.RLock()
		region := b.cfg.Region
		s.mu.RUnlock()
		w.Header().Set("x-amz-bucket-region", region)
		w.WriteHeader(http.StatusOK)
	}
}

func (s *s3Service) deleteBucket(w http.ResponseWriter, r *http.Request, name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.buckets[name]
	if b == nil {
		writeS3Error(w, r, s3Error{Status: http.StatusNotFound, Code: "NoSuchBucket", Message: "The specified bucket does not exist"})
		return
	}
	if len(b.objects) > 0 {
		writeS3Error(w, r, s3Error{Status: http.StatusConflict, Code: "BucketNotEmpty", Message: "The bucket you tried to delete is not empty"})
		return
	}
	os.RemoveAll(b.dir)
	delete(s.buckets, name)
	w.WriteHeader(http.StatusNoContent)
}

func (s *s3Service) listObjects(w http.ResponseWriter, r *http.Request, name string) {
	b := s.bucket(w, r, name)
	if b == nil {
		return
	}
	q := r.URL.Query()
	if q.Get("list-type") != "2" {
		writeS3Error(w, r, s3Error{Status: http.StatusNotImplemented, Code: "NotImplemented", Message: "localaws implements ListObjectsV2 only"})
		return
	}
	prefix, delim := q.Get("prefix"), q.Get("delimiter")
	maxKeys := 1000
	if v := q.Get("max-keys"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			writeS3Error(w, r, s3Error{Status: http.StatusBadRequest, Code: "InvalidArgument", Message: "max-keys must be a non-negative integer"})
			return
		}
		maxKeys = min(n, 1000)
	}
	start := q.Get("start-after")
	token := q.Get("continuation-token")
	if token != "" {
		raw, err := hex.DecodeString(token)
		if err != nil {
			writeS3Error(w, r, s3Error{Status: http.StatusBadRequest, Code: "InvalidArgument", Message: "The continuation token provided is incorrect"})
			return
		}
		start = string(raw)
	}
	urlEnc := q.Get("encoding-type") == "url"
	enc := func(s string) string {
		if urlEnc {
			return strings.ReplaceAll(url.QueryEscape(s), "+", "%20")
		}
		return s
	}

	type content struct {
		Key          string
		LastModified string
		ETag         string
		Size         int64
		StorageClass string
	}
	type cp struct{ Prefix string }
	type result struct {
		XMLName               xml.Name `xml:"ListBucketResult"`
		NS                    string   `xml:"xmlns,attr"`
		Name                  string
		Prefix                string
		Delimiter             string `xml:",omitempty"`
		MaxKeys               int
		KeyCount              int
		IsTruncated           bool
		EncodingType          string    `xml:",omitempty"`
		ContinuationToken     string    `xml:",omitempty"`
		NextContinuationToken string    `xml:",omitempty"`
		StartAfter            string    `xml:",omitempty"`
		Contents              []content `xml:"Contents"`
		CommonPrefixes        []cp      `xml:"CommonPrefixes"`
	}
	res := result{NS: s3NS, Name: name, Prefix: enc(prefix), Delimiter: enc(delim), MaxKeys: maxKeys,
		ContinuationToken: token, StartAfter: enc(q.Get("start-after"))}
	if urlEnc {
		res.EncodingType = "url"
	}

	s.mu.Lock() // keys() may rebuild the sorted index
	keys := b.keys()
	i := sort.SearchStrings(keys, prefix)
	if start > prefix {
		i = sort.SearchStrings(keys, start)
		if i < len(keys) && keys[i] == start {
			i++
		}
	}
	seen := map[string]bool{}
	last := ""
	for ; i < len(keys); i++ {
		k := keys[i]
		if !strings.HasPrefix(k, prefix) {
			break
		}
		if res.KeyCount == maxKeys {
			res.IsTruncated = true
			res.NextContinuationToken = hex.EncodeToString([]byte(last))
			break
		}
		if delim != "" {
			if j := strings.Index(k[len(prefix):], delim); j >= 0 {
				p := k[:len(prefix)+j+len(delim)]
				if !seen[p] {
					seen[p] = true
					res.CommonPrefixes = append(res.CommonPrefixes, cp{Prefix: enc(p)})
					res.KeyCount++
				}
				// Skip the rest of this common prefix in one step.
				last = p + "\xff"
				i = sort.SearchStrings(keys, last) - 1
				last = keys[i]
				continue
			}
		}
		o := b.objects[k]
		res.Contents = append(res.Contents, content{Key: enc(k), LastModified: o.LastModified.UTC().Format(awsTime),
			ETag: o.ETag, Size: o.Size, StorageClass: "STANDARD"})
		res.KeyCount++
		last = k
	}
	s.mu.Unlock()
	writeXML(w, http.StatusOK, res)
}

// readBody returns the request payload, decoding the aws-chunked encoding
// the SDK uses for streamed uploads with trailing checksums.
func readBody(r *http.Request) io.Reader {
	sha := r.Header.Get("X-Amz-Content-Sha256")
	if strings.Contains(r.Header.Get("Content-Encoding"), "aws-chunked") || strings.HasPrefix(sha, "STREAMING-") {
		return &chunkedReader{r: bufio.NewReader(r.Body)}
	}
	return r.Body
}

// sentChecksum returns the checksum value of algo the client sent, in a
// header or in the aws-chunked trailer.
func sentChecksum(r *http.Request, body io.Reader, algo, header string) string {
	if header != "" {
		return header
	}
	if c, ok := body.(*chunkedReader); ok {
		return c.trailers["x-amz-checksum-"+algo]
	}
	return ""
}

type chunkedReader struct {
	r        *bufio.Reader
	trailers map[string]string
	left     int64
	done     bool
	err      error
}

func (c *chunkedReader) Read(p []byte) (int, error) {
	for c.left == 0 {
		if c.done {
			return 0, io.EOF
		}
		if c.err != nil {
			return 0, c.err
		}
		line, err := c.r.ReadString('\n')
		if err != nil {
			c.err = fmt.Errorf("aws-chunked: reading chunk header: %w", err)
			return 0, c.err
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			continue // the CRLF after a chunk's data
		}
		sizeHex, _, _ := strings.Cut(line, ";")
		n, err := strconv.ParseInt(strings.TrimSpace(sizeHex), 16, 64)
		if err != nil || n < 0 {
			c.err = fmt.Errorf("aws-chunked: bad chunk size %q", sizeHex)
			return 0, c.err
		}
		if n == 0 {
			c.done = true
			c.readTrailers()
			return 0, io.EOF
		}
		c.left = n
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

// readTrailers reads "name:value" lines after the last chunk (the
// checksum the SDK computed while streaming).
func (c *chunkedReader) readTrailers() {
	c.trailers = map[string]string{}
	for {
		line, err := c.r.ReadString('\n')
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok {
			c.trailers[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(v)
		}
		if err != nil {
			return
		}
	}
}

// storeBlob streams body into a new blob file of the bucket and returns it
// with its size and MD5, outside any lock.
func storeBlob(b *s3Bucket, body io.Reader, extra ...io.Writer) (blob string, size int64, md5hex string, err error) {
	f, err := os.CreateTemp(b.dir, "*.data")
	if err != nil {
		return "", 0, "", err
	}
	h := md5.New()
	size, err = io.Copy(io.MultiWriter(append([]io.Writer{f, h}, extra...)...), body)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", 0, "", err
	}
	return filepath.Base(f.Name()), size, hex.EncodeToString(h.Sum(nil)), nil
}

// checkConditions applies If-Match / If-None-Match of a write to the
// current object (nil when absent).
func checkWriteConditions(r *http.Request, cur *object) *s3Error {
	if inm := r.Header.Get("If-None-Match"); inm != "" {
		if inm != "*" {
			return &s3Error{Status: http.StatusNotImplemented, Code: "NotImplemented", Message: "If-None-Match on writes takes only *"}
		}
		if cur != nil {
			return &s3Error{Status: http.StatusPreconditionFailed, Code: "PreconditionFailed", Message: "At least one of the pre-conditions you specified did not hold"}
		}
	}
	if im := r.Header.Get("If-Match"); im != "" {
		if cur == nil {
			return &s3Error{Status: http.StatusNotFound, Code: "NoSuchKey", Message: "The specified key does not exist."}
		}
		if strings.Trim(im, `"`) != strings.Trim(cur.ETag, `"`) {
			return &s3Error{Status: http.StatusPreconditionFailed, Code: "PreconditionFailed", Message: "At least one of the pre-conditions you specified did not hold"}
		}
	}
	return nil
}

func metaFromHeaders(h http.Header) map[string]string {
	var m map[string]string
	for k, v := range h {
		lk := strings.ToLower(k)
		if strings.HasPrefix(lk, "x-amz-meta-") && len(v) > 0 {
			if m == nil {
				m = map[string]string{}
			}
			m[strings.TrimPrefix(lk, "x-amz-meta-")] = v[0]
		}
	}
	return m
}

func validKey(key string) bool { return key != "" && len(key) <= 1024 }

// maxUserMetadata is S3's limit on user-defined metadata: the bytes of
// every key and value together, at most 2 KB, refused with 400
// MetadataTooLarge
// (https://docs.aws.amazon.com/AmazonS3/latest/userguide/UsingMetadata.html).
const maxUserMetadata = 2 << 10

// metaTooLarge refuses a write whose x-amz-meta-* headers pass the limit.
func metaTooLarge(w http.ResponseWriter, r *http.Request) bool {
	n := 0
	for k, v := range metaFromHeaders(r.Header) {
		n += len(k) + len(v)
	}
	if n <= maxUserMetadata {
		return false
	}
	writeS3Error(w, r, s3Error{Status: http.StatusBadRequest, Code: "MetadataTooLarge", Message: "Your metadata headers exceed the maximum allowed metadata size."})
	return true
}

func (s *s3Service) putObject(w http.ResponseWriter, r *http.Request, bucket, key string) {
	b := s.bucket(w, r, bucket)
	if b == nil {
		return
	}
	if !validKey(key) {
		writeS3Error(w, r, s3Error{Status: http.StatusBadRequest, Code: "KeyTooLongError", Message: "Your key is too long"})
		return
	}
	if metaTooLarge(w, r) {
		return
	}
	done, ok := s.beginConditional(w, r, bucket, key)
	if !ok {
		return
	}
	defer done()
	algo, header := requestedChecksum(r)
	ck := newChecksummer(algo)
	body := readBody(r)
	blob, size, sum, err := storeBlob(b, body, ck)
	if err != nil {
		writeS3Error(w, r, s3Error{Status: http.StatusBadRequest, Code: "IncompleteBody", Message: err.Error()})
		return
	}
	var checksum string
	if algo != "" {
		sent := sentChecksum(r, body, algo, header)
		computed, ok := ck.verify(sent)
		if !ok {
			os.Remove(filepath.Join(b.dir, blob))
			writeS3Error(w, r, s3Error{Status: http.StatusBadRequest, Code: "BadDigest", Message: fmt.Sprintf("The %s you specified did not match the calculated checksum.", strings.ToUpper(algo))})
			return
		}
		checksum = computed
	}
	if want := r.Header.Get("X-Amz-Decoded-Content-Length"); want != "" && want != strconv.FormatInt(size, 10) {
		os.Remove(filepath.Join(b.dir, blob))
		writeS3Error(w, r, s3Error{Status: http.StatusBadRequest, Code: "IncompleteBody", Message: "You did not provide the number of bytes specified by the Content-Length HTTP header."})
		return
	}
	enc := strings.TrimPrefix(strings.ReplaceAll(r.Header.Get("Content-Encoding"), "aws-chunked", ""), ",")
	o := &object{Key: key, Size: size, ETag: `"` + sum + `"`, ContentType: r.Header.Get("Content-Type"),
		CacheControl: r.Header.Get("Cache-Control"), ContentEncoding: strings.TrimSpace(enc),
		ContentDisp: r.Header.Get("Content-Disposition"), Meta: metaFromHeaders(r.Header), Blob: blob,
		ChecksumAlgo: algo, Checksum: checksum}
	if o.ContentType == "" {
		o.ContentType = "binary/octet-stream"
	}
	if e := s.commit(r, b, o); e != nil {
		os.Remove(filepath.Join(b.dir, blob))
		writeS3Error(w, r, *e)
		return
	}
	w.Header().Set("ETag", o.ETag)
	w.WriteHeader(http.StatusOK)
}

// beginConditional marks a conditional write (If-None-Match or
// If-Match: PutObject, CopyObject, CompleteMultipartUpload) to bucket/key
// as in progress until done is called. A second conditional write to a
// key while one is in progress is answered 409 ConditionalRequestConflict,
// which asks the client to retry: it says nothing of whether the first
// will succeed
// (https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html).
// ok is false when it answered so.
func (s *s3Service) beginConditional(w http.ResponseWriter, r *http.Request, bucket, key string) (done func(), ok bool) {
	if r.Header.Get("If-None-Match") == "" && r.Header.Get("If-Match") == "" {
		return func() {}, true
	}
	if _, busy := s.conditional.LoadOrStore(bucket+"/"+key, true); busy {
		writeS3Error(w, r, s3Error{Status: http.StatusConflict, Code: "ConditionalRequestConflict",
			Message: "A conflicting conditional operation is currently in progress against this resource. Please try again."})
		return nil, false
	}
	return func() { s.conditional.Delete(bucket + "/" + key) }, true
}

// refusedByPolicy answers, and reports true, when bucket enforces
// conditional writes (EnforceConditionalWrites) and refuses the request
// as AWS documents for such a bucket policy
// (https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes-enforce.html):
// an object-creating request (PutObject, CopyObject,
// CompleteMultipartUpload: s3:ObjectCreationOperation true) without
// If-None-Match or If-Match is denied, 403 AccessDenied; the parts of a
// multipart upload (CreateMultipartUpload, UploadPart, UploadPartCopy:
// s3:ObjectCreationOperation false) take no such headers and are not
// checked. And, as the page's note says, a CopyObject *with* the headers
// fails 501 Not Implemented, so no copy into such a bucket succeeds. (The
// note may predate CopyObject's If-None-Match, which S3 now documents;
// the stand-in keeps the note's answer, the one a client must survive.)
func (s *s3Service) refusedByPolicy(w http.ResponseWriter, r *http.Request, op, bucket string) bool {
	if _, on := s.enforced.Load(bucket); !on {
		return false
	}
	conditional := r.Header.Get("If-None-Match") != "" || r.Header.Get("If-Match") != ""
	switch {
	case !conditional:
		writeS3Error(w, r, s3Error{Status: http.StatusForbidden, Code: "AccessDenied",
			Message: "User is not authorized to perform: s3:PutObject with an explicit deny in a resource-based policy (the bucket policy enforces conditional writes)"})
		return true
	case op == "CopyObject":
		writeS3Error(w, r, s3Error{Status: http.StatusNotImplemented, Code: "NotImplemented",
			Message: "A header you provided implies functionality that is not implemented"})
		return true
	}
	return false
}

// commit makes o the current version of its key, checking the write's
// conditions under the lock so that If-None-Match is atomic.
func (s *s3Service) commit(r *http.Request, b *s3Bucket, o *object) *s3Error {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := b.objects[o.Key]
	if e := checkWriteConditions(r, cur); e != nil {
		return e
	}
	o.LastModified = s.now().UTC().Truncate(time.Millisecond)
	raw, _ := json.Marshal(o)
	if err := writeFileAtomic(filepath.Join(b.dir, keyFile(o.Key)+".json"), raw); err != nil {
		return &s3Error{Status: 500, Code: "InternalError", Message: err.Error()}
	}
	if cur != nil && cur.Blob != o.Blob {
		// Readers that opened the old blob keep reading it (POSIX unlink).
		os.Remove(filepath.Join(b.dir, cur.Blob))
	} else if cur == nil {
		b.sorted = nil
	}
	b.objects[o.Key] = o
	return nil
}

func writeFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func (s *s3Service) copyObject(w http.ResponseWriter, r *http.Request, bucket, key string) {
	b := s.bucket(w, r, bucket)
	// The metadata a copy sends counts only when it replaces the source's
	// (x-amz-metadata-directive REPLACE); with COPY it is not used.
	replace := strings.EqualFold(r.Header.Get("x-amz-metadata-directive"), "REPLACE")
	if b == nil || replace && metaTooLarge(w, r) {
		return
	}
	// The copy source is "bucket/key", URL-encoded
	// (https://docs.aws.amazon.com/AmazonS3/latest/API/API_CopyObject.html),
	// and S3 decodes it as a form value: "+" is a space, so a key with a
	// "+" in it must be sent as %2B (a "+" sent as is names another key;
	// see aws/aws-sdk-js#1821). The version id is cut before decoding.
	raw, _, _ := strings.Cut(r.Header.Get("x-amz-copy-source"), "?versionId=")
	src, err := url.QueryUnescape(raw)
	if err != nil {
		writeS3Error(w, r, s3Error{Status: http.StatusBadRequest, Code: "InvalidArgument", Message: "bad x-amz-copy-source"})
		return
	}
	srcBucket, srcKey := splitPath("/" + strings.TrimPrefix(src, "/"))
	sb := s.bucket(w, r, srcBucket)
	if sb == nil {
		return
	}
	// If-None-Match: * copies only when the destination key does not
	// exist (412 PreconditionFailed otherwise, checked in commit), and a
	// concurrent conditional write to it gets 409
	// (https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html;
	// API_CopyObject.html's If-None-Match).
	done, ok := s.beginConditional(w, r, bucket, key)
	if !ok {
		return
	}
	defer done()
	soCopy, f, err := s.openObject(sb, srcKey)
	if err != nil {
		writeS3Error(w, r, noSuchKey(srcKey))
		return
	}
	if soCopy.Size > s.maxCopy {
		// CopyObject copies at most 5 GB; larger objects take a multipart
		// upload with UploadPartCopy
		// (https://docs.aws.amazon.com/AmazonS3/latest/API/API_CopyObject.html).
		f.Close()
		writeS3Error(w, r, s3Error{Status: http.StatusBadRequest, Code: "InvalidRequest",
			Message: fmt.Sprintf("The specified copy source is larger than the maximum allowable size for a copy source: %d", s.maxCopy)})
		return
	}
	if im := r.Header.Get("x-amz-copy-source-if-match"); im != "" && strings.Trim(im, `"`) != strings.Trim(soCopy.ETag, `"`) {
		f.Close()
		writeS3Error(w, r, s3Error{Status: http.StatusPreconditionFailed, Code: "PreconditionFailed", Message: "At least one of the pre-conditions you specified did not hold"})
		return
	}
	blob, size, sum, err := storeBlob(b, f)
	f.Close()
	if err != nil {
		writeS3Error(w, r, s3Error{Status: 500, Code: "InternalError", Message: err.Error()})
		return
	}
	o := soCopy
	o.Key, o.Blob, o.Size, o.ETag = key, blob, size, `"`+sum+`"`
	if replace {
		o.ContentType, o.CacheControl = r.Header.Get("Content-Type"), r.Header.Get("Cache-Control")
		o.ContentEncoding, o.ContentDisp = r.Header.Get("Content-Encoding"), r.Header.Get("Content-Disposition")
		o.Meta = metaFromHeaders(r.Header)
		if o.ContentType == "" {
			o.ContentType = "binary/octet-stream"
		}
	}
	if e := s.commit(r, b, &o); e != nil {
		os.Remove(filepath.Join(b.dir, blob))
		writeS3Error(w, r, *e)
		return
	}
	type result struct {
		XMLName      xml.Name `xml:"CopyObjectResult"`
		NS           string   `xml:"xmlns,attr"`
		LastModified string
		ETag         string
	}
	writeXML(w, http.StatusOK, result{NS: s3NS, LastModified: o.LastModified.Format(awsTime), ETag: o.ETag})
}

func (s *s3Service) getObject(w http.ResponseWriter, r *http.Request, bucket, key string) {
	b := s.bucket(w, r, bucket)
	if b == nil {
		return
	}
	oc, f, err := s.openObject(b, key)
	if err != nil {
		writeS3Error(w, r, noSuchKey(key))
		return
	}
	defer f.Close()
	h := w.Header()
	h.Set("ETag", oc.ETag)
	h.Set("Content-Type", oc.ContentType)
	h.Set("Accept-Ranges", "bytes")
	h.Set("x-amz-request-id", newRequestID())
	if oc.CacheControl != "" {
		h.Set("Cache-Control", oc.CacheControl)
	}
	if oc.ContentEncoding != "" {
		h.Set("Content-Encoding", oc.ContentEncoding)
	}
	if oc.ContentDisp != "" {
		h.Set("Content-Disposition", oc.ContentDisp)
	}
	for k, v := range oc.Meta {
		h.Set("x-amz-meta-"+k, v)
	}
	// S3 returns the stored checksum when asked, and the SDK validates
	// the body against it.
	if strings.EqualFold(r.Header.Get("x-amz-checksum-mode"), "ENABLED") && oc.Checksum != "" && r.Header.Get("Range") == "" {
		h.Set("x-amz-checksum-"+oc.ChecksumAlgo, oc.Checksum)
		h.Set("x-amz-checksum-type", checksumType(oc.Checksum))
	}
	// ServeContent answers Range, If-Match, If-None-Match and
	// If-Modified-Since as S3 does (206, 412, 304).
	http.ServeContent(w, r, "", oc.LastModified, f)
}

func (s *s3Service) deleteObject(w http.ResponseWriter, r *http.Request, bucket, key string) {
	b := s.bucket(w, r, bucket)
	if b == nil {
		return
	}
	s.remove(b, key)
	w.WriteHeader(http.StatusNoContent)
}

func (s *s3Service) remove(b *s3Bucket, key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o := b.objects[key]
	if o == nil {
		return
	}
	os.Remove(filepath.Join(b.dir, keyFile(key)+".json"))
	os.Remove(filepath.Join(b.dir, o.Blob))
	delete(b.objects, key)
	b.sorted = nil
}

func (s *s3Service) deleteObjects(w http.ResponseWriter, r *http.Request, bucket string) {
	b := s.bucket(w, r, bucket)
	if b == nil {
		return
	}
	var req struct {
		Quiet   bool
		Objects []struct{ Key string } `xml:"Object"`
	}
	if err := xml.NewDecoder(io.LimitReader(readBody(r), 4<<20)).Decode(&req); err != nil {
		writeS3Error(w, r, s3Error{Status: http.StatusBadRequest, Code: "MalformedXML", Message: "The XML you provided was not well-formed or did not validate against our published schema"})
		return
	}
	if len(req.Objects) == 0 || len(req.Objects) > maxDeleteKeys {
		writeS3Error(w, r, s3Error{Status: http.StatusBadRequest, Code: "MalformedXML", Message: fmt.Sprintf("a DeleteObjects request names 1 to %d keys", maxDeleteKeys)})
		return
	}
	type deleted struct{ Key string }
	type result struct {
		XMLName xml.Name  `xml:"DeleteResult"`
		NS      string    `xml:"xmlns,attr"`
		Deleted []deleted `xml:"Deleted"`
	}
	res := result{NS: s3NS}
	for _, o := range req.Objects {
		s.remove(b, o.Key)
		if !req.Quiet {
			res.Deleted = append(res.Deleted, deleted{Key: o.Key})
		}
	}
	writeXML(w, http.StatusOK, res)
}

// readObject opens the current content of bucket/key for the edge.
func (s *s3Service) readObject(bucket, key string) (*object, *os.File, error) {
	s.mu.RLock()
	b := s.buckets[bucket]
	s.mu.RUnlock()
	if b == nil {
		return nil, nil, errNoBucket
	}
	o, f, err := s.openObject(b, key)
	if err != nil {
		return nil, nil, err
	}
	return &o, f, nil
}

// openObject copies key's record out of the lock and opens its blob, so
// a concurrent overwrite (a new blob) does not change what is read; an
// error wrapping os.ErrNotExist when there is no such key.
func (s *s3Service) openObject(b *s3Bucket, key string) (object, *os.File, error) {
	s.mu.RLock()
	o, found := b.objects[key]
	var oc object
	if found {
		oc = *o
	}
	s.mu.RUnlock()
	if !found {
		return object{}, nil, os.ErrNotExist
	}
	f, err := os.Open(filepath.Join(b.dir, oc.Blob))
	if err != nil {
		return object{}, nil, err
	}
	return oc, f, nil
}

func noSuchKey(key string) s3Error {
	return s3Error{Status: http.StatusNotFound, Code: "NoSuchKey", Message: "The specified key does not exist.", Key: key}
}

var errNoBucket = errors.New("no such bucket")

// loadJSON reads the state file at path into v; a missing file is an
// empty state.
func loadJSON(path string, v any) error {
	raw, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("localaws: %s: %w", path, err)
	}
	return nil
}

// saveJSON replaces the state file at path with v.
func saveJSON(path string, v any) error {
	raw, err := json.MarshalIndent(v, "", " ")
	if err != nil {
		return err
	}
	return writeFileAtomic(path, raw)
}
