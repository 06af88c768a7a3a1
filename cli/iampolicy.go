package cli

import (
	"context"
	"encoding/json"
	"os"
	"sync"

	"github.com/deploybot/deploybot/cloud"
	"github.com/deploybot/deploybot/releases"
)

// runIAMPolicy prints the least-privilege IAM policy of a role, built from
// the configuration by the same code that knows which calls deploybot
// makes (cloud.Policy).
func runIAMPolicy(_ context.Context, env Env, args []string) error {
	fs, cfgPath := flagSet(env, "iam-policy", "")
	role := fs.String("role", "", "`ROLE`: bot (serve and every command but publish) or ci (publish)")
	siteName := fs.String("site", "", "only this `SITE` (default: every site in the configuration)")
	account := fs.String("account", "", "the AWS `ACCOUNT` id of the CloudFront resources (default: * , any account)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usagef("iam-policy takes no arguments")
	}
	if *role != string(cloud.RoleBot) && *role != string(cloud.RoleCI) {
		return usagef("--role must be bot or ci (got %q)", *role)
	}
	if a := *account; a != "" && (len(a) != 12 || !allDigits(a)) {
		return usagef("--account %q: an AWS account id is 12 digits", a)
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	var sites []releases.Site
	for _, s := range cfg.Sites {
		if *siteName == "" || s.Name == *siteName {
			sites = append(sites, s.ReleasesSite())
		}
	}
	if len(sites) == 0 {
		return usagef("unknown site %q", *siteName)
	}
	doc, err := cloud.Policy(cloud.Role(*role), sites, *account)
	if err != nil {
		return err
	}
	return writeJSON(env.Stdout, doc)
}

func allDigits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// CallLogEnv names the file to which every AWS call is appended, one JSON
// object a line, with the role of the command that made it: a record of
// the permissions deploybot uses, to check a policy against.
const CallLogEnv = "DEPLOYBOT_AWS_CALL_LOG"

// loggedCall is one line of the call log.
type loggedCall struct {
	Role string `json:"role"`
	cloud.Call
}

// callObserver returns the observer that appends to the call log, or nil
// when none is asked for. Lines are appended with O_APPEND, one write
// each, so several processes may share the file.
func callObserver(env Env, command string) func(cloud.Call) {
	path := env.Getenv(CallLogEnv)
	if path == "" {
		return nil
	}
	role := string(cloud.RoleBot)
	switch command {
	case "publish":
		role = string(cloud.RoleCI)
	case "setup":
		// setup creates what the bot's policy is then scoped to: an
		// administrator's calls, no role's policy.
		role = "admin"
	}
	var mu sync.Mutex
	return func(c cloud.Call) {
		line, err := json.Marshal(loggedCall{Role: role, Call: c})
		if err != nil {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			return
		}
		_, _ = f.Write(append(line, '\n'))
		_ = f.Close()
	}
}
