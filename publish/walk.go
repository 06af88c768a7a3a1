package publish

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/deploybot/deploybot/releases"
)

// Inputs says what of a build directory becomes the release.
type Inputs struct {
	// Exclude are patterns of paths left out: a pattern without "/"
	// matches a name at any depth, one with "/" the path from the top of
	// the directory; a trailing "/" matches directories only (and all
	// they hold). Syntax of path.Match.
	Exclude []string
	// IncludeHidden publishes what DefaultExclude leaves out.
	IncludeHidden bool
	// FollowExternalLinks follows symbolic links that leave the directory.
	// Off, such a link refuses the publish: a link to ~/.aws/credentials
	// in a build folder would otherwise be served to the world.
	FollowExternalLinks bool
}

// DefaultExclude is what a publish leaves out unless IncludeHidden: things
// every build directory may hold and no visitor should get.
var DefaultExclude = []string{".git/", ".DS_Store", ".env*"}

// Excluded is a path of the directory that is not published, and why.
type Excluded struct {
	Path   string `json:"path"`
	Reason string `json:"reason"`
}

// maxRefused is how many offending links a refusal names.
const maxRefused = 10

// walker lists the files of a build directory, following symbolic links
// that stay inside it (to files and directories, loops detected).
type walker struct {
	root     string // the directory, symbolic links resolved
	in       Inputs
	visit    func(file) error
	files    int
	excluded []Excluded
	refused  []string // links that leave the directory or lead nowhere
}

// walk lists the regular files under dir, sorted by path, and what it left
// out. Links that leave dir, and links that lead nowhere, refuse the whole
// publish (EINVALID, naming them) before anything is sent.
func walk(dir string, in Inputs) ([]file, []Excluded, error) {
	var files []file
	excluded, err := walkEach(dir, in, func(f file) error { files = append(files, f); return nil })
	if err != nil {
		return nil, nil, err
	}
	sort.Slice(files, func(i, j int) bool { return files[i].rel < files[j].rel })
	sort.Slice(excluded, func(i, j int) bool { return excluded[i].Path < excluded[j].Path })
	return files, excluded, nil
}

// walkEach is walk without the list: it hands each file to visit as it
// finds it (in directory order), holding nothing per file, and returns
// what it left out. A refusal (links, no files) comes after the visits,
// so a caller that acts on them walks once first to check.
func walkEach(dir string, in Inputs, visit func(file) error) ([]Excluded, error) {
	info, err := os.Stat(dir)
	if err != nil {
		return nil, releases.Errorf(releases.EINVALID, "publish: %v", err)
	}
	if !info.IsDir() {
		return nil, releases.Errorf(releases.EINVALID, "publish: %s is not a directory", dir)
	}
	root, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return nil, releases.Errorf(releases.EINVALID, "publish: %v", err)
	}
	root, err = filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	for _, p := range in.Exclude {
		if _, err := path.Match(strings.TrimSuffix(p, "/"), ""); err != nil || p == "" || p == "/" {
			return nil, releases.Errorf(releases.EINVALID, "publish: bad exclude pattern %q", p)
		}
	}
	w := &walker{root: root, in: in, visit: visit}
	if err := w.dir(root, "", map[string]bool{root: true}); err != nil {
		return nil, err
	}
	if len(w.refused) > 0 {
		more := ""
		if len(w.refused) > maxRefused {
			more = fmt.Sprintf(" and %d more", len(w.refused)-maxRefused)
			w.refused = w.refused[:maxRefused]
		}
		return nil, releases.Errorf(releases.EINVALID, "publish: refusing symbolic links that leave %s or lead nowhere: %s%s; nothing was uploaded (remove them, or --follow-external-links to publish what the outside ones point at)",
			dir, strings.Join(w.refused, ", "), more)
	}
	if w.files == 0 {
		return nil, releases.Errorf(releases.EINVALID, "publish: %s has no files to publish", dir)
	}
	return w.excluded, nil
}

// dir walks the directory at abs (a real path), whose path in the release
// is rel; chain holds the real paths of the directories being walked, to
// tell a link back to one of them (a loop).
func (w *walker) dir(abs, rel string, chain map[string]bool) error {
	d, err := os.Open(abs)
	if err != nil {
		return releases.Errorf(releases.EINVALID, "publish: %v", err)
	}
	defer d.Close()
	// In batches, in the directory's own order: a folder of 60,000
	// hashed assets read whole would hold them all at once (os.ReadDir
	// reads everything to sort it). walk sorts what it returns.
	for {
		entries, err := d.ReadDir(dirBatch)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return releases.Errorf(releases.EINVALID, "publish: %v", err)
		}
		if err := w.entries(abs, rel, chain, entries); err != nil {
			return err
		}
	}
}

// dirBatch is how many entries of a directory are read at a time.
const dirBatch = 512

func (w *walker) entries(abs, rel string, chain map[string]bool, entries []os.DirEntry) error {
	for _, e := range entries {
		childRel := path.Join(rel, e.Name())
		childAbs := filepath.Join(abs, e.Name())
		mode := e.Type()
		target := childAbs
		if mode&fs.ModeSymlink != 0 {
			real, err := filepath.EvalSymlinks(childAbs)
			if err != nil {
				w.refused = append(w.refused, fmt.Sprintf("%s (leads nowhere)", childRel))
				continue
			}
			if !w.inside(real) && !w.in.FollowExternalLinks {
				w.refused = append(w.refused, fmt.Sprintf("%s -> %s", childRel, real))
				continue
			}
			st, err := os.Stat(real)
			if err != nil {
				w.refused = append(w.refused, fmt.Sprintf("%s (%v)", childRel, err))
				continue
			}
			target, mode = real, st.Mode().Type()
		}
		if why := w.excludedBy(childRel, mode.IsDir()); why != "" {
			w.excluded = append(w.excluded, Excluded{Path: childRel, Reason: why})
			continue
		}
		switch {
		case mode.IsDir():
			real, err := filepath.EvalSymlinks(target)
			if err != nil {
				return err
			}
			if chain[real] {
				w.excluded = append(w.excluded, Excluded{Path: childRel, Reason: "a link back to a folder that holds it (a loop); not followed"})
				continue
			}
			chain[real] = true
			err = w.dir(real, childRel, chain)
			delete(chain, real)
			if err != nil {
				return err
			}
		case mode.IsRegular():
			if err := releases.ValidPath(childRel); err != nil {
				return releases.Errorf(releases.EINVALID, "publish: %q cannot be a file of a release: %v", childRel, err)
			}
			w.files++
			if err := w.visit(file{rel: childRel, abs: target}); err != nil {
				return err
			}
		default:
			w.excluded = append(w.excluded, Excluded{Path: childRel, Reason: "not a regular file (" + mode.String() + ")"})
		}
	}
	return nil
}

// inside reports whether the real path p is the root or under it.
func (w *walker) inside(p string) bool {
	return p == w.root || strings.HasPrefix(p, w.root+string(filepath.Separator))
}

// excludedBy names the pattern that leaves rel out, or "".
func (w *walker) excludedBy(rel string, isDir bool) string {
	if !w.in.IncludeHidden {
		for _, p := range DefaultExclude {
			if matchExclude(p, rel, isDir) {
				return fmt.Sprintf("excluded by default (%s; --include-hidden publishes it)", p)
			}
		}
	}
	for _, p := range w.in.Exclude {
		if matchExclude(p, rel, isDir) {
			return "excluded by " + p
		}
	}
	return ""
}

func matchExclude(pattern, rel string, isDir bool) bool {
	dirOnly := strings.HasSuffix(pattern, "/")
	if dirOnly && !isDir {
		return false
	}
	pattern = strings.TrimSuffix(pattern, "/")
	name := rel
	if !strings.Contains(pattern, "/") {
		name = path.Base(rel)
	} else {
		pattern = strings.TrimPrefix(pattern, "/")
	}
	ok, _ := path.Match(pattern, name)
	return ok
}
