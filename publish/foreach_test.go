package publish

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
)

func TestForEachVisitsEveryFileOnceOnAtMostConcWorkers(t *testing.T) {
	files := make([]file, 1000)
	for i := range files {
		files[i] = file{rel: fmt.Sprint(i)}
	}
	var mu sync.Mutex
	seen := map[int]int{}
	bufs := map[*byte]bool{}
	var running, peak atomic.Int32
	err := forEach(context.Background(), files, 7, func(_ context.Context, buf []byte, i int, f file) error {
		n := running.Add(1)
		defer running.Add(-1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		if f.rel != fmt.Sprint(i) || len(buf) <= smallFile {
			return fmt.Errorf("file %d: got %q and a %d-byte buffer", i, f.rel, len(buf))
		}
		mu.Lock()
		seen[i]++
		bufs[&buf[0]] = true
		mu.Unlock()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := range files {
		if seen[i] != 1 {
			t.Fatalf("file %d visited %d times", i, seen[i])
		}
	}
	if peak.Load() > 7 || len(bufs) > 7 {
		t.Fatalf("%d at once, %d buffers; want at most 7 of each", peak.Load(), len(bufs))
	}
}

func TestForEachStopsAtTheFirstError(t *testing.T) {
	files := make([]file, 1000)
	boom := errors.New("boom")
	var calls atomic.Int32
	err := forEach(context.Background(), files, 4, func(_ context.Context, _ []byte, i int, _ file) error {
		calls.Add(1)
		if i == 10 {
			return boom
		}
		return nil
	})
	if !errors.Is(err, boom) {
		t.Fatalf("got %v, want boom", err)
	}
	if n := calls.Load(); n >= 1000 {
		t.Fatalf("all %d files were still visited after the error", n)
	}
}

// A cancelled publish must not look finished: Publish writes the manifest
// when forEach returns nil.
func TestForEachReportsCancellation(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	files := make([]file, 100)
	err := forEach(ctx, files, 2, func(ctx context.Context, _ []byte, i int, _ file) error {
		if i == 5 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
}

func TestHashFileReadsSmallFilesIntoTheWorkersBuffer(t *testing.T) {
	dir := t.TempDir()
	for name, size := range map[string]int{"empty.txt": 0, "small.html": 100, "edge.js": smallFile, "big.png": smallFile + 1} {
		b := make([]byte, size)
		for i := range b {
			b[i] = byte('a' + i%26)
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, smallFile+1)
		e, err := hashFile(Request{}, file{rel: name, abs: p}, buf)
		if err != nil {
			t.Fatal(name, err)
		}
		if e.Size != int64(size) {
			t.Fatalf("%s: size %d, want %d", name, e.Size, size)
		}
		if size <= smallFile {
			if len(e.body) != size || (size > 0 && &e.body[0] != &buf[0]) || string(e.body) != string(b) {
				t.Fatalf("%s: body of %d bytes not read into the buffer", name, len(e.body))
			}
		} else if e.body != nil {
			t.Fatalf("%s: a large file was held in memory", name)
		}
		if want := fmt.Sprintf("%x", sha256.Sum256(b)); e.SHA256 != want {
			t.Fatalf("%s: sha256 %s, want %s", name, e.SHA256, want)
		}
	}
}
