package cloud

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// tfLabel is the site's name as a Terraform resource name (letters,
// digits, '_' and '-', not starting with a digit or '-').
func tfLabel(site string) string {
	var b strings.Builder
	for _, c := range site {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' {
			b.WriteRune(c)
		} else {
			b.WriteByte('_')
		}
	}
	l := b.String()
	if l == "" || l[0] >= '0' && l[0] <= '9' || l[0] == '-' {
		l = "site_" + l
	}
	return l
}

// tfRef is the Terraform expression a ref stands for.
func (w *tfWriter) ref(ref string) (string, error) {
	l := w.label
	switch ref {
	case refBucketDomain:
		return "aws_s3_bucket." + l + ".bucket_regional_domain_name", nil
	case refOACID:
		return "aws_cloudfront_origin_access_control." + l + ".id", nil
	case refDistributionID:
		return "aws_cloudfront_distribution." + l + ".id", nil
	case refDistributionARN:
		return "aws_cloudfront_distribution." + l + ".arn", nil
	case refPartition:
		w.partition = true
		return "data.aws_partition." + l + ".partition", nil
	case refKVSARN:
		return "aws_cloudfront_key_value_store." + l + ".arn", nil
	case refKVSID:
		// The store's id is the last part of its ARN (KVSID).
		return `element(split("/", aws_cloudfront_key_value_store.` + l + `.arn), 1)`, nil
	}
	for _, role := range []string{roleKVS, roleRouter, roleRelease} {
		if ref == refFunction(role) {
			return "aws_cloudfront_function." + l + "_" + role + ".arn", nil
		}
	}
	return "", fmt.Errorf("template: no Terraform spelling for %s", ref)
}

type tfWriter struct {
	b         bytes.Buffer
	label     string
	depth     int
	partition bool // some string names the partition
}

func (w *tfWriter) line(format string, args ...any) {
	if format == "" {
		w.b.WriteByte('\n')
		return
	}
	w.b.WriteString(strings.Repeat("  ", w.depth))
	fmt.Fprintf(&w.b, format, args...)
	w.b.WriteByte('\n')
}

func (w *tfWriter) block(header string, body func() error) error {
	w.line("%s {", header)
	w.depth++
	err := body()
	w.depth--
	w.line("}")
	return err
}

// str is s as an HCL string expression, its refs interpolated; a string
// that is one ref is the bare expression.
func (w *tfWriter) str(s string) (string, error) {
	parts := splitRefs(s)
	if len(parts) == 1 && isRef(parts[0]) {
		return w.ref(parts[0])
	}
	var b strings.Builder
	b.WriteByte('"')
	for _, p := range parts {
		if !isRef(p) {
			b.WriteString(hclEscape(p, false))
			continue
		}
		e, err := w.ref(p)
		if err != nil {
			return "", err
		}
		b.WriteString("${" + e + "}")
	}
	b.WriteByte('"')
	return b.String(), nil
}

func (w *tfWriter) attr(name, s string) error {
	v, err := w.str(s)
	if err != nil {
		return err
	}
	w.line("%s = %s", name, v)
	return nil
}

// hclEscape escapes s for an HCL quoted string (heredoc: for a heredoc,
// where only the template sequences need escaping).
func hclEscape(s string, heredoc bool) string {
	s = strings.ReplaceAll(s, "${", "$${")
	s = strings.ReplaceAll(s, "%{", "%%{")
	if heredoc {
		return s
	}
	var b strings.Builder
	for _, c := range s {
		switch {
		case c == '"':
			b.WriteString(`\"`)
		case c == '\\':
			b.WriteString(`\\`)
		case c == '\n':
			b.WriteString(`\n`)
		case c == '\r':
			b.WriteString(`\r`)
		case c == '\t':
			b.WriteString(`\t`)
		case c < 0x20 || c == 0x7f:
			fmt.Fprintf(&b, `\u%04x`, c)
		default:
			b.WriteRune(c)
		}
	}
	return b.String()
}

// heredoc writes name = the code, as a heredoc when it ends in a newline
// (an HCL heredoc does), its refs interpolated.
func (w *tfWriter) heredoc(name, code string) error {
	if !strings.HasSuffix(code, "\n") {
		return w.attr(name, code)
	}
	marker := "EOT"
	for strings.Contains("\n"+code, "\n"+marker+"\n") {
		marker += "_"
	}
	var body strings.Builder
	for _, p := range splitRefs(code) {
		if !isRef(p) {
			body.WriteString(hclEscape(p, true))
			continue
		}
		e, err := w.ref(p)
		if err != nil {
			return err
		}
		body.WriteString("${" + e + "}")
	}
	w.line("%s = <<%s", name, marker)
	w.b.WriteString(body.String())
	w.b.WriteString(marker + "\n")
	return nil
}

// jsonExpr writes v (orderedJSON's values) as an HCL expression.
func (w *tfWriter) jsonExpr(v any) (string, error) {
	switch t := v.(type) {
	case string:
		return w.str(t)
	case json.Number:
		return t.String(), nil
	case bool:
		return fmt.Sprint(t), nil
	case nil:
		return "null", nil
	case []any:
		var items []string
		for _, e := range t {
			s, err := w.jsonExpr(e)
			if err != nil {
				return "", err
			}
			items = append(items, s)
		}
		return "[" + strings.Join(items, ", ") + "]", nil
	case jsonObject:
		var b strings.Builder
		b.WriteString("{\n")
		w.depth++
		for _, f := range t {
			s, err := w.jsonExpr(f.value)
			if err != nil {
				return "", err
			}
			b.WriteString(strings.Repeat("  ", w.depth) + hclQuote(f.key) + " = " + s + "\n")
		}
		w.depth--
		b.WriteString(strings.Repeat("  ", w.depth) + "}")
		return b.String(), nil
	}
	return "", fmt.Errorf("template: no HCL for %T", v)
}

func hclQuote(s string) string { return `"` + hclEscape(s, false) + `"` }

func terraform(m *siteModel) ([]byte, error) {
	w := &tfWriter{label: tfLabel(m.site.Name)}
	l := w.label
	body, err := w.resources(m)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	fmt.Fprintf(&out, `# deploybot site %s (install %s): what deploybot setup creates, as
# Terraform (hashicorp/aws provider 5.x of 2024 or later: it needs
# aws_cloudfront_key_value_store and key_value_store_associations).
# Generated by: deploybot setup --site %s --output terraform
#
# Left out on purpose: the live release. Deploys change it (the origin
# path, or the key in the key value store); declared here, every apply
# would undo the last deploy.
#
# After apply, write the outputs into deploybot's configuration:
# %s_distribution_id as the site's distribution_id`, m.site.Name, m.install, m.site.Name, l)
	if m.kvs {
		fmt.Fprintf(&out, `, %s_kvs_arn as its
# kvs.arn; then deploybot kvs-setup --site %s --apply writes the preview
# signing key (data, like the live key), and the first promote the live key.
`, l, m.site.Name)
	} else {
		out.WriteString(`; the first
# promote sets the origin path.
`)
	}
	out.WriteString("\n")
	if w.partition {
		fmt.Fprintf(&out, "data \"aws_partition\" %q {}\n\n", l)
	}
	out.Write(body)
	return out.Bytes(), nil
}

func hclList(items []string) string {
	q := make([]string, len(items))
	for i, s := range items {
		q[i] = hclQuote(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}
