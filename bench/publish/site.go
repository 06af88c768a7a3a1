// The sites the benchmark publishes, reproducible from a seed.

package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
)

// makeSite writes a reproducible site: mostly small files (HTML, JS, CSS,
// JSON), some images of tens of KB, a few of a few hundred KB; a third of
// the assets fingerprinted.
func makeSite(dir string, n int, seed uint64) (int64, error) {
	r := rand.New(rand.NewPCG(seed, 7))
	var total int64
	exts := []string{".html", ".js", ".css", ".json", ".svg", ".png", ".woff2"}
	for i := 0; i < n; i++ {
		ext := exts[r.IntN(len(exts))]
		size := 200 + r.IntN(8_000)
		switch {
		case i%100 == 0:
			size = 200_000 + r.IntN(300_000)
		case ext == ".png" || ext == ".woff2":
			size = 10_000 + r.IntN(60_000)
		}
		name := fmt.Sprintf("section%02d/page%04d%s", i%40, i, ext)
		if ext != ".html" && i%3 == 0 {
			name = fmt.Sprintf("assets/chunk-%04d.%08x%s", i, r.Uint32(), ext)
		}
		b := make([]byte, size)
		for j := range b {
			b[j] = byte('a' + r.IntN(26))
		}
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return 0, err
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			return 0, err
		}
		total += int64(size)
	}
	return total, nil
}

// makeSmallSite writes n files of 0.2-8 KB in 40 folders.
func makeSmallSite(dir string, n int) error {
	r := rand.New(rand.NewPCG(uint64(n), 9))
	buf := make([]byte, 8200)
	for i := range n {
		name := fmt.Sprintf("section%02d/page%06d.html", i%40, i)
		if i%3 == 0 {
			name = fmt.Sprintf("assets/chunk-%06d.%08x.js", i, r.Uint32())
		}
		b := buf[:200+r.IntN(8000)]
		for j := range b {
			b[j] = byte('a' + (i+j*7)%26)
		}
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			return err
		}
	}
	return nil
}
