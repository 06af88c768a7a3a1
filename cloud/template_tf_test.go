package cloud

import (
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"
	"github.com/zclconf/go-cty/cty/function/stdlib"
	ctyjson "github.com/zclconf/go-cty/cty/json"

	"github.com/deploybot/deploybot/releases"
)

// tfSchema is what the test is sure the hashicorp/aws provider has: a
// resource's (or block's) arguments, required ones, nested blocks, and
// the attributes others may reference.
type tfSchema struct {
	args     []string
	required []string
	blocks   map[string]tfSchema
	exported []string
}

var tfProvider = map[string]tfSchema{
	"aws_s3_bucket": {args: []string{"bucket"}, exported: []string{"id", "arn", "bucket_regional_domain_name"}},
	"aws_s3_bucket_public_access_block": {args: []string{"bucket", "block_public_acls", "ignore_public_acls", "block_public_policy", "restrict_public_buckets"},
		required: []string{"bucket"}},
	"aws_s3_bucket_ownership_controls": {args: []string{"bucket"}, required: []string{"bucket"},
		blocks: map[string]tfSchema{"rule": {args: []string{"object_ownership"}, required: []string{"object_ownership"}}}},
	"aws_s3_bucket_server_side_encryption_configuration": {args: []string{"bucket"}, required: []string{"bucket"},
		blocks: map[string]tfSchema{"rule": {blocks: map[string]tfSchema{"apply_server_side_encryption_by_default": {args: []string{"sse_algorithm"}, required: []string{"sse_algorithm"}}}}}},
	"aws_s3_bucket_policy": {args: []string{"bucket", "policy"}, required: []string{"bucket", "policy"}},
	"aws_cloudfront_origin_access_control": {args: []string{"name", "description", "origin_access_control_origin_type", "signing_behavior", "signing_protocol"},
		required: []string{"name", "origin_access_control_origin_type", "signing_behavior", "signing_protocol"}, exported: []string{"id"}},
	"aws_cloudfront_key_value_store": {args: []string{"name", "comment"}, required: []string{"name"}, exported: []string{"arn"}},
	"aws_cloudfront_function": {args: []string{"name", "runtime", "comment", "publish", "code", "key_value_store_associations"},
		required: []string{"name", "runtime", "code"}, exported: []string{"arn"}},
	"aws_cloudfront_distribution": {args: []string{"comment", "enabled", "default_root_object", "http_version", "is_ipv6_enabled", "tags"},
		required: []string{"enabled"}, exported: []string{"id", "arn", "domain_name"},
		blocks: map[string]tfSchema{
			"origin": {args: []string{"origin_id", "domain_name", "origin_access_control_id"}, required: []string{"origin_id", "domain_name"}},
			"default_cache_behavior": {args: []string{"target_origin_id", "viewer_protocol_policy", "cache_policy_id", "compress", "allowed_methods", "cached_methods"},
				required: []string{"target_origin_id", "viewer_protocol_policy", "allowed_methods", "cached_methods"},
				blocks:   map[string]tfSchema{"function_association": {args: []string{"event_type", "function_arn"}, required: []string{"event_type", "function_arn"}}}},
			"custom_error_response": {args: []string{"error_code", "response_page_path", "response_code", "error_caching_min_ttl"}, required: []string{"error_code"}},
			"restrictions":          {blocks: map[string]tfSchema{"geo_restriction": {args: []string{"restriction_type"}, required: []string{"restriction_type"}}}},
			"viewer_certificate":    {args: []string{"cloudfront_default_certificate"}},
			"lifecycle":             {args: []string{"ignore_changes"}},
		}},
}

var tfData = map[string]tfSchema{"aws_partition": {exported: []string{"partition"}}}

// tfRequiredBlocks are the blocks a resource must have.
var tfRequiredBlocks = map[string][]string{
	"aws_cloudfront_distribution": {"origin", "default_cache_behavior", "restrictions", "viewer_certificate"},
}

func checkTFBody(t *testing.T, where string, body *hclsyntax.Body, s tfSchema) {
	t.Helper()
	for name := range body.Attributes {
		if !containsString(s.args, name) {
			t.Errorf("%s: argument %s is not one the test knows the provider has", where, name)
		}
	}
	for _, name := range s.required {
		if _, ok := body.Attributes[name]; !ok {
			t.Errorf("%s: required argument %s missing", where, name)
		}
	}
	for _, b := range body.Blocks {
		sub, ok := s.blocks[b.Type]
		if !ok {
			t.Errorf("%s: block %s is not one the test knows the provider has", where, b.Type)
			continue
		}
		checkTFBody(t, where+"."+b.Type, b.Body, sub)
	}
}

// tfContext resolves the template's references to fake ids.
func tfContext(t *testing.T, f *hclsyntax.Body) *hcl.EvalContext {
	resources := map[string]map[string]cty.Value{}
	data := map[string]map[string]cty.Value{}
	for _, b := range f.Blocks {
		if len(b.Labels) != 2 {
			continue
		}
		typ, label := b.Labels[0], b.Labels[1]
		var v map[string]cty.Value
		switch typ {
		case "aws_s3_bucket":
			v = map[string]cty.Value{"id": cty.StringVal("bucket"), "arn": cty.StringVal("arn:aws:s3:::bucket"), "bucket_regional_domain_name": cty.StringVal(fakeDomain)}
		case "aws_cloudfront_origin_access_control":
			v = map[string]cty.Value{"id": cty.StringVal(fakeOAC)}
		case "aws_cloudfront_key_value_store":
			v = map[string]cty.Value{"arn": cty.StringVal(fakeKVSARN)}
		case "aws_cloudfront_distribution":
			v = map[string]cty.Value{"id": cty.StringVal(fakeDist), "arn": cty.StringVal(fakeDistARN), "domain_name": cty.StringVal("d111.cloudfront.net")}
		case "aws_cloudfront_function":
			name, diags := b.Body.Attributes["name"].Expr.Value(nil)
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			v = map[string]cty.Value{"arn": cty.StringVal(fakeFunctionARN(name.AsString()))}
		case "aws_partition":
			v = map[string]cty.Value{"partition": cty.StringVal("aws")}
		default:
			continue
		}
		m := resources
		if b.Type == "data" {
			m = data
		}
		if m[typ] == nil {
			m[typ] = map[string]cty.Value{}
		}
		m[typ][label] = cty.ObjectVal(v)
	}
	vars := map[string]cty.Value{}
	for typ, byLabel := range resources {
		vars[typ] = cty.ObjectVal(byLabel)
	}
	dv := map[string]cty.Value{}
	for typ, byLabel := range data {
		dv[typ] = cty.ObjectVal(byLabel)
	}
	vars["data"] = cty.ObjectVal(dv)
	return &hcl.EvalContext{Variables: vars, Functions: map[string]function.Function{
		"jsonencode": stdlib.JSONEncodeFunc, "split": stdlib.SplitFunc, "element": stdlib.ElementFunc}}
}

func tfString(t *testing.T, ctx *hcl.EvalContext, a *hclsyntax.Attribute) string {
	t.Helper()
	v, diags := a.Expr.Value(ctx)
	if diags.HasErrors() {
		t.Fatalf("%s: %v", a.Name, diags)
	}
	return v.AsString()
}

// tfDoc is one site's Terraform, parsed, with its references resolved
// to fake ids; checkBlocks indexes the resources the other checks read.
type tfDoc struct {
	site     releases.Site
	raw      []byte
	body     *hclsyntax.Body
	ctx      *hcl.EvalContext
	declared map[string]bool
	byType   map[string][]*hclsyntax.Block
}

func parseTF(t *testing.T, site releases.Site) *tfDoc {
	t.Helper()
	raw, err := Template(site, FormatTerraform)
	if err != nil {
		t.Fatal(err)
	}
	f, diags := hclsyntax.ParseConfig(raw, "site.tf", hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatalf("not HCL: %v\n%s", diags, raw)
	}
	body := f.Body.(*hclsyntax.Body)
	return &tfDoc{site: site, raw: raw, body: body, ctx: tfContext(t, body),
		declared: map[string]bool{}, byType: map[string][]*hclsyntax.Block{}}
}

func (d *tfDoc) kvs() bool { return d.site.Strategy == StrategyKVS }

func (d *tfDoc) str(t *testing.T, a *hclsyntax.Attribute) string {
	t.Helper()
	return tfString(t, d.ctx, a)
}

// checkBlocks checks every top-level block against what the provider
// has, and indexes the declared resources and data sources.
func (d *tfDoc) checkBlocks(t *testing.T) {
	t.Helper()
	for _, b := range d.body.Blocks {
		switch b.Type {
		case "resource":
			s, ok := tfProvider[b.Labels[0]]
			if !ok {
				t.Errorf("resource type %s is not one the test knows", b.Labels[0])
				continue
			}
			checkTFBody(t, b.Labels[0], b.Body, s)
			for _, need := range tfRequiredBlocks[b.Labels[0]] {
				found := false
				for _, sub := range b.Body.Blocks {
					found = found || sub.Type == need
				}
				if !found {
					t.Errorf("%s: block %s missing", b.Labels[0], need)
				}
			}
			d.declared[b.Labels[0]+"."+b.Labels[1]] = true
			d.byType[b.Labels[0]] = append(d.byType[b.Labels[0]], b)
		case "data":
			if _, ok := tfData[b.Labels[0]]; !ok {
				t.Errorf("data source %s is not one the test knows", b.Labels[0])
			}
			d.declared["data."+b.Labels[0]+"."+b.Labels[1]] = true
		case "output":
		default:
			t.Errorf("top-level block %s", b.Type)
		}
	}
}

// checkReferences checks that every reference names a declared resource
// and an attribute it exports.
func (d *tfDoc) checkReferences(t *testing.T) {
	t.Helper()
	hclsyntax.VisitAll(d.body, func(n hclsyntax.Node) hcl.Diagnostics {
		e, ok := n.(*hclsyntax.ScopeTraversalExpr)
		if !ok {
			return nil
		}
		tr := e.Traversal
		names := []string{tr.RootName()}
		for _, step := range tr[1:] {
			if a, ok := step.(hcl.TraverseAttr); ok {
				names = append(names, a.Name)
			}
		}
		if len(names) == 1 && names[0] == "origin" { // lifecycle.ignore_changes
			return nil
		}
		schemas, typ, rest := tfProvider, names[0], names[1:]
		if names[0] == "data" {
			schemas, typ, rest = tfData, names[1], names[2:]
		}
		if len(rest) != 2 || !d.declared[strings.Join(names[:len(names)-1], ".")] || !containsString(schemas[typ].exported, rest[1]) {
			t.Errorf("reference %s: not an exported attribute of a declared resource", strings.Join(names, "."))
		}
		return nil
	})
}

// checkResources checks each resource is declared once, under setup's
// names, and that the policy, evaluated, is setup's statement for this
// distribution.
func (d *tfDoc) checkResources(t *testing.T) {
	t.Helper()
	for _, typ := range []string{"aws_s3_bucket", "aws_s3_bucket_public_access_block", "aws_s3_bucket_ownership_controls",
		"aws_s3_bucket_server_side_encryption_configuration", "aws_s3_bucket_policy", "aws_cloudfront_origin_access_control", "aws_cloudfront_distribution"} {
		if len(d.byType[typ]) != 1 {
			t.Fatalf("%d resources of type %s, want 1", len(d.byType[typ]), typ)
		}
	}
	if got := len(d.byType["aws_cloudfront_key_value_store"]); got != map[bool]int{true: 1}[d.kvs()] {
		t.Errorf("%d key value stores", got)
	}
	if d.kvs() {
		if n := d.str(t, d.byType["aws_cloudfront_key_value_store"][0].Body.Attributes["name"]); n != KVSName(d.site) {
			t.Errorf("key value store %s, want %s", n, KVSName(d.site))
		}
	}
	if n := d.str(t, d.byType["aws_cloudfront_origin_access_control"][0].Body.Attributes["name"]); n != OACName(d.site) {
		t.Errorf("origin access control %s, want %s", n, OACName(d.site))
	}
	pol := d.str(t, d.byType["aws_s3_bucket_policy"][0].Body.Attributes["policy"])
	var doc struct{ Statement []any }
	if err := json.Unmarshal([]byte(pol), &doc); err != nil || len(doc.Statement) != 1 {
		t.Fatalf("policy %s: %v", pol, err)
	}
	if got, want := statementJSON(t, doc.Statement[0]), statementJSON(t, ReadStatement(d.site, fakeDistARN)); got != want {
		t.Errorf("bucket policy statement\n got %s\nwant %s", got, want)
	}
}

// checkFunctions checks the functions are setup's, with the generator's
// code, and returns the ARN each event type should be associated with.
func (d *tfDoc) checkFunctions(t *testing.T) map[string]string {
	t.Helper()
	fns := wantFunctions(t, d.site)
	arns := map[string]string{}
	for _, b := range d.byType["aws_cloudfront_function"] {
		name := d.str(t, b.Body.Attributes["name"])
		w, ok := fns[name]
		if !ok {
			t.Errorf("function %s is not one setup makes", name)
			continue
		}
		if code := d.str(t, b.Body.Attributes["code"]); code != w[0] {
			t.Errorf("function %s: its code is not what the generator makes:\n%s", name, code)
		}
		if d.str(t, b.Body.Attributes["runtime"]) != FunctionRuntime {
			t.Errorf("function %s: runtime", name)
		}
		if a, ok := b.Body.Attributes["key_value_store_associations"]; ok != (name == FunctionName(d.site) && d.kvs()) {
			t.Errorf("function %s: key_value_store_associations present %v", name, ok)
		} else if ok {
			v, diags := a.Expr.Value(d.ctx)
			if diags.HasErrors() || v.LengthInt() != 1 || v.Index(cty.NumberIntVal(0)).AsString() != fakeKVSARN {
				t.Errorf("function %s reads %#v", name, v)
			}
		}
		arns[w[1]] = fakeFunctionARN(name)
	}
	if len(arns) != len(fns) {
		t.Errorf("functions %v, want %v", arns, fns)
	}
	return arns
}

// checkDistribution checks the distribution's one origin, its function
// associations (against arns), error responses and lifecycle.
func (d *tfDoc) checkDistribution(t *testing.T, arns map[string]string) {
	t.Helper()
	dist := d.byType["aws_cloudfront_distribution"][0].Body
	got := map[string]string{}
	var origins int
	var gotErrs []errorSpec
	var ignore string
	for _, b := range dist.Blocks {
		switch b.Type {
		case "origin":
			origins++
			if _, ok := b.Body.Attributes["origin_path"]; ok {
				t.Errorf("the origin declares origin_path")
			}
			if d.str(t, b.Body.Attributes["domain_name"]) != fakeDomain || d.str(t, b.Body.Attributes["origin_access_control_id"]) != fakeOAC {
				t.Errorf("origin: not the bucket through the origin access control")
			}
		case "default_cache_behavior":
			for _, fa := range b.Body.Blocks {
				got[d.str(t, fa.Body.Attributes["event_type"])] = d.str(t, fa.Body.Attributes["function_arn"])
			}
		case "custom_error_response":
			num := func(name string) int64 {
				v, diags := b.Body.Attributes[name].Expr.Value(d.ctx)
				if diags.HasErrors() {
					t.Fatal(diags)
				}
				i, _ := v.AsBigFloat().Int64()
				return i
			}
			gotErrs = append(gotErrs, errorSpec{int32(num("error_code")), d.str(t, b.Body.Attributes["response_page_path"]), fmt.Sprint(num("response_code")), num("error_caching_min_ttl")})
		case "lifecycle":
			ignore = string(b.Body.Attributes["ignore_changes"].SrcRange.SliceBytes(d.raw))
		}
	}
	if origins != 1 {
		t.Errorf("%d origins", origins)
	}
	if !reflect.DeepEqual(got, arns) {
		t.Errorf("function associations %v, want %v", got, arns)
	}
	if !reflect.DeepEqual(gotErrs, wantErrorResponses(d.site)) {
		t.Errorf("custom error responses %v, want %v", gotErrs, wantErrorResponses(d.site))
	}
	// An origin-path site's live release is the origin path:
	// Terraform must leave the origin alone.
	if wantIgnore := !d.kvs(); (ignore != "") != wantIgnore || wantIgnore && !strings.Contains(ignore, "origin") {
		t.Errorf("lifecycle ignore_changes %q (origin-path: %v)", ignore, wantIgnore)
	}
}

// checkLabels checks the distribution's comment and tags, and the
// outputs.
func (d *tfDoc) checkLabels(t *testing.T) {
	t.Helper()
	dist := d.byType["aws_cloudfront_distribution"][0].Body
	if d.str(t, dist.Attributes["comment"]) != setupComment(d.site) {
		t.Errorf("comment")
	}
	tags, diags := dist.Attributes["tags"].Expr.Value(d.ctx)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	tj, _ := ctyjson.Marshal(tags, tags.Type())
	if want := fmt.Sprintf(`{"%s":"%s","%s":"%s"}`, TagInstall, InstallName(d.site), TagSite, d.site.Name); string(tj) != want {
		t.Errorf("tags %s, want %s", tj, want)
	}
	var outs []string
	for _, b := range d.body.Blocks {
		if b.Type == "output" {
			outs = append(outs, b.Labels[0]+"="+d.str(t, b.Body.Attributes["value"]))
		}
	}
	sort.Strings(outs)
	l := tfLabel(d.site.Name)
	want := []string{l + "_distribution_id=" + fakeDist, l + "_domain=d111.cloudfront.net"}
	if d.kvs() {
		want = append(want, l+"_kvs_arn="+fakeKVSARN)
	}
	sort.Strings(want)
	if !reflect.DeepEqual(outs, want) {
		t.Errorf("outputs %v, want %v", outs, want)
	}
}

func TestTerraformTemplate(t *testing.T) {
	for _, site := range templateSites() {
		t.Run(site.Name, func(t *testing.T) {
			d := parseTF(t, site)
			d.checkBlocks(t)
			d.checkReferences(t)
			d.checkResources(t)
			arns := d.checkFunctions(t)
			d.checkDistribution(t, arns)
			d.checkLabels(t)
		})
	}
}

func TestTerraformStrings(t *testing.T) {
	w := &tfWriter{label: "x"}
	for _, s := range []string{"plain", `quote " and \ backslash`, "${not} %{interpolated}", "line\nbreak\ttab", "é ✓"} {
		e, err := w.str(s)
		if err != nil {
			t.Fatal(err)
		}
		expr, diags := hclsyntax.ParseExpression([]byte(e), "", hcl.InitialPos)
		if diags.HasErrors() {
			t.Fatalf("%q as %s: %v", s, e, diags)
		}
		v, diags := expr.Value(nil)
		if diags.HasErrors() || v.AsString() != s {
			t.Errorf("%q as %s reads back %#v", s, e, v)
		}
	}
}
