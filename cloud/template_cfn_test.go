package cloud

import (
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/deploybot/deploybot/releases"
)

// cfnEval resolves the intrinsic functions the template uses against
// fake ids.
type cfnEval struct {
	t         *testing.T
	resources map[string]any
}

func (e *cfnEval) attr(id, attr string) string {
	r, ok := e.resources[id].(map[string]any)
	if !ok {
		e.t.Fatalf("reference to %s, which the template does not declare", id)
	}
	props := r["Properties"].(map[string]any)
	switch r["Type"].(string) + "." + attr {
	case "AWS::S3::Bucket.RegionalDomainName":
		return fakeDomain
	case "AWS::S3::Bucket.Ref":
		return props["BucketName"].(string)
	case "AWS::CloudFront::Distribution.Ref", "AWS::CloudFront::Distribution.Id":
		return fakeDist
	case "AWS::CloudFront::Distribution.DomainName":
		return "d111.cloudfront.net"
	case "AWS::CloudFront::OriginAccessControl.Id":
		return fakeOAC
	case "AWS::CloudFront::KeyValueStore.Id":
		return fakeKVSID
	case "AWS::CloudFront::KeyValueStore.Arn":
		return fakeKVSARN
	case "AWS::CloudFront::Function.FunctionARN":
		return fakeFunctionARN(props["Name"].(string))
	}
	e.t.Fatalf("no fake value for %s.%s", id, attr)
	return ""
}

func (e *cfnEval) ref(name string) string {
	switch name {
	case "AWS::Partition":
		return "aws"
	case "AWS::AccountId":
		return fakeAccount
	}
	return e.attr(name, "Ref")
}

var subVar = regexp.MustCompile(`\$\{([^}!]+)\}`)

func (e *cfnEval) eval(v any) any {
	switch t := v.(type) {
	case map[string]any:
		if len(t) == 1 {
			for k, arg := range t {
				switch k {
				case "Ref":
					return e.ref(arg.(string))
				case "Fn::GetAtt":
					a := arg.([]any)
					return e.attr(a[0].(string), a[1].(string))
				case "Fn::Join":
					a := arg.([]any)
					var parts []string
					for _, p := range a[1].([]any) {
						parts = append(parts, e.eval(p).(string))
					}
					return strings.Join(parts, a[0].(string))
				case "Fn::Sub":
					return subVar.ReplaceAllStringFunc(arg.(string), func(m string) string {
						name := subVar.FindStringSubmatch(m)[1]
						if id, attr, ok := strings.Cut(name, "."); ok {
							return e.attr(id, attr)
						}
						return e.ref(name)
					})
				}
				if strings.HasPrefix(k, "Fn::") {
					e.t.Fatalf("intrinsic %s not evaluated by the test", k)
				}
			}
		}
		out := map[string]any{}
		for k, x := range t {
			out[k] = e.eval(x)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, x := range t {
			out[i] = e.eval(x)
		}
		return out
	}
	return v
}

// cfnDoc is one site's CloudFormation template, parsed, with each
// resource's properties evaluated against fake ids, by type.
type cfnDoc struct {
	site   releases.Site
	doc    map[string]any
	ev     *cfnEval
	byType map[string][]map[string]any
}

func parseCFN(t *testing.T, site releases.Site) *cfnDoc {
	t.Helper()
	raw, err := Template(site, FormatCloudFormation)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("not JSON: %v", err)
	}
	res := doc["Resources"].(map[string]any)
	d := &cfnDoc{site: site, doc: doc, ev: &cfnEval{t: t, resources: res}, byType: map[string][]map[string]any{}}
	for _, r := range res {
		r := r.(map[string]any)
		d.byType[r["Type"].(string)] = append(d.byType[r["Type"].(string)], d.ev.eval(r["Properties"]).(map[string]any))
	}
	return d
}

// checkResources checks each resource is declared once, under setup's
// names, and that the policy is setup's statement, naming this
// distribution.
func (d *cfnDoc) checkResources(t *testing.T) {
	t.Helper()
	for _, typ := range []string{"AWS::S3::Bucket", "AWS::S3::BucketPolicy", "AWS::CloudFront::OriginAccessControl", "AWS::CloudFront::Distribution", "AWS::CloudFront::KeyValueStore"} {
		if len(d.byType[typ]) != 1 {
			t.Fatalf("%d resources of type %s, want 1", len(d.byType[typ]), typ)
		}
	}
	if b := d.byType["AWS::S3::Bucket"][0]; b["BucketName"] != d.site.Bucket {
		t.Errorf("bucket %v, want %s", b["BucketName"], d.site.Bucket)
	}
	if n := d.byType["AWS::CloudFront::OriginAccessControl"][0]["OriginAccessControlConfig"].(map[string]any)["Name"]; n != OACName(d.site) {
		t.Errorf("origin access control %v, want %s", n, OACName(d.site))
	}
	kvs := d.byType["AWS::CloudFront::KeyValueStore"][0]
	if kvs["Name"] != KVSName(d.site) {
		t.Errorf("key value store %v, want %s", kvs["Name"], KVSName(d.site))
	}
	if _, ok := kvs["ImportSource"]; ok {
		t.Errorf("the key value store declares its data (ImportSource)")
	}
	pol := d.byType["AWS::S3::BucketPolicy"][0]["PolicyDocument"].(map[string]any)
	want := ReadStatement(d.site, fakeDistARN)
	if got := statementJSON(t, pol["Statement"].([]any)[0]); got != statementJSON(t, want) {
		t.Errorf("bucket policy statement\n got %s\nwant %s", got, statementJSON(t, want))
	}
}

// checkFunctions checks the functions are setup's names with the
// generator's code, and returns the ARN each event type should be
// associated with.
func (d *cfnDoc) checkFunctions(t *testing.T) map[string]string {
	t.Helper()
	fns := wantFunctions(t, d.site)
	arns := map[string]string{}
	for _, f := range d.byType["AWS::CloudFront::Function"] {
		name := f["Name"].(string)
		w, ok := fns[name]
		if !ok {
			t.Errorf("function %s is not one setup makes", name)
			continue
		}
		if f["FunctionCode"] != w[0] {
			t.Errorf("function %s: its code is not what the generator makes", name)
		}
		if f["AutoPublish"] != true {
			t.Errorf("function %s is not published", name)
		}
		cfg := f["FunctionConfig"].(map[string]any)
		if cfg["Runtime"] != FunctionRuntime {
			t.Errorf("function %s: runtime %v", name, cfg["Runtime"])
		}
		if name == FunctionName(d.site) {
			if got := fmt.Sprint(cfg["KeyValueStoreAssociations"]); got != fmt.Sprint([]any{map[string]any{"KeyValueStoreARN": fakeKVSARN}}) {
				t.Errorf("function %s reads stores %s", name, got)
			}
		}
		arns[w[1]] = fakeFunctionARN(name)
	}
	if len(arns) != len(fns) {
		t.Errorf("functions %v, want %v", arns, fns)
	}
	return arns
}

// checkDistribution checks the distribution's one origin, its config,
// function associations (against arns), error responses and tags.
func (d *cfnDoc) checkDistribution(t *testing.T, arns map[string]string) {
	t.Helper()
	dist := d.byType["AWS::CloudFront::Distribution"][0]
	dc := dist["DistributionConfig"].(map[string]any)
	origins := dc["Origins"].([]any)
	if len(origins) != 1 {
		t.Fatalf("%d origins", len(origins))
	}
	o := origins[0].(map[string]any)
	if _, ok := o["OriginPath"]; ok {
		t.Errorf("the origin declares an origin path")
	}
	if o["DomainName"] != fakeDomain || o["OriginAccessControlId"] != fakeOAC {
		t.Errorf("origin %v: not the bucket through the origin access control", o)
	}
	if dc["Comment"] != setupComment(d.site) || dc["HttpVersion"] != "http2and3" || dc["IPV6Enabled"] != true {
		t.Errorf("distribution config %v", dc)
	}
	beh := dc["DefaultCacheBehavior"].(map[string]any)
	got := map[string]string{}
	if fa, ok := beh["FunctionAssociations"].([]any); ok {
		for _, a := range fa {
			a := a.(map[string]any)
			got[a["EventType"].(string)] = a["FunctionARN"].(string)
		}
	}
	if !reflect.DeepEqual(got, arns) {
		t.Errorf("function associations %v, want %v", got, arns)
	}
	var errs []errorSpec
	if ers, ok := dc["CustomErrorResponses"].([]any); ok {
		for _, e := range ers {
			e := e.(map[string]any)
			errs = append(errs, errorSpec{int32(e["ErrorCode"].(float64)), e["ResponsePagePath"].(string), fmt.Sprint(e["ResponseCode"]), int64(e["ErrorCachingMinTTL"].(float64))})
		}
	}
	if !reflect.DeepEqual(errs, wantErrorResponses(d.site)) {
		t.Errorf("custom error responses %v, want %v", errs, wantErrorResponses(d.site))
	}
	tags := fmt.Sprint(dist["Tags"])
	if !strings.Contains(tags, TagInstall) || !strings.Contains(tags, InstallName(d.site)) {
		t.Errorf("tags %s", tags)
	}
}

func (d *cfnDoc) checkOutputs(t *testing.T) {
	t.Helper()
	outs := d.ev.eval(d.doc["Outputs"]).(map[string]any)
	for k, v := range map[string]string{"DistributionId": fakeDist, "KeyValueStoreArn": fakeKVSARN} {
		if o, ok := outs[k].(map[string]any); !ok || o["Value"] != v {
			t.Errorf("output %s: %v, want %s", k, outs[k], v)
		}
	}
}

func TestCloudFormationTemplate(t *testing.T) {
	for _, site := range templateSites() {
		if site.Strategy != StrategyKVS {
			continue
		}
		t.Run(site.Name, func(t *testing.T) {
			d := parseCFN(t, site)
			d.checkResources(t)
			arns := d.checkFunctions(t)
			d.checkDistribution(t, arns)
			d.checkOutputs(t)
		})
	}
}

func TestCloudFormationRefusesOriginPath(t *testing.T) {
	for _, site := range templateSites() {
		if site.Strategy == StrategyKVS {
			continue
		}
		_, err := Template(site, FormatCloudFormation)
		if releases.ErrorCode(err) != releases.EINVALID {
			t.Fatalf("site %s: %v, want a refusal", site.Name, err)
		}
		for _, want := range []string{"origin path", "strategy kvs", "--output terraform"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("the refusal does not say %q: %v", want, err)
			}
		}
	}
	if _, err := Template(templateSites()[0], "pulumi"); releases.ErrorCode(err) != releases.EINVALID {
		t.Errorf("unknown format: %v", err)
	}
}
