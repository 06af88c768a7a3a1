package config

import (
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"
)

// keyPaths lists every key the configuration reads, as docs write them:
// slack.app_token, sites[].retention.keep, sites[].health.checks[].url.
func keyPaths(t reflect.Type, prefix string, out *[]string) {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
		if t.Kind() == reflect.Slice {
			prefix += "[]"
		}
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || t == reflect.TypeOf(Duration{}) {
		*out = append(*out, prefix)
		return
	}
	for i := 0; i < t.NumField(); i++ {
		tag, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if tag == "" || tag == "-" {
			continue
		}
		p := tag
		if prefix != "" {
			p = prefix + "." + tag
		}
		keyPaths(t.Field(i).Type, p, out)
	}
}

// has reports whether a parsed YAML document holds path somewhere (in
// any element of a list).
func has(v any, path []string) bool {
	if len(path) == 0 {
		return true
	}
	name, list := strings.CutSuffix(path[0], "[]")
	m, ok := v.(map[string]any)
	if !ok {
		return false
	}
	child, ok := m[name]
	if !ok {
		return false
	}
	if !list {
		return has(child, path[1:])
	}
	items, _ := child.([]any)
	if len(path) == 1 {
		return len(items) > 0
	}
	for _, it := range items {
		if has(it, path[1:]) {
			return true
		}
	}
	return false
}

// docs/config.md and config.example.yaml name every key the program
// reads, and the reference names nothing else.
func TestConfigReferenceAndExampleHaveEveryKey(t *testing.T) {
	doc, err := os.ReadFile("../docs/config.md")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile("../config.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var example any
	if err := yaml.Unmarshal(raw, &example); err != nil {
		t.Fatal(err)
	}
	var keys []string
	keyPaths(reflect.TypeOf(Config{}), "", &keys)
	known := map[string]bool{}
	for _, k := range keys {
		known[k] = true
		if !strings.Contains(string(doc), "| `"+k+"` |") {
			t.Errorf("docs/config.md does not describe %s", k)
		}
		if !has(example, strings.Split(k, ".")) {
			t.Errorf("config.example.yaml does not show %s", k)
		}
	}
	for _, line := range strings.Split(string(doc), "\n") {
		if k, ok := strings.CutPrefix(line, "| `"); ok {
			k, _, _ = strings.Cut(k, "`")
			if !known[k] {
				t.Errorf("docs/config.md describes %s, which the program does not read", k)
			}
		}
	}
}
