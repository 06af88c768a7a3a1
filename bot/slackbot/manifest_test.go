package slackbot

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"

	"github.com/deploybot/deploybot/bot"
	"github.com/deploybot/deploybot/config"
)

// The manifest in the repository is what operators create the app from:
// it must give the bot everything this code calls.
func TestSlackAppManifest(t *testing.T) {
	raw, err := os.ReadFile("slack-app-manifest.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Features struct {
			SlashCommands []struct {
				Command   string `yaml:"command"`
				UsageHint string `yaml:"usage_hint"`
			} `yaml:"slash_commands"`
		} `yaml:"features"`
		OAuth struct {
			Scopes struct {
				Bot []string `yaml:"bot"`
			} `yaml:"scopes"`
		} `yaml:"oauth_config"`
		Settings struct {
			Interactivity struct {
				Enabled bool `yaml:"is_enabled"`
			} `yaml:"interactivity"`
			SocketMode bool `yaml:"socket_mode_enabled"`
		} `yaml:"settings"`
	}
	if err := yaml.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	if !m.Settings.SocketMode || !m.Settings.Interactivity.Enabled {
		t.Fatalf("socket mode %v, interactivity %v", m.Settings.SocketMode, m.Settings.Interactivity.Enabled)
	}
	if len(m.Features.SlashCommands) != 1 || m.Features.SlashCommands[0].Command != config.DefaultCommand {
		t.Fatalf("slash commands %+v", m.Features.SlashCommands)
	}
	// The hint Slack shows while typing names every command.
	hint := strings.Fields(strings.NewReplacer("·", " ", "|", " ").Replace(m.Features.SlashCommands[0].UsageHint))
	for _, name := range bot.CommandNames() {
		if !slices.Contains(hint, name) {
			t.Errorf("usage_hint lacks the command %s: %q", name, m.Features.SlashCommands[0].UsageHint)
		}
	}
	for _, scope := range []string{"commands", "chat:write", "chat:write.public", "usergroups:read", "channels:read", "groups:read"} {
		if !slices.Contains(m.OAuth.Scopes.Bot, scope) {
			t.Errorf("manifest lacks the bot scope %s", scope)
		}
	}
	// The configuration refuses a DM's id as a site's channel because
	// checking it would need im:read: asking for it here lifts the reason.
	if slices.Contains(m.OAuth.Scopes.Bot, "im:read") {
		t.Error("the manifest asks for im:read: config refuses sites[].channel D... for want of it; allow them there")
	}
}
