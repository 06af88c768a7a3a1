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

// Verify checks a notice's signature in constant time and its timestamp
// against now.
func Verify(secret []byte, tsHeader, sigHeader string, body []byte, now time.Time) error {
	ts, err := strconv.ParseInt(strings.TrimSpace(tsHeader), 10, 64)
	if err != nil {
		return ErrBadTimestamp
	}
	if d := now.Sub(time.Unix(ts, 0)); d > Window || d < -Window {
		return ErrBadTimestamp
	}
	want := Sign(secret, ts, body)
	if !hmac.Equal([]byte(want), []byte(strings.TrimSpace(sigHeader))) {
		return ErrBadSignature
	}
	return nil
}

// ParseNotice decodes a body strictly: one JSON object, known fields only.
func ParseNotice(body []byte) (Notice, error) {
	var n Notice
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&n); err != nil {
		return Notice{}, fmt.Errorf("bad JSON: %w", err)
	}
	if dec.More() {
		return Notice{}, errors.New("bad JSON: data after the object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return Notice{}, errors.New("bad JSON: data after the object")
	}
	if n.Site == "" || n.Version == "" {
		return Notice{}, errors.New("site and version are required")
	}
	return n, nil
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
