package cli

import (
	"context"
	"fmt"
	"strings"

	"github.com/deploybot/deploybot/cloud"
	"github.com/deploybot/deploybot/releases"
)

func runKVSSetup(ctx context.Context, env Env, args []string) error {
	var apply, asJSON *bool
	cfg, s, err := localSite(env, "kvs-setup", args, func(fs *flagSetT) {
		apply = fs.Bool("apply", false, "make the changes (without it: print them and the function's code)")
		asJSON = fs.Bool("json", false, "print what --apply did as JSON")
	})
	if err != nil {
		return err
	}
	if s.Strategy != cloud.StrategyKVS || s.KVSARN == "" {
		return usagef("site %s is not set up for strategy kvs: set strategy: kvs and kvs.arn in the configuration first", s.Name)
	}
	// --apply changes the site: the store records it.
	a, err := newApp(ctx, env, cfg, *apply)
	if err != nil {
		return err
	}
	defer a.Close()
	setup := &cloud.KVSSetup{CF: a.cf, KVS: a.kvs, Pages: a.bucket, PollInterval: a.cfg.Deploy.PollInterval.Duration}
	if !*apply {
		code, err := cloud.FunctionCode(s, cloud.KVSID(s.KVSARN))
		if err != nil {
			return err
		}
		fmt.Fprintf(env.Stdout, "kvs-setup for site %s would (run again with --apply):\n", s.Name)
		for i, step := range setup.Steps(s) {
			fmt.Fprintf(env.Stdout, "  %d. %s\n", i+1, step)
		}
		fmt.Fprintf(env.Stdout, "\nThe function %s (%d bytes, %s):\n\n%s", cloud.FunctionName(s), len(code), cloud.FunctionRuntime, code)
		return printReleaseHeaderCode(env, s)
	}
	var rep *cloud.KVSSetupReport
	err = a.svc.ChangeSite(ctx, releases.SiteChange{Site: s.Name, Action: releases.ActionKVSSetup, Actor: actor(env)}, func(ctx context.Context) (string, error) {
		var err error
		if rep, err = setup.Apply(ctx, s); err != nil {
			return "", err
		}
		return kvsSetupSummary(s, rep), nil
	})
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(env.Stdout, rep)
	}
	verb := map[bool]string{true: "created", false: "updated"}[rep.Created]
	fmt.Fprintf(env.Stdout, "function %s %s and published (%s)\n", rep.Function, verb, rep.FunctionARN)
	switch {
	case rep.KeyWritten:
		fmt.Fprintf(env.Stdout, "key %s = %s written (the live release, from origin path %q)\n", s.Name, rep.Key, rep.OldPath)
	case rep.Key == "":
		fmt.Fprintf(env.Stdout, "key %s not written: the site has no live release yet; the first promote writes it, and until then the site answers 503 \"no live release\"\n", s.Name)
	default:
		fmt.Fprintf(env.Stdout, "key %s = %s kept\n", s.Name, rep.Key)
	}
	if rep.Associated {
		fmt.Fprintf(env.Stdout, "distribution %s now runs the function on viewer requests, origin path cleared, and is Deployed\n", s.DistributionID)
	} else {
		fmt.Fprintf(env.Stdout, "distribution %s already runs the function\n", s.DistributionID)
	}
	if rep.ErrorPages {
		fmt.Fprintf(env.Stdout, "custom error responses for 403 and 404 now show %s\n", pageOrNone(cloud.NotFoundPagePath(s)))
	}
	printReleaseHeader(env, s, rep.ReleaseHeaderReport)
	return nil
}

// printReleaseHeader says what setup did about the header that names the
// release.
func printReleaseHeader(env Env, s releases.Site, rep cloud.ReleaseHeaderReport) {
	if rep.Function == "" {
		fmt.Fprintf(env.Stdout, "release_header is false: no function on viewer responses; answers name their release in %s\n", strings.ToLower(releases.MetadataHeader))
		return
	}
	verb := map[bool]string{true: "created", false: "updated"}[rep.Created]
	fmt.Fprintf(env.Stdout, "function %s %s and published (%s): every answer names its release in %s\n", rep.Function, verb, rep.FunctionARN, strings.ToLower(releases.ReleaseHeader))
}

// printReleaseHeaderCode shows the viewer-response function setup
// publishes, unless release_header is false.
func printReleaseHeaderCode(env Env, s releases.Site) error {
	if s.NoReleaseHeader {
		return nil
	}
	code, err := cloud.ReleaseHeaderCode(s)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "\nThe function %s (%d bytes, %s, viewer response):\n\n%s", cloud.ReleaseHeaderName(s), len(code), cloud.FunctionRuntime, code)
	return nil
}

func pageOrNone(p string) string {
	if p == "" {
		return "no page (CloudFront's own error)"
	}
	return p
}

func runRoutingSetup(ctx context.Context, env Env, args []string) error {
	var apply, asJSON *bool
	cfg, s, err := localSite(env, "routing-setup", args, func(fs *flagSetT) {
		apply = fs.Bool("apply", false, "make the changes (without it: print what differs, the steps and the function's code)")
		asJSON = fs.Bool("json", false, "print what --apply did as JSON")
	})
	if err != nil {
		return err
	}
	if s.Strategy == cloud.StrategyKVS {
		return usagef("site %s is on strategy kvs, whose function routes too: run deploybot kvs-setup --site %s --apply", s.Name, s.Name)
	}
	// --apply changes the site: the store records it.
	a, err := newApp(ctx, env, cfg, *apply)
	if err != nil {
		return err
	}
	defer a.Close()
	setup := &cloud.RoutingSetup{CF: a.cf, PollInterval: a.cfg.Deploy.PollInterval.Duration}
	if !*apply {
		problems, err := setup.Check(ctx, s)
		if err != nil {
			return err
		}
		if len(problems) == 0 {
			fmt.Fprintf(env.Stdout, "site %s routes as configured; routing-setup --apply has nothing to do\n", s.Name)
			return nil
		}
		fmt.Fprintf(env.Stdout, "site %s does not route as configured:\n", s.Name)
		for _, p := range problems {
			fmt.Fprintf(env.Stdout, "  - %s\n", p)
		}
		fmt.Fprintf(env.Stdout, "\nrouting-setup would (run again with --apply):\n")
		for i, step := range setup.Steps(s) {
			fmt.Fprintf(env.Stdout, "  %d. %s\n", i+1, step)
		}
		if cloud.NeedsRouter(s) {
			code, err := cloud.RouterCode(s)
			if err != nil {
				return err
			}
			fmt.Fprintf(env.Stdout, "\nThe function %s (%d bytes, %s):\n\n%s", cloud.RouterName(s), len(code), cloud.FunctionRuntime, code)
		}
		return printReleaseHeaderCode(env, s)
	}
	var rep *cloud.RoutingSetupReport
	err = a.svc.ChangeSite(ctx, releases.SiteChange{Site: s.Name, Action: releases.ActionRoutingSetup, Actor: actor(env)}, func(ctx context.Context) (string, error) {
		var err error
		if rep, err = setup.Apply(ctx, s); err != nil {
			return "", err
		}
		return routingSetupSummary(s, rep), nil
	})
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(env.Stdout, rep)
	}
	if rep.Function != "" {
		verb := map[bool]string{true: "created", false: "updated"}[rep.Created]
		fmt.Fprintf(env.Stdout, "function %s %s and published (%s)\n", rep.Function, verb, rep.FunctionARN)
	}
	if rep.ErrorPages {
		fmt.Fprintf(env.Stdout, "custom error responses for 403 and 404 now show %s\n", pageOrNone(cloud.NotFoundPagePath(s)))
	}
	printReleaseHeader(env, s, rep.ReleaseHeaderReport)
	if rep.Updated {
		fmt.Fprintf(env.Stdout, "distribution %s updated and Deployed\n", s.DistributionID)
	} else {
		fmt.Fprintf(env.Stdout, "distribution %s already routes as configured\n", s.DistributionID)
	}
	return nil
}

// kvsSetupSummary is what kvs-setup --apply changed, for its audit record.
func kvsSetupSummary(s releases.Site, rep *cloud.KVSSetupReport) string {
	parts := []string{fmt.Sprintf("function %s %s", rep.Function, map[bool]string{true: "created", false: "updated"}[rep.Created])}
	if rep.KeyWritten {
		parts = append(parts, fmt.Sprintf("key %s = %s written", s.Name, rep.Key))
	}
	if rep.Associated {
		parts = append(parts, fmt.Sprintf("distribution %s runs it, origin path %q cleared", s.DistributionID, rep.OldPath))
	}
	if rep.ErrorPages {
		parts = append(parts, "error pages set")
	}
	return strings.Join(append(parts, releaseHeaderSummary(rep.ReleaseHeaderReport)...), "; ")
}

// routingSetupSummary is what routing-setup --apply changed, for its
// audit record.
func routingSetupSummary(s releases.Site, rep *cloud.RoutingSetupReport) string {
	var parts []string
	if rep.Function != "" {
		parts = append(parts, fmt.Sprintf("function %s %s", rep.Function, map[bool]string{true: "created", false: "updated"}[rep.Created]))
	}
	if rep.ErrorPages {
		parts = append(parts, "error pages set")
	}
	parts = append(parts, releaseHeaderSummary(rep.ReleaseHeaderReport)...)
	if rep.Updated {
		parts = append(parts, fmt.Sprintf("distribution %s updated", s.DistributionID))
	} else {
		parts = append(parts, fmt.Sprintf("distribution %s unchanged", s.DistributionID))
	}
	return strings.Join(parts, "; ")
}

func releaseHeaderSummary(rep cloud.ReleaseHeaderReport) []string {
	if rep.Function == "" {
		return nil
	}
	return []string{fmt.Sprintf("function %s %s", rep.Function, map[bool]string{true: "created", false: "updated"}[rep.Created])}
}
