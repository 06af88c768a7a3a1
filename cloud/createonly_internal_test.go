package cloud

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

func apiErr(code string) error {
	return fmt.Errorf("operation error S3: CopyObject: %w", &smithy.GenericAPIError{Code: code, Message: "m"})
}

// statusErr is an error answer with a status and no code the SDK could
// decode (a HEAD's, or a body that was not XML).
func statusErr(status int) error {
	return &smithyhttp.ResponseError{Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status}}, Err: errors.New("no body")}
}

func TestParseETag(t *testing.T) {
	const sum = "9e107d9d372bb6826bd81d3542a419d6"
	tests := []struct {
		etag  string
		md5   string
		parts int
		ok    bool
	}{
		{`"` + sum + `"`, sum, 0, true},
		{sum, sum, 0, true},
		{`"9E107D9D372BB6826BD81D3542A419D6"`, sum, 0, true},
		{`"` + sum + `-3"`, sum, 3, true},
		{`"` + sum + `-10000"`, sum, 10000, true},
		{`"` + sum + `-0"`, "", 0, false},
		{`"` + sum + `-10001"`, "", 0, false},
		{`"` + sum + `-03"`, "", 0, false},
		{`"` + sum + `-"`, "", 0, false},
		{`"` + sum + `-x"`, "", 0, false},
		{`W/"` + sum + `"`, "", 0, false},
		{`"` + sum[:31] + `"`, "", 0, false},
		{`"` + sum[:31] + `g"`, "", 0, false},
		{``, "", 0, false},
	}
	for _, tt := range tests {
		md5hex, parts, ok := parseETag(tt.etag)
		if md5hex != tt.md5 || parts != tt.parts || ok != tt.ok {
			t.Errorf("parseETag(%q) = %q, %d, %v; want %q, %d, %v", tt.etag, md5hex, parts, ok, tt.md5, tt.parts, tt.ok)
		}
	}
}

// etagOf computes what S3 computes: the MD5 of a single-part object, the
// MD5 of the parts' MD5s for a multipart one, and nothing for a part
// count the file does not split into.
func TestETagOf(t *testing.T) {
	body := bytes.Repeat([]byte("0123456789"), 25) // 250 bytes
	md5Of := func(b ...[]byte) string {
		h := md5.New()
		for _, p := range b {
			h.Write(p)
		}
		return hex.EncodeToString(h.Sum(nil))
	}
	raw := func(b []byte) []byte { s := md5.Sum(b); return s[:] }
	tests := []struct {
		parts    int
		partSize int64
		want     string
	}{
		{0, 100, md5Of(body)},
		{3, 100, md5Of(raw(body[:100]), raw(body[100:200]), raw(body[200:]))},
		{1, 250, md5Of(raw(body))},
		{2, 125, md5Of(raw(body[:125]), raw(body[125:]))},
		{2, 100, ""}, // three parts of 100, not two
		{4, 100, ""},
	}
	for _, tt := range tests {
		got, err := etagOf(bytes.NewReader(body), tt.parts, tt.partSize)
		if err != nil || got != tt.want {
			t.Errorf("etagOf(%d parts of %d) = %q, %v; want %q", tt.parts, tt.partSize, got, err, tt.want)
		}
	}
}

func TestCopyRefused(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{apiErr("NotImplemented"), true},
		{apiErr("AccessDenied"), true},
		{apiErr("PreconditionFailed"), false},
		{apiErr("ConditionalRequestConflict"), false},
		{apiErr("NoSuchKey"), false},
		{statusErr(http.StatusNotImplemented), true},
		{statusErr(http.StatusForbidden), true},
		{statusErr(http.StatusPreconditionFailed), false},
		{statusErr(http.StatusInternalServerError), false},
		{fmt.Errorf("dial tcp: connection refused"), false},
	}
	for _, tt := range tests {
		if got := copyRefused(tt.err); got != tt.want {
			t.Errorf("copyRefused(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}
