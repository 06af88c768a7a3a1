package cloud

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
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

func (w *tfWriter) resources(m *siteModel) ([]byte, error) {
	l := w.label
	bucket := "aws_s3_bucket." + l + ".id"
	steps := []func() error{
		func() error {
			return w.block(fmt.Sprintf("resource \"aws_s3_bucket\" %q", l), func() error { return w.attr("bucket", m.site.Bucket) })
		},
		func() error {
			pab := bucketPublicAccessBlock()
			return w.block(fmt.Sprintf("resource \"aws_s3_bucket_public_access_block\" %q", l), func() error {
				w.line("bucket = %s", bucket)
				w.line("block_public_acls = %t", aws.ToBool(pab.BlockPublicAcls))
				w.line("ignore_public_acls = %t", aws.ToBool(pab.IgnorePublicAcls))
				w.line("block_public_policy = %t", aws.ToBool(pab.BlockPublicPolicy))
				w.line("restrict_public_buckets = %t", aws.ToBool(pab.RestrictPublicBuckets))
				return nil
			})
		},
		func() error {
			return w.block(fmt.Sprintf("resource \"aws_s3_bucket_ownership_controls\" %q", l), func() error {
				w.line("bucket = %s", bucket)
				for _, r := range bucketOwnership().Rules {
					if err := w.block("rule", func() error { return w.attr("object_ownership", string(r.ObjectOwnership)) }); err != nil {
						return err
					}
				}
				return nil
			})
		},
		func() error {
			return w.block(fmt.Sprintf("resource \"aws_s3_bucket_server_side_encryption_configuration\" %q", l), func() error {
				w.line("bucket = %s", bucket)
				for _, r := range bucketEncryption().Rules {
					err := w.block("rule", func() error {
						return w.block("apply_server_side_encryption_by_default", func() error {
							return w.attr("sse_algorithm", string(r.ApplyServerSideEncryptionByDefault.SSEAlgorithm))
						})
					})
					if err != nil {
						return err
					}
				}
				return nil
			})
		},
		func() error {
			policy, err := orderedJSON(m.policy)
			if err != nil {
				return err
			}
			return w.block(fmt.Sprintf("resource \"aws_s3_bucket_policy\" %q", l), func() error {
				w.line("bucket = %s", bucket)
				w.line("# Only this distribution reads the site's prefix. A bucket that other")
				w.line("# sites share needs all their statements in this one policy.")
				e, err := w.jsonExpr(policy)
				if err != nil {
					return err
				}
				w.line("policy = jsonencode(%s)", e)
				return nil
			})
		},
		func() error {
			return w.block(fmt.Sprintf("resource \"aws_cloudfront_origin_access_control\" %q", l), func() error {
				for _, a := range [][2]string{{"name", aws.ToString(m.oac.Name)}, {"description", aws.ToString(m.oac.Description)},
					{"origin_access_control_origin_type", string(m.oac.OriginAccessControlOriginType)},
					{"signing_behavior", string(m.oac.SigningBehavior)}, {"signing_protocol", string(m.oac.SigningProtocol)}} {
					if err := w.attr(a[0], a[1]); err != nil {
						return err
					}
				}
				return nil
			})
		},
	}
	if m.kvs {
		steps = append(steps, func() error {
			return w.block(fmt.Sprintf("resource \"aws_cloudfront_key_value_store\" %q", l), func() error {
				w.line("# Its keys (the live release, the preview signing key) are data that")
				w.line("# deploys and kvs-setup write; no template declares them.")
				if err := w.attr("name", m.kvsName); err != nil {
					return err
				}
				return w.attr("comment", m.kvsComment)
			})
		})
	}
	for _, f := range m.functions {
		steps = append(steps, func() error {
			return w.block(fmt.Sprintf("resource \"aws_cloudfront_function\" %q", l+"_"+f.role), func() error {
				for _, a := range [][2]string{{"name", f.name}, {"runtime", string(f.config.Runtime)}, {"comment", aws.ToString(f.config.Comment)}} {
					if err := w.attr(a[0], a[1]); err != nil {
						return err
					}
				}
				w.line("publish = true")
				if a := f.config.KeyValueStoreAssociations; a != nil {
					var arns []string
					for _, s := range a.Items {
						v, err := w.str(aws.ToString(s.KeyValueStoreARN))
						if err != nil {
							return err
						}
						arns = append(arns, v)
					}
					w.line("key_value_store_associations = [%s]", strings.Join(arns, ", "))
				}
				return w.heredoc("code", f.code)
			})
		})
	}
	steps = append(steps, func() error { return w.distribution(m) }, func() error { return w.outputs(m) })
	for i, step := range steps {
		if i > 0 {
			w.line("")
		}
		if err := step(); err != nil {
			return nil, err
		}
	}
	return w.b.Bytes(), nil
}

func (w *tfWriter) distribution(m *siteModel) error {
	d := m.dist
	return w.block(fmt.Sprintf("resource \"aws_cloudfront_distribution\" %q", w.label), func() error {
		if err := w.attr("comment", d.Comment); err != nil {
			return err
		}
		w.line("enabled = %t", d.Enabled)
		if d.DefaultRootObject != "" {
			if err := w.attr("default_root_object", d.DefaultRootObject); err != nil {
				return err
			}
		}
		if err := w.attr("http_version", d.HTTPVersion); err != nil {
			return err
		}
		w.line("is_ipv6_enabled = %t", d.IPv6)
		for _, o := range d.Origins {
			err := w.block("origin", func() error {
				for _, a := range [][2]string{{"origin_id", o.ID}, {"domain_name", o.Domain}, {"origin_access_control_id", o.OACID}} {
					if err := w.attr(a[0], a[1]); err != nil {
						return err
					}
				}
				if !m.kvs {
					w.line("# origin_path is the live release: deploys set it (see lifecycle).")
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
		b := d.Default
		err := w.block("default_cache_behavior", func() error {
			for _, a := range [][2]string{{"target_origin_id", b.TargetOriginID}, {"viewer_protocol_policy", b.ViewerProtocolPolicy}, {"cache_policy_id", b.CachePolicyID}} {
				if err := w.attr(a[0], a[1]); err != nil {
					return err
				}
			}
			w.line("compress = %t", b.Compress)
			w.line("allowed_methods = %s", hclList(b.Allowed))
			w.line("cached_methods = %s", hclList(b.Cached))
			for _, fa := range b.Functions {
				err := w.block("function_association", func() error {
					if err := w.attr("event_type", fa.Event); err != nil {
						return err
					}
					return w.attr("function_arn", fa.ARN)
				})
				if err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, e := range d.ErrorResponses {
			err := w.block("custom_error_response", func() error {
				w.line("error_code = %d", e.Code)
				if e.Page != "" {
					if err := w.attr("response_page_path", e.Page); err != nil {
						return err
					}
					w.line("response_code = %s", e.ResponseCode)
				}
				w.line("error_caching_min_ttl = %d", e.MinTTL)
				return nil
			})
			if err != nil {
				return err
			}
		}
		w.line("# What CloudFront sets when a distribution names none (Terraform")
		w.line("# requires both blocks): no geographic restriction, the")
		w.line("# *.cloudfront.net certificate.")
		if err := w.block("restrictions", func() error {
			return w.block("geo_restriction", func() error { w.line(`restriction_type = "none"`); return nil })
		}); err != nil {
			return err
		}
		if err := w.block("viewer_certificate", func() error { w.line("cloudfront_default_certificate = true"); return nil }); err != nil {
			return err
		}
		keys := make([]string, 0, len(m.tags))
		tags := map[string]string{}
		for _, t := range m.tags {
			keys = append(keys, aws.ToString(t.Key))
			tags[aws.ToString(t.Key)] = aws.ToString(t.Value)
		}
		sort.Strings(keys)
		if err := w.block("tags =", func() error {
			for _, k := range keys {
				w.line("%s = %s", hclQuote(k), hclQuote(tags[k]))
			}
			return nil
		}); err != nil {
			return err
		}
		if !m.kvs {
			return w.block("lifecycle", func() error {
				w.line("# The origin's origin_path is the live release, which every promote")
				w.line("# and rollback sets: declared, each apply would put the site back on")
				w.line("# the release the file names. Terraform cannot ignore one attribute")
				w.line("# of an origin (a set), so it leaves the origin block alone after")
				w.line("# creating it; change the origin with deploybot setup or by hand.")
				w.line("ignore_changes = [origin]")
				return nil
			})
		}
		return nil
	})
}

func (w *tfWriter) outputs(m *siteModel) error {
	l := w.label
	outs := [][3]string{
		{l + "_distribution_id", "sites[].distribution_id of site " + m.site.Name + " in deploybot's configuration", "aws_cloudfront_distribution." + l + ".id"},
		{l + "_domain", "the distribution's domain: the site's address until a CNAME points at it", "aws_cloudfront_distribution." + l + ".domain_name"},
	}
	if m.kvs {
		outs = append(outs, [3]string{l + "_kvs_arn", "sites[].kvs.arn of site " + m.site.Name + " in deploybot's configuration", "aws_cloudfront_key_value_store." + l + ".arn"})
	}
	for i, o := range outs {
		if i > 0 {
			w.line("")
		}
		if err := w.block(fmt.Sprintf("output %q", o[0]), func() error {
			w.line("description = %s", hclQuote(o[1]))
			w.line("value = %s", o[2])
			return nil
		}); err != nil {
			return err
		}
	}
	return nil
}

func hclList(items []string) string {
	q := make([]string, len(items))
	for i, s := range items {
		q[i] = hclQuote(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}
