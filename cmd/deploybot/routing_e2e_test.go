package main_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudfront"
	cftypes "github.com/aws/aws-sdk-go-v2/service/cloudfront/types"

	"github.com/deploybot/deploybot/cloud"
)

// A Hugo-shaped site (section index.html files, a 404.html) and then a
// React-shaped single-page app (one index.html, client routes) serve
// correctly through the stand-in's edge on both strategies, deep links
// included, set up and deployed through the command line. The stand-in
// behaves as CloudFront with an S3 REST origin and origin access control:
// no index document but for "/", 403 for a missing key, error pages
// fetched without the function. The distribution has an /assets/* cache
// behaviour on the site's origin, as many do, which must route too.
func TestRoutingFromTheCommandLine(t *testing.T) {
	for _, strategy := range []string{"origin-path", "kvs"} {
		t.Run(strategy, func(t *testing.T) {
			w := start(t, "300ms", "100ms", "--kvs", "deploybot", "--kvs-propagation", "200ms", "--pops", "3")
			w.assetsBehavior()
			setup := "routing-setup"
			if strategy == "kvs" {
				setup = "kvs-setup"
				cfg := readFile(t, w.config)
				cfg = strings.Replace(cfg, "deploy: {poll_interval: 50ms, timeout: 1m}", "deploy: {poll_interval: 50ms, timeout: 1m, kvs_propagation: 300ms}", 1)
				cfg = strings.Replace(cfg, "    distribution_id: E2ETEST\n", fmt.Sprintf("    distribution_id: E2ETEST\n    strategy: kvs\n    kvs: {arn: %q}\n", w.kvsARN), 1)
				w.write("deploybot.yaml", cfg)
			}

			// Hugo: the defaults (index.html in every folder, 404.html).
			w.must("publish", "--version", "h1", w.hugoSite("h1"))
			w.must("publish", "--version", "h2", w.hugoSite("h2"))
			if strategy == "origin-path" {
				r := w.must("routing-setup")
				if !strings.Contains(r.stdout, "does not route as configured") || !strings.Contains(r.stdout, "the default cache behavior runs no function") ||
					!strings.Contains(r.stdout, "cache behavior /assets/* runs no function") || !strings.Contains(r.stdout, "function route(uri)") {
					t.Fatalf("routing-setup without --apply:\n%s", r.stdout)
				}
			}
			r := w.must(setup, "--apply")
			if !strings.Contains(r.stdout, "custom error responses for 403 and 404 now show") {
				t.Fatalf("%s --apply:\n%s", setup, r.stdout)
			}
			// The apply is one record, the plans none.
			if h := w.history(); len(h) != 1 || h[0].Action != setup || h[0].Result != "ok" || h[0].Actor != callerARN("e2e") || !strings.Contains(h[0].Detail, "error pages set") {
				t.Fatalf("%s's record: %+v", setup, h)
			}
			if strategy == "origin-path" {
				if r := w.must("routing-setup"); !strings.Contains(r.stdout, "routes as configured") {
					t.Fatalf("routing-setup after --apply:\n%s", r.stdout)
				}
			}
			w.waitDeployed() // the distribution change reaches every PoP
			w.must("promote", "h1")
			w.routes("h1", map[string]string{
				"/":                   "200 home h1",
				"/docs/":              "200 docs h1",
				"/docs":               "200 docs h1",
				"/docs/intro/":        "200 intro h1",
				"/posts/hello-world":  "200 hello h1",
				"/assets/site.css":    "200 body{h1}",
				"/nope/":              "404 not found h1",
				"/docs/missing.html":  "404 not found h1",
				"/assets/missing.css": "404 not found h1",
			})
			w.must("promote", "h2")
			w.routes("h2", map[string]string{"/docs": "200 docs h2", "/nope": "404 not found h2", "/assets/site.css": "200 body{h2}"})

			// A single-page app: client routes get the app's index.html,
			// a missing asset an error, never the app shell.
			cfg := readFile(t, w.config)
			cfg = strings.Replace(cfg, "    prefix: www/\n", "    prefix: www/\n    routing: {fallback: index.html}\n", 1)
			w.write("deploybot.yaml", cfg)
			if strategy == "kvs" {
				w.expect(1, "run deploybot kvs-setup --site www --apply first", "promote", "h1")
			}
			w.must(setup, "--apply")
			w.waitDeployed()
			w.must("publish", "--version", "s1", w.spaSite("s1"))
			w.must("promote", "s1")
			w.routes("s1", map[string]string{
				"/":                    "200 app s1",
				"/settings/profile":    "200 app s1",
				"/settings/profile/":   "200 app s1",
				"/users/42":            "200 app s1",
				"/static/app.js":       "200 render(s1)",
				"/static/missing.js":   "4xx",
				"/assets/missing.woff": "4xx",
			})
			// The call log the policy check reads has both roles' calls.
			log := readFile(t, filepath.Join(w.dir, "aws-calls.jsonl"))
			for _, want := range []string{`{"role":"ci","service":"s3","operation":"PutObject"`, `{"role":"bot","service":"cloudfront","operation":"PublishFunction"`} {
				if !strings.Contains(log, want) {
					t.Fatalf("the AWS call log lacks %s", want)
				}
			}
		})
	}
}

// assetsBehavior gives the distribution a cache behaviour for /assets/*
// on the site's origin, through the SDK as an operator would.
func (w *world) assetsBehavior() {
	w.t.Helper()
	ctx := context.Background()
	_, cfc, err := cloud.NewClients(ctx, cloud.Settings{Region: "us-east-1", Endpoint: w.api, Credentials: cloud.StaticCredentials("AKIDE2E", "secret")})
	if err != nil {
		w.t.Fatal(err)
	}
	out, err := cfc.GetDistributionConfig(ctx, &cloudfront.GetDistributionConfigInput{Id: aws.String("E2ETEST")})
	if err != nil {
		w.t.Fatal(err)
	}
	dc := out.DistributionConfig
	dc.CacheBehaviors = &cftypes.CacheBehaviors{Quantity: aws.Int32(1), Items: []cftypes.CacheBehavior{{PathPattern: aws.String("/assets/*"),
		TargetOriginId: dc.DefaultCacheBehavior.TargetOriginId, ViewerProtocolPolicy: cftypes.ViewerProtocolPolicyRedirectToHttps,
		CachePolicyId: aws.String("658327ea-f89d-4fab-a63d-7e88639e58f6")}}}
	if _, err := cfc.UpdateDistribution(ctx, &cloudfront.UpdateDistributionInput{Id: aws.String("E2ETEST"), IfMatch: out.ETag, DistributionConfig: dc}); err != nil {
		w.t.Fatal(err)
	}
}

// routes waits until every path answers as want says ("200 text": that
// status and a body containing text; "4xx": an error status whose body is
// not the app shell) once the flip to version has reached the edge.
func (w *world) routes(version string, want map[string]string) {
	w.t.Helper()
	for path, exp := range want {
		w.waitPage(path, fmt.Sprintf("%s on %s to answer %q", path, version, exp), func(code int, body string) bool {
			if exp == "4xx" {
				return code >= 400 && code < 500 && !strings.Contains(body, "app "+version)
			}
			status, text, _ := strings.Cut(exp, " ")
			return fmt.Sprint(code) == status && strings.Contains(body, text)
		})
	}
}

// hugoSite writes what Hugo writes: a page per folder, a 404.html, assets.
func (w *world) hugoSite(v string) string {
	page := func(what string) string { return "<html><body><h1>" + what + " " + v + "</h1></body></html>" }
	dir := filepath.Join("hugo", v)
	w.write(dir+"/index.html", page("home"))
	w.write(dir+"/docs/index.html", page("docs"))
	w.write(dir+"/docs/intro/index.html", page("intro"))
	w.write(dir+"/posts/hello-world/index.html", page("hello"))
	w.write(dir+"/404.html", page("not found"))
	w.write(dir+"/assets/site.css", "body{"+v+"}")
	return filepath.Join(w.dir, dir)
}

// spaSite writes what a React build writes: one index.html and its
// bundle.
func (w *world) spaSite(v string) string {
	dir := filepath.Join("spa", v)
	w.write(dir+"/index.html", `<html><body><div id="root">app `+v+`</div><script src="/static/app.js"></script></body></html>`)
	w.write(dir+"/static/app.js", "render("+v+")")
	return filepath.Join(w.dir, dir)
}
