package server_test

// Ways around the API's identity rules an attacker's review found; each
// test failed before its fix.

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/deploybot/deploybot/releases"
)

func rawCall(t *testing.T, method, url, token, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// R6b. Any token, whatever its roles, downloads the whole store (every
// site's deploys, approvals, audit log): the backup route checks only that
// the token is one of ours.
func TestHolePreviewerTokenDownloadsBackup(t *testing.T) {
	e := newEnv(t)
	e.named(map[string][]releases.Role{"preview-bot": {releases.RolePreviewer}})
	e.start()
	code, body := rawCall(t, "GET", e.url+"/api/v1/backup", "secret-of-preview-bot-0123456789", "")
	if code == http.StatusOK && len(body) > 0 {
		t.Fatalf("a previewer-only token downloaded the store (%d bytes)", len(body))
	}
}

// R3b. Through the API: a reader-only token writes audit entries on www
// whose actor is any name it types (here a Slack user id, rendered as a
// mention in chat), with its own token recorded nowhere.
func TestHoleAPILabelBecomesAuditActor(t *testing.T) {
	e := newEnv(t)
	e.named(map[string][]releases.Role{"dash": {releases.RoleReader}})
	e.start()
	code, body := rawCall(t, "PUT", e.url+"/api/v1/sites/"+e.Site.Name+"/freeze", "secret-of-dash-0123456789",
		`{"until":"someday","reason":"x","actor":"UBOSS"}`)
	t.Logf("%d %s", code, body)
	hist, _ := e.Service.History(context.Background(), e.Site.Name, 0)
	for _, h := range hist {
		if h.Actor == "UBOSS" {
			t.Fatalf("audit entry %+v: the typed actor is recorded as the actor", h)
		}
	}
}
