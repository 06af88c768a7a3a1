package cloud_test

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/deploybot/deploybot/cloud"
	"github.com/deploybot/deploybot/releases"
)

// docs/aws.md shows what iam-policy prints for its example site; a change
// to the policy that the page does not show fails here.
func TestDocsShowThePolicies(t *testing.T) {
	raw, err := os.ReadFile("../docs/aws.md")
	if err != nil {
		t.Fatal(err)
	}
	site := releases.Site{Name: "www", Install: "prod", Bucket: "example-site", Prefix: "www/", DistributionID: "E2EXAMPLE"}
	for _, role := range []cloud.Role{cloud.RoleBot, cloud.RoleCI} {
		marker := "<!-- iam-policy --role " + string(role) + " -->\n```json\n"
		_, rest, ok := strings.Cut(string(raw), marker)
		if !ok {
			t.Fatalf("docs/aws.md has no %q block", marker)
		}
		shown, _, _ := strings.Cut(rest, "```")
		doc, err := cloud.Policy(role, []releases.Site{site}, "123456789012")
		if err != nil {
			t.Fatal(err)
		}
		want, _ := json.MarshalIndent(doc, "", "  ")
		if strings.TrimSpace(shown) != string(want) {
			t.Errorf("docs/aws.md shows another %s policy than iam-policy prints; replace it with:\n%s", role, want)
		}
	}
}

// docs/aws.md shows the bucket policy statement that keeps releases
// written once, as WriteOnceStatement makes it for its example.
func TestDocsShowTheWriteOnceStatement(t *testing.T) {
	raw, err := os.ReadFile("../docs/aws.md")
	if err != nil {
		t.Fatal(err)
	}
	marker := "<!-- bucket-policy write-once -->\n```json\n"
	_, rest, ok := strings.Cut(string(raw), marker)
	if !ok {
		t.Fatalf("docs/aws.md has no %q block", marker)
	}
	shown, _, _ := strings.Cut(rest, "```")
	site := releases.Site{Name: "www", Bucket: "example-site", Prefix: "www/", DistributionID: "E2EXAMPLE"}
	want, _ := json.MarshalIndent(cloud.WriteOnceStatement("example-site", []releases.Site{site}, "arn:aws:iam::123456789012:role/deploybot"), "", "  ")
	if strings.TrimSpace(shown) != string(want) {
		t.Errorf("docs/aws.md shows another write-once statement than WriteOnceStatement makes; replace it with:\n%s", want)
	}
}

func TestPolicyOfSitesSharingABucket(t *testing.T) {
	sites := []releases.Site{
		{Name: "www", Bucket: "shared", Prefix: "www/", DistributionID: "E1"},
		{Name: "root", Bucket: "own", Prefix: "", DistributionID: "E2", KVSARN: "arn:aws-cn:cloudfront::123456789012:key-value-store/k"},
	}
	doc, err := cloud.Policy(cloud.RoleBot, sites, "")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(doc)
	for _, want := range []string{`"arn:aws-cn:s3:::own/*"`, `"arn:aws-cn:s3:::shared/www/*"`, `"arn:aws-cn:cloudfront::*:distribution/E1"`,
		`"arn:aws-cn:cloudfront::123456789012:key-value-store/k"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("policy lacks %s:\n%s", want, b)
		}
	}
	// The bucket of a site with no prefix is listed without a condition
	// (its listings have no prefix); the other keeps its s3:prefix one.
	for _, st := range doc.Statement {
		if st.Action[0] == "s3:ListBucket" && strings.HasSuffix(st.Resource[0], ":::own") && st.Condition != nil {
			t.Errorf("the empty-prefix bucket's listing has a condition: %+v", st)
		}
		if st.Action[0] == "s3:ListBucket" && strings.HasSuffix(st.Resource[0], ":::shared") && st.Condition == nil {
			t.Errorf("the shared bucket's listing has no prefix condition: %+v", st)
		}
	}
	if _, err := cloud.Policy("admin", sites, ""); err == nil {
		t.Error("an unknown role was accepted")
	}
}

// Every .deploybot/ folder or key that deploybot's code names is either
// one CI writes (manifests, created only; latest.json) or one the CI
// policy denies it outright (the bot's): an IAM resource cannot say
// "every key but these", so a new folder must be sorted into one list or
// the other, here, before CI can write it.
func TestCIPolicyCoversEveryDeploybotFolder(t *testing.T) {
	known := map[string]string{}
	for _, k := range cloud.CIWritableDeploybotKeys {
		known[k] = "ci"
	}
	for _, k := range cloud.BotOnlyDeploybotFolders() {
		known[k] = "bot"
	}
	named := regexp.MustCompile(`\.deploybot/([^/"` + "`" + `]+/?)`)
	found := map[string]bool{}
	fset := token.NewFileSet()
	err := filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			lit, ok := n.(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				return true
			}
			for _, m := range named.FindAllStringSubmatch(lit.Value, -1) {
				found[m[1]] = true
				if known[m[1]] == "" {
					t.Errorf("%s: %s names .deploybot/%s, which the CI policy neither lets CI write nor denies it (cloud.CIWritableDeploybotKeys, botOnlyPrefixes)",
						fset.Position(lit.Pos()), lit.Value, m[1])
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for k := range known {
		if !found[k] {
			t.Errorf(".deploybot/%s is in the CI policy's lists but no code names it", k)
		}
	}
}
