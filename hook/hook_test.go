package hook

import (
	"strconv"
	"testing"
	"time"
)

func TestSignVerify(t *testing.T) {
	secret := []byte("s3cret")
	now := time.Unix(1_800_000_000, 0)
	body := []byte(`{"site":"www","version":"v1"}`)
	ts := strconv.FormatInt(now.Unix(), 10)
	sig := Sign(secret, now.Unix(), body)
	cases := []struct {
		name    string
		ts, sig string
		body    []byte
		at      time.Time
		wantErr error
	}{
		{"valid", ts, sig, body, now, nil},
		{"valid, clock 4m ahead", ts, sig, body, now.Add(4 * time.Minute), nil},
		{"stale", ts, sig, body, now.Add(6 * time.Minute), ErrBadTimestamp},
		{"future", ts, sig, body, now.Add(-6 * time.Minute), ErrBadTimestamp},
		{"no timestamp", "", sig, body, now, ErrBadTimestamp},
		{"garbage timestamp", "12x", sig, body, now, ErrBadTimestamp},
		{"other body", ts, sig, []byte(`{"site":"www","version":"v2"}`), now, ErrBadSignature},
		{"other secret", ts, Sign([]byte("other"), now.Unix(), body), body, now, ErrBadSignature},
		{"no signature", ts, "", body, now, ErrBadSignature},
		{"no prefix", ts, sig[3:], body, now, ErrBadSignature},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := Verify(secret, c.ts, c.sig, c.body, c.at); err != c.wantErr {
				t.Fatalf("got %v, want %v", err, c.wantErr)
			}
		})
	}
}

func TestParseNotice(t *testing.T) {
	good := []string{
		`{"site":"www","version":"v1"}`,
		`{"site":"www","version":"v1","commit":"abc","message":"m"}`,
		" {\"site\":\"www\",\"version\":\"v1\"}\n",
	}
	bad := []string{
		``, `null`, `[]`, `{"site":"www"}`, `{"version":"v1"}`,
		`{"site":"www","version":"v1","extra":1}`,
		`{"site":"www","version":"v1"}{}`,
		`{"site":"www","version":"v1"} x`,
		`{"site":1,"version":"v1"}`,
	}
	for _, b := range good {
		if _, err := ParseNotice([]byte(b)); err != nil {
			t.Errorf("%q refused: %v", b, err)
		}
	}
	for _, b := range bad {
		if _, err := ParseNotice([]byte(b)); err == nil {
			t.Errorf("%q accepted", b)
		}
	}
}

func FuzzParseNotice(f *testing.F) {
	f.Add([]byte(`{"site":"www","version":"v1","commit":"abc","message":"m"}`))
	f.Add([]byte(`{"site":"www","version":"v1"}{}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		n, err := ParseNotice(body)
		if err == nil && (n.Site == "" || n.Version == "") {
			t.Fatalf("accepted a notice without site or version: %q", body)
		}
	})
}
