// Object operations: PutObject, CopyObject, GetObject/HeadObject,
// DeleteObject(s), and the commit that makes a write current.

package localaws

import (
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// maxDeleteKeys is S3's limit of keys in one DeleteObjects call.
const maxDeleteKeys = 1000

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

func (s *s3Service) copyObject(w http.ResponseWriter, r *http.Request, bucket, key string) {
	b := s.bucket(w, r, bucket)
	// The metadata a copy sends counts only when it replaces the source's
	// (x-amz-metadata-directive REPLACE); with COPY it is not used.
	replace := strings.EqualFold(r.Header.Get("x-amz-metadata-directive"), "REPLACE")
	if b == nil || replace && metaTooLarge(w, r) {
		return
	}
	srcBucket, srcKey, err := copySource(r)
	if err != nil {
		writeS3Error(w, r, s3Error{Status: http.StatusBadRequest, Code: "InvalidArgument", Message: "bad x-amz-copy-source"})
		return
	}
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
		o.replaceMeta(r.Header)
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

// copySource returns the bucket and key a CopyObject reads. The copy
// source is "bucket/key", URL-encoded
// (https://docs.aws.amazon.com/AmazonS3/latest/API/API_CopyObject.html),
// and S3 decodes it as a form value: "+" is a space, so a key with a
// "+" in it must be sent as %2B (a "+" sent as is names another key;
// see aws/aws-sdk-js#1821). The version id is cut before decoding.
func copySource(r *http.Request) (bucket, key string, err error) {
	raw, _, _ := strings.Cut(r.Header.Get("x-amz-copy-source"), "?versionId=")
	src, err := url.QueryUnescape(raw)
	if err != nil {
		return "", "", err
	}
	bucket, key = splitPath("/" + strings.TrimPrefix(src, "/"))
	return bucket, key, nil
}

// replaceMeta sets o's headers and metadata to those of h: a copy's
// (x-amz-metadata-directive REPLACE) or a multipart upload's.
func (o *object) replaceMeta(h http.Header) {
	o.ContentType, o.CacheControl = h.Get("Content-Type"), h.Get("Cache-Control")
	o.ContentEncoding, o.ContentDisp = h.Get("Content-Encoding"), h.Get("Content-Disposition")
	o.Meta = metaFromHeaders(h)
	if o.ContentType == "" {
		o.ContentType = "binary/octet-stream"
	}
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
		writeS3Error(w, r, malformedXML)
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

// openObject copies key's record and opens its blob under the lock, so a
// concurrent overwrite (a new blob, the old one removed) does not change
// what is read: an open file stays readable after its unlink, while one
// opened after the lock is released may already be gone and read as a
// missing key, which S3's strong read-after-write consistency never
// answers for a key that exists. An error wrapping os.ErrNotExist when
// there is no such key.
func (s *s3Service) openObject(b *s3Bucket, key string) (object, *os.File, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	o, found := b.objects[key]
	if !found {
		return object{}, nil, os.ErrNotExist
	}
	f, err := os.Open(filepath.Join(b.dir, o.Blob))
	if err != nil {
		return object{}, nil, err
	}
	return *o, f, nil
}

func noSuchKey(key string) s3Error {
	return s3Error{Status: http.StatusNotFound, Code: "NoSuchKey", Message: "The specified key does not exist.", Key: key}
}
