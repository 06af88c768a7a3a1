package localaws

import (
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"hash"
	"hash/crc32"
	"net/http"
	"strings"
)

// checksumAlgos are the S3 additional checksums the stand-in verifies.
// CRC64NVME is kept and returned but not verified (no standard library
// implementation).
var checksumAlgos = map[string]func() hash.Hash{
	"crc32":  func() hash.Hash { return crc32.NewIEEE() },
	"crc32c": func() hash.Hash { return crc32.New(crc32.MakeTable(crc32.Castagnoli)) },
	"sha1":   sha1.New,
	"sha256": sha256.New,
}

// requestedChecksum returns the algorithm (lower case) of the checksum a
// write carries, in a header or announced as a trailer, and the header
// value if it came as a header.
func requestedChecksum(r *http.Request) (algo, value string) {
	for k, v := range r.Header {
		lk := strings.ToLower(k)
		if a, ok := strings.CutPrefix(lk, "x-amz-checksum-"); ok && a != "mode" && a != "type" && a != "algorithm" && len(v) > 0 {
			return a, v[0]
		}
	}
	if t := strings.ToLower(r.Header.Get("X-Amz-Trailer")); strings.HasPrefix(t, "x-amz-checksum-") {
		return strings.TrimPrefix(t, "x-amz-checksum-"), ""
	}
	return "", ""
}

type checksummer struct {
	algo string
	h    hash.Hash
}

func newChecksummer(algo string) *checksummer {
	if f, ok := checksumAlgos[algo]; ok {
		return &checksummer{algo: algo, h: f()}
	}
	return &checksummer{algo: algo}
}

func (c *checksummer) Write(p []byte) (int, error) {
	if c.h != nil {
		c.h.Write(p)
	}
	return len(p), nil
}

// verify compares the computed checksum with the one sent; ok is true
// when they match or the algorithm is not verified here.
func (c *checksummer) verify(sent string) (computed string, ok bool) {
	if c.h == nil {
		return sent, true
	}
	computed = base64.StdEncoding.EncodeToString(c.h.Sum(nil))
	return computed, sent == "" || sent == computed
}
