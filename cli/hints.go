package cli

import "github.com/deploybot/deploybot/releases"

// hints say the domain's hints (releases.Hint*) as this door's flags.
var hints = map[string]string{
	releases.HintNoVerify: "use --no-verify to promote anyway",
	releases.HintGoBack:   "promote --rollback",
}

// errorText is an error's message for the command line, with its hint
// as the flag that acts on it.
func errorText(err error) string {
	msg := releases.ErrorMessage(err)
	if h := hints[releases.ErrorHint(err)]; h != "" {
		msg += " (" + h + ")"
	}
	return msg
}
