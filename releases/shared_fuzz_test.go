package releases_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/deploybot/deploybot/releases"
	"github.com/deploybot/deploybot/store"
)

// oneObject is a Coordinator holding whatever bytes the bucket holds for
// every state object: outside input, as anyone with write access to the
// bucket could have put there.
type oneObject struct{ body []byte }

func (o oneObject) GetState(context.Context, releases.Site, string) ([]byte, string, error) {
	return o.body, `"e"`, nil
}

func (o oneObject) PutState(context.Context, releases.Site, string, []byte, string) (string, error) {
	return "", releases.ErrStateChanged
}

// The shared state's objects, whatever their bytes: reading them never
// panics, and what is taken from them names the site read.
func FuzzSharedState(f *testing.F) {
	for _, seed := range []string{`{"lock":{"site":"www","holder":"a"},"epoch":3}`, `{"freeze":null}`, `{"pins":[{"site":"www","version":"v1"}]}`,
		`{"request":{"id":"r","site":"www","version":"v1"}}`, `{"lock":{"site":"docs"}}`, `null`, `[]`, `{"lock":{"site":"www"},"deploy":{"id":"x","site":"www","to":"../x"}}`, ``,
		`{"lock":null,"epoch":2,"live":{"version":"v1","since":"2026-01-01T00:00:00Z"}}`, `{"live":{"version":"../etc"}}`,
		`{"holder":"p1","epoch":4,"expires":"2030-01-01T00:00:00Z"}`, `{"holder":"a b"}`,
		`{"releases":{"v1":{"manifest":"\"e\"","links":{"slack":"C1 1.2 older"}}}}`, `{"releases":{"..":{"links":{}}}}`,
		`{"releAses":{"v1":{}}}`, `{"deploy_id":"x"}`, `{"deploy_id":"x","links":null}`, `{"deploy_id":"x","links":{"card":"C1 1.000001 1.000001"}}`} {
		f.Add([]byte(seed))
	}
	db, err := store.Open(filepath.Join(f.TempDir(), "db"), store.Options{})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { db.Close() })
	site := releases.Site{Name: "www", Bucket: "b", Prefix: "www/"}
	f.Fuzz(func(t *testing.T, body []byte) {
		s := releases.NewSharedStore(db, oneObject{body}, []releases.Site{site})
		ctx := context.Background()
		if l, err := s.Lock(ctx, "www"); err == nil && l != nil && l.Site != "www" {
			t.Fatalf("a lock of site %q was taken for www's", l.Site)
		}
		if fr, err := s.Freeze(ctx, "www"); err == nil && fr != nil && fr.Site != "www" {
			t.Fatalf("a freeze of site %q was taken for www's", fr.Site)
		}
		if pins, err := s.Pins(ctx, "www"); err == nil {
			for _, p := range pins {
				if p.Site != "www" {
					t.Fatalf("a pin of site %q was taken for www's", p.Site)
				}
			}
		}
		_, _ = s.Approvals(ctx, "www", 5)
		_ = s.ImportRunning(ctx, "www")
		if live, ok, err := s.Live(ctx, "www"); err == nil && ok && live.Version != "" && releases.ValidateVersion(live.Version) != nil {
			t.Fatalf("a live release %q deploybot would not name was taken", live.Version)
		}
		if l, err := s.HoldLease(ctx, "www", time.Now(), time.Minute); err == nil && l.Holder != "" && !releases.SafeID(l.Holder) {
			t.Fatalf("a lease holder %q deploybot would not name was taken", l.Holder)
		}
		if links, err := s.ReleaseLinks(ctx, "www"); err == nil {
			for v := range links {
				if releases.ValidateVersion(v) != nil {
					t.Fatalf("links of a release %q deploybot would not name were taken", v)
				}
			}
		}
		_, _ = s.ClaimReleaseLink(ctx, "www", "v1", "slack", time.Now())
		_ = s.SetReleaseLink(ctx, "www", "v1", "slack", "C1 1.2 live:v1")
		_ = s.SetDeployLink(ctx, "www", "x", releases.DeployLinkCard, "C1 1.000001 1.000001")
	})
}
