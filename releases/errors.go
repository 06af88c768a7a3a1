package releases

import (
	"errors"
	"fmt"
)

// Error codes. Doors map them to their own vocabulary: the CLI to exit
// statuses, the HTTP API to status codes, Slack to ephemeral replies.
const (
	ECONFLICT     = "conflict"     // the action conflicts with the current state
	EINTERNAL     = "internal"     // something broke that the user cannot fix
	EINVALID      = "invalid"      // the request itself is malformed
	ENOTFOUND     = "not_found"    // the thing named does not exist
	EUNAUTHORIZED = "unauthorized" // the actor may not do this
)

// Error is a domain error: a code for programs and a message for people.
// Err, when set, is the underlying cause and is reachable with errors.Is/As.
type Error struct {
	Code    string
	Message string
	Err     error
	// Hint, when set, names what the person may do about it (see
	// hint.go): each door says it in its own words, as a flag, a chat
	// command or a JSON field.
	Hint string
}

func (e *Error) Error() string {
	if e.Message == "" && e.Err != nil {
		return e.Err.Error()
	}
	return e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with the given code and a formatted message. A %w
// verb in format keeps the wrapped error reachable.
func Errorf(code, format string, args ...any) *Error {
	err := fmt.Errorf(format, args...)
	return &Error{Code: code, Message: err.Error(), Err: errors.Unwrap(err)}
}

// ErrorCode returns the code of the first *Error in err's chain, or
// EINTERNAL for any other non-nil error.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	var l *LockedError
	if errors.As(err, &l) {
		return ECONFLICT
	}
	// A freeze or a closed window: the request is right, the time is not.
	var g *GuardError
	if errors.As(err, &g) {
		return ECONFLICT
	}
	var p *PendingError
	if errors.As(err, &p) {
		return ECONFLICT
	}
	var d *DeniedError
	if errors.As(err, &d) {
		return EUNAUTHORIZED
	}
	return EINTERNAL
}

// ErrorMessage returns the message meant for people: the domain message
// when there is one, else the error's own text. Errors that are not the
// domain's are nearly always AWS's or the network's ("operation error
// CloudFront: UpdateDistribution, ... AccessDenied"), and the person who
// must act on one (fix a policy, retry later) needs that text; they carry
// no secrets (credentials never appear in them). Their code stays
// EINTERNAL, so the doors still treat them as failures of deploybot's
// surroundings, not of the request.
func ErrorMessage(err error) string {
	if err == nil {
		return ""
	}
	var l *LockedError
	if errors.As(err, &l) {
		return l.Error()
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Error()
	}
	return err.Error()
}

// LockedError says a site is locked. It is a normal outcome, not a failure:
// the doors show who holds the lock and why.
type LockedError struct {
	Lock Lock
	// RunnerGone: the deploy holding the lock lost its process and will
	// not release it by itself.
	RunnerGone bool
}

func (e *LockedError) hint() string {
	if e.RunnerGone {
		return HintRecover
	}
	return ""
}

func (e *LockedError) Error() string {
	l := e.Lock
	if l.DeployID != "" && e.RunnerGone {
		return fmt.Sprintf("site %s is locked by deploy %s by %s (%s), started %s, whose process (%s) is gone; %s",
			l.Site, l.DeployID, l.Holder, l.Reason, l.Since.UTC().Format("2006-01-02 15:04:05Z"), runnerText(l), recoverHint())
	}
	if l.DeployID != "" {
		return fmt.Sprintf("site %s is busy: deploy %s by %s (%s) is running since %s",
			l.Site, l.DeployID, l.Holder, l.Reason, l.Since.UTC().Format("2006-01-02 15:04:05Z"))
	}
	return fmt.Sprintf("site %s is locked by %s since %s: %s",
		l.Site, l.Holder, l.Since.UTC().Format("2006-01-02 15:04:05Z"), l.Reason)
}
