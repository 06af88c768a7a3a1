package releases

import (
	"context"
	"fmt"
	"path"
	"strings"
)

// Who may do what is decided here, for every door: each door establishes
// who is asking (a Principal it verified: Slack's user id, the API token's
// name, the AWS caller's ARN) and hands it over in the context
// (WithPrincipal); the service checks it against the site's roles before
// anything changes, and records it in the audit log. A name someone typed
// (the API body's actor, $DEPLOYBOT_ACTOR) is only a label recorded beside
// it, never what a decision rests on.

// LegacyTokenName is the name the API token of http.api_token acts as.
const LegacyTokenName = "api"

// Principal kinds.
const (
	PrincipalSlack  = "slack"   // ID: a Slack user id (U..., W...)
	PrincipalToken  = "token"   // ID: the name of an API token (http.tokens)
	PrincipalAWS    = "aws"     // ID: the ARN sts:GetCallerIdentity gave
	PrincipalLocal  = "console" // ID: the name typed at deploybot dev's console
	PrincipalSystem = "system"  // deploybot itself: the schedule, automatic rollbacks, recovery
	// principalLegacy is an actor recorded before identities were
	// verified (a free-text name): it compares as its exact text and
	// holds no role.
	principalLegacy = "legacy"
)

// Principal is a verified identity: who asks, as the door that took the
// request established it.
type Principal struct {
	Kind string
	ID   string
	// Label is what the caller said of itself (the API body's actor,
	// $DEPLOYBOT_ACTOR), recorded in the audit log beside the identity.
	Label string
}

// System is deploybot acting on its own.
var System = Principal{Kind: PrincipalSystem, ID: AutoActor}

// String is how the principal is recorded as a deploy's or an audit
// entry's actor: a Slack user id as itself (chat renders it as a mention),
// a token as token:NAME, an AWS caller as its ARN, the console as
// console:NAME. ParsePrincipal reads it back.
func (p Principal) String() string {
	switch p.Kind {
	case PrincipalSlack, PrincipalAWS, PrincipalSystem, principalLegacy:
		return p.ID
	}
	return p.Kind + ":" + p.ID
}

// ParsePrincipal reads an actor as recorded (Principal.String). An actor
// recorded before identities were verified reads as a legacy principal,
// equal only to the very same text, with no role.
func ParsePrincipal(actor string) Principal {
	switch {
	case actor == AutoActor:
		return System
	case slackUserID(actor):
		return Principal{Kind: PrincipalSlack, ID: actor}
	case strings.HasPrefix(actor, "arn:"):
		return Principal{Kind: PrincipalAWS, ID: actor}
	}
	if kind, id, ok := strings.Cut(actor, ":"); ok && (kind == PrincipalToken || kind == PrincipalLocal) && id != "" {
		return Principal{Kind: kind, ID: id}
	}
	return Principal{Kind: principalLegacy, ID: actor}
}

// slackUserID: U or W and upper-case letters and digits.
func slackUserID(s string) bool {
	if len(s) < 3 || len(s) > 22 || (s[0] != 'U' && s[0] != 'W') {
		return false
	}
	for _, c := range s[1:] {
		if (c < 'A' || c > 'Z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

type principalKey struct{}

// WithPrincipal says who asks for ctx's operation; every door sets it at
// its edge, once, from what it verified.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalOf is who asks for ctx's operation; ok is false when no door
// said.
func PrincipalOf(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}

// Role is what a site lets a principal do.
type Role string

const (
	// RoleReader lists and compares releases, and reads status and
	// history: anyone a door lets in.
	RoleReader Role = "reader"
	// RoleDeployer promotes, rolls back, locks, unlocks, pins, unpins,
	// prunes, freezes and lifts their own freeze: the site's deployers.
	RoleDeployer Role = "deployer"
	// RoleApprover approves promotes, rejects others' requests, promotes
	// in a freeze or outside the windows, and lifts or shortens someone
	// else's freeze: the site's approvers (its deployers when it names
	// none).
	RoleApprover Role = "approver"
	// RolePreviewer makes preview links: the deployers and previewers.
	RolePreviewer Role = "previewer"
)

// Roles are every role, in the order the documentation lists them.
var Roles = []Role{RoleReader, RoleDeployer, RoleApprover, RolePreviewer}

// Person links one person's identities, so that "someone else" means
// another person whichever door each came through: a Slack user id, API
// token names and AWS principal ARN patterns ('*' matches within a path
// segment, as path.Match does). A site's deployers, approvers and
// previewers may name a person.
type Person struct {
	Name   string
	Slack  []string
	Tokens []string
	AWS    []string
}

// Grant is a role an API token holds: on every site, or on Site alone.
type Grant struct {
	Role Role
	Site string // "" for every site
}

// Directory answers whether a Slack user is in a user group (S...); the
// chat adapter implements it. Without one, a group names nobody.
type Directory interface {
	InGroup(ctx context.Context, group, user string) (bool, error)
}

// Access is who is who: the people, the roles of API tokens, and the
// Slack user groups. A service with no Access decides nothing (tests of
// other things); every entry point of the binary sets one.
type Access struct {
	People []Person
	// Tokens are the roles of each API token, by name.
	Tokens map[string][]Grant
	// AWSDeploys: an AWS principal no person names may still deploy (the
	// deployer role on every site). The command line without --server acts
	// with credentials that can change the distribution directly, so
	// refusing it deploybot's deployer role protects nothing; approving
	// stays with principals a site's approvers name, through a person.
	AWSDeploys bool
	Directory  Directory
}

// PersonOf is the person p is, as the people list links them; false when
// none is configured (or a is nil).
func (a *Access) PersonOf(p Principal) (Person, bool) {
	if a == nil {
		return Person{}, false
	}
	for _, pe := range a.People {
		if pe.has(p) {
			return pe, true
		}
	}
	return Person{}, false
}

// person returns the name of the person p is, "" when none is configured.
func (a *Access) person(p Principal) string {
	for _, pe := range a.People {
		if pe.has(p) {
			return pe.Name
		}
	}
	return ""
}

func (pe Person) has(p Principal) bool {
	switch p.Kind {
	case PrincipalSlack:
		return containsFold(pe.Slack, p.ID)
	case PrincipalToken:
		return containsFold(pe.Tokens, p.ID)
	case PrincipalAWS:
		for _, pat := range pe.AWS {
			if arnMatch(pat, p.ID) && (SSORole(p.ID) || !sessionPattern(pat)) {
				return true
			}
		}
	}
	return false
}

// sessionPattern reports whether an assumed-role pattern names particular
// sessions (not role/*): only IAM Identity Center's sessions may be told
// apart that way, as only there the caller does not choose the name.
func sessionPattern(pat string) bool {
	parts := strings.SplitN(pat, ":", 6)
	if len(parts) != 6 || parts[2] != "sts" {
		return false
	}
	rest, ok := strings.CutPrefix(parts[5], "assumed-role/")
	if !ok {
		return false
	}
	_, session, _ := strings.Cut(rest, "/")
	return session != "*"
}

// arnMatch matches an ARN pattern segment by segment, the resource part
// case-insensitively (IAM names are unique regardless of case).
func arnMatch(pattern, arn string) bool {
	ok, err := path.Match(strings.ToLower(pattern), strings.ToLower(arn))
	return err == nil && ok
}

// SSORole reports whether arn is a session of an IAM Identity Center
// permission set's role (assumed-role/AWSReservedSSO_...), whose session
// name the identity provider sets to the user: one person per session.
func SSORole(arn string) bool {
	parts := strings.SplitN(arn, ":", 6)
	return len(parts) == 6 && parts[2] == "sts" && strings.HasPrefix(parts[5], "assumed-role/AWSReservedSSO_")
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

// awsRole is an AWS principal without its session name: two sessions of
// one role are one principal, since whoever may assume the role chooses
// the session name. (IAM Identity Center's roles, AWSReservedSSO_*, are
// the exception: there the identity provider sets the session name to the
// user; see SSORole.)
func awsRole(arn string) string {
	if SSORole(arn) {
		return strings.ToLower(arn)
	}
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) == 6 && parts[2] == "sts" && strings.HasPrefix(parts[5], "assumed-role/") {
		role, _, _ := strings.Cut(strings.TrimPrefix(parts[5], "assumed-role/"), "/")
		return strings.ToLower(parts[4] + ":role/" + role)
	}
	return strings.ToLower(arn)
}

// SamePerson reports whether x and y may be one person: the same identity
// (token names and Slack ids regardless of case, two sessions of one
// assumed AWS role, since whoever may assume it names the session), or
// identities one person of the people list links. Either is enough: a
// person entry never tells two sessions of one role apart.
func (a *Access) SamePerson(x, y Principal) bool {
	if x.Kind == y.Kind {
		switch x.Kind {
		case PrincipalAWS:
			if awsRole(x.ID) == awsRole(y.ID) {
				return true
			}
		case principalLegacy:
			if x.ID == y.ID {
				return true
			}
		default:
			if strings.EqualFold(x.ID, y.ID) {
				return true
			}
		}
	}
	if a != nil {
		px, py := a.person(x), a.person(y)
		return px != "" && px == py
	}
	return false
}

// Holds reports whether p holds role on site. An error means a user group
// could not be read (and no other list entry let p in).
func (a *Access) Holds(ctx context.Context, site Site, p Principal, role Role) (bool, error) {
	switch p.Kind {
	case PrincipalSystem, PrincipalLocal:
		// deploybot itself; and the dev console, whose user owns the
		// machine it runs on.
		return true, nil
	case principalLegacy, "":
		return false, nil
	}
	if role == RoleReader && p.Kind != PrincipalToken {
		return true, nil // whoever a door lets in reads
	}
	if p.Kind == PrincipalToken {
		// A token holds its grants and nothing more: a person's token
		// (linked so that self-approval is caught across doors) does not
		// hold what the person holds in Slack.
		for _, g := range a.Tokens[p.ID] {
			if g.Site != "" && g.Site != site.Name {
				continue
			}
			if g.Role == role || role == RoleReader || role == RolePreviewer && g.Role == RoleDeployer {
				return true, nil
			}
		}
		return false, nil
	}
	if p.Kind == PrincipalAWS && a.AWSDeploys && (role == RoleDeployer || role == RolePreviewer) {
		return true, nil
	}
	var ids []string
	switch role {
	case RoleDeployer:
		ids = site.Deployers
	case RoleApprover:
		ids = site.ApproverIDs()
	case RolePreviewer:
		ids = append(append(ids, site.Deployers...), site.Previewers...)
	}
	return a.named(ctx, ids, p)
}

// HoldsEverywhere reports whether p holds role on every site by a grant of
// no one site: what reading every site's records at once (a backup of the
// store) needs.
func (a *Access) HoldsEverywhere(p Principal, role Role) bool {
	if p.Kind != PrincipalToken {
		return p.Kind == PrincipalSystem || p.Kind == PrincipalLocal
	}
	for _, g := range a.Tokens[p.ID] {
		if g.Site == "" && g.Role == role {
			return true
		}
	}
	return false
}

// named reports whether ids (a site's role list) name p: its Slack user
// id, a user group it is in, or its person.
func (a *Access) named(ctx context.Context, ids []string, p Principal) (bool, error) {
	person := a.person(p)
	for _, id := range ids {
		if person != "" && strings.EqualFold(id, person) || p.Kind == PrincipalSlack && id == p.ID {
			return true, nil
		}
	}
	if p.Kind != PrincipalSlack || a.Directory == nil {
		return false, nil
	}
	var firstErr error
	for _, id := range ids {
		if !strings.HasPrefix(id, "S") {
			continue
		}
		in, err := a.Directory.InGroup(ctx, id, p.ID)
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		if in {
			return true, nil
		}
	}
	return false, firstErr
}

// What each operation needs, in one table: the doors show it, the docs
// list it, and authorize reads it.
var permissions = map[string]Role{
	"versions": RoleReader, "status": RoleReader, "history": RoleReader, "diff": RoleReader, "verify": RoleReader,
	"promote": RoleDeployer, "rollback": RoleDeployer, "lock": RoleDeployer, "unlock": RoleDeployer, "rollout": RoleDeployer,
	"pin": RoleDeployer, "unpin": RoleDeployer, "prune": RoleDeployer, "freeze": RoleDeployer, "unfreeze": RoleDeployer,
	"approvals": RoleReader,
	"approve":   RoleApprover, "override-freeze": RoleApprover, "lift-freeze": RoleApprover, "reject": RoleApprover,
	"preview": RolePreviewer,
	// Changes to the site's AWS side (command line only).
	ActionSetup: RoleDeployer, ActionKVSSetup: RoleDeployer, ActionRoutingSetup: RoleDeployer,
}

// Permission is the role an operation needs on a site.
func Permission(action string) (Role, bool) {
	r, ok := permissions[action]
	return r, ok
}

// authorize decides whether ctx's principal may do action on site and
// returns it. actor is what the caller named itself: with a principal in
// ctx it is ignored (the door put any label in the principal); in a
// service built with no Access (tests, benchmarks) and no principal, it
// stands for the principal, unchecked.
func (s *Service) authorize(ctx context.Context, site Site, action, actor string) (Principal, error) {
	p, ok := PrincipalOf(ctx)
	if !ok && s.Caller != nil {
		var err error
		if p, err = s.Caller(ctx); err != nil {
			return Principal{}, err
		}
		ok = true
	}
	if s.Access == nil {
		if ok {
			return p, nil
		}
		return ParsePrincipal(actor), nil
	}
	if !ok {
		return Principal{}, Errorf(EUNAUTHORIZED, "%s of %s: nobody verified who asks (a door that sets no identity)", action, site.Name)
	}
	role, known := permissions[action]
	if !known {
		return p, Errorf(EINTERNAL, "no permission is defined for %q", action)
	}
	allowed, err := s.Access.Holds(ctx, site, p, role)
	if err != nil {
		return p, Errorf(EINTERNAL, "could not check whether %s may %s %s (%v); try again in a moment", p, action, site.Name, err)
	}
	if !allowed {
		return p, &DeniedError{Principal: p, Site: site.Name, Action: action, Role: role}
	}
	return p, nil
}

// authorizeActor is authorize for the methods that take the actor as a
// string: it returns what to record as the actor.
func (s *Service) authorizeActor(ctx context.Context, site Site, action, actor string) (string, error) {
	p, err := s.authorize(ctx, site, action, actor)
	if p.Kind != "" {
		actor = p.String()
	}
	return actor, err
}

// mayRead refuses a read to a principal a door verified that is no reader
// of site (an API token granted on another site alone). Reads without a
// principal are deploybot's own (notices, reconcile) or the command line's,
// whose credentials read the bucket anyway; they are not asked who they
// are, so a read needs no STS call.
func (s *Service) mayRead(ctx context.Context, site Site, action string) error {
	p, ok := PrincipalOf(ctx)
	if !ok || s.Access == nil {
		return nil
	}
	held, err := s.Access.Holds(ctx, site, p, RoleReader)
	if err != nil {
		return Errorf(EINTERNAL, "could not check whether %s may read %s (%v)", p, site.Name, err)
	}
	if !held {
		return &DeniedError{Principal: p, Site: site.Name, Action: action, Role: RoleReader}
	}
	return nil
}

// DeniedError refuses an operation to a principal without the role it
// needs (code EUNAUTHORIZED).
type DeniedError struct {
	Principal Principal
	Site      string
	Action    string
	Role      Role
}

func (e *DeniedError) Error() string {
	who := map[Role]string{RoleDeployer: "the deployers", RoleApprover: "the approvers", RolePreviewer: "the deployers and previewers", RoleReader: "readers"}[e.Role]
	how := fmt.Sprintf("ask one of them, or an admin to add you to the site's %ss", e.Role)
	switch e.Principal.Kind {
	case PrincipalToken:
		how = fmt.Sprintf("the token's roles in http.tokens do not give it the %s role on %s", e.Role, e.Site)
	case PrincipalAWS:
		how = fmt.Sprintf("an AWS principal holds the %s role as a person of people whom the site names", e.Role)
	}
	return fmt.Sprintf("only %s of %s may %s it; %s is not one of them (%s)", who, e.Site, e.Action, e.Principal, how)
}
