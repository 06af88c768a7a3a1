package releases_test

import (
	"context"
	"strings"
	"testing"

	"github.com/deploybot/deploybot/releases"
)

// Free text people give with an action is stored in every record and
// mirrored to the bucket: past releases.MaxReason characters it is
// refused, saying so, at every service entry that takes it, and the audit
// record of the refusal does not keep it.
func TestReasonsAreBounded(t *testing.T) {
	h := newHarness(t)
	h.publish("v1", "v2")
	ctx := context.Background()
	fits := strings.Repeat("é", releases.MaxReason) // characters, not bytes
	long := fits + "x"
	cases := []struct {
		name string
		run  func(reason string) error
	}{
		{"promote", func(r string) error {
			_, err := h.svc.Promote(ctx, releases.PromoteRequest{Site: "www", Version: "v1", Actor: "U1", Reason: r}, nil)
			return err
		}},
		{"promote overriding a freeze", func(r string) error {
			_, err := h.svc.Promote(ctx, releases.PromoteRequest{Site: "www", Version: "v2", Actor: "U1", Override: r}, nil)
			return err
		}},
		{"rollback", func(r string) error {
			_, err := h.svc.Rollback(ctx, releases.RollbackRequest{Site: "www", Actor: "U1", Reason: r}, nil)
			return err
		}},
		{"pin", func(r string) error { _, err := h.svc.PinRelease(ctx, "www", "v1", "U1", r); return err }},
		{"freeze", func(r string) error {
			_, err := h.svc.Freeze(ctx, releases.FreezeRequest{Site: "www", Until: "1h", Reason: r, Actor: "U1"})
			return err
		}},
		{"lock", func(r string) error { _, err := h.svc.LockSite(ctx, "www", "U1", r); return err }},
	}
	for _, c := range cases {
		err := c.run(long)
		if releases.ErrorCode(err) != releases.EINVALID || !strings.Contains(err.Error(), "501 characters long; at most 500") {
			t.Fatalf("%s with a reason of %d characters: %v", c.name, releases.MaxReason+1, err)
		}
	}
	entries, err := h.svc.History(ctx, "www", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.Contains(e.Detail, long[:100]) {
			t.Fatalf("the audit record of a refusal keeps the text: %+v", e)
		}
	}
	// A reason of exactly MaxReason characters is taken.
	for _, c := range cases {
		if c.name == "promote overriding a freeze" || c.name == "rollback" {
			continue // need a freeze and an earlier deploy; covered by promote
		}
		if err := c.run(fits); err != nil {
			t.Fatalf("%s with a reason of %d characters: %v", c.name, releases.MaxReason, err)
		}
	}
}
