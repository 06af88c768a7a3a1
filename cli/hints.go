package cli

import (
	"errors"

	"github.com/deploybot/deploybot/releases"
)

// hints say the domain's hints (releases.Hint*) as this door's flags.
var hints = map[string]string{
	releases.HintNoVerify:       "use --no-verify to promote anyway",
	releases.HintGoBack:         "promote --rollback",
	releases.HintOverrideFreeze: "promote --override-freeze REASON",
	releases.HintRecover:        "run deploybot recover",
}

// errorText is an error's message for the command line, with its hint
// as the flag that acts on it.
func errorText(err error) string {
	msg := releases.ErrorMessage(err)
	hint := releases.ErrorHint(err)
	h := hints[hint]
	var le *releases.LockedError
	if hint == releases.HintRecover && errors.As(err, &le) {
		h += " --site " + le.Lock.Site
	}
	if h != "" {
		msg += " (" + h + ")"
	}
	return msg
}
