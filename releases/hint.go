package releases

// Hints: what a person may do about a refusal, named apart from any door.
// The domain does not know whether the person types flags, clicks in a
// chat or sends JSON; each door renders a hint in its own vocabulary (the
// command line as a flag, Slack as what to do there or that it is the
// command line's, the API as the code in its answer).
const (
	// HintNoVerify: promote without checking that every file of the
	// release is in the bucket.
	HintNoVerify = "no-verify"
	// HintGoBack: the promote goes back to an older release; say it is
	// meant.
	HintGoBack = "rollback"
	// HintOverrideFreeze: an approver may promote anyway, saying why.
	HintOverrideFreeze = "override-freeze"
	// HintRecover: a deploy whose process is gone (or was stopped) is
	// finished by recovery, from what AWS serves.
	HintRecover = "recover"
)

// hinted is an error type that carries its own hint (GuardError,
// LockedError).
type hinted interface{ hint() string }

// WithHint sets the error's hint and returns it.
func (e *Error) WithHint(hint string) *Error {
	e.Hint = hint
	return e
}

// ErrorHint returns the hint of the first *Error in err's chain that has
// one, or "".
func ErrorHint(err error) string {
	for err != nil {
		if h, ok := err.(hinted); ok && h.hint() != "" {
			return h.hint()
		}
		if e, ok := err.(*Error); ok && e.Hint != "" {
			return e.Hint
		}
		switch u := err.(type) {
		case interface{ Unwrap() error }:
			err = u.Unwrap()
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				if h := ErrorHint(e); h != "" {
					return h
				}
			}
			return ""
		default:
			return ""
		}
	}
	return ""
}
