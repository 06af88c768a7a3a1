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
	if e.Time.IsZero() {
		e.Time = s.now()
	}
	if e.Door == "" {
		e.Door = DoorOf(ctx)
	}
	p, _ := s.principal(ctx)
	if e.Label == "" && p.Label != "" && p.Label != e.Actor {
		e.Label = shorten(p.Label, maxLabel)
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
	e := AuditEntry{Site: site, Actor: actor, Action: action, Result: "ok", Detail: shorten(detail, maxAuditDetail)}
	var le *LockedError
	switch {
	case err == nil:
	case errors.As(err, &le), ErrorCode(err) == EUNAUTHORIZED, ErrorCode(err) == ECONFLICT,
		ErrorCode(err) == EINVALID, ErrorCode(err) == ENOTFOUND:
		e.Result, e.Detail = "refused", ErrorMessage(err)
	default:
		e.Result, e.Detail = "failed", ErrorMessage(err)
	}
	s.Audit(ctx, e)
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
	return s.Store.Audit(ctx, site.Name, limit)
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
