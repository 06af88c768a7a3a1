package releases

import "unicode/utf8"

// MaxReason bounds the free text people give with an action: a deploy's
// reason, a freeze override's, a lock's, a pin's, a freeze's, a
// rejection's. That text is kept in every deploy, lock, pin and audit
// record, mirrored to the bucket and shown in Slack, so past this many
// characters it is refused, saying so, rather than stored whole or cut
// without the person knowing. A sentence or two fits; a pasted log does
// not.
const MaxReason = 500

// maxAuditDetail bounds an audit record's detail, which joins a version,
// a reason and the note of an override or an approval.
const maxAuditDetail = 4 * MaxReason

// checkReason refuses text (what names it: "the reason") longer than
// MaxReason characters.
func checkReason(what, text string) error {
	if n := utf8.RuneCountInString(text); n > MaxReason {
		return Errorf(EINVALID, "%s is %d characters long; at most %d are kept", what, n, MaxReason)
	}
	return nil
}
