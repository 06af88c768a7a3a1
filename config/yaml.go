package config

import (
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
)

// The YAML side of Parse: goccy/go-yaml parses the file into a syntax tree
// that keeps every token's position, walk checks that tree against the
// Config type (naming the key and line of each problem) and expands
// ${VAR}s in it, and the library's decoder fills the Config from the
// checked tree.

// parseYAML is the first document's body, or the error that names the
// line of the mistake: goccy/go-yaml reports a syntax error at the token
// where parsing failed, which is the line to edit.
func parseYAML(raw []byte) (ast.Node, error) {
	f, err := parser.ParseBytes(raw, 0)
	if err != nil {
		return nil, yamlError(err)
	}
	if len(f.Docs) == 0 || f.Docs[0] == nil || f.Docs[0].Body == nil {
		return nil, Errors{{Msg: "the file is empty"}}
	}
	return f.Docs[0].Body, nil
}

// yamlError turns the YAML library's error into the one problem it is,
// at its line.
func yamlError(err error) error {
	var ce *Error
	if errors.As(err, &ce) {
		return Errors{ce}
	}
	var se *yaml.SyntaxError
	if errors.As(err, &se) && se.Token != nil && se.Token.Position != nil {
		p := se.Token.Position
		return Errors{{Line: p.Line, Msg: fmt.Sprintf("YAML syntax error at column %d: %s", p.Column, se.Message)}}
	}
	var ye yaml.Error
	if errors.As(err, &ye) {
		if tk := ye.GetToken(); tk != nil && tk.Position != nil {
			return Errors{{Line: tk.Position.Line, Msg: ye.GetMessage()}}
		}
		return Errors{{Msg: ye.GetMessage()}}
	}
	return Errors{{Msg: err.Error()}}
}

// UnmarshalYAML reads a duration such as "72h" or "30s" (walk has checked
// it; the decoder calls this with the checked node).
func (d *Duration) UnmarshalYAML(n ast.Node) error {
	if _, ok := n.(*ast.NullNode); ok {
		return nil
	}
	s, ok := scalarText(n)
	if !ok {
		return &Error{Line: lineOf(n), Msg: "expected a duration such as 30s or 72h"}
	}
	v, err := parseDuration(s)
	if err != nil {
		return &Error{Line: lineOf(n), Msg: fmt.Sprintf("bad duration %q (use a value such as 30s, 5m or 72h)", s)}
	}
	d.Duration = v
	return nil
}

// document is what one walk over the YAML learns before it is decoded:
// the line of every key path (for messages), which keys carry a value (so
// "set to zero" and "not set" stay distinct), and the ${VAR}s that were not
// in the environment (so an empty required key names its variable).
type document struct {
	lookup    func(string) (string, bool)
	lines     map[string]int
	set       map[string]bool
	unsetVars map[string][]string
	expanded  map[string]bool // keys whose value had a ${VAR}
	anchors   map[string]ast.Node
	errs      Errors
	failed    map[string]bool // keys with an error already: one message each
	unknown   bool            // an unknown key was found
}

func newDocument(lookup func(string) (string, bool)) *document {
	return &document{lookup: lookup, lines: map[string]int{}, set: map[string]bool{}, unsetVars: map[string][]string{},
		expanded: map[string]bool{}, anchors: map[string]ast.Node{}, failed: map[string]bool{}}
}

var (
	durationType = reflect.TypeOf(Duration{})
	intType      = reflect.TypeOf(0)
)

// walk checks n against the Go type t and returns the node to decode in
// its place: keys no field takes, values of the wrong shape and scalars
// that do not parse as their field's type are named by key path and line
// (which the decoder's own messages lack), and ${VAR}s in values are
// expanded. Values, not the raw text, are expanded, so a secret with
// YAML-special characters cannot change the document's structure. A value
// that does not fit is reported and replaced by null, so the document
// still decodes and one run reports every problem. Anchors and aliases are
// resolved here: the decoder sees a plain tree, each alias checked where
// it is used.
func (d *document) walk(n ast.Node, t reflect.Type, path string) ast.Node {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	n = d.resolve(n)
	if _, ok := n.(*ast.NullNode); ok || n == nil {
		return n // "key:" with no value is the same as leaving the key out
	}
	if path != "" {
		d.set[path] = true
	}
	if a, ok := n.(*ast.AliasNode); ok {
		name, _ := scalarText(a.Value)
		d.fail(path, lineOf(n), "*%s: no anchor &%s before it", name, name)
		return null(n)
	}
	d.expand(n, path)
	switch {
	case t.Kind() == reflect.Struct && t != durationType:
		return d.mapping(n, t, path)
	case t.Kind() == reflect.Slice:
		return d.list(n, t, path)
	}
	return d.scalar(n, t, path)
}

// scalar checks a value a scalar field takes.
func (d *document) scalar(n ast.Node, t reflect.Type, path string) ast.Node {
	line := lineOf(n)
	s, isScalar := scalarText(n)
	switch {
	case t == durationType:
		if !isScalar {
			d.fail(path, line, "expected a duration such as 30s, 5m or 72h")
			return null(n)
		} else if _, err := parseDuration(s); err != nil {
			d.fail(path, line, "bad duration %q (use a value such as 30s, 5m or 72h)", s)
			return null(n)
		}
	case t == intType:
		if !isScalar {
			d.fail(path, line, "expected a whole number")
			return null(n)
		} else if _, err := strconv.Atoi(s); err != nil {
			d.fail(path, line, "expected a whole number, got %q", s)
			return null(n)
		}
	case t.Kind() == reflect.Bool:
		if _, ok := n.(*ast.BoolNode); ok {
			break
		}
		if b, err := strconv.ParseBool(s); err == nil && d.expanded[path] {
			// ${VAR} gave a string; true or false from it is a bool.
			bn := ast.Bool(n.GetToken())
			bn.Value = b
			return bn
		}
		d.fail(path, line, "expected true or false, got %s", describe(n))
		return null(n)
	case t.Kind() == reflect.String:
		if _, ok := n.(*ast.StringNode); ok {
			break
		}
		if isScalar {
			// The text as written: the decoder would print 1.10 as 1.1
			// and read 0123 as octal.
			sn := ast.String(n.GetToken())
			sn.Value = s
			return sn
		}
		d.fail(path, line, "expected a single value, got %s", describe(n))
		return null(n)
	}
	return n
}

// mapping checks keys and values against the struct type t.
func (d *document) mapping(n ast.Node, t reflect.Type, path string) ast.Node {
	m, ok := n.(ast.MapNode)
	if !ok {
		d.fail(path, lineOf(n), "expected keys and values (a mapping), got %s", describe(n))
		return null(n)
	}
	fields := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		fields[name] = f.Type
	}
	for it := m.MapRange(); it.Next(); {
		kv := it.KeyValue()
		name, ok := scalarText(d.resolve(kv.Key))
		if !ok {
			name = kv.Key.String()
		}
		key := join(path, name)
		ft, ok := fields[name]
		if !ok {
			d.fail(key, lineOf(kv.Key), "unknown key")
			d.unknown = true
			continue
		}
		d.lines[key] = lineOf(kv.Key)
		kv.Value = d.walk(kv.Value, ft, key)
	}
	return n
}

// list checks each item against the slice type t's elements.
func (d *document) list(n ast.Node, t reflect.Type, path string) ast.Node {
	s, ok := n.(*ast.SequenceNode)
	if !ok {
		d.fail(path, lineOf(n), "expected a list, got %s", describe(n))
		return null(n)
	}
	for i, item := range s.Values {
		key := fmt.Sprintf("%s[%d]", path, i)
		d.lines[key] = lineOf(d.resolve(item))
		s.Values[i] = d.walk(item, t.Elem(), key)
	}
	return n
}

// resolve unwraps what only says how a value is written: an anchor (which
// it records), an alias (the anchored value), a tag (the value as written
// without it). An alias to an anchor not seen yet stays an alias, which
// walk refuses.
func (d *document) resolve(n ast.Node) ast.Node {
	for depth := 0; depth < 100; depth++ {
		switch v := n.(type) {
		case *ast.AnchorNode:
			name, _ := scalarText(v.Name)
			if v.Value == nil {
				return nil
			}
			d.anchors[name] = v.Value
			n = v.Value
		case *ast.AliasNode:
			name, _ := scalarText(v.Value)
			a, ok := d.anchors[name]
			if !ok {
				return n
			}
			n = a
		case *ast.TagNode:
			if v.Value == nil {
				return nil
			}
			n = v.Value
		default:
			return n
		}
	}
	return n
}

// expand replaces ${VAR} in a string value, remembering variables that
// are not set: they expand to "" and the key's message names them.
func (d *document) expand(n ast.Node, path string) {
	var sn *ast.StringNode
	switch v := n.(type) {
	case *ast.StringNode:
		sn = v
	case *ast.LiteralNode:
		sn = v.Value
	}
	if sn == nil || !strings.Contains(sn.Value, "${") {
		return
	}
	sn.Value = envRE.ReplaceAllStringFunc(sn.Value, func(m string) string {
		name := m[2 : len(m)-1]
		v, ok := d.lookup(name)
		if !ok {
			d.unsetVars[path] = append(d.unsetVars[path], name)
		}
		return v
	})
	d.expanded[path] = true
}

// null is n's replacement by null, which decodes as the field's zero value.
func null(n ast.Node) ast.Node {
	return ast.Null(n.GetToken())
}

func (d *document) fail(key string, line int, format string, args ...any) {
	if d.failed[key] {
		return
	}
	d.failed[key] = true
	msg := fmt.Sprintf(format, args...)
	if vars := d.unsetVars[key]; len(vars) > 0 {
		msg += fmt.Sprintf(" (${%s} is not set in the environment)", strings.Join(vars, "}, ${"))
	}
	d.errs = append(d.errs, &Error{Key: key, Line: line, Msg: msg})
}

// line is the line of key, or of the nearest enclosing key the file has.
func (d *document) line(key string) int {
	for key != "" {
		if l, ok := d.lines[key]; ok {
			return l
		}
		i := strings.LastIndexAny(key, ".[")
		if i < 0 {
			break
		}
		key = key[:i]
	}
	return 0
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// scalarText is a scalar's value as written (a string's without its
// quotes); false for a mapping or a list.
func scalarText(n ast.Node) (string, bool) {
	switch v := n.(type) {
	case *ast.StringNode:
		return v.Value, true
	case *ast.LiteralNode:
		if v.Value == nil {
			return "", true
		}
		return v.Value.Value, true
	case ast.ScalarNode:
		if tk := v.GetToken(); tk != nil {
			return tk.Value, true
		}
	}
	return "", false
}

// describe names what a value is, for a message saying it is not what the
// key takes.
func describe(n ast.Node) string {
	switch n.(type) {
	case ast.MapNode:
		return "keys and values (a mapping)"
	case *ast.SequenceNode:
		return "a list"
	}
	if s, ok := scalarText(n); ok {
		return strconv.Quote(s)
	}
	return n.Type().String()
}

// lineOf is the line n starts on: a mapping's first key, else its first
// token.
func lineOf(n ast.Node) int {
	if m, ok := n.(*ast.MappingNode); ok && len(m.Values) > 0 {
		n = m.Values[0].Key
	}
	if n == nil {
		return 0
	}
	if tk := n.GetToken(); tk != nil && tk.Position != nil {
		return tk.Position.Line
	}
	return 0
}
