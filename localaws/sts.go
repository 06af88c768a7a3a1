package localaws

import (
	"encoding/xml"
	"net/http"
	"regexp"
	"strings"
)

// The stand-in's STS answers the one call deploybot makes, GetCallerIdentity
// (https://docs.aws.amazon.com/STS/latest/APIReference/API_GetCallerIdentity.html):
// the query protocol's form-encoded POST, answered in XML. The identity is
// the caller's access key id, as IAM would know it: a user named after the
// key in the stand-in's account, or the ARN Options.Identities gives it, so
// that tests can be several people (or sessions of one role). Like STS, it
// needs no permission and refuses an unsigned call (MissingAuthenticationToken).

// StandInAccount is the account id the stand-in's identities live in.
const StandInAccount = "000000000000"

func isSTS(r *http.Request) bool {
	return strings.Contains(r.Header.Get("Authorization"), "/sts/aws4_request")
}

var credentialKey = regexp.MustCompile(`Credential=([A-Za-z0-9]+)/`)

type stsIdentity struct {
	XMLName xml.Name `xml:"GetCallerIdentityResponse"`
	XMLNS   string   `xml:"xmlns,attr"`
	Arn     string   `xml:"GetCallerIdentityResult>Arn"`
	UserID  string   `xml:"GetCallerIdentityResult>UserId"`
	Account string   `xml:"GetCallerIdentityResult>Account"`
	Request string   `xml:"ResponseMetadata>RequestId"`
}

type stsError struct {
	XMLName xml.Name `xml:"ErrorResponse"`
	Type    string   `xml:"Error>Type"`
	Code    string   `xml:"Error>Code"`
	Message string   `xml:"Error>Message"`
	Request string   `xml:"RequestId"`
}

func writeSTSError(w http.ResponseWriter, status int, kind, code, msg string) {
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(status)
	_ = xml.NewEncoder(w).Encode(stsError{Type: kind, Code: code, Message: msg, Request: newRequestID()})
}

// stsFaultWriter answers an injected fault as STS does: Throttling (400)
// or InternalFailure (500), in the query protocol's error document.
func stsFaultWriter(w http.ResponseWriter, _ *http.Request, throttle bool) {
	if throttle {
		writeSTSError(w, http.StatusBadRequest, "Sender", "Throttling", "Rate exceeded")
		return
	}
	writeSTSError(w, http.StatusInternalServerError, "Receiver", "InternalFailure", "An internal error occurred.")
}

func (s *Server) serveSTS(w http.ResponseWriter, r *http.Request) {
	fail := func(status int, code, msg string) { writeSTSError(w, status, "Sender", code, msg) }
	if r.Method != http.MethodPost {
		fail(http.StatusBadRequest, "InvalidAction", "STS takes POST")
		return
	}
	if err := r.ParseForm(); err != nil {
		fail(http.StatusBadRequest, "MalformedInput", err.Error())
		return
	}
	if a := r.PostForm.Get("Action"); a != "GetCallerIdentity" {
		fail(http.StatusBadRequest, "InvalidAction", "the stand-in's STS answers GetCallerIdentity only, not "+a)
		return
	}
	m := credentialKey.FindStringSubmatch(r.Header.Get("Authorization"))
	if m == nil {
		fail(http.StatusForbidden, "MissingAuthenticationToken", "Request is missing Authentication Token")
		return
	}
	key := m[1]
	arn := s.identityARN(key)
	account := StandInAccount
	if parts := strings.SplitN(arn, ":", 6); len(parts) == 6 {
		account = parts[4]
	}
	w.Header().Set("Content-Type", "text/xml")
	_ = xml.NewEncoder(w).Encode(stsIdentity{XMLNS: "https://sts.amazonaws.com/doc/2011-06-15/", Arn: arn, UserID: "AIDA" + key, Account: account, Request: newRequestID()})
}
