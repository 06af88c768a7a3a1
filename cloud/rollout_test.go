package cloud_test

import (
	"strings"
	"testing"

	"github.com/deploybot/deploybot/cloud"
	"github.com/deploybot/deploybot/releases"
)

func TestRolloutKeyValue(t *testing.T) {
	long := strings.Repeat("a", 128)
	tests := []struct {
		value string
		want  cloud.Rollout
		ok    bool
	}{
		{"r1:1:0000abcd:v43", cloud.Rollout{Candidate: "v43", Percent: 1, Salt: 0xabcd}, true},
		{"r1:0:ffffffff:v43", cloud.Rollout{Candidate: "v43", Percent: 0, Salt: 0xffffffff}, true},
		{"r1:100:00000000:2024-05-01.1_rc-2", cloud.Rollout{Candidate: "2024-05-01.1_rc-2", Percent: 100}, true},
		{"r1:50:9e3779b9:" + long, cloud.Rollout{Candidate: long, Percent: 50, Salt: 0x9e3779b9}, true},
		{"r1:50:9e3779b9:" + long + "a", cloud.Rollout{}, false}, // a version is at most 128 characters
		{"", cloud.Rollout{}, false},
		{"v43", cloud.Rollout{}, false},
		{"r1:50:9e3779b9:", cloud.Rollout{}, false},
		{"r1:050:9e3779b9:v43", cloud.Rollout{}, false},
		{"r1:101:9e3779b9:v43", cloud.Rollout{}, false},
		{"r1:-1:9e3779b9:v43", cloud.Rollout{}, false},
		{"r1:50:9E3779B9:v43", cloud.Rollout{}, false},
		{"r1:50:9e3779b:v43", cloud.Rollout{}, false},
		{"r1:50:9e3779b90:v43", cloud.Rollout{}, false},
		{"r2:50:9e3779b9:v43", cloud.Rollout{}, false},
		{"r1:50:9e3779b9:v43\n", cloud.Rollout{}, false},
		{" r1:50:9e3779b9:v43", cloud.Rollout{}, false},
		{"r1:50:9e3779b9:../v43", cloud.Rollout{}, false},
		{"r1:50:9e3779b9:.v43", cloud.Rollout{}, false},
		{"r1:50:9e3779b9:v4/3", cloud.Rollout{}, false},
		{"r1:50:9e3779b9:v43:x", cloud.Rollout{}, false},
		{"r1:٥:9e3779b9:v43", cloud.Rollout{}, false}, // not an ASCII digit
	}
	for _, tt := range tests {
		got, err := cloud.DecodeRollout(tt.value)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("DecodeRollout(%q) = %+v, %v; want %+v ok=%v", tt.value, got, err, tt.want, tt.ok)
			continue
		}
		if err != nil {
			if releases.ErrorCode(err) != releases.EINVALID {
				t.Errorf("DecodeRollout(%q): %v, want EINVALID", tt.value, err)
			}
			continue
		}
		if enc, err := got.Encode(); err != nil || enc != tt.value {
			t.Errorf("Encode(%+v) = %q, %v; want %q", got, enc, err, tt.value)
		}
	}
	for _, bad := range []cloud.Rollout{{Candidate: "v1", Percent: 101}, {Candidate: "v1", Percent: -1}, {Candidate: "", Percent: 5}, {Candidate: "../v1", Percent: 5}} {
		if v, err := bad.Encode(); releases.ErrorCode(err) != releases.EINVALID {
			t.Errorf("Encode(%+v) = %q, %v; want EINVALID", bad, v, err)
		}
	}
}

// Every value the decoder accepts is the one encoding of what it
// decodes to, and fits a key value store's value (1 KB).
func FuzzDecodeRollout(f *testing.F) {
	for _, s := range []string{"r1:1:0000abcd:v43", "r1:100:ffffffff:a", "r1:0:00000000:x.y-z_1", "r1:10:zzzzzzzz:v1", "r1:", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := cloud.DecodeRollout(s)
		if err != nil {
			return
		}
		if r.Percent < 0 || r.Percent > 100 || releases.ValidateVersion(r.Candidate) != nil {
			t.Fatalf("%q decoded to %+v", s, r)
		}
		enc, err := r.Encode()
		if err != nil || enc != s || len(enc) > 1024 {
			t.Fatalf("%q decoded to %+v, which encodes as %q (%v)", s, r, enc, err)
		}
	})
}

// Each salt permutes the 100 base cohorts, so a percent p puts exactly
// p of them on the candidate, and a visitor below p stays below any
// larger percent.
func TestCohortIsAPermutation(t *testing.T) {
	for _, salt := range []uint32{0, 1, 2, 49, 50, 99, 0x9e3779b9, 0xffffffff} {
		seen := map[int]bool{}
		for b := range 100 {
			c := cloud.Cohort(b, salt)
			if c < 0 || c > 99 || seen[c] {
				t.Fatalf("salt %#x: base %d has cohort %d, taken or out of range", salt, b, c)
			}
			seen[c] = true
		}
		for _, p := range []int{0, 1, 10, 50, 100} {
			n := 0
			for b := range 100 {
				if (cloud.Rollout{Candidate: "v2", Percent: p, Salt: salt}).Serves(b) {
					n++
				}
			}
			if n != p {
				t.Fatalf("salt %#x: %d%% serves %d bases", salt, p, n)
			}
		}
	}
}
