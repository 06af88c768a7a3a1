package bot

import "github.com/deploybot/deploybot/releases"

// hints say the domain's hints (releases.Hint*) in Slack's words: what to
// do here, or that only the command line or the API does it. Never a
// command-line flag: nobody can type one into Slack.
var hints = map[string]string{
	releases.HintNoVerify: "promoting without that check is done from the command line or the API, not from Slack",
	releases.HintGoBack:   "promote it again and confirm going back when asked",
	// The promote command here takes the override (commands.go).
	releases.HintOverrideFreeze: "an approver may add --override-freeze and why to the promote command",
	releases.HintRecover:        "deploybot serve finishes it when it starts again, or an operator runs deploybot recover on the command line",
}

// ErrorMessage is an error's message for Slack (and the dev console), with
// its hint in Slack's words. Not escaped: see ErrorText.
func ErrorMessage(err error) string {
	msg := releases.ErrorMessage(err)
	if h := hints[releases.ErrorHint(err)]; h != "" {
		msg += " (" + h + ")"
	}
	return msg
}
