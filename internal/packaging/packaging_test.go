package packaging

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/parser"

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
		// serve listens outside the container whatever the config says,
		// on the port the image exposes.
		"ENV DEPLOYBOT_LISTEN=0.0.0.0:8088", "EXPOSE 8088",
		// The volume's directory is in the image, the nonroot user's, so
		// a new Docker volume there is writable by serve (Docker fills
		// it from the image, owner included).
		"--chown=65532:65532 /home/nonroot /var/lib/deploybot",
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

// template runs helm template on the chart; a render the chart refuses
// (its fail) is an error carrying helm's message.
func template(helm string, args ...string) ([]byte, error) {
	cmd := exec.Command(helm, append([]string{"template", "t", filepath.Join("..", "..", "charts", "deploybot")}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("helm template %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return out, nil
}

func render(t *testing.T, helm string, args ...string) map[string]map[string]any {
	t.Helper()
	out, err := template(helm, args...)
	if err != nil {
		t.Fatal(err)
	}
	f, err := parser.ParseBytes(out, 0)
	if err != nil {
		t.Fatal(err)
	}
	// helm starts every manifest with ---: a document the parser dropped
	// would be a kind the checks below miss.
	if n := strings.Count("\n"+string(out), "\n---"); len(f.Docs) != n {
		t.Fatalf("%d documents read of %d rendered", len(f.Docs), n)
	}
	docs := map[string]map[string]any{}
	for _, d := range f.Docs {
		var doc map[string]any
		if d.Body == nil {
			continue
		}
		if err := yaml.NodeToValue(d.Body, &doc); err != nil {
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

// number is v as an int when it is a whole number the YAML decoder read
// as int64 or uint64, else v.
func number(v any) any {
	switch n := v.(type) {
	case int64:
		return int(n)
	case uint64:
		return int(n)
	}
	return v
}

// volumeNamed is the pod's volume, or the container's mount, called name.
func volumeNamed(list any, name string) map[string]any {
	s, _ := list.([]any)
	for _, v := range s {
		if m, _ := v.(map[string]any); m["name"] == name {
			return m
		}
	}
	return nil
}

func TestHelmChart(t *testing.T) {
	helm := helmPath(t)
	for _, set := range [][]string{nil, {"--set", "persistence.enabled=true", "--set", "replicaCount=1"},
		{"--set", "hookIngress.enabled=true", "--set", "hookIngress.host=h.example.com", "--set", "hookIngress.tls[0].secretName=s"}} {
		args := append([]string{"lint", "--strict", filepath.Join("..", "..", "charts", "deploybot")}, set...)
		if out, err := exec.Command(helm, args...).CombinedOutput(); err != nil {
			t.Fatalf("helm lint --strict %v: %v\n%s", set, err, out)
		}
	}
	docs := renderDefault(t, helm)
	for _, kind := range []string{"Deployment", "ConfigMap", "Secret", "Service", "ServiceAccount", "ServiceMonitor", "PodDisruptionBudget"} {
		if docs[kind] == nil {
			t.Fatalf("the chart renders no %s", kind)
		}
	}
	// The truth is in the bucket: by default each replica's store is an
	// emptyDir (a cache rebuilt from it), and no volume is claimed.
	if docs["PersistentVolumeClaim"] != nil {
		t.Error("the chart claims a volume by default")
	}
	dep := docs["Deployment"]
	pod := get(dep, "spec", "template", "spec")
	c := get(pod, "containers", 0)
	podLabels := get(dep, "spec", "template", "metadata", "labels")
	checks := []struct {
		what string
		got  any
		want any
	}{
		{"replicas", get(dep, "spec", "replicas"), 2},
		{"strategy", get(dep, "spec", "strategy", "type"), "RollingUpdate"},
		{"maxUnavailable", get(dep, "spec", "strategy", "rollingUpdate", "maxUnavailable"), 0},
		{"maxSurge", get(dep, "spec", "strategy", "rollingUpdate", "maxSurge"), 1},
		{"runAsNonRoot", get(pod, "securityContext", "runAsNonRoot"), true},
		{"fsGroup", get(pod, "securityContext", "fsGroup"), 65532},
		{"readOnlyRootFilesystem", get(c, "securityContext", "readOnlyRootFilesystem"), true},
		// Liveness is the process answering; readiness is /readyz, which
		// fails only when the hook and the API cannot be served (Slack
		// degrades it: server.ReadyCheck.Degrades).
		{"liveness", get(c, "livenessProbe", "httpGet", "path"), "/healthz"},
		{"startup", get(c, "startupProbe", "httpGet", "path"), "/healthz"},
		{"readiness", get(c, "readinessProbe", "httpGet", "path"), "/readyz"},
		{"store volume", get(volumeNamed(get(pod, "volumes"), "store"), "emptyDir", "sizeLimit"), "1Gi"},
		{"store claim", get(volumeNamed(get(pod, "volumes"), "store"), "persistentVolumeClaim"), nil},
		{"secret env", get(c, "envFrom", 0, "secretRef", "name"), "t-deploybot"},
		// serve listens where the probes and the Service look, whatever
		// config.http.listen says.
		{"listen env", get(c, "env", 0, "name"), "DEPLOYBOT_LISTEN"},
		{"listen address", get(c, "env", 0, "value"), "0.0.0.0:8088"},
		{"container port", get(c, "ports", 0, "containerPort"), 8088},
		{"IRSA", get(docs["ServiceAccount"], "metadata", "annotations", "eks.amazonaws.com/role-arn"), "arn:aws:iam::123456789012:role/deploybot"},
		{"service port", get(docs["Service"], "spec", "ports", 0, "port"), 8088},
		{"metrics path", get(docs["ServiceMonitor"], "spec", "endpoints", 0, "path"), "/metrics"},
		{"pdb minAvailable", get(docs["PodDisruptionBudget"], "spec", "minAvailable"), 1},
		// Spread over nodes, softly: a one-node cluster still schedules both.
		{"spread key", get(pod, "topologySpreadConstraints", 0, "topologyKey"), "kubernetes.io/hostname"},
		{"spread soft", get(pod, "topologySpreadConstraints", 0, "whenUnsatisfiable"), "ScheduleAnyway"},
	}
	for _, c := range checks {
		if number(c.got) != c.want {
			t.Errorf("%s: got %v, want %v", c.what, c.got, c.want)
		}
	}
	for what, sel := range map[string]any{
		"the PodDisruptionBudget": get(docs["PodDisruptionBudget"], "spec", "selector", "matchLabels"),
		"the spread":              get(pod, "topologySpreadConstraints", 0, "labelSelector", "matchLabels"),
	} {
		if sel == nil || !reflect.DeepEqual(sel, podLabels) {
			t.Errorf("%s selects %v, the pods are labelled %v", what, sel, podLabels)
		}
	}
}

// renderDefault renders the chart as TestHelmChart and
// TestHelmChartConfigAndSecret look at it: the defaults, with an IRSA role
// and the ServiceMonitor on.
func renderDefault(t *testing.T, helm string) map[string]map[string]any {
	t.Helper()
	return render(t, helm, "--set", `serviceAccount.annotations.eks\.amazonaws\.com/role-arn=arn:aws:iam::123456789012:role/deploybot`,
		"--set", "serviceMonitor.enabled=true")
}

func TestHelmChartConfigAndSecret(t *testing.T) {
	helm := helmPath(t)
	docs := renderDefault(t, helm)
	c := get(docs["Deployment"], "spec", "template", "spec", "containers", 0)
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
	// The store's volume is mounted where serve opens the store.
	if got := get(volumeNamed(get(c, "volumeMounts"), "store"), "mountPath"); got != path.Dir(cfg.Store.Path) {
		t.Errorf("store mount: got %v, want %s (the directory of store.path)", got, path.Dir(cfg.Store.Path))
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

// persistence.enabled keeps the old single pod: a ReadWriteOnce claim
// (or an existing one), strategy Recreate, no PodDisruptionBudget; with
// more than one replica the chart refuses to render, as the volume and
// bbolt's file hold one pod.
func TestHelmChartPersistence(t *testing.T) {
	helm := helmPath(t)
	docs := render(t, helm, "--set", "persistence.enabled=true", "--set", "replicaCount=1")
	pod := get(docs["Deployment"], "spec", "template", "spec")
	store := volumeNamed(get(pod, "volumes"), "store")
	checks := []struct {
		what string
		got  any
		want any
	}{
		{"replicas", get(docs["Deployment"], "spec", "replicas"), 1},
		{"strategy", get(docs["Deployment"], "spec", "strategy", "type"), "Recreate"},
		{"pvc access", get(docs["PersistentVolumeClaim"], "spec", "accessModes", 0), "ReadWriteOnce"},
		{"pvc size", get(docs["PersistentVolumeClaim"], "spec", "resources", "requests", "storage"), "1Gi"},
		{"store claim", get(store, "persistentVolumeClaim", "claimName"), "t-deploybot"},
		{"store emptyDir", get(store, "emptyDir"), nil},
		{"store mount", get(volumeNamed(get(pod, "containers", 0, "volumeMounts"), "store"), "mountPath"), "/var/lib/deploybot"},
	}
	for _, c := range checks {
		if number(c.got) != c.want {
			t.Errorf("%s: got %v, want %v", c.what, c.got, c.want)
		}
	}
	if docs["PodDisruptionBudget"] != nil {
		t.Error("one replica renders a PodDisruptionBudget")
	}

	docs = render(t, helm, "--set", "persistence.enabled=true", "--set", "replicaCount=1", "--set", "persistence.existingClaim=mine")
	if docs["PersistentVolumeClaim"] != nil {
		t.Error("existingClaim still renders a PersistentVolumeClaim")
	}
	if got := get(volumeNamed(get(docs["Deployment"], "spec", "template", "spec", "volumes"), "store"), "persistentVolumeClaim", "claimName"); got != "mine" {
		t.Errorf("existingClaim: claimName %v", got)
	}

	_, err := template(helm, "--set", "persistence.enabled=true", "--set", "replicaCount=2")
	if err == nil || !strings.Contains(err.Error(), "persistence.enabled=true keeps the store on one ReadWriteOnce volume, which only one pod can use, but replicaCount is 2") {
		t.Fatalf("persistence with two replicas: want the chart's refusal, got %v", err)
	}
}

// Without persistence, one replica renders no PodDisruptionBudget (it
// would block every drain), and the budget can be turned off; the store
// is mounted at store.path's directory wherever that is.
func TestHelmChartReplicasAndStorePath(t *testing.T) {
	helm := helmPath(t)
	if docs := render(t, helm, "--set", "replicaCount=1"); docs["PodDisruptionBudget"] != nil {
		t.Error("one replica renders a PodDisruptionBudget")
	}
	if docs := render(t, helm, "--set", "podDisruptionBudget.enabled=false"); docs["PodDisruptionBudget"] != nil {
		t.Error("podDisruptionBudget.enabled=false still renders one")
	}
	docs := render(t, helm, "--set", "config.store.path=/data/deploybot/bot.db")
	if got := get(volumeNamed(get(docs["Deployment"], "spec", "template", "spec", "containers", 0, "volumeMounts"), "store"), "mountPath"); got != "/data/deploybot" {
		t.Errorf("store mount for /data/deploybot/bot.db: %v", got)
	}
	if _, err := template(helm, "--set", "config.store.path=deploybot.db"); err == nil || !strings.Contains(err.Error(), "config.store.path must be a file in a directory of its own") {
		t.Errorf("a relative store.path: want the chart's refusal, got %v", err)
	}
}

// service.port is the one knob: serve listens there (DEPLOYBOT_LISTEN
// overrides config.http.listen), and the probes and the Service use it.
func TestHelmChartListensOnServicePort(t *testing.T) {
	helm := helmPath(t)
	docs := render(t, helm, "--set", "service.port=9000", "--set", "config.http.listen=127.0.0.1:1234")
	c := get(docs["Deployment"], "spec", "template", "spec", "containers", 0)
	if got := get(c, "env", 0, "value"); got != "0.0.0.0:9000" {
		t.Errorf("DEPLOYBOT_LISTEN %v, want 0.0.0.0:9000", got)
	}
	if got := number(get(c, "ports", 0, "containerPort")); got != 9000 {
		t.Errorf("containerPort %v", got)
	}
	if got := number(get(docs["Service"], "spec", "ports", 0, "port")); got != 9000 {
		t.Errorf("service port %v", got)
	}
}

// hookIngress exposes the CI hook alone to CI outside the cluster: off by
// default; when on, one rule with one path, /hooks/release matched
// exactly, to the Service's http port, so the API, /metrics and the
// backup endpoint stay inside the cluster.
func TestHelmChartHookIngress(t *testing.T) {
	helm := helmPath(t)
	if docs := render(t, helm); docs["Ingress"] != nil {
		t.Fatal("the chart renders an Ingress by default")
	}
	docs := render(t, helm, "--set", "hookIngress.enabled=true", "--set", "hookIngress.host=deploybot-hook.example.com",
		"--set", "hookIngress.className=nginx", "--set", `hookIngress.annotations.cert-manager\.io/cluster-issuer=letsencrypt`)
	ing := docs["Ingress"]
	if ing == nil {
		t.Fatal("hookIngress.enabled=true renders no Ingress")
	}
	rules, _ := get(ing, "spec", "rules").([]any)
	if len(rules) != 1 {
		t.Fatalf("want exactly one rule, got %v", get(ing, "spec", "rules"))
	}
	paths, _ := get(rules[0], "http", "paths").([]any)
	if len(paths) != 1 {
		t.Fatalf("want exactly one path, got %v", get(rules[0], "http", "paths"))
	}
	checks := []struct {
		what string
		got  any
		want any
	}{
		{"path", get(paths[0], "path"), "/hooks/release"},
		{"pathType", get(paths[0], "pathType"), "Exact"},
		{"host", get(rules[0], "host"), "deploybot-hook.example.com"},
		{"backend service", get(paths[0], "backend", "service", "name"), get(docs["Service"], "metadata", "name")},
		{"backend port", get(paths[0], "backend", "service", "port", "name"), get(docs["Service"], "spec", "ports", 0, "name")},
		{"class", get(ing, "spec", "ingressClassName"), "nginx"},
		{"annotation", get(ing, "metadata", "annotations", "cert-manager.io/cluster-issuer"), "letsencrypt"},
		{"tls", get(ing, "spec", "tls"), nil},
		{"no default backend", get(ing, "spec", "defaultBackend"), nil},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %v, want %v", c.what, c.got, c.want)
		}
	}

	// TLS as given, its hosts defaulting to the rule's host.
	docs = render(t, helm, "--set", "hookIngress.enabled=true", "--set", "hookIngress.host=deploybot-hook.example.com",
		"--set", "hookIngress.tls[0].secretName=deploybot-hook-tls")
	tls := get(docs["Ingress"], "spec", "tls")
	if got := get(tls, 0, "secretName"); got != "deploybot-hook-tls" {
		t.Errorf("tls secretName %v", got)
	}
	if got := get(tls, 0, "hosts"); !reflect.DeepEqual(got, []any{"deploybot-hook.example.com"}) {
		t.Errorf("tls hosts %v, want [deploybot-hook.example.com]", got)
	}
	docs = render(t, helm, "--set", "hookIngress.enabled=true", "--set", "hookIngress.host=a.example.com",
		"--set", "hookIngress.tls[0].secretName=s", "--set", "hookIngress.tls[0].hosts[0]=b.example.com")
	if got := get(docs["Ingress"], "spec", "tls", 0, "hosts"); !reflect.DeepEqual(got, []any{"b.example.com"}) {
		t.Errorf("tls hosts given: %v", got)
	}
	if _, err := template(helm, "--set", "hookIngress.enabled=true", "--set", "hookIngress.tls[0].secretName=s"); err == nil ||
		!strings.Contains(err.Error(), "hookIngress.tls: each entry needs hosts when hookIngress.host is empty") {
		t.Errorf("TLS without a host: want the chart's refusal, got %v", err)
	}
	// Without a host the rule matches any host, still one path.
	docs = render(t, helm, "--set", "hookIngress.enabled=true")
	if got := get(docs["Ingress"], "spec", "rules", 0, "host"); got != nil {
		t.Errorf("host %v without hookIngress.host", got)
	}
	if got := get(docs["Ingress"], "spec", "rules", 0, "http", "paths", 0, "path"); got != "/hooks/release" {
		t.Errorf("path %v", got)
	}
}
