package releases

import (
	"context"
	"errors"
	"strings"
)

// Doors name where an operation came from, in the audit log.
const (
	DoorSlack    = "slack"
	DoorCLI      = "cli"
	DoorAPI      = "api"
	DoorSchedule = "schedule"
	DoorConsole  = "console"
)

// Results of the audit log: one vocabulary for the log, the API and the
// command line, which people script against.
const (
	// ResultOK: done as asked.
	ResultOK = "ok"
	// ResultRefused: not allowed or not possible now (a lock, a freeze, a
	// bad version, a conflict); nothing changed.
	ResultRefused = "refused"
	// ResultFailed: it started, and did not end as asked.
	ResultFailed = "failed"
	// ResultInterrupted: a deploy stopped part way, by a shutdown, a
	// Ctrl-C or a killed process.
	ResultInterrupted = "interrupted"
	// ResultResumed: an interrupted deploy is being finished by recovery;
	// a record of its outcome follows.
	ResultResumed = "resumed"
)

// IsResult reports whether result is one of the five of the audit log.
func IsResult(result string) bool {
	switch result {
	case ResultOK, ResultRefused, ResultFailed, ResultInterrupted, ResultResumed:
		return true
	}
	return false
}

// Actions whose name says what happened where a result once did: the
// result of each is ok (see Promote and ExpireApprovals).
const (
	// ActionApprovalRequested: a promote on an approval site became a
	// request; the deploy, once approved, is its own promote record.
	ActionApprovalRequested = "approval-requested"
	// ActionApprovalExpired: deploybot ended a request nobody approved
	// in time.
	ActionApprovalExpired = "approval-expired"
)

// asRecordedNow reads an entry written before the one vocabulary as one
// written now: a promote that became a request (result pending), an
// expiry (action approval, result expired), a prune that found the site
// busy (result skipped). The mirrored history keeps what was written (its
// records are immutable and a rebuild brings them back as they are); the
// doors show the five results alone, which is what scripts match.
func asRecordedNow(e AuditEntry) AuditEntry {
	switch {
	case e.Result == "pending":
		e.Action, e.Result = ActionApprovalRequested, ResultOK
	case e.Action == "approval" && e.Result == "expired":
		e.Action, e.Result = ActionApprovalExpired, ResultOK
	case e.Result == "skipped":
		e.Result = ResultRefused
	}
	return e
}

type doorKey struct{}

// WithDoor says which door ctx's operation came through; every door sets
// it once, at its edge, and the service writes it into the audit record.
func WithDoor(ctx context.Context, door string) context.Context {
	return context.WithValue(ctx, doorKey{}, door)
}

// DoorOf is the door ctx's operation came through ("" when none said).
func DoorOf(ctx context.Context) string {
	d, _ := ctx.Value(doorKey{}).(string)
	return d
}

// Audit records an entry, logging (not failing) when the store refuses:
// the action itself has already happened or been refused. The door is
// ctx's unless the entry names one.
func (s *Service) Audit(ctx context.Context, e AuditEntry) {
	p, _ := s.principal(ctx)
	if e.Label == "" && p.Label != "" && p.Label != e.Actor {
		e.Label = shorten(p.Label, maxLabel)
	}
	s.appendAudit(ctx, e)
}

// appendAudit writes e as it is, but for its time and door when unset:
// no principal of ctx is added to it (a record written for someone
// else, such as the deploy's actor when recovery ends it).
func (s *Service) appendAudit(ctx context.Context, e AuditEntry) {
	if e.Time.IsZero() {
		e.Time = s.now()
	}
	if e.Door == "" {
		e.Door = DoorOf(ctx)
	}
	// The record is written whatever became of ctx: a deploy cut short
	// by a shutdown is recorded too.
	if err := s.Store.AppendAudit(context.WithoutCancel(ctx), e); err != nil {
		s.logger().ErrorContext(ctx, "writing the audit log", "err", err, "site", e.Site, "action", e.Action)
	}
}

// audit writes the record of one operation, whichever door asked: ok;
// refused when it was not allowed or not possible (a lock, a bad version,
// an unknown release, a conflict); failed otherwise.
func (s *Service) audit(ctx context.Context, site, actor, action, detail string, err error) {
	s.auditAs(ctx, site, actor, action, resultOf(err), detail, err)
}

// resultOf is the result of an operation that ended with err, when it
// changes nothing part way: refused when it was not allowed or not
// possible, failed otherwise.
func resultOf(err error) string {
	var le *LockedError
	switch {
	case err == nil:
		return ResultOK
	case errors.As(err, &le), ErrorCode(err) == EUNAUTHORIZED, ErrorCode(err) == ECONFLICT,
		ErrorCode(err) == EINVALID, ErrorCode(err) == ENOTFOUND:
		return ResultRefused
	}
	return ResultFailed
}

// auditAs is audit with the result decided by the caller; err, when set,
// is the detail.
func (s *Service) auditAs(ctx context.Context, site, actor, action, result, detail string, err error) {
	// Whoever the door verified is the actor, whatever the caller typed
	// and however early the operation was refused; what it typed is the
	// label.
	if p, ok := s.principal(ctx); ok {
		if actor != "" && actor != p.String() && p.Label == "" {
			p.Label = actor
			ctx = WithPrincipal(ctx, p)
		}
		actor = p.String()
	}
	e := AuditEntry{Site: site, Actor: actor, Action: action, Result: result, Detail: shorten(detail, maxAuditDetail)}
	if err != nil {
		e.Detail = ErrorMessage(err)
	}
	s.Audit(ctx, e)
}

// runResult is the result of a deploy that started, from how it ended;
// ok is false when this process records nothing: another one took the
// deploy over (ErrFenced) and records how it ends.
func runResult(d *Deploy, err error) (result string, ok bool) {
	switch {
	case errors.Is(err, ErrFenced):
		return "", false
	case errors.Is(err, ErrShutdown) && !d.Phase.Final():
		// Stopped in its phase: a resume, and its outcome, follow.
		return ResultInterrupted, true
	case err != nil || d.Phase == PhaseFailed:
		return ResultFailed, true
	}
	return ResultOK, true
}

// auditDeploy writes the record of a promote or rollback: as audit does
// when no deploy started (refused, or failed before it began), else how
// the deploy ended (ok, failed, interrupted), whatever the code of the
// error that ended it.
func (s *Service) auditDeploy(ctx context.Context, site, actor string, kind Kind, detail string, out *Outcome, err error) {
	if out == nil || out.Deploy == nil {
		s.audit(ctx, site, actor, string(kind), detail, err)
		return
	}
	if result, ok := runResult(out.Deploy, err); ok {
		s.auditAs(ctx, site, actor, string(kind), result, detail, err)
	}
}

// auditFor writes a record of deploy d for its actor (not for whoever
// ctx names): how a run that recovery took over was interrupted, and how
// it ended.
func (s *Service) auditFor(ctx context.Context, d *Deploy, result, door, detail string) {
	s.appendAudit(ctx, AuditEntry{Site: d.Site, Actor: d.Actor, Action: string(d.Kind), Result: result, Door: door,
		Detail: shorten(detail, maxAuditDetail)})
}

// History is the site's audit log, newest first: every operation from
// every door, refusals included (limit <= 0: all).
func (s *Service) History(ctx context.Context, siteName string, limit int) ([]AuditEntry, error) {
	site, err := s.Site(siteName)
	if err != nil {
		return nil, err
	}
	if err := s.mayRead(ctx, site, "history"); err != nil {
		return nil, err
	}
	s.catchUp(ctx, site.Name)
	es, err := s.Store.Audit(ctx, site.Name, limit)
	for i := range es {
		es[i] = asRecordedNow(es[i])
	}
	return es, err
}

// principal is who asks for ctx's operation: the door's, or the
// process's Caller (asked once, remembered); ok is false when neither
// says.
func (s *Service) principal(ctx context.Context) (Principal, bool) {
	if p, ok := PrincipalOf(ctx); ok {
		return p, true
	}
	if s.Caller != nil {
		if p, err := s.Caller(ctx); err == nil {
			return p, true
		}
	}
	return Principal{}, false
}

// maxLabel bounds a label in the audit log: it is outside text.
const maxLabel = 100

func joinDetail(parts ...string) string {
	return strings.TrimSpace(strings.Join(parts, " "))
}
