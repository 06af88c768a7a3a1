package bot

// Message is an answer in the chat's own terms. Text is the whole answer
// as one mrkdwn text: what Slack shows in notifications and the dev
// console prints. Blocks lay the same answer out for a chat that has
// layout; the Slack adapter turns them into Block Kit and keeps them
// within Slack's limits. The model is the small part of Block Kit the
// bot uses, so that what a message says is decided here, once, and how
// Slack encodes it is decided in the adapter.
type Message struct {
	Text   Mrkdwn
	Blocks []Block
}

// Block is one of Section, Note, Buttons.
type Block interface{ isBlock() }

// Section is a paragraph of text, or short fields shown side by side
// (Text empty).
type Section struct {
	Text   Mrkdwn
	Fields []Mrkdwn
}

// Note is small print under a message (Slack's context block).
type Note struct{ Text Mrkdwn }

// Buttons is a row of buttons. ID names the row; a chat gives it back
// with a click, so it can carry a little state (Slack's block_id, cut to
// its limit by the adapter).
type Buttons struct {
	ID      string
	Buttons []Button
}

// Button is one button. A click runs Action with Value (site/version).
type Button struct {
	Action  string
	Value   string
	Label   string // plain text
	Style   Style
	Confirm *Confirm // asked before the click counts; nil: none
}

// Style is how a button stands out.
type Style string

// Button styles.
const (
	Plain   Style = ""
	Primary Style = "primary"
	Danger  Style = "danger"
)

// Confirm is the dialog a button asks before it acts. Every part is plain
// text, which Slack shows as written: no markup, no mentions
// (https://api.slack.com/reference/block-kit/composition-objects#confirm).
type Confirm struct {
	Title  string
	Text   string
	OK     string
	Cancel string
	Danger bool
}

func (Section) isBlock() {}
func (Note) isBlock()    {}
func (Buttons) isBlock() {}

// Action ids of the buttons.
const (
	ActionPromote  = "deploybot_promote"  // value: site/version
	ActionRollback = "deploybot_rollback" // value: site/version to go back to
	ActionConfirm  = "deploybot_confirm"  // value: site/version; the row's ID: "r:" and the reason
	ActionCancel   = "deploybot_cancel"   // value: site/version
	ActionApprove  = "deploybot_approve"  // value: site/request id
	ActionReject   = "deploybot_reject"   // value: site/request id
)

func section(text Mrkdwn) Section { return Section{Text: text} }

func note(text Mrkdwn) Note { return Note{Text: text} }

// textMessage is a message of one section.
func textMessage(t Mrkdwn) Message { return Message{Text: t, Blocks: []Block{section(t)}} }
