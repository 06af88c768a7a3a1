// The stand-in's state files: JSON written whole and renamed into place.

package localaws

import (
	"encoding/json"
	"fmt"
	"os"
)

func writeFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// loadJSON reads the state file at path into v; a missing file is an
// empty state.
func loadJSON(path string, v any) error {
	raw, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("localaws: %s: %w", path, err)
	}
	return nil
}

// saveJSON replaces the state file at path with v.
func saveJSON(path string, v any) error {
	raw, err := json.MarshalIndent(v, "", " ")
	if err != nil {
		return err
	}
	return writeFileAtomic(path, raw)
}
