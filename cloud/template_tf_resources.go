// The resources of the Terraform template, one block writer a resource,
// in the order setup creates them.

package cloud

import (
	"fmt"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
)

func (w *tfWriter) resources(m *siteModel) ([]byte, error) {
	steps := []func() error{
		func() error { return w.bucket(m) },
		w.publicAccessBlock,
		w.ownershipControls,
		w.encryption,
		func() error { return w.bucketPolicy(m) },
		func() error { return w.originAccessControl(m) },
	}
	if m.kvs {
		steps = append(steps, func() error { return w.keyValueStore(m) })
	}
	for _, f := range m.functions {
		steps = append(steps, func() error { return w.function(f) })
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

// attrs writes name = "value" attributes, in order.
func (w *tfWriter) attrs(pairs ...[2]string) error {
	for _, a := range pairs {
		if err := w.attr(a[0], a[1]); err != nil {
			return err
		}
	}
	return nil
}

// bucketRef is the bucket's id, as the bucket's other resources name it.
func (w *tfWriter) bucketRef() string { return "aws_s3_bucket." + w.label + ".id" }

func (w *tfWriter) bucket(m *siteModel) error {
	return w.block(fmt.Sprintf("resource \"aws_s3_bucket\" %q", w.label), func() error { return w.attr("bucket", m.site.Bucket) })
}

func (w *tfWriter) publicAccessBlock() error {
	pab := bucketPublicAccessBlock()
	return w.block(fmt.Sprintf("resource \"aws_s3_bucket_public_access_block\" %q", w.label), func() error {
		w.line("bucket = %s", w.bucketRef())
		w.line("block_public_acls = %t", aws.ToBool(pab.BlockPublicAcls))
		w.line("ignore_public_acls = %t", aws.ToBool(pab.IgnorePublicAcls))
		w.line("block_public_policy = %t", aws.ToBool(pab.BlockPublicPolicy))
		w.line("restrict_public_buckets = %t", aws.ToBool(pab.RestrictPublicBuckets))
		return nil
	})
}

func (w *tfWriter) ownershipControls() error {
	return w.block(fmt.Sprintf("resource \"aws_s3_bucket_ownership_controls\" %q", w.label), func() error {
		w.line("bucket = %s", w.bucketRef())
		for _, r := range bucketOwnership().Rules {
			if err := w.block("rule", func() error { return w.attr("object_ownership", string(r.ObjectOwnership)) }); err != nil {
				return err
			}
		}
		return nil
	})
}

func (w *tfWriter) encryption() error {
	return w.block(fmt.Sprintf("resource \"aws_s3_bucket_server_side_encryption_configuration\" %q", w.label), func() error {
		w.line("bucket = %s", w.bucketRef())
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
}

func (w *tfWriter) bucketPolicy(m *siteModel) error {
	policy, err := orderedJSON(m.policy)
	if err != nil {
		return err
	}
	return w.block(fmt.Sprintf("resource \"aws_s3_bucket_policy\" %q", w.label), func() error {
		w.line("bucket = %s", w.bucketRef())
		w.line("# Only this distribution reads the site's prefix. A bucket that other")
		w.line("# sites share needs all their statements in this one policy.")
		e, err := w.jsonExpr(policy)
		if err != nil {
			return err
		}
		w.line("policy = jsonencode(%s)", e)
		return nil
	})
}

func (w *tfWriter) originAccessControl(m *siteModel) error {
	return w.block(fmt.Sprintf("resource \"aws_cloudfront_origin_access_control\" %q", w.label), func() error {
		return w.attrs([2]string{"name", aws.ToString(m.oac.Name)}, [2]string{"description", aws.ToString(m.oac.Description)},
			[2]string{"origin_access_control_origin_type", string(m.oac.OriginAccessControlOriginType)},
			[2]string{"signing_behavior", string(m.oac.SigningBehavior)}, [2]string{"signing_protocol", string(m.oac.SigningProtocol)})
	})
}

func (w *tfWriter) keyValueStore(m *siteModel) error {
	return w.block(fmt.Sprintf("resource \"aws_cloudfront_key_value_store\" %q", w.label), func() error {
		w.line("# Its keys (the live release, the preview signing key) are data that")
		w.line("# deploys and kvs-setup write; no template declares them.")
		if err := w.attr("name", m.kvsName); err != nil {
			return err
		}
		return w.attr("comment", m.kvsComment)
	})
}

func (w *tfWriter) function(f modelFunction) error {
	return w.block(fmt.Sprintf("resource \"aws_cloudfront_function\" %q", w.label+"_"+f.role), func() error {
		if err := w.attrs([2]string{"name", f.name}, [2]string{"runtime", string(f.config.Runtime)}, [2]string{"comment", aws.ToString(f.config.Comment)}); err != nil {
			return err
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
		for _, step := range []func() error{
			func() error { return w.origins(m) },
			func() error { return w.defaultBehavior(d.Default) },
			func() error { return w.errorResponses(d) },
			w.defaults,
			func() error { return w.tags(m) },
		} {
			if err := step(); err != nil {
				return err
			}
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

func (w *tfWriter) origins(m *siteModel) error {
	for _, o := range m.dist.Origins {
		err := w.block("origin", func() error {
			if err := w.attrs([2]string{"origin_id", o.ID}, [2]string{"domain_name", o.Domain}, [2]string{"origin_access_control_id", o.OACID}); err != nil {
				return err
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
	return nil
}

func (w *tfWriter) defaultBehavior(b behaviorSpec) error {
	return w.block("default_cache_behavior", func() error {
		if err := w.attrs([2]string{"target_origin_id", b.TargetOriginID}, [2]string{"viewer_protocol_policy", b.ViewerProtocolPolicy}, [2]string{"cache_policy_id", b.CachePolicyID}); err != nil {
			return err
		}
		w.line("compress = %t", b.Compress)
		w.line("allowed_methods = %s", hclList(b.Allowed))
		w.line("cached_methods = %s", hclList(b.Cached))
		for _, fa := range b.Functions {
			if err := w.block("function_association", func() error {
				return w.attrs([2]string{"event_type", fa.Event}, [2]string{"function_arn", fa.ARN})
			}); err != nil {
				return err
			}
		}
		return nil
	})
}

func (w *tfWriter) errorResponses(d distSpec) error {
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
	return nil
}

// defaults writes what CloudFront sets when a distribution names none.
func (w *tfWriter) defaults() error {
	w.line("# What CloudFront sets when a distribution names none (Terraform")
	w.line("# requires both blocks): no geographic restriction, the")
	w.line("# *.cloudfront.net certificate.")
	if err := w.block("restrictions", func() error {
		return w.block("geo_restriction", func() error { w.line(`restriction_type = "none"`); return nil })
	}); err != nil {
		return err
	}
	return w.block("viewer_certificate", func() error { w.line("cloudfront_default_certificate = true"); return nil })
}

func (w *tfWriter) tags(m *siteModel) error {
	keys := make([]string, 0, len(m.tags))
	tags := map[string]string{}
	for _, t := range m.tags {
		keys = append(keys, aws.ToString(t.Key))
		tags[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	sort.Strings(keys)
	return w.block("tags =", func() error {
		for _, k := range keys {
			w.line("%s = %s", hclQuote(k), hclQuote(tags[k]))
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
