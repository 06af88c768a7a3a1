package releases

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Four eyes: on a site whose Approval requires it, a promote does not run
// when asked; it becomes an ApprovalRequest that waits, in the store, for
// Required approvals by approvers other than the person who asked. The
// approval that completes it runs the deploy, under the request's id, as
// the person who asked (the audit log has who approved). A reject, a
// timeout or the person withdrawing ends it. A pending request holds no
// lock, so the site stays free for rollbacks and for other work, but a
// second request for the site is refused naming the first. Rollbacks never
// wait for approval: they are the way out of an incident.

// ApprovalState is where an approval request stands.
type ApprovalState string

const (
	ApprovalPending  ApprovalState = "pending"
	ApprovalApproved ApprovalState = "approved"
	ApprovalRejected ApprovalState = "rejected"
	ApprovalExpired  ApprovalState = "expired"
	// ApprovalFailed: the release asked for is gone (pruned, deleted) or
	// was published again with other content; nothing was deployed.
	ApprovalFailed ApprovalState = "failed"
)

// DefaultApprovalTimeout is how long a request waits when the site's
// approval names no timeout.
const DefaultApprovalTimeout = 30 * time.Minute

// ApprovalRequest is a promote waiting for approval. Its ID becomes the
// deploy's id once approved.
type ApprovalRequest struct {
	ID       string `json:"id"`
	Site     string `json:"site"`
	Version  string `json:"version"`
	From     string `json:"from"` // live when asked
	Actor    string `json:"actor"`
	Reason   string `json:"reason,omitempty"`
	Override string `json:"override_freeze,omitempty"`
	// Back: the promote goes back to an older release, as its asker said.
	Back bool `json:"back,omitempty"`
	// Gradual: the promote is a rolling release, as its asker said.
	Gradual bool `json:"gradual,omitempty"`
	// Manifest is the ETag of the release's manifest when it was asked
	// for: what the approvers approve. A name published again since is
	// other content, and the request fails rather than ship it.
	Manifest string        `json:"manifest,omitempty"`
	Door     string        `json:"door,omitempty"`
	Required int           `json:"required"`
	State    ApprovalState `json:"state"`
	// Approvals are who approved so far, in order.
	Approvals []ApprovalVote `json:"approvals"`
	Requested time.Time      `json:"requested_at"`
	Expires   time.Time      `json:"expires_at"`
	// DecidedBy, DecidedAt and Why say how a request that is no longer
	// pending ended (an expired one: deploybot, at its expiry).
	DecidedBy string    `json:"decided_by,omitempty"`
	DecidedAt time.Time `json:"decided_at,omitzero"`
	Why       string    `json:"why,omitempty"`
}

// ApprovalVote is one approval.
type ApprovalVote struct {
	By string    `json:"by"`
	At time.Time `json:"at"`
}

// Pending reports whether the request still waits at t.
func (a ApprovalRequest) Pending(t time.Time) bool {
	return a.State == ApprovalPending && t.Before(a.Expires)
}

// Approvers lists who approved.
func (a ApprovalRequest) Approvers() []string {
	out := make([]string, len(a.Approvals))
	for i, v := range a.Approvals {
		out[i] = v.By
	}
	return out
}

// ApprovalNotifier hears of every change to an approval request (asked,
// approved in part or in full, rejected, expired), whichever door made
// it, so a chat can keep its card with the Approve and Reject buttons true.
type ApprovalNotifier interface {
	ApprovalChanged(ctx context.Context, site Site, a ApprovalRequest)
}

func (s *Service) approvalChanged(ctx context.Context, site Site, a ApprovalRequest) {
	if s.OnApproval != nil {
		s.OnApproval.ApprovalChanged(context.WithoutCancel(ctx), site, a)
	}
}

// needsApproval reports whether req must wait for approval.
func needsApproval(site Site, req PromoteRequest) bool {
	return site.Approval.Required > 0 && req.Kind == KindPromote && req.approved == nil
}

// ask records a promote as a request waiting for approval.
func (s *Service) ask(ctx context.Context, site Site, cur Current, req PromoteRequest, manifest string) (*Outcome, error) {
	now := s.now()
	timeout := site.Approval.Timeout
	if timeout <= 0 {
		timeout = DefaultApprovalTimeout
	}
	a := ApprovalRequest{ID: s.newID(), Site: site.Name, Version: req.Version, From: cur.Version, Actor: req.Actor, Reason: req.Reason,
		Override: req.Override, Back: req.Back, Gradual: req.Gradual, Manifest: manifest, Door: DoorOf(ctx), Required: site.Approval.Required, State: ApprovalPending, Approvals: []ApprovalVote{},
		Requested: now, Expires: now.Add(timeout)}
	if err := s.Store.CreateApproval(ctx, a); err != nil {
		return nil, err
	}
	s.logger().InfoContext(ctx, "promote waits for approval", "site", site.Name, "version", req.Version, "actor", req.Actor, "request", a.ID)
	s.approvalChanged(ctx, site, a)
	return &Outcome{Approval: &a, Version: req.Version}, nil
}

// PendingError says a site already has a promote waiting for approval.
type PendingError struct{ Request ApprovalRequest }

func (e *PendingError) Error() string {
	a := e.Request
	return fmt.Sprintf("site %s already has a promote waiting for approval: %s of %s by %s, asked %s (expires %s); approve or reject it first",
		a.Site, a.ID, a.Version, a.Actor, a.Requested.UTC().Format("15:04Z"), a.Expires.UTC().Format("15:04Z"))
}

// Approval returns one request, as it stands now (a pending request past
// its time reads as expired).
func (s *Service) Approval(ctx context.Context, siteName, id string) (ApprovalRequest, error) {
	site, err := s.Site(siteName)
	if err != nil {
		return ApprovalRequest{}, err
	}
	if err := s.mayRead(ctx, site, "approvals"); err != nil {
		return ApprovalRequest{}, err
	}
	a, err := s.Store.Approval(ctx, site.Name, id)
	if err != nil {
		return ApprovalRequest{}, err
	}
	s.expiredView(&a)
	return a, nil
}

// Approvals returns up to limit requests of the site, newest first.
func (s *Service) Approvals(ctx context.Context, siteName string, limit int) ([]ApprovalRequest, error) {
	site, err := s.Site(siteName)
	if err != nil {
		return nil, err
	}
	if err := s.mayRead(ctx, site, "approvals"); err != nil {
		return nil, err
	}
	as, err := s.Store.Approvals(ctx, site.Name, limit)
	for i := range as {
		s.expiredView(&as[i])
	}
	return as, err
}

// expiredView shows a pending request past its time as expired, before
// ExpireApprovals has recorded it.
func (s *Service) expiredView(a *ApprovalRequest) {
	if a.State == ApprovalPending && !s.now().Before(a.Expires) {
		a.State, a.DecidedBy, a.DecidedAt, a.Why = ApprovalExpired, AutoActor, a.Expires, "nobody approved in time"
	}
}

// Approve adds the approval of ctx's principal (an approver of the site,
// another person than the one who asked and than those who approved
// already, whichever door each came through) to a pending request. The
// approval that completes it runs the deploy (reported to progress, on
// ctx) and returns its outcome; one that does not returns the request in
// Outcome.Approval. A request whose release is gone, or was published
// again with other content, ends as failed.
func (s *Service) Approve(ctx context.Context, siteName, id, actor string, progress Progress) (out *Outcome, err error) {
	defer func() { s.audit(ctx, siteName, actor, "approve", id, err) }()
	site, err := s.Site(siteName)
	if err != nil {
		return nil, err
	}
	p, err := s.authorize(ctx, site, "approve", actor)
	if p.Kind != "" {
		actor = p.String()
	}
	if err != nil {
		return nil, err
	}
	if actor == "" {
		return nil, Errorf(EINVALID, "an approval needs an actor")
	}
	pending, err := s.Store.Approval(ctx, site.Name, id)
	if err != nil {
		return nil, err
	}
	// A freeze or a closed window that came after the request holds the
	// approval too, leaving the request waiting, rather than taking the
	// approval and then refusing the deploy.
	if pending.Override == "" && pending.Pending(s.now()) {
		if err := s.guard(ctx, site, PromoteRequest{Kind: KindPromote}); err != nil {
			return nil, err
		}
	}
	if pending.Pending(s.now()) {
		if gone := s.approvedReleaseGone(ctx, site, pending); gone != "" {
			return nil, s.failApproval(ctx, site, id, gone)
		}
		// A locked or busy site takes no approval: the request waits
		// rather than being approved into a deploy that cannot start.
		if l, err := s.Store.Lock(ctx, site.Name); err != nil {
			return nil, err
		} else if l != nil {
			return nil, s.lockError(*l)
		}
	}
	now := s.now()
	a, err := s.Store.UpdateApproval(ctx, site.Name, id, func(a *ApprovalRequest) error {
		if err := decidable(a, now); err != nil {
			return err
		}
		if s.Access.SamePerson(ParsePrincipal(a.Actor), p) {
			as := ""
			if a.Actor != actor {
				as = " (as " + a.Actor + ")"
			}
			return Errorf(EUNAUTHORIZED, "%s asked for this promote%s and cannot approve it: another approver must", actor, as)
		}
		for _, v := range a.Approvals {
			if s.Access.SamePerson(ParsePrincipal(v.By), p) {
				return Errorf(ECONFLICT, "%s has approved %s already (as %s); it needs %d more, from other people", actor, a.ID, v.By, a.Required-len(a.Approvals))
			}
		}
		a.Approvals = append(a.Approvals, ApprovalVote{By: actor, At: now})
		if len(a.Approvals) >= a.Required {
			a.State, a.DecidedBy, a.DecidedAt = ApprovalApproved, actor, now
		}
		return nil
	})
	if err != nil {
		s.expireIfDue(ctx, site, id, err)
		return nil, err
	}
	s.approvalChanged(ctx, site, a)
	if a.State != ApprovalApproved {
		return &Outcome{Approval: &a, Version: a.Version}, nil
	}
	s.logger().InfoContext(ctx, "promote approved", "site", site.Name, "request", a.ID, "approvers", a.Approvers())
	// The deploy is the asker's promote, approved: recorded as theirs.
	asker := WithPrincipal(ctx, ParsePrincipal(a.Actor))
	out, err = s.Promote(asker, PromoteRequest{Site: site.Name, Version: a.Version, Actor: a.Actor, Reason: a.Reason, Override: a.Override, Back: a.Back, Gradual: a.Gradual, approved: &a}, progress)
	if out == nil && err != nil {
		// Refused before a deploy started (pruned, locked or busy since
		// the checks above, its files damaged): the request ends as
		// failed, saying why, never as approved with nothing shipped.
		_ = s.failApproval(ctx, site, id, ErrorMessage(err))
	}
	return out, err
}

// approvedReleaseGone says why the release a request asks for can no
// longer be what was asked ("" when it still is): its manifest is gone,
// or it is another object than when the request was made.
func (s *Service) approvedReleaseGone(ctx context.Context, site Site, a ApprovalRequest) string {
	etag, err := s.Bucket.ManifestETag(ctx, site, a.Version)
	switch {
	case errors.Is(err, ErrNoManifest):
		return fmt.Sprintf("%s of %s is gone from the bucket (pruned or deleted) since it was asked for", a.Version, site.Name)
	case err != nil:
		return "" // not known now: the deploy reads the manifest again
	case a.Manifest != "" && etag != a.Manifest:
		return fmt.Sprintf("%s of %s was published again with other content since it was asked for; promote it again to ask for the new build", a.Version, site.Name)
	}
	return ""
}

// failApproval ends a request as failed, saying why, and returns the
// error a decision on it gets.
func (s *Service) failApproval(ctx context.Context, site Site, id, why string) error {
	now := s.now()
	a, err := s.Store.UpdateApproval(ctx, site.Name, id, func(a *ApprovalRequest) error {
		if a.State != ApprovalPending && a.State != ApprovalApproved {
			return decidable(a, now)
		}
		a.State, a.DecidedBy, a.DecidedAt, a.Why = ApprovalFailed, AutoActor, now, why
		return nil
	})
	if err != nil {
		return err
	}
	s.approvalChanged(ctx, site, a)
	return Errorf(ECONFLICT, "request %s failed: %s; nothing was deployed", id, why)
}

// Reject ends a pending request without a deploy: an approver's no, or the
// person who asked withdrawing it.
func (s *Service) Reject(ctx context.Context, siteName, id, actor, why string) (_ ApprovalRequest, err error) {
	defer func() { s.audit(ctx, siteName, actor, "reject", joinDetail(id, why), err) }()
	site, err := s.Site(siteName)
	if err != nil {
		return ApprovalRequest{}, err
	}
	if err := checkReason("the reason", why); err != nil {
		return ApprovalRequest{}, err
	}
	a, err := s.Store.Approval(ctx, site.Name, id)
	if err != nil {
		return ApprovalRequest{}, err
	}
	// The asker may withdraw their own request; anyone else must be an
	// approver.
	p, err := s.authorize(ctx, site, "reject", actor)
	if p.Kind != "" {
		actor = p.String()
	}
	var denied *DeniedError
	if errors.As(err, &denied) && s.Access.SamePerson(ParsePrincipal(a.Actor), p) {
		err = nil
	}
	if err != nil {
		return ApprovalRequest{}, err
	}
	if actor == "" {
		return ApprovalRequest{}, Errorf(EINVALID, "a rejection needs an actor")
	}
	now := s.now()
	a, err = s.Store.UpdateApproval(ctx, site.Name, id, func(a *ApprovalRequest) error {
		if err := decidable(a, now); err != nil {
			return err
		}
		a.State, a.DecidedBy, a.DecidedAt, a.Why = ApprovalRejected, actor, now, why
		return nil
	})
	if err != nil {
		s.expireIfDue(ctx, site, id, err)
		return ApprovalRequest{}, err
	}
	s.approvalChanged(ctx, site, a)
	return a, nil
}

// decidable refuses a decision on a request that is no longer pending.
func decidable(a *ApprovalRequest, now time.Time) error {
	switch {
	case a.State == ApprovalPending && !now.Before(a.Expires):
		return Errorf(ECONFLICT, "request %s expired at %s: nobody approved in time; promote again to ask again", a.ID, a.Expires.UTC().Format("15:04Z"))
	case a.State != ApprovalPending:
		by := ""
		if a.DecidedBy != "" {
			by = " by " + a.DecidedBy
		}
		return Errorf(ECONFLICT, "request %s was %s%s at %s", a.ID, a.State, by, a.DecidedAt.UTC().Format("15:04Z"))
	}
	return nil
}

// expireIfDue records the expiry of a request a decision found past its
// time, so its card and history say so at once.
func (s *Service) expireIfDue(ctx context.Context, site Site, id string, err error) {
	if ErrorCode(err) == ECONFLICT {
		s.ExpireApprovals(ctx, site.Name)
	}
}

// ExpireApprovals records as expired the site's pending requests whose
// time is up, each with an audit record; serve runs it on a timer. It
// returns the requests it expired.
func (s *Service) ExpireApprovals(ctx context.Context, siteName string) ([]ApprovalRequest, error) {
	site, err := s.Site(siteName)
	if err != nil {
		return nil, err
	}
	pending, err := s.Store.Approvals(ctx, site.Name, 0)
	if err != nil {
		return nil, err
	}
	now := s.now()
	var out []ApprovalRequest
	for _, p := range pending {
		if p.State != ApprovalPending || now.Before(p.Expires) {
			continue
		}
		a, err := s.Store.UpdateApproval(ctx, site.Name, p.ID, func(a *ApprovalRequest) error {
			if a.State != ApprovalPending {
				return Errorf(ECONFLICT, "decided meanwhile")
			}
			a.State, a.DecidedBy, a.DecidedAt, a.Why = ApprovalExpired, AutoActor, a.Expires, "nobody approved in time"
			return nil
		})
		if err != nil {
			continue
		}
		// deploybot expiring a request is done as asked: ok. The asker's
		// promote never ran, which the action says; refused would say
		// deploybot's own expiry was not allowed.
		s.Audit(ctx, AuditEntry{Site: site.Name, Actor: AutoActor, Action: ActionApprovalExpired, Result: ResultOK,
			Detail: fmt.Sprintf("%s: promote of %s by %s, unapproved after %s", a.ID, a.Version, a.Actor, a.Expires.Sub(a.Requested).Round(time.Second)),
			Door:   DoorSchedule})
		s.approvalChanged(ctx, site, a)
		out = append(out, a)
	}
	return out, nil
}
