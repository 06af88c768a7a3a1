package publish

import (
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/deploybot/deploybot/releases"
)

// The manifest written entry by entry from many workers reads back as the
// manifest it stands for: every entry once, and the head's fields.
func TestManifestFileReadsBackWhole(t *testing.T) {
	mf, err := newManifestFile()
	if err != nil {
		t.Fatal(err)
	}
	defer mf.remove()
	const n = 500
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 8 {
				e := releases.ManifestFile{Path: fmt.Sprintf("p/%03d \"q\".html", i), Size: int64(i), SHA256: fmt.Sprintf("%064x", i), ContentType: "text/html"}
				if err := mf.add(e); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	at := time.Date(2026, 12, 2, 13, 0, 0, 0, time.UTC)
	head := &releases.Manifest{Version: "v9", Commit: "abc", Message: "line\n\"two\"", PublishedAt: at, Stamped: true,
		Carried: []releases.ManifestFile{{Path: "assets/a.0123abcd.js", Size: 3, SHA256: fmt.Sprintf("%064x", 7), From: "v8"}}}
	size, err := mf.finish(head)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(mf.f)
	if err != nil || int64(len(raw)) != size {
		t.Fatalf("read %d bytes of %d: %v", len(raw), size, err)
	}
	m, err := releases.ParseManifest(raw, "v9")
	if err != nil {
		t.Fatalf("%v\n%s", err, raw[:200])
	}
	if len(m.Files) != n || m.Commit != "abc" || m.Message != head.Message || !m.PublishedAt.Equal(at) || !m.Stamped ||
		len(m.Carried) != 1 || m.Carried[0].From != "v8" {
		t.Fatalf("manifest %+v", m)
	}
	seen := map[int64]bool{}
	for _, f := range m.Files {
		if f.Path != fmt.Sprintf("p/%03d \"q\".html", f.Size) || seen[f.Size] {
			t.Fatalf("entry %+v", f)
		}
		seen[f.Size] = true
	}
	if _, err := mf.finish(&releases.Manifest{Version: "v9", Files: m.Files}); err == nil {
		t.Fatal("a head with files was taken")
	}
}
