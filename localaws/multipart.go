package localaws

import (
	"crypto/md5"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// Multipart uploads, as S3 does them: parts of at least 5 MiB (but the
// last), numbered 1 to 10,000, and an ETag of the MD5 of the parts' MD5s
// with "-<parts>".
const minPartSize = 5 << 20

type upload struct {
	id     string
	bucket string
	key    string
	head   http.Header
	parts  map[int]part
	// algo is the checksum algorithm CreateMultipartUpload declared
	// (x-amz-checksum-algorithm, lower case), "" for none.
	algo string
}

type part struct {
	blob string
	size int64
	etag string // quoted
	md5  []byte
	// checksumAlgo and checksum are the checksum the part came with
	// (lower case; base64), verified against its bytes; "" for none.
	checksumAlgo, checksum string
}

type multipart struct {
	mu      sync.Mutex
	uploads map[string]*upload
}

func (s *s3Service) multipartOp(r *http.Request) string {
	q := r.URL.Query()
	switch {
	case r.Method == http.MethodPost && q.Has("uploads"):
		return "CreateMultipartUpload"
	case r.Method == http.MethodPut && q.Has("uploadId") && q.Has("partNumber"):
		return "UploadPart"
	case r.Method == http.MethodPost && q.Has("uploadId"):
		return "CompleteMultipartUpload"
	case r.Method == http.MethodDelete && q.Has("uploadId"):
		return "AbortMultipartUpload"
	}
	return ""
}

func (s *s3Service) serveMultipart(w http.ResponseWriter, r *http.Request, op, bucket, key string) {
	b := s.bucket(w, r, bucket)
	if b == nil {
		return
	}
	q := r.URL.Query()
	switch op {
	case "CreateMultipartUpload":
		s.createUpload(w, r, bucket, key)
	case "UploadPart":
		s.uploadPart(w, r, b, key)
	case "AbortMultipartUpload":
		s.mp.abort(b, q.Get("uploadId"))
		w.WriteHeader(http.StatusNoContent)
	case "CompleteMultipartUpload":
		s.complete(w, r, b, q.Get("uploadId"), bucket, key)
	}
}

func (s *s3Service) createUpload(w http.ResponseWriter, r *http.Request, bucket, key string) {
	if metaTooLarge(w, r) {
		return
	}
	u := &upload{id: newID('U') + newID('P'), bucket: bucket, key: key, head: r.Header.Clone(), parts: map[int]part{},
		algo: strings.ToLower(r.Header.Get("x-amz-checksum-algorithm"))}
	if u.algo != "" {
		w.Header().Set("x-amz-checksum-algorithm", strings.ToUpper(u.algo))
	}
	mp := &s.mp
	mp.mu.Lock()
	if mp.uploads == nil {
		mp.uploads = map[string]*upload{}
	}
	mp.uploads[u.id] = u
	mp.mu.Unlock()
	type result struct {
		XMLName  xml.Name `xml:"InitiateMultipartUploadResult"`
		NS       string   `xml:"xmlns,attr"`
		Bucket   string
		Key      string
		UploadID string `xml:"UploadId"`
	}
	writeXML(w, http.StatusOK, result{NS: s3NS, Bucket: bucket, Key: key, UploadID: u.id})
}

func (s *s3Service) uploadPart(w http.ResponseWriter, r *http.Request, b *s3Bucket, key string) {
	q := r.URL.Query()
	mp := &s.mp
	u := mp.get(q.Get("uploadId"), b.name, key)
	n, err := strconv.Atoi(q.Get("partNumber"))
	if u == nil || err != nil || n < 1 || n > 10000 {
		writeS3Error(w, r, s3Error{Status: http.StatusNotFound, Code: "NoSuchUpload", Message: "The specified upload does not exist."})
		return
	}
	algo, header := requestedChecksum(r)
	if e := partChecksumRefused(u, algo); e != nil {
		writeS3Error(w, r, *e)
		return
	}
	h, ck := md5.New(), newChecksummer(algo)
	body := readBody(r)
	blob, size, sum, err := storeBlob(b, body, h, ck)
	if err != nil {
		writeS3Error(w, r, s3Error{Status: http.StatusBadRequest, Code: "IncompleteBody", Message: err.Error()})
		return
	}
	p := part{blob: blob, size: size, etag: `"` + sum + `"`, md5: h.Sum(nil)}
	if algo != "" {
		// S3 checks the part against the checksum it came with, as
		// it does a PutObject's.
		computed, ok := ck.verify(sentChecksum(r, body, algo, header))
		if !ok {
			os.Remove(filepath.Join(b.dir, blob))
			writeS3Error(w, r, s3Error{Status: http.StatusBadRequest, Code: "BadDigest", Message: fmt.Sprintf("The %s you specified did not match the calculated checksum.", strings.ToUpper(algo))})
			return
		}
		p.checksumAlgo, p.checksum = algo, computed
		w.Header().Set("x-amz-checksum-"+algo, computed)
	}
	mp.mu.Lock()
	if old, ok := u.parts[n]; ok {
		os.Remove(filepath.Join(b.dir, old.blob))
	}
	u.parts[n] = p
	mp.mu.Unlock()
	w.Header().Set("ETag", `"`+sum+`"`)
	w.WriteHeader(http.StatusOK)
}

// abort drops upload id and its parts' blobs.
func (m *multipart) abort(b *s3Bucket, id string) {
	m.mu.Lock()
	u := m.uploads[id]
	delete(m.uploads, id)
	m.mu.Unlock()
	if u != nil {
		for _, p := range u.parts {
			os.Remove(filepath.Join(b.dir, p.blob))
		}
	}
}

func (m *multipart) get(id, bucket, key string) *upload {
	m.mu.Lock()
	defer m.mu.Unlock()
	u := m.uploads[id]
	if u == nil || u.bucket != bucket || u.key != key {
		return nil
	}
	return u
}

func (s *s3Service) complete(w http.ResponseWriter, r *http.Request, b *s3Bucket, id, bucket, key string) {
	var req struct {
		Parts []completedPart `xml:"Part"`
	}
	if err := xml.NewDecoder(io.LimitReader(r.Body, 4<<20)).Decode(&req); err != nil {
		writeS3Error(w, r, s3Error{Status: http.StatusBadRequest, Code: "MalformedXML", Message: err.Error()})
		return
	}
	mp := &s.mp
	u := mp.get(id, bucket, key)
	if u == nil {
		writeS3Error(w, r, s3Error{Status: http.StatusNotFound, Code: "NoSuchUpload", Message: "The specified upload does not exist."})
		return
	}
	// CompleteMultipartUpload takes If-None-Match: * (and If-Match):
	// the object is created only when the key does not exist, else 412
	// PreconditionFailed, checked in commit, and the upload stays open to
	// be aborted; a concurrent conditional write gets 409
	// (https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html).
	// CreateMultipartUpload and UploadPart take no such header.
	done, ok := s.beginConditional(w, r, bucket, key)
	if !ok {
		return
	}
	defer done()
	mp.mu.Lock()
	parts, bad := u.completing(req.Parts)
	mp.mu.Unlock()
	if bad != nil {
		writeS3Error(w, r, *bad)
		return
	}
	blob, size, _, err := storeBlob(b, concatParts(b, parts))
	if err != nil {
		writeS3Error(w, r, s3Error{Status: 500, Code: "InternalError", Message: err.Error()})
		return
	}
	all := md5.New()
	for _, p := range parts {
		all.Write(p.md5)
	}
	etag := fmt.Sprintf(`"%s-%d"`, hex.EncodeToString(all.Sum(nil)), len(parts))
	o := &object{Key: key, Size: size, ETag: etag, Blob: blob}
	o.replaceMeta(u.head) // what CreateMultipartUpload sent
	o.ChecksumAlgo, o.Checksum = compositeChecksum(u, parts)
	if e := s.commit(r, b, o); e != nil {
		os.Remove(filepath.Join(b.dir, blob))
		writeS3Error(w, r, *e)
		return
	}
	mp.mu.Lock()
	delete(mp.uploads, id)
	mp.mu.Unlock()
	for _, p := range u.parts {
		os.Remove(filepath.Join(b.dir, p.blob))
	}
	type result struct {
		XMLName xml.Name `xml:"CompleteMultipartUploadResult"`
		NS      string   `xml:"xmlns,attr"`
		Bucket  string
		Key     string
		ETag    string
	}
	writeXML(w, http.StatusOK, result{NS: s3NS, Bucket: bucket, Key: key, ETag: etag})
}

// completing checks the parts a CompleteMultipartUpload lists against
// those uploaded and returns them in order, or S3's refusal; callers hold
// the multipart mu.
func (u *upload) completing(listed []completedPart) ([]part, *s3Error) {
	parts := make([]part, 0, len(listed))
	var bad *s3Error
	if !sort.SliceIsSorted(listed, func(i, j int) bool { return listed[i].PartNumber < listed[j].PartNumber }) {
		bad = &s3Error{Status: http.StatusBadRequest, Code: "InvalidPartOrder", Message: "The list of parts was not in ascending order."}
	}
	for i, p := range listed {
		got, ok := u.parts[p.PartNumber]
		switch {
		case bad != nil:
		case !ok || strings.Trim(got.etag, `"`) != strings.Trim(p.ETag, `"`):
			bad = &s3Error{Status: http.StatusBadRequest, Code: "InvalidPart", Message: fmt.Sprintf("part %d was not uploaded or its ETag differs", p.PartNumber)}
		case completeChecksumRefused(u, got, p) != nil:
			bad = completeChecksumRefused(u, got, p)
		case i < len(listed)-1 && got.size < minPartSize:
			bad = &s3Error{Status: http.StatusBadRequest, Code: "EntityTooSmall", Message: "Your proposed upload is smaller than the minimum allowed object size."}
		}
		parts = append(parts, got)
	}
	if len(listed) == 0 && bad == nil {
		bad = &s3Error{Status: http.StatusBadRequest, Code: "MalformedXML", Message: "no parts"}
	}
	return parts, bad
}

// concatParts reads the parts' blobs one after the other.
func concatParts(b *s3Bucket, parts []part) io.Reader {
	pr, pw := io.Pipe()
	go func() {
		for _, p := range parts {
			f, err := os.Open(filepath.Join(b.dir, p.blob))
			if err != nil {
				pw.CloseWithError(err)
				return
			}
			_, err = io.Copy(pw, f)
			f.Close()
			if err != nil {
				pw.CloseWithError(err)
				return
			}
		}
		pw.Close()
	}()
	return pr
}
