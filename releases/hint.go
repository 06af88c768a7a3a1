package releases

import "errors"

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
)

// WithHint sets the error's hint and returns it.
func (e *Error) WithHint(hint string) *Error {
	e.Hint = hint
	return e
}

// ErrorHint returns the hint of the first *Error in err's chain that has
// one, or "".
func ErrorHint(err error) string {
	for err != nil {
		var e *Error
		if !errors.As(err, &e) {
			return ""
		}
		if e.Hint != "" {
			return e.Hint
		}
		err = e.Err
	}
	return ""
}
