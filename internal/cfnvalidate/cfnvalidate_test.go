package cfnvalidate

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/deploybot/deploybot/cloud"
	"github.com/deploybot/deploybot/releases"
)

// required reports whether a missing node or npm fails the test rather
// than skipping it: under make (DEPLOYBOT_REQUIRE_NODE) and in CI.
func required() bool {
	return os.Getenv("CI") != "" || os.Getenv("DEPLOYBOT_REQUIRE_NODE") != ""
}

func tool(t *testing.T, env, name string) string {
	t.Helper()
	if p := os.Getenv(env); p != "" {
		return p
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	msg := name + " not found: the CloudFormation template is validated with Node.js (20 or later) and npm"
	if required() {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// install runs npm ci when node_modules does not match package-lock.json
// (a stamp of the lock's hash says it does).
func install(t *testing.T, npm string) {
	t.Helper()
	lock, err := os.ReadFile("package-lock.json")
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(lock)
	want := hex.EncodeToString(sum[:])
	stamp := filepath.Join("node_modules", ".deploybot-lock-sha256")
	if have, err := os.ReadFile(stamp); err == nil && strings.TrimSpace(string(have)) == want {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("npm ci in internal/cfnvalidate: %v\n%s", err, out.String())
	}
	if err := os.WriteFile(stamp, []byte(want+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// validate runs validate.js on the templates; it returns its output and
// whether it found them valid.
func validate(t *testing.T, node string, files ...string) (string, bool) {
	t.Helper()
	cmd := exec.Command(node, append([]string{"validate.js"}, files...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok && ee.ExitCode() == 1 {
			return string(out), false
		}
		t.Fatalf("node validate.js: %v\n%s", err, out)
	}
	return string(out), true
}

// kvsSites are the shapes of kvs site whose templates must validate
// (CloudFormation refuses origin-path sites).
func kvsSites() []releases.Site {
	return []releases.Site{
		{Name: "www", Install: "prod", Bucket: "acme-sites", Prefix: "www/", Strategy: cloud.StrategyKVS,
			Routing: releases.Routing{Fallback: "index.html", NotFound: "404.html"}},
		{Name: "docs", Bucket: "acme-docs", Strategy: cloud.StrategyKVS, NoReleaseHeader: true},
		{Name: "api-docs", Install: "staging", Bucket: "acme-docs", Prefix: "api/", Strategy: cloud.StrategyKVS,
			Routing: releases.Routing{Index: "index.html", NotFound: "errors/404.html"}},
	}
}

// TestCloudFormationTemplatesValidate checks every resource type,
// property name (at every depth), required property, property type and
// reference of the generated templates against the CloudFormation
// registry schemas, as the AWS CDK's service spec database carries them;
// and that the validator catches each kind of mistake.
func TestCloudFormationTemplatesValidate(t *testing.T) {
	node := tool(t, "NODE", "node")
	npm := tool(t, "NPM", "npm")
	install(t, npm)
	dir := t.TempDir()
	var files []string
	for _, s := range kvsSites() {
		raw, err := cloud.Template(s, cloud.FormatCloudFormation)
		if err != nil {
			t.Fatal(err)
		}
		f := filepath.Join(dir, s.Name+".json")
		if err := os.WriteFile(f, raw, 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	if out, ok := validate(t, node, files...); !ok {
		t.Fatalf("the templates are not valid CloudFormation:\n%s", out)
	}

	// Each mistake, made in a valid template, is caught.
	base, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		change func(res map[string]any)
		want   string
	}{
		{"unknown resource type", func(res map[string]any) { res["Bucket"].(map[string]any)["Type"] = "AWS::S3::Buckets" }, "unknown resource type"},
		{"unknown property", func(res map[string]any) {
			props(res, "Distribution")["DistributionConfig"].(map[string]any)["OriginPath"] = "/www/v1"
		}, "has no property OriginPath"},
		{"unknown nested property", func(res map[string]any) {
			origin(res)["OriginPath "] = "/x"
		}, "has no property OriginPath "},
		{"missing required property", func(res map[string]any) { delete(props(res, "Function"), "FunctionCode") }, "required property FunctionCode"},
		{"missing required nested property", func(res map[string]any) {
			delete(props(res, "Distribution")["DistributionConfig"].(map[string]any), "Enabled")
		}, "required property Enabled"},
		{"string for an integer", func(res map[string]any) {
			props(res, "Distribution")["DistributionConfig"].(map[string]any)["CustomErrorResponses"].([]any)[0].(map[string]any)["ResponseCode"] = "404"
		}, "is not an integer"},
		{"string for a boolean", func(res map[string]any) { props(res, "Function")["AutoPublish"] = "true" }, "is not a boolean"},
		{"object for a list", func(res map[string]any) {
			props(res, "Distribution")["DistributionConfig"].(map[string]any)["Origins"] = origin(res)
		}, "is not a list"},
		{"attribute the type lacks", func(res map[string]any) {
			props(res, "BucketPolicy")["PolicyDocument"].(map[string]any)["Statement"].([]any)[0].(map[string]any)["Condition"] =
				map[string]any{"StringEquals": map[string]any{"AWS:SourceArn": map[string]any{"Fn::GetAtt": []any{"Distribution", "Arn"}}}}
		}, "has no attribute \"Arn\""},
		{"reference to nothing", func(res map[string]any) { props(res, "BucketPolicy")["Bucket"] = map[string]any{"Ref": "Bukket"} }, "neither a resource"},
		{"Fn::Sub naming nothing", func(res map[string]any) {
			props(res, "BucketPolicy")["PolicyDocument"].(map[string]any)["Statement"].([]any)[0].(map[string]any)["Condition"] =
				map[string]any{"StringEquals": map[string]any{"AWS:SourceArn": map[string]any{"Fn::Sub": "arn:${AWS::Partition}:cloudfront::${AWS::AccountId}:distribution/${Distro}"}}}
		}, "\"Distro\""},
		{"circular dependency", func(res map[string]any) { res["OriginAccessControl"].(map[string]any)["DependsOn"] = "Distribution" }, "circular dependency"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var doc map[string]any
			if err := json.Unmarshal(base, &doc); err != nil {
				t.Fatal(err)
			}
			c.change(doc["Resources"].(map[string]any))
			raw, _ := json.Marshal(doc)
			f := filepath.Join(dir, "broken.json")
			if err := os.WriteFile(f, raw, 0o644); err != nil {
				t.Fatal(err)
			}
			out, ok := validate(t, node, f)
			if ok || !strings.Contains(out, c.want) {
				t.Errorf("valid %v, want a problem %q:\n%s", ok, c.want, out)
			}
		})
	}
}

func props(res map[string]any, id string) map[string]any {
	return res[id].(map[string]any)["Properties"].(map[string]any)
}

func origin(res map[string]any) map[string]any {
	return props(res, "Distribution")["DistributionConfig"].(map[string]any)["Origins"].([]any)[0].(map[string]any)
}
