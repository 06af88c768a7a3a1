package config

import (
	"fmt"
	"path"
	"regexp"
	"strings"

	"github.com/deploybot/deploybot/releases"
)

// Who is who: named API tokens with their roles, and the people that link
// one person's identities across doors (a Slack user, API tokens, AWS
// principals). The rules themselves are the domain's (releases.Access);
// this file reads and checks what the configuration says of them.

// Token is one named bearer token of the API. The name is who its caller
// is, in every decision and audit record; roles are what it may do:
// reader, deployer, approver or previewer, on every site, or ROLE:SITE on
// one.
type Token struct {
	Name  string   `yaml:"name"`
	Token string   `yaml:"token"`
	Roles []string `yaml:"roles"`
}

// Person links one person's identities, so four eyes mean two people
// whichever door each came through. A site's deployers, approval.approvers
// and previewers may name a person.
type Person struct {
	Name   string   `yaml:"name"`
	Slack  []string `yaml:"slack"`
	Tokens []string `yaml:"tokens"`
	AWS    []string `yaml:"aws"`
}

// tokenNameRE and personNameRE: lower-case, so that names never differ by
// case alone (a token compares regardless of case).
var (
	tokenNameRE  = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)
	personNameRE = regexp.MustCompile(`^[a-z][a-z0-9._-]{0,63}$`)
	slackUserRE  = regexp.MustCompile(`^[UW][A-Z0-9]{2,20}$`)
	awsARNRE     = regexp.MustCompile(`^arn:aws[a-z-]*:(iam|sts)::[0-9]{12}:\S+$`)
)

// minTokenLength: a bearer token is a secret; 16 characters of `openssl
// rand -hex` are 64 bits.
const minTokenLength = 16

// validateAccess checks http.tokens and people, and that each name a site
// list uses is a Slack id or a person.
func (c *Config) validateAccess(bad func(key, format string, args ...any)) {
	tokens := c.validateTokens(bad)
	people := c.validatePeople(bad, tokens)
	for i, s := range c.Sites {
		key := fmt.Sprintf("sites[%d]", i)
		for _, l := range []struct {
			name string
			ids  []string
		}{{"deployers", s.Deployers}, {"previewers", s.Previewers}, {"approval.approvers", s.Approval.Approvers}} {
			for j, id := range l.ids {
				if !slackID.MatchString(id) && !people[id] {
					bad(fmt.Sprintf("%s.%s[%d]", key, l.name, j), "%q: a Slack user id (U...), user-group id (S...) or a person of people", id)
				}
			}
		}
	}
}

// validateTokens checks http.tokens: names and secrets each used once,
// roles that exist. It returns the token names (name -> key).
func (c *Config) validateTokens(bad func(key, format string, args ...any)) map[string]string {
	sites := map[string]bool{}
	for _, s := range c.Sites {
		sites[s.Name] = true
	}
	tokens := map[string]string{}
	if c.HTTP.APIToken != "" {
		tokens[releases.LegacyTokenName] = "http.api_token"
	}
	secrets := map[string]string{c.HTTP.APIToken: "http.api_token"}
	for i, t := range c.HTTP.Tokens {
		key := fmt.Sprintf("http.tokens[%d]", i)
		switch prev, dup := tokens[t.Name]; {
		case !tokenNameRE.MatchString(t.Name):
			bad(key+".name", "%q: a token's name is lower-case letters, digits, '.', '_' or '-' (it is who the caller is in every record)", t.Name)
		case dup:
			bad(key+".name", "%q is taken (%s)", t.Name, prev)
		default:
			tokens[t.Name] = key
		}
		switch prev, dup := secrets[t.Token]; {
		case len(t.Token) < minTokenLength:
			bad(key+".token", "at least %d characters (openssl rand -hex 24 makes one)", minTokenLength)
		case dup:
			bad(key+".token", "the same token as %s: each caller needs its own, or they are one caller", prev)
		default:
			secrets[t.Token] = key
		}
		if len(t.Roles) == 0 {
			bad(key+".roles", "at least one of %s (ROLE:SITE for one site)", roleNames())
		}
		for j, r := range t.Roles {
			if _, err := parseGrant(r, sites); err != nil {
				bad(fmt.Sprintf("%s.roles[%d]", key, j), "%v", err)
			}
		}
	}
	return tokens
}

// validatePeople checks people: unique names, each identity one
// person's, tokens that exist. It returns the names of the people.
func (c *Config) validatePeople(bad func(key, format string, args ...any), tokens map[string]string) map[string]bool {
	people := map[string]bool{}
	owner := map[string]string{} // an identity -> the person who has it
	claim := func(key, id, person string) {
		if prev, ok := owner[strings.ToLower(id)]; ok && prev != person {
			bad(key, "%q is %s's already: an identity is one person's", id, prev)
		}
		owner[strings.ToLower(id)] = person
	}
	for i, p := range c.People {
		key := fmt.Sprintf("people[%d]", i)
		switch {
		case !personNameRE.MatchString(p.Name):
			bad(key+".name", "%q: a person's name is lower-case letters, digits, '.', '_' or '-', starting with a letter", p.Name)
		case people[p.Name]:
			bad(key+".name", "duplicate person %q", p.Name)
		}
		people[p.Name] = true
		if len(p.Slack)+len(p.Tokens)+len(p.AWS) == 0 {
			bad(key, "names no identity: give slack, tokens or aws")
		}
		for j, id := range p.Slack {
			k := fmt.Sprintf("%s.slack[%d]", key, j)
			if !slackUserRE.MatchString(id) {
				bad(k, "%q: a Slack user id (U... or W...)", id)
			}
			claim(k, "slack:"+id, p.Name)
		}
		for j, name := range p.Tokens {
			k := fmt.Sprintf("%s.tokens[%d]", key, j)
			if _, ok := tokens[name]; !ok {
				bad(k, "%q is no token of http.tokens (or `api`, http.api_token)", name)
			}
			claim(k, "token:"+name, p.Name)
		}
		for j, pat := range p.AWS {
			k := fmt.Sprintf("%s.aws[%d]", key, j)
			if _, err := path.Match(pat, ""); err != nil || !awsARNRE.MatchString(pat) {
				bad(k, "%q: an IAM or STS ARN of one account, '*' matching within a part (arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_Deploy_*/alice@example.com)", pat)
			} else if role, session, ok := assumedRole(pat); ok && session != "*" && !releases.SSORole(pat) {
				bad(k, "%q names one session of role %s, but whoever may assume the role chooses the session name: name the role's sessions as %s/* (only IAM Identity Center's AWSReservedSSO_* roles tell people apart by session)", pat, role, role)
			}
			claim(k, "aws:"+pat, p.Name)
		}
	}
	return people
}

// assumedRole splits an STS assumed-role ARN (pattern) into its role and
// session parts.
func assumedRole(arn string) (role, session string, ok bool) {
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) != 6 || parts[2] != "sts" {
		return "", "", false
	}
	rest, found := strings.CutPrefix(parts[5], "assumed-role/")
	if !found {
		return "", "", false
	}
	role, session, ok = strings.Cut(rest, "/")
	return "assumed-role/" + role, session, ok
}

func roleNames() string {
	var names []string
	for _, r := range releases.Roles {
		names = append(names, string(r))
	}
	return strings.Join(names, ", ")
}

// parseGrant reads ROLE or ROLE:SITE.
func parseGrant(s string, sites map[string]bool) (releases.Grant, error) {
	role, site, scoped := strings.Cut(s, ":")
	g := releases.Grant{Role: releases.Role(role), Site: site}
	known := false
	for _, r := range releases.Roles {
		known = known || r == g.Role
	}
	switch {
	case !known:
		return g, fmt.Errorf("%q: a role is one of %s, on one site as ROLE:SITE", s, roleNames())
	case scoped && !sites[site]:
		return g, fmt.Errorf("%q: no site %q is configured", s, site)
	}
	return g, nil
}

// Access is who is who, as the service decides with it: the people, each
// token's roles (http.api_token is the token "api", with every role on
// every site, as it had before tokens had names), and AWS callers as
// deployers (see releases.Access.AWSDeploys). The chat adapter adds the
// Slack directory.
func (c *Config) Access() *releases.Access {
	a := &releases.Access{Tokens: map[string][]releases.Grant{}, AWSDeploys: true}
	if c.HTTP.APIToken != "" {
		for _, r := range releases.Roles {
			a.Tokens[releases.LegacyTokenName] = append(a.Tokens[releases.LegacyTokenName], releases.Grant{Role: r})
		}
	}
	sites := map[string]bool{}
	for _, s := range c.Sites {
		sites[s.Name] = true
	}
	for _, t := range c.HTTP.Tokens {
		for _, r := range t.Roles {
			if g, err := parseGrant(r, sites); err == nil {
				a.Tokens[t.Name] = append(a.Tokens[t.Name], g)
			}
		}
	}
	for _, p := range c.People {
		a.People = append(a.People, releases.Person{Name: p.Name, Slack: p.Slack, Tokens: p.Tokens, AWS: p.AWS})
	}
	return a
}
