package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/deploybot/deploybot/cloud"
	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/releases"
)

// runSetup is deploybot setup: the plan, or with --apply the changes,
// then the ids it learnt written into the configuration file.
func runSetup(ctx context.Context, env Env, args []string) error {
	var apply, asJSON *bool
	var output, outFile *string
	path, cfg, s, err := localSiteFile(env, "setup", args, func(fs *flagSetT) {
		apply = fs.Bool("apply", false, "make the changes (without it: print the plan and change nothing)")
		asJSON = fs.Bool("json", false, "print the plan (or what --apply did) as JSON")
		output = fs.String("output", "", "write the site's AWS side as a `FORMAT` template (cloudformation or terraform) instead, calling no AWS API")
		outFile = fs.String("out", "", "with --output: write the template to `FILE` rather than stdout")
	})
	if err != nil {
		return err
	}
	if *output != "" || *outFile != "" {
		if *apply || *asJSON {
			return usagef("setup: --output writes a template; it takes neither --apply nor --json")
		}
		return writeTemplate(env, cfg, s, *output, *outFile)
	}
	// --apply changes the site: the store records it.
	a, err := newApp(ctx, env, cfg, *apply)
	if err != nil {
		return err
	}
	defer a.Close()
	setup := &cloud.Setup{S3: a.s3, CF: a.cf, KVS: a.kvs, Pages: a.bucket, Region: cfg.AWS.Region, PollInterval: cfg.Deploy.PollInterval.Duration}
	if !*apply {
		rep, err := setup.Plan(ctx, s)
		if err != nil {
			return err
		}
		if *asJSON {
			return writeJSON(env.Stdout, rep)
		}
		printPlan(env.Stdout, rep)
		return nil
	}
	if !*asJSON {
		fmt.Fprintf(env.Stdout, "setting up site %s:\n", s.Name)
		setup.Progress = func(st cloud.SetupStep) { printStep(env.Stdout, st) }
	}
	var rep *cloud.SetupReport
	err = a.svc.ChangeSite(ctx, releases.SiteChange{Site: s.Name, Action: releases.ActionSetup, Actor: actor(env)}, func(ctx context.Context) (string, error) {
		var err error
		rep, err = setup.Apply(ctx, s)
		return setupSummary(rep), err
	})
	// With --json, stdout is the report alone: the note goes to stderr.
	note := env.Stdout
	if *asJSON {
		note = env.Stderr
	}
	if rec := recordIDs(note, path, s.Name, rep); rec != nil && err == nil {
		err = rec
	}
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(env.Stdout, rep)
	}
	if rep.Changes() == 0 {
		fmt.Fprintf(env.Stdout, "nothing to change: site %s is set up\n", s.Name)
	}
	fmt.Fprintf(env.Stdout, "distribution %s serves https://%s/ once a release is live (deploybot publish, then deploybot promote); deploybot check --site %s verifies every assumption\n",
		rep.DistributionID, rep.Domain, s.Name)
	return nil
}

// setupSummary is what setup --apply created or changed, for its audit
// record. Each step is reported as it begins, so a failed apply's summary
// ends with the step that failed.
func setupSummary(rep *cloud.SetupReport) string {
	if rep == nil {
		return ""
	}
	var parts []string
	for _, st := range rep.Steps {
		if st.Action == cloud.SetupCreate || st.Action == cloud.SetupChange {
			parts = append(parts, st.Action+" "+st.Resource)
		}
	}
	if len(parts) == 0 {
		return "nothing to change"
	}
	return strings.Join(parts, "; ")
}

func printPlan(w io.Writer, rep *cloud.SetupReport) {
	fmt.Fprintf(w, "setup for site %s (bucket region %s):\n", rep.Site, rep.Region)
	for _, st := range rep.Steps {
		printStep(w, st)
	}
	if n := rep.Changes(); n > 0 {
		fmt.Fprintf(w, "\n%d to create or change: run again with --apply\n", n)
	} else {
		fmt.Fprintf(w, "\nnothing to change\n")
	}
}

func printStep(w io.Writer, st cloud.SetupStep) {
	fmt.Fprintf(w, "  %-6s %s: %s", st.Action, st.Resource, st.What)
	if st.Why != "" {
		fmt.Fprintf(w, " (%s)", st.Why)
	}
	fmt.Fprintln(w)
}

// recordIDs writes the ids setup learnt into the configuration file,
// keeping it as written; where it cannot, it says what to add by hand.
// Even a failed apply records what it created, so the next run adopts it.
func recordIDs(note io.Writer, path, site string, rep *cloud.SetupReport) error {
	if rep == nil || len(rep.Record) == 0 {
		return nil
	}
	var keys []string
	for k, v := range rep.Record {
		keys = append(keys, k+": "+v)
	}
	sort.Strings(keys)
	raw, err := os.ReadFile(path)
	if err == nil {
		var out []byte
		if out, err = config.RecordSiteKeys(raw, site, rep.Record, os.LookupEnv); err == nil {
			err = writeFileLike(path, out)
		}
	}
	if err != nil {
		return fmt.Errorf("site %s: could not write %s into %s (%v): add them to the site by hand, or every command will ask for setup again", site, strings.Join(keys, ", "), path, err)
	}
	fmt.Fprintf(note, "wrote %s into %s (site %s)\n", strings.Join(keys, ", "), path, site)
	return nil
}

// writeFileLike replaces path with data, keeping its mode, through a
// temporary file renamed over it, so a crash leaves the old file or the
// new one, never half of one.
func writeFileLike(path string, data []byte) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	tmp := path + ".deploybot-tmp"
	if err := os.WriteFile(tmp, data, fi.Mode().Perm()); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// runCheck is deploybot check: every assumption, read-only; exit 1 when
// one fails.
func runCheck(ctx context.Context, env Env, args []string) error {
	var asJSON *bool
	var principal, role *string
	cfg, s, err := localSite(env, "check", args, func(fs *flagSetT) {
		asJSON = fs.Bool("json", false, "print the findings as JSON")
		principal = fs.String("principal", "", "the IAM user or role `ARN` whose permissions to simulate (default: the caller)")
		role = fs.String("role", string(cloud.RoleBot), "the `ROLE` whose policy the principal needs: bot or ci")
	})
	if err != nil {
		return err
	}
	if r := cloud.Role(*role); r != cloud.RoleBot && r != cloud.RoleCI {
		return usagef("check: --role is bot or ci, not %q", *role)
	}
	a, err := newApp(ctx, env, cfg, false)
	if err != nil {
		return err
	}
	checker := &cloud.Checker{S3: cloud.NewRegionalS3(a.s3), CF: a.cf, Region: cfg.AWS.Region}
	checker.Permissions, err = permissionCheck(ctx, cfg, *principal, cloud.Role(*role))
	findings, cerr := checker.Check(ctx, s)
	if cerr != nil {
		return cerr
	}
	if err != nil {
		// Who to simulate could not be learnt: the read checks stand.
		findings = append(findings, cloud.Finding{Check: "permissions", Level: cloud.CheckWarn,
			What: "could not simulate permissions: " + err.Error(), Fix: "pass --principal ARN"})
	}
	if *asJSON {
		if err := writeJSON(env.Stdout, findings); err != nil {
			return err
		}
	} else {
		printFindings(env.Stdout, findings)
	}
	if cloud.Failed(findings) {
		return fmt.Errorf("site %s: %d of its checks failed (each names its fix above)", s.Name, countFailed(findings))
	}
	return nil
}

// permissionCheck is who check simulates: principal, or the caller
// (STS), as IAM names it.
func permissionCheck(ctx context.Context, cfg *config.Config, principal string, role cloud.Role) (*cloud.PermissionCheck, error) {
	settings := cloud.Settings{Region: cfg.AWS.Region, Endpoint: cfg.AWS.Endpoint}
	sim, err := cloud.NewIAMClient(ctx, settings)
	if err != nil {
		return nil, err
	}
	if principal == "" {
		stsc, err := cloud.NewSTSClient(ctx, settings)
		if err != nil {
			return nil, err
		}
		p, err := (&cloud.Caller{API: stsc}).Principal(ctx)
		if err != nil {
			return nil, err
		}
		return &cloud.PermissionCheck{IAM: sim, Principal: cloud.PrincipalARN(p.ID), Role: role, Caller: true}, nil
	}
	return &cloud.PermissionCheck{IAM: sim, Principal: principal, Role: role}, nil
}

func printFindings(w io.Writer, fs []cloud.Finding) {
	for _, f := range fs {
		fmt.Fprintf(w, "%-4s %s: %s\n", strings.ToUpper(f.Level), f.Check, f.What)
		if f.Fix != "" {
			fmt.Fprintf(w, "     fix: %s\n", f.Fix)
		}
	}
}

func countFailed(fs []cloud.Finding) int {
	n := 0
	for _, f := range fs {
		if f.Level == cloud.CheckFail {
			n++
		}
	}
	return n
}

// writeTemplate is setup --output: the site's AWS side as a template, to
// stdout or file, without AWS. What it cannot declare well is said on
// stderr: resources the configuration already names (the template
// declares new ones) and a bucket other sites share (its policy must
// hold all their statements).
func writeTemplate(env Env, cfg *config.Config, s releases.Site, format, file string) error {
	if format == "" {
		return usagef("setup: --out needs --output (%s)", strings.Join(cloud.TemplateFormats, " or "))
	}
	out, err := cloud.Template(s, format)
	if err != nil {
		return err
	}
	if s.DistributionID != "" || s.KVSARN != "" {
		fmt.Fprintf(env.Stderr, "deploybot: note: site %s already names its distribution or key value store; the template declares new ones (import the existing ones into the stack or state instead of creating them)\n", s.Name)
	}
	var shared []string
	for _, o := range cfg.Sites {
		if o.Name != s.Name && o.Bucket == s.Bucket {
			shared = append(shared, o.Name)
		}
	}
	if len(shared) > 0 {
		fmt.Fprintf(env.Stderr, "deploybot: note: bucket %s also holds site(s) %s: declare the bucket once, and one bucket policy with every site's read statement\n", s.Bucket, strings.Join(shared, ", "))
	}
	if file == "" {
		_, err = env.Stdout.Write(out)
		return err
	}
	if err := os.WriteFile(file, out, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(env.Stderr, "deploybot: wrote the %s template of site %s to %s\n", format, s.Name, file)
	return nil
}
