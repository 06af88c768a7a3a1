package config

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
)

// RecordSiteKeys writes ids that deploybot setup learnt (distribution_id,
// kvs.arn) into one site of a configuration file, as text: each is a new
// line under the site's name (or a new entry of a flow mapping), so
// every comment, blank line and ${VAR} of the file stays as written. A
// key the site already sets to a value is never overwritten; one set to
// "" gets its value on its own line. The result is parsed again and must
// give the site the values, else nothing is written and the error says
// what to add by hand.
//
// keys are "distribution_id" and "kvs.arn"; lookup expands ${VAR} as
// Parse does.
func RecordSiteKeys(raw []byte, site string, keys map[string]string, lookup func(string) (string, bool)) ([]byte, error) {
	f, err := parser.ParseBytes(raw, parser.ParseComments)
	if err != nil || len(f.Docs) == 0 || f.Docs[0].Body == nil {
		return nil, fmt.Errorf("the configuration does not parse: %v", err)
	}
	m, err := siteMapping(f.Docs[0].Body, site, lookup)
	if err != nil {
		return nil, err
	}
	lines := strings.SplitAfter(string(raw), "\n")
	for _, k := range []string{"distribution_id", "kvs.arn"} {
		v, ok := keys[k]
		if !ok || v == "" {
			continue
		}
		if lines, err = recordKey(lines, m, k, v); err != nil {
			return nil, fmt.Errorf("site %s: %v; add %s: %s to it by hand", site, err, k, strconv.Quote(v))
		}
		// Positions moved: parse the new text for the next key.
		f, err = parser.ParseBytes([]byte(strings.Join(lines, "")), parser.ParseComments)
		if err != nil {
			return nil, fmt.Errorf("site %s: writing %s broke the file (%v); add %s: %s to it by hand", site, k, err, k, strconv.Quote(v))
		}
		if m, err = siteMapping(f.Docs[0].Body, site, lookup); err != nil {
			return nil, err
		}
	}
	out := []byte(strings.Join(lines, ""))
	cfg, err := Parse(out, lookup)
	if err != nil {
		return nil, fmt.Errorf("site %s: the configuration with the new keys does not load (%v); add them by hand: %v", site, err, keys)
	}
	s, _ := cfg.Site(site)
	if id, ok := keys["distribution_id"]; ok && id != "" && s.DistributionID != id {
		return nil, fmt.Errorf("site %s: distribution_id is %q in the file, not %q: setup never overwrites a value", site, s.DistributionID, id)
	}
	if arn, ok := keys["kvs.arn"]; ok && arn != "" && s.KVS.ARN != arn {
		return nil, fmt.Errorf("site %s: kvs.arn is %q in the file, not %q: setup never overwrites a value", site, s.KVS.ARN, arn)
	}
	return out, nil
}

// siteMapping is the mapping of the site named site under sites.
func siteMapping(body ast.Node, site string, lookup func(string) (string, bool)) (*ast.MappingNode, error) {
	root, ok := body.(*ast.MappingNode)
	if !ok {
		return nil, fmt.Errorf("the configuration is not a mapping of keys")
	}
	for _, kv := range root.Values {
		if kv.Key.GetToken().Value != "sites" {
			continue
		}
		seq, ok := kv.Value.(*ast.SequenceNode)
		if !ok {
			break
		}
		for _, item := range seq.Values {
			m, ok := item.(*ast.MappingNode)
			if !ok {
				continue
			}
			if n := value(m, "name"); n != nil && expandText(n.GetToken().Value, lookup) == site {
				return m, nil
			}
		}
	}
	return nil, fmt.Errorf("the configuration has no site %s", site)
}

func value(m *ast.MappingNode, key string) ast.Node {
	for _, kv := range m.Values {
		if kv.Key.GetToken().Value == key {
			return kv.Value
		}
	}
	return nil
}

func expandText(s string, lookup func(string) (string, bool)) string {
	return envRE.ReplaceAllStringFunc(s, func(m string) string {
		v, _ := lookup(envRE.FindStringSubmatch(m)[1])
		return v
	})
}

// recordKey writes key k (distribution_id, or kvs.arn as kvs: {arn: ...})
// with value v into the site's mapping m.
func recordKey(lines []string, m *ast.MappingNode, k, v string) ([]string, error) {
	key, text := k, strconv.Quote(v)
	if k == "kvs.arn" {
		if kv := value(m, "kvs"); kv != nil {
			return nil, fmt.Errorf("it has a kvs key already")
		}
		key, text = "kvs", "{arn: "+text+"}"
	} else if cur := value(m, k); cur != nil {
		if s := cur.GetToken(); s != nil && s.Value != "" && cur.Type() != ast.NullType {
			return nil, fmt.Errorf("it sets %s to %q already", k, s.Value)
		}
		return nil, fmt.Errorf("it has an empty %s: remove that line", k)
	}
	name := value(m, "name")
	pos := name.GetToken().Position
	if m.IsFlowStyle {
		// {name: www, ...}: a new entry right after the name's value.
		// The token's Origin holds the blanks before it, too.
		return insertAt(lines, pos.Line, pos.Column-1+len(strings.TrimLeft(name.GetToken().Origin, " \t")), ", "+key+": "+text)
	}
	// A block mapping: a line under the name, at the name key's column.
	nameKey := m.Values[0].Key.GetToken().Position
	for _, kv := range m.Values {
		if kv.Key.GetToken().Value == "name" {
			nameKey = kv.Key.GetToken().Position
		}
	}
	indent := strings.Repeat(" ", nameKey.Column-1)
	return insertLine(lines, pos.Line, indent+key+": "+text+"\n"), nil
}

// insertAt puts s into line (1-based) at byte column col (0-based).
func insertAt(lines []string, line, col int, s string) ([]string, error) {
	if line < 1 || line > len(lines) {
		return nil, fmt.Errorf("line %d is outside the file", line)
	}
	l := lines[line-1]
	trim := strings.TrimSpace(l[min(col, len(l)):])
	if col < 0 || col > len(l) || !(strings.HasPrefix(trim, ",") || strings.HasPrefix(trim, "}")) {
		return nil, fmt.Errorf("the site's name is not where setup can write after it")
	}
	lines[line-1] = l[:col] + s + l[col:]
	return lines, nil
}

// insertLine puts s (a whole line) after line (1-based).
func insertLine(lines []string, line int, s string) []string {
	if line >= len(lines) {
		if n := len(lines); n > 0 && !strings.HasSuffix(lines[n-1], "\n") {
			lines[n-1] += "\n"
		}
		return append(lines, s)
	}
	out := append([]string{}, lines[:line]...)
	out = append(out, s)
	return append(out, lines[line:]...)
}
