package releases_test

import (
	"context"
	"testing"
	"time"

	"github.com/deploybot/deploybot/releases"
)

// The notices posted again are those whose claim ran out without a post
// (the poster failed and gave it up, or died), of releases published in
// the last day; not one still claimed, one posted, or an old release.
func TestUnpostedNotices(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	h.svc.Store = releases.NewSharedStore(h.db, &memState{}, h.svc.Sites)
	h.publish("v1", "v2", "v3", "v4")
	if _, err := h.svc.Sync(ctx, "www"); err != nil {
		t.Fatal(err)
	}
	claims := map[string]string{}
	claim := func(v string) {
		c, err := h.svc.ClaimNotice(ctx, "www", v, "slack")
		if err != nil || c == "" {
			t.Fatalf("claim %s: %q %v", v, c, err)
		}
		claims[v] = c
	}
	unposted := func() (vs []string) {
		rs, err := h.svc.UnpostedNotices(ctx, "www", "slack")
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			vs = append(vs, r.Version)
		}
		return vs
	}
	for _, v := range []string{"v1", "v2", "v3", "v4"} {
		claim(v)
	}
	// v1 was posted; v2's post failed; v3's and v4's posters are at it
	// (or died: after claimTTL the two are one).
	if err := h.svc.SetReleaseLink(ctx, "www", "v1", "slack", "C1 1.2 live:v1"); err != nil {
		t.Fatal(err)
	}
	if err := h.svc.AbandonReleaseClaim(ctx, "www", "v2", "slack", claims["v2"]); err != nil {
		t.Fatal(err)
	}
	// A posted notice has no claim to give up, and a claim is given up
	// only by whoever holds it.
	if err := h.svc.AbandonReleaseClaim(ctx, "www", "v1", "slack", claims["v1"]); err != nil {
		t.Fatal(err)
	}
	if err := h.svc.AbandonReleaseClaim(ctx, "www", "v3", "slack", "claimed 2001-01-01T00:00:00Z"); err != nil {
		t.Fatal(err)
	}
	if got := unposted(); len(got) != 1 || got[0] != "v2" {
		t.Fatalf("unposted right after: %v", got)
	}
	h.clockMu.Lock()
	h.now = h.now.Add(11 * time.Minute)
	h.clockMu.Unlock()
	if got := unposted(); len(got) != 3 || got[0] != "v2" || got[1] != "v3" || got[2] != "v4" {
		t.Fatalf("unposted after the claims ran out (oldest first): %v", got)
	}
	// A claim taken again holds again; a pruned release is not announced.
	claim("v2")
	if err := h.db.MarkPruned(ctx, "www", "v3", h.svc.Time()); err != nil {
		t.Fatal(err)
	}
	if got := unposted(); len(got) != 1 || got[0] != "v4" {
		t.Fatalf("unposted with v2 claimed again and v3 pruned: %v", got)
	}
	h.clockMu.Lock()
	h.now = h.now.Add(releases.NoticeRetryWindow)
	h.clockMu.Unlock()
	if got := unposted(); len(got) != 0 {
		t.Fatalf("notices of releases a day old are posted again: %v", got)
	}
}
