package packaging

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/deploybot/deploybot/config"
)

func read(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", p))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// There is no Docker engine here: check the Dockerfile builds the same
// binary as CI (static, trimmed) and runs it the way the chart expects.
func TestDockerfile(t *testing.T) {
	d := read(t, "Dockerfile")
	for _, want := range []string{
		"CGO_ENABLED=0 go build -trimpath -tags nostandin", "./cmd/deploybot", // the Makefile's build-image
		"-X github.com/deploybot/deploybot/cli.Version=${VERSION}", // what deploybot version prints
		"USER 65532:65532", `VOLUME ["/var/lib/deploybot"]`, `ENTRYPOINT ["/usr/local/bin/deploybot"]`, `CMD ["serve"]`,
	} {
		if !strings.Contains(d, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	if n := strings.Count(d, "\nFROM "); n != 2 {
		t.Errorf("want a two-stage build, got %d FROM lines", n)
	}
	if mk := read(t, "Makefile"); !strings.Contains(mk, "CGO_ENABLED=0 $(GO) build -trimpath -tags nostandin") {
		t.Error("the Makefile's build differs from the Dockerfile's")
	}
	if di := read(t, ".dockerignore"); !strings.Contains(di, ".git") {
		t.Error(".dockerignore does not keep .git out")
	}
}

// The image's build (-tags nostandin) carries no stand-in: no localaws,
// no JavaScript engine, no dev or localaws command; the default build
// (what `go run ./cmd/deploybot dev` uses) has them.
func TestImageBuildHasNoStandIn(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary twice")
	}
	dir := t.TempDir()
	build := func(name string, tags ...string) (deps, help string) {
		bin := filepath.Join(dir, name)
		args := append([]string{"build", "-trimpath"}, tags...)
		cmd := exec.Command("go", append(args, "-o", bin, "./cmd/deploybot")...)
		cmd.Dir = filepath.Join("..", "..")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %v: %v\n%s", tags, err, out)
		}
		m, err := exec.Command("go", "version", "-m", bin).Output()
		if err != nil {
			t.Fatal(err)
		}
		h, _ := exec.Command(bin, "help").Output()
		return string(m), string(h)
	}
	deps, help := build("image", "-tags", "nostandin")
	for _, bad := range []string{"github.com/dop251/goja", "github.com/deploybot/deploybot/localaws"} {
		if strings.Contains(deps, bad) {
			t.Errorf("the image's build links %s", bad)
		}
	}
	for _, cmd := range []string{"  dev ", "  localaws "} {
		if strings.Contains(help, cmd) {
			t.Errorf("the image's build offers %q", strings.TrimSpace(cmd))
		}
	}
	if !strings.Contains(help, "  serve ") {
		t.Fatalf("the image's build lacks serve:\n%s", help)
	}
	deps, help = build("default")
	if !strings.Contains(deps, "github.com/dop251/goja") || !strings.Contains(help, "  dev ") {
		t.Errorf("the default build lost the stand-in (dev needs it)")
	}
}

func helmPath(t *testing.T) string {
	if p := os.Getenv("HELM"); p != "" {
		return p
	}
	if p, err := exec.LookPath("helm"); err == nil {
		return p
	}
	out, _ := exec.Command("go", "env", "GOPATH").Output()
	p := filepath.Join(strings.TrimSpace(string(out)), "bin", "helm")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	msg := "helm not found: `make tools` installs it (go install helm.sh/helm/v3/cmd/helm@v3.22.0)"
	if os.Getenv("CI") != "" || os.Getenv("DEPLOYBOT_REQUIRE_HELM") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

func render(t *testing.T, helm string, args ...string) map[string]map[string]any {
	t.Helper()
	cmd := exec.Command(helm, append([]string{"template", "t", filepath.Join("..", "..", "charts", "deploybot")}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helm template: %v\n%s", err, stderr.String())
	}
	docs := map[string]map[string]any{}
	dec := yaml.NewDecoder(bytes.NewReader(out))
	for {
		var doc map[string]any
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if doc != nil {
			docs[doc["kind"].(string)] = doc
		}
	}
	return docs
}

func get(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, _ := v.(map[string]any)
			v = m[k]
		case int:
			s, _ := v.([]any)
			if k >= len(s) {
				return nil
			}
			v = s[k]
		}
	}
	return v
}

func TestHelmChart(t *testing.T) {
	helm := helmPath(t)
	if out, err := exec.Command(helm, "lint", "--strict", filepath.Join("..", "..", "charts", "deploybot")).CombinedOutput(); err != nil {
		t.Fatalf("helm lint --strict: %v\n%s", err, out)
	}
	docs := render(t, helm, "--set", `serviceAccount.annotations.eks\.amazonaws\.com/role-arn=arn:aws:iam::123456789012:role/deploybot`,
		"--set", "serviceMonitor.enabled=true")
	for _, kind := range []string{"Deployment", "ConfigMap", "Secret", "PersistentVolumeClaim", "Service", "ServiceAccount", "ServiceMonitor"} {
		if docs[kind] == nil {
			t.Fatalf("the chart renders no %s", kind)
		}
	}
	dep := docs["Deployment"]
	c := get(dep, "spec", "template", "spec", "containers", 0)
	checks := []struct {
		what string
		got  any
		want any
	}{
		{"replicas", get(dep, "spec", "replicas"), 1},
		{"strategy", get(dep, "spec", "strategy", "type"), "Recreate"},
		{"runAsNonRoot", get(dep, "spec", "template", "spec", "securityContext", "runAsNonRoot"), true},
		{"fsGroup", get(dep, "spec", "template", "spec", "securityContext", "fsGroup"), 65532},
		{"readOnlyRootFilesystem", get(c, "securityContext", "readOnlyRootFilesystem"), true},
		{"liveness", get(c, "livenessProbe", "httpGet", "path"), "/healthz"},
		{"readiness", get(c, "readinessProbe", "httpGet", "path"), "/readyz"},
		{"store mount", get(c, "volumeMounts", 0, "mountPath"), "/var/lib/deploybot"},
		{"secret env", get(c, "envFrom", 0, "secretRef", "name"), "t-deploybot"},
		{"IRSA", get(docs["ServiceAccount"], "metadata", "annotations", "eks.amazonaws.com/role-arn"), "arn:aws:iam::123456789012:role/deploybot"},
		{"service port", get(docs["Service"], "spec", "ports", 0, "port"), 8088},
		{"pvc access", get(docs["PersistentVolumeClaim"], "spec", "accessModes", 0), "ReadWriteOnce"},
		{"metrics path", get(docs["ServiceMonitor"], "spec", "endpoints", 0, "path"), "/metrics"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %v, want %v", c.what, c.got, c.want)
		}
	}
	// The ConfigMap's deploybot.yaml is a configuration serve accepts, with
	// the tokens coming from the Secret's environment variables.
	raw := get(docs["ConfigMap"], "data", "deploybot.yaml").(string)
	env := map[string]string{"SLACK_APP_TOKEN": "xapp-1", "SLACK_BOT_TOKEN": "xoxb-1", "DEPLOYBOT_API_TOKEN": "t", "DEPLOYBOT_HOOK_SECRET": "s"}
	cfg, err := config.Parse([]byte(raw), func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatalf("the chart's deploybot.yaml does not load: %v\n%s", err, raw)
	}
	if cfg.HTTP.Listen != "0.0.0.0:8088" || cfg.Store.Path != "/var/lib/deploybot/deploybot.db" || cfg.Slack.AppToken != "xapp-1" {
		t.Fatalf("config %+v", cfg)
	}
	for _, k := range []string{"SLACK_APP_TOKEN", "SLACK_BOT_TOKEN", "DEPLOYBOT_API_TOKEN", "DEPLOYBOT_HOOK_SECRET"} {
		if _, ok := get(docs["Secret"], "stringData", k).(string); !ok {
			t.Errorf("the Secret lacks %s", k)
		}
	}
	// With an existing Secret the chart makes none and points at it.
	docs = render(t, helm, "--set", "existingSecret=my-tokens")
	if docs["Secret"] != nil || docs["ServiceMonitor"] != nil {
		t.Fatal("existingSecret still renders a Secret, or the ServiceMonitor is on by default")
	}
	if got := get(docs["Deployment"], "spec", "template", "spec", "containers", 0, "envFrom", 0, "secretRef", "name"); got != "my-tokens" {
		t.Fatalf("secretRef %v", got)
	}
}
