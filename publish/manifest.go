package publish

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/deploybot/deploybot/releases"
)

// manifestFile is a manifest written to disk as the files finish, so
// that publish holds no entry per file: `{"files":[` and one entry per
// line as each file is sent, then the rest of the manifest (version,
// commit, carried files, ...) once all are. The key order differs from
// encoding/json's; readers do not mind (DecodeManifest takes the keys in
// any order). Its size is some 250 bytes a file.
type manifestFile struct {
	mu sync.Mutex
	f  *os.File
	w  *bufio.Writer
	n  int
}

func newManifestFile() (*manifestFile, error) {
	f, err := os.CreateTemp("", "deploybot-manifest-*.json")
	if err != nil {
		return nil, fmt.Errorf("publish: a file for the manifest: %w", err)
	}
	m := &manifestFile{f: f, w: bufio.NewWriterSize(f, 64<<10)}
	if _, err := m.w.WriteString(`{"files":[`); err != nil {
		m.remove()
		return nil, err
	}
	return m, nil
}

// add appends one entry; safe from several workers.
func (m *manifestFile) add(e releases.ManifestFile) error {
	line, err := json.Marshal(e)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	sep := ",\n"
	if m.n == 0 {
		sep = "\n"
	}
	m.n++
	if _, err := m.w.WriteString(sep); err != nil {
		return fmt.Errorf("publish: writing the manifest: %w", err)
	}
	if _, err := m.w.Write(line); err != nil {
		return fmt.Errorf("publish: writing the manifest: %w", err)
	}
	return nil
}

// finish closes the list with the rest of head (whose Files must be
// empty) and returns the manifest's size, the file rewound to its start.
func (m *manifestFile) finish(head *releases.Manifest) (int64, error) {
	if len(head.Files) != 0 {
		return 0, fmt.Errorf("publish: the manifest's head lists files")
	}
	rest, err := json.Marshal(head)
	if err != nil {
		return 0, err
	}
	// rest is {"version":...}: its members follow the list.
	rest = bytes.TrimPrefix(rest, []byte("{"))
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, err := m.w.WriteString("\n],"); err != nil {
		return 0, err
	}
	if _, err := m.w.Write(rest); err != nil {
		return 0, err
	}
	if err := m.w.Flush(); err != nil {
		return 0, fmt.Errorf("publish: writing the manifest: %w", err)
	}
	size, err := m.f.Seek(0, io.SeekCurrent)
	if err != nil {
		return 0, err
	}
	if _, err := m.f.Seek(0, io.SeekStart); err != nil {
		return 0, err
	}
	return size, nil
}

func (m *manifestFile) remove() {
	m.f.Close()
	os.Remove(m.f.Name())
}
