// Package hook is the CI notice of a new release: its wire format, its
// signature (HMAC-SHA256 over "v1:<timestamp>:<body>"), and the sender
// `deploybot publish` uses. The receiving end is in package server.
package hook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Header names and limits of the contract.
const (
	HeaderTimestamp = "X-Deploybot-Timestamp"
	HeaderSignature = "X-Deploybot-Signature"
	MaxBody         = 64 << 10
	// Window is how far a notice's timestamp may be from the receiver's
	// clock, either way.
	Window = 5 * time.Minute
)

// Notice is the body of a release notice.
type Notice struct {
	Site    string `json:"site"`
	Version string `json:"version"`
	Commit  string `json:"commit,omitempty"`
	Message string `json:"message,omitempty"`
}

// Sign returns the signature header value for body sent at ts.
func Sign(secret []byte, ts int64, body []byte) string {
	m := hmac.New(sha256.New, secret)
	fmt.Fprintf(m, "v1:%d:", ts)
	m.Write(body)
	return "v1=" + hex.EncodeToString(m.Sum(nil))
}

// Errors of Verify.
var (
	ErrBadSignature = errors.New("bad signature")
	ErrBadTimestamp = errors.New("timestamp missing, malformed or more than 5 minutes off")
)

// Signed is what a verified notice was signed with: the replay key.
type Signed struct {
	Timestamp int64
	MAC       [sha256.Size]byte
}

// Verify checks a notice's timestamp against now and its signature in
// constant time. Both headers are parsed strictly, with nothing around
// them: the timestamp is decimal digits, the signature "v1=" and 64
// lower-case hex digits. A lenient parse (trimming Unicode spaces, say)
// would let one captured notice be sent again under ever new header
// values, each a new key to a replay cache that keys on the raw header.
func Verify(secret []byte, tsHeader, sigHeader string, body []byte, now time.Time) (Signed, error) {
	ts, ok := parseTimestamp(tsHeader)
	if !ok {
		return Signed{}, ErrBadTimestamp
	}
	if d := now.Sub(time.Unix(ts, 0)); d > Window || d < -Window {
		return Signed{}, ErrBadTimestamp
	}
	got, ok := parseSignature(sigHeader)
	if !ok {
		return Signed{}, ErrBadSignature
	}
	m := hmac.New(sha256.New, secret)
	fmt.Fprintf(m, "v1:%d:", ts)
	m.Write(body)
	if !hmac.Equal(m.Sum(nil), got[:]) {
		return Signed{}, ErrBadSignature
	}
	return Signed{Timestamp: ts, MAC: got}, nil
}

// parseTimestamp reads 1 to 18 decimal digits (no sign, no spaces).
func parseTimestamp(h string) (int64, bool) {
	if len(h) == 0 || len(h) > 18 {
		return 0, false
	}
	var ts int64
	for i := 0; i < len(h); i++ {
		c := h[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		ts = ts*10 + int64(c-'0')
	}
	return ts, true
}

// parseSignature reads "v1=" and 64 lower-case hex digits.
func parseSignature(h string) (mac [sha256.Size]byte, ok bool) {
	hexPart, found := strings.CutPrefix(h, "v1=")
	if !found || len(hexPart) != 2*sha256.Size {
		return mac, false
	}
	for i := 0; i < len(hexPart); i++ {
		if c := hexPart[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return mac, false
		}
	}
	if _, err := hex.Decode(mac[:], []byte(hexPart)); err != nil {
		return mac, false
	}
	return mac, true
}

// ParseNotice decodes a body strictly: one JSON object whose keys are
// exactly "site", "version", "commit" and "message", each at most once and
// each a string. encoding/json alone would take "SITE" for "site" and let a
// second "version" win over the first: two readers of one body could then
// disagree on what it says.
func ParseNotice(body []byte) (Notice, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return Notice{}, errors.New("bad JSON: want one object")
	}
	var n Notice
	fields := map[string]*string{"site": &n.Site, "version": &n.Version, "commit": &n.Commit, "message": &n.Message}
	seen := map[string]bool{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return Notice{}, fmt.Errorf("bad JSON: %w", err)
		}
		key, _ := t.(string)
		dst, known := fields[key]
		switch {
		case !known:
			return Notice{}, fmt.Errorf("bad JSON: unknown field %q (fields are site, version, commit, message, in lower case)", bounded(key))
		case seen[key]:
			return Notice{}, fmt.Errorf("bad JSON: field %q given twice", key)
		}
		seen[key] = true
		v, err := dec.Token()
		if err != nil {
			return Notice{}, fmt.Errorf("bad JSON: %w", err)
		}
		str, ok := v.(string)
		if !ok {
			return Notice{}, fmt.Errorf("bad JSON: field %q must be a string", key)
		}
		*dst = str
	}
	if t, err := dec.Token(); err != nil || t != json.Delim('}') {
		return Notice{}, errors.New("bad JSON: unterminated object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return Notice{}, errors.New("bad JSON: data after the object")
	}
	if n.Site == "" || n.Version == "" {
		return Notice{}, errors.New("site and version are required")
	}
	return n, nil
}

// bounded keeps text from a body short enough to echo in an answer.
func bounded(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// Sender posts notices to a deploybot server.
type Sender struct {
	URL    string
	Secret []byte
	Client *http.Client
	Now    func() time.Time
	// Attempts is how many times a notice is tried on 5xx and connection
	// errors; zero: 4 (about 7 seconds of backoff in all).
	Attempts int
}

// Send posts n, retrying briefly on 5xx answers and connection errors. Each
// attempt is signed anew, so a retry is never refused as a replay.
func (s *Sender) Send(ctx context.Context, n Notice) error {
	body, err := json.Marshal(n)
	if err != nil {
		return err
	}
	client := s.Client
	if client == nil {
		client = &http.Client{Timeout: 15 * time.Second}
	}
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	attempts := s.Attempts
	if attempts <= 0 {
		attempts = 4
	}
	backoff := time.Second
	var last error
	for i := 0; i < attempts; i++ {
		if i > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(backoff):
			}
			backoff *= 2
		}
		ts := now().Unix()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL, bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
		req.Header.Set(HeaderSignature, Sign(s.Secret, ts, body))
		resp, err := client.Do(req)
		if err != nil {
			last = err
			continue
		}
		answer, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		var msg struct {
			Error  string `json:"error"`
			Status string `json:"status"`
		}
		_ = json.Unmarshal(answer, &msg)
		switch {
		case resp.StatusCode < 300:
			return nil
		case resp.StatusCode >= 500:
			last = fmt.Errorf("%s: %s", resp.Status, msg.Error)
			continue
		}
		return fmt.Errorf("%s: %s", resp.Status, msg.Error)
	}
	return fmt.Errorf("after %d attempts: %w", attempts, last)
}
