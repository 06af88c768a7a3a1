package hook

import (
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
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
		// Strict: nothing around either header, lower-case hex only.
		{"signature padded with NBSP", ts, sig + "\u00a0", body, now, ErrBadSignature},
		{"signature padded with a space", ts, " " + sig, body, now, ErrBadSignature},
		{"signature in upper case", ts, "v1=" + strings.ToUpper(sig[3:]), body, now, ErrBadSignature},
		{"signature with a second value", ts, sig + ",v1=00", body, now, ErrBadSignature},
		{"timestamp padded", " " + ts, sig, body, now, ErrBadTimestamp},
		{"timestamp with a sign", "+" + ts, sig, body, now, ErrBadTimestamp},
		{"timestamp with NBSP", ts + "\u00a0", sig, body, now, ErrBadTimestamp},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			signed, err := Verify(secret, c.ts, c.sig, c.body, c.at)
			if err != c.wantErr {
				t.Fatalf("got %v, want %v", err, c.wantErr)
			}
			if err == nil && (signed.Timestamp != now.Unix() || "v1="+hex.EncodeToString(signed.MAC[:]) != sig) {
				t.Fatalf("signed %+v", signed)
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
		// Duplicate keys, and keys in another case, are refused.
		`{"site":"www","version":"v1","version":"v10"}`,
		`{"SITE":"www","version":"v1"}`,
		`{"site":"www","Version":"v1"}`,
		`{"site":"www","version":null}`,
		`{"site":"www","version":"v1","commit":["a"]}`,
		`{"site":"www","version":"v1"`,
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

// FuzzVerify: the two headers come from anyone who can reach the hook.
// Whatever they hold, Verify must not panic, and it may accept them only
// when they carry the current signature of this very body.
func FuzzVerify(f *testing.F) {
	secret := []byte("fuzz-secret")
	now := time.Unix(1_800_000_000, 0)
	body := []byte(`{"site":"www","version":"v1"}`)
	f.Add(strconv.FormatInt(now.Unix(), 10), Sign(secret, now.Unix(), body), body)
	f.Add(" 1800000000 ", "v1=00", body)
	f.Add("-9223372036854775808", "", []byte{})
	f.Add("1800000000", "v1="+strings.Repeat("0", 64), []byte("x"))
	f.Fuzz(func(t *testing.T, ts, sig string, b []byte) {
		signed, err := Verify(secret, ts, sig, b, now)
		if err != nil {
			if !errors.Is(err, ErrBadSignature) && !errors.Is(err, ErrBadTimestamp) {
				t.Fatalf("an error that is neither kind: %v", err)
			}
			return
		}
		// Accepted: the headers are exactly the canonical ones, so one
		// notice has one key in the replay cache.
		n, perr := strconv.ParseInt(ts, 10, 64)
		if perr != nil || strconv.FormatInt(n, 10) != strings.TrimLeft(ts, "0") && ts != "0" || sig != Sign(secret, n, b) || signed.Timestamp != n {
			t.Fatalf("accepted timestamp %q signature %q for %q", ts, sig, b)
		}
		if d := now.Sub(time.Unix(n, 0)); d > Window || d < -Window {
			t.Fatalf("accepted a timestamp %s off", d)
		}
	})
}
