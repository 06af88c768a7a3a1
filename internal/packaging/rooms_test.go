package packaging

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The rooms keep to their jobs: the domain imports no adapter and no
// SDK, and the chat door (parser, command table, runners, messages)
// imports no Slack package, so the dev console and any other chat run the
// same commands without Slack.
func TestRoomsImportOnlyWhatTheirJobNeeds(t *testing.T) {
	for _, c := range []struct {
		pkg       string
		forbidden []string
	}{
		{"./releases", []string{"github.com/slack-go/", "github.com/aws/", "go.etcd.io/bbolt", "github.com/deploybot/deploybot/store",
			"github.com/deploybot/deploybot/cloud", "github.com/deploybot/deploybot/bot", "github.com/deploybot/deploybot/server"}},
		{"./bot", []string{"github.com/slack-go/", "github.com/aws/", "go.etcd.io/bbolt", "github.com/deploybot/deploybot/bot/slackbot",
			"github.com/deploybot/deploybot/store", "github.com/deploybot/deploybot/cloud"}},
		{"./internal/present", []string{"github.com/slack-go/", "github.com/deploybot/deploybot/bot"}},
	} {
		cmd := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", c.pkg)
		cmd.Dir = filepath.Join("..", "..")
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("go list %s: %v", c.pkg, err)
		}
		deps := strings.Fields(string(out))
		if len(deps) < 2 {
			t.Fatalf("go list %s listed %v", c.pkg, deps)
		}
		for _, d := range deps {
			for _, bad := range c.forbidden {
				if strings.HasPrefix(d, bad) {
					t.Errorf("%s imports %s", c.pkg, d)
				}
			}
		}
	}
}
