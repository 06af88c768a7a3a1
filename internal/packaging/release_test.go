package packaging

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"
)

// goreleaser is the part of .goreleaser.yaml these tests hold to the
// Dockerfile, the Makefile and the chart.
type goreleaser struct {
	Builds []struct {
		ID      string   `yaml:"id"`
		Main    string   `yaml:"main"`
		Binary  string   `yaml:"binary"`
		Env     []string `yaml:"env"`
		Flags   []string `yaml:"flags"`
		Tags    []string `yaml:"tags"`
		Ldflags []string `yaml:"ldflags"`
		Goos    []string `yaml:"goos"`
		Goarch  []string `yaml:"goarch"`
	} `yaml:"builds"`
	Archives []struct {
		IDs []string `yaml:"ids"`
	} `yaml:"archives"`
	Checksum struct {
		NameTemplate string `yaml:"name_template"`
	} `yaml:"checksum"`
	Dockers []struct {
		IDs        []string `yaml:"ids"`
		Dockerfile string   `yaml:"dockerfile"`
		Images     []string `yaml:"images"`
		Tags       []string `yaml:"tags"`
		Platforms  []string `yaml:"platforms"`
	} `yaml:"dockers_v2"`
}

func readYAML(t *testing.T, p string, v any) {
	t.Helper()
	if err := yaml.Unmarshal([]byte(read(t, p)), v); err != nil {
		t.Fatalf("%s: %v", p, err)
	}
}

// chartImage is the chart's image.repository, image.tag and appVersion.
func chartImage(t *testing.T) (repo, tag, appVersion string) {
	t.Helper()
	var values struct {
		Image struct {
			Repository string `yaml:"repository"`
			Tag        string `yaml:"tag"`
		} `yaml:"image"`
	}
	readYAML(t, "charts/deploybot/values.yaml", &values)
	var chart struct {
		AppVersion string `yaml:"appVersion"`
	}
	readYAML(t, "charts/deploybot/Chart.yaml", &chart)
	return values.Image.Repository, values.Image.Tag, chart.AppVersion
}

// What a tag publishes (.goreleaser.yaml) is what the chart pulls and what
// the Dockerfile builds: the image's binary with -tags nostandin, static,
// trimmed, the version linked in, for amd64 and arm64, pushed as the
// chart's image.repository with the version (without its v) as the tag,
// which is what the chart's tag defaults to (its appVersion).
func TestReleaseConfigMatchesDockerfileAndChart(t *testing.T) {
	var g goreleaser
	readYAML(t, ".goreleaser.yaml", &g)
	builds := map[string]int{}
	for i, b := range g.Builds {
		builds[b.ID] = i
	}
	dockerfile := read(t, "Dockerfile")
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "-tags nostandin", `-ldflags="-s -w -X github.com/deploybot/deploybot/cli.Version=`} {
		if !strings.Contains(dockerfile, want) {
			t.Fatalf("the Dockerfile's build lacks %s: update this test and .goreleaser.yaml with it", want)
		}
	}
	for _, id := range []string{"deploybot", "image"} {
		i, ok := builds[id]
		if !ok {
			t.Fatalf(".goreleaser.yaml has no build %q", id)
		}
		b := g.Builds[i]
		if b.Main != "./cmd/deploybot" || b.Binary != "deploybot" {
			t.Errorf("build %s: main %q binary %q", id, b.Main, b.Binary)
		}
		if !slices.Contains(b.Env, "CGO_ENABLED=0") || !slices.Contains(b.Flags, "-trimpath") {
			t.Errorf("build %s: not static and trimmed (env %v, flags %v)", id, b.Env, b.Flags)
		}
		if len(b.Ldflags) != 1 || !strings.HasPrefix(b.Ldflags[0], "-s -w -X github.com/deploybot/deploybot/cli.Version=v{{ .Version }}") {
			t.Errorf("build %s: ldflags %v do not link the version as the Dockerfile does", id, b.Ldflags)
		}
		if !slices.Equal(b.Goarch, []string{"amd64", "arm64"}) {
			t.Errorf("build %s: goarch %v", id, b.Goarch)
		}
	}
	full, image := g.Builds[builds["deploybot"]], g.Builds[builds["image"]]
	// The downloads are the whole program (dev runs the demo on a laptop);
	// the image's binary is built as the Dockerfile builds it.
	if !slices.Equal(full.Goos, []string{"linux", "darwin"}) || len(full.Tags) != 0 {
		t.Errorf("build deploybot: goos %v tags %v, want linux and darwin, no tags", full.Goos, full.Tags)
	}
	if !slices.Equal(image.Goos, []string{"linux"}) || !slices.Equal(image.Tags, []string{"nostandin"}) {
		t.Errorf("build image: goos %v tags %v, want linux and nostandin", image.Goos, image.Tags)
	}
	if len(g.Archives) != 1 || !slices.Equal(g.Archives[0].IDs, []string{"deploybot"}) {
		t.Errorf("archives %+v: want one, of build deploybot", g.Archives)
	}
	if g.Checksum.NameTemplate == "" {
		t.Error("no checksums file")
	}

	repo, tag, appVersion := chartImage(t)
	if len(g.Dockers) != 1 {
		t.Fatalf("want one image in dockers_v2, got %d", len(g.Dockers))
	}
	d := g.Dockers[0]
	if !slices.Equal(d.Images, []string{repo}) {
		t.Errorf("the release publishes %v, the chart pulls %s", d.Images, repo)
	}
	if repo != "ghcr.io/deploybot/deploybot" {
		t.Errorf("image.repository %s, want ghcr.io/deploybot/deploybot (GitHub's registry, under the repository's owner)", repo)
	}
	if !slices.Equal(d.IDs, []string{"image"}) {
		t.Errorf("the image holds builds %v, want [image]", d.IDs)
	}
	if !slices.Equal(d.Platforms, []string{"linux/amd64", "linux/arm64"}) {
		t.Errorf("image platforms %v", d.Platforms)
	}
	// The chart's tag defaults to its appVersion: the image must be tagged
	// with the version as GoReleaser spells it (no v), and appVersion must
	// be spelled that way (the workflow refuses a tag other than
	// v<appVersion>: scripts/release-preflight.sh).
	if !slices.Contains(d.Tags, "{{ .Version }}") {
		t.Errorf("image tags %v lack {{ .Version }}, the chart's default tag", d.Tags)
	}
	if tag != "" {
		t.Errorf("image.tag %q: leave it empty so it follows the chart's appVersion", tag)
	}
	if !regexp.MustCompile(`^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$`).MatchString(appVersion) {
		t.Errorf("appVersion %q is not X.Y.Z, the image tag a release vX.Y.Z pushes", appVersion)
	}
	// The README's docker run line runs the image the chart pulls.
	if want := repo + ":" + appVersion; !strings.Contains(read(t, "README.md"), want) {
		t.Errorf("README.md does not run %s, the chart's image", want)
	}
	if _, err := os.Stat(filepath.Join("..", "..", d.Dockerfile)); err != nil {
		t.Fatalf("the image's Dockerfile: %v", err)
	}
	checkRuntimeStagesAgree(t, dockerfile, read(t, d.Dockerfile), d.Dockerfile)
}

// runtimeStage is the last stage of a Dockerfile, one instruction a line,
// without comments.
func runtimeStage(dockerfile string) []string {
	text := regexp.MustCompile(`\\\n\s*`).ReplaceAllString(dockerfile, " ")
	var stage []string
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasPrefix(line, "FROM ") {
			stage = nil
		}
		stage = append(stage, line)
	}
	return stage
}

// The released image is the Dockerfile's: the same base, user, volume,
// environment, port, entry point and command; only where the binary comes
// from differs (GoReleaser's build of the platform, not the build stage).
func checkRuntimeStagesAgree(t *testing.T, dockerfile, release, name string) {
	t.Helper()
	normalize := func(stage []string) []string {
		var out []string
		for _, l := range stage {
			if l == "ARG TARGETPLATFORM" {
				continue
			}
			if f := strings.Fields(l); f[0] == "COPY" {
				l = "COPY <binary> " + f[len(f)-1]
			}
			out = append(out, l)
		}
		return out
	}
	want, got := normalize(runtimeStage(dockerfile)), normalize(runtimeStage(release))
	if !slices.Equal(want, got) {
		t.Errorf("%s's image differs from the Dockerfile's:\nDockerfile: %q\n%s: %q", name, want, name, got)
	}
	if !strings.Contains(release, "COPY ${TARGETPLATFORM}/deploybot /usr/local/bin/deploybot") {
		t.Errorf("%s does not copy the platform's binary from GoReleaser's context", name)
	}
}

// The workflow runs the GoReleaser the Makefile's release-check installs,
// the Go of the Dockerfile, on a tag, with the right to push to the
// registry of the image, after the preflight.
func TestReleaseWorkflow(t *testing.T) {
	var wf struct {
		On struct {
			Push struct {
				Tags []string `yaml:"tags"`
			} `yaml:"push"`
		} `yaml:"on"`
		Permissions map[string]string `yaml:"permissions"`
		Jobs        map[string]struct {
			Steps []struct {
				Uses string            `yaml:"uses"`
				Run  string            `yaml:"run"`
				With map[string]string `yaml:"with"`
			} `yaml:"steps"`
		} `yaml:"jobs"`
	}
	readYAML(t, ".github/workflows/release.yml", &wf)
	if len(wf.On.Push.Tags) == 0 {
		t.Error("the workflow does not run on tags")
	}
	if wf.Permissions["packages"] != "write" || wf.Permissions["contents"] != "write" {
		t.Errorf("permissions %v: want contents and packages write", wf.Permissions)
	}
	mk := read(t, "Makefile")
	m := regexp.MustCompile(`(?m)^GORELEASER_VERSION := (\S+)$`).FindStringSubmatch(mk)
	if m == nil {
		t.Fatal("the Makefile has no GORELEASER_VERSION")
	}
	goVersion := regexp.MustCompile(`FROM golang:([0-9.]+)-`).FindStringSubmatch(read(t, "Dockerfile"))
	if goVersion == nil {
		t.Fatal("the Dockerfile's Go version not found")
	}
	repo, _, _ := chartImage(t)
	registry, _, _ := strings.Cut(repo, "/")
	var sawGo, sawLogin, sawRelease, sawPreflight bool
	for _, job := range wf.Jobs {
		for _, s := range job.Steps {
			action, _, _ := strings.Cut(s.Uses, "@")
			switch action {
			case "actions/setup-go":
				sawGo = true
				if s.With["go-version"] != goVersion[1] {
					t.Errorf("the workflow's Go %q, the Dockerfile's %s", s.With["go-version"], goVersion[1])
				}
			case "docker/login-action":
				sawLogin = true
				if s.With["registry"] != registry {
					t.Errorf("the workflow logs in to %q, the image is on %s", s.With["registry"], registry)
				}
			case "goreleaser/goreleaser-action":
				sawRelease = true
				if s.With["version"] != m[1] {
					t.Errorf("the workflow's GoReleaser %q, the Makefile's %s", s.With["version"], m[1])
				}
				if !sawPreflight || !strings.Contains(s.With["args"], "release") || !strings.Contains(s.With["args"], "--release-notes") {
					t.Errorf("GoReleaser runs %q (after the preflight: %v)", s.With["args"], sawPreflight)
				}
			}
			if strings.Contains(s.Run, "scripts/release-preflight.sh") {
				sawPreflight = true
			}
		}
	}
	if !sawGo || !sawLogin || !sawRelease {
		t.Errorf("steps: setup-go %v, registry login %v, goreleaser %v", sawGo, sawLogin, sawRelease)
	}
}

// scripts/release-preflight.sh refuses a tag the chart's appVersion does
// not name, or that CHANGELOG.md has no section for, and writes the
// section as the release's notes.
func TestReleasePreflight(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"scripts", "charts/deploybot"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(p, s string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, p), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("scripts/release-preflight.sh", read(t, "scripts/release-preflight.sh"))
	write("CHANGELOG.md", "# Changelog\n\n## Unreleased\n\n- next\n\n## 1.2.3 - 2026-01-02\n\n### Added\n\n- the thing\n\n## v1.2.2\n\n- older\n")
	run := func(tag string) (string, error) {
		notes := filepath.Join(dir, "notes.md")
		os.Remove(notes)
		out, err := exec.Command("sh", filepath.Join(dir, "scripts", "release-preflight.sh"), tag, notes).CombinedOutput()
		b, _ := os.ReadFile(notes)
		return string(out) + "\n" + string(b), err
	}
	write("charts/deploybot/Chart.yaml", "apiVersion: v2\nname: deploybot\nversion: 0.2.0\nappVersion: \"1.2.3\"\n")
	out, err := run("v1.2.3")
	if err != nil || !strings.Contains(out, "- the thing") || strings.Contains(out, "older") || strings.Contains(out, "next") {
		t.Errorf("v1.2.3: %v\n%s", err, out)
	}
	for tag, want := range map[string]string{
		"v1.2.2": `appVersion "1.2.3" but the tag is v1.2.2`,
		"1.2.3":  "is not vX.Y.Z",
	} {
		if out, err := run(tag); err == nil || !strings.Contains(out, want) {
			t.Errorf("%s: want a refusal saying %q, got %v\n%s", tag, want, err, out)
		}
	}
	write("charts/deploybot/Chart.yaml", "apiVersion: v2\nappVersion: 1.2.30\n")
	if out, err := run("v1.2.30"); err == nil || !strings.Contains(out, `CHANGELOG.md has no section "## 1.2.30"`) {
		t.Errorf("v1.2.30 (no section; 1.2.3's is not it): %v\n%s", err, out)
	}
	write("charts/deploybot/Chart.yaml", "apiVersion: v2\nappVersion: '1.2.2'\n")
	if out, err := run("v1.2.2"); err != nil || !strings.Contains(out, "- older") {
		t.Errorf("v1.2.2 (a section named v1.2.2): %v\n%s", err, out)
	}
}
