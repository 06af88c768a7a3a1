package server_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/deploybot/deploybot/releases"
	"github.com/deploybot/deploybot/server"
)

// A refusal's hint reaches the API as a code of its own, and the client
// turns it back into the domain's, so the command line says the same
// with and without --server.
func TestAPIRefusalCarriesItsHint(t *testing.T) {
	e := newEnv(t)
	e.publish("v1")
	// The manifest names a file the bucket does not hold.
	if err := e.Bucket.WriteManifest(context.Background(), e.Site, &releases.Manifest{Version: "v2", PublishedAt: e.clk.Now(),
		Files: []releases.ManifestFile{{Path: "index.html", Size: 9}}}); err != nil {
		t.Fatal(err)
	}
	e.start()
	req, _ := http.NewRequest(http.MethodPost, e.url+"/api/v1/sites/www/promote", strings.NewReader(`{"version":"v2","actor":"alice"}`))
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var body struct{ Error, Code, Hint string }
	if err := json.Unmarshal(raw, &body); err != nil {
		t.Fatalf("%d %s: %v", resp.StatusCode, raw, err)
	}
	if resp.StatusCode != http.StatusConflict || body.Code != releases.ECONFLICT || body.Hint != releases.HintNoVerify {
		t.Fatalf("answer %d %s, want 409 with code conflict and hint no-verify", resp.StatusCode, raw)
	}
	if strings.Contains(body.Error, "--") {
		t.Errorf("the API's message names a command-line flag: %s", body.Error)
	}
	_, err = e.client().Deploy(context.Background(), "www", releases.KindPromote, server.DeployRequest{Version: "v2"}, nil)
	if releases.ErrorHint(err) != releases.HintNoVerify || releases.ErrorCode(err) != releases.ECONFLICT {
		t.Fatalf("through the client: %v (code %q, hint %q)", err, releases.ErrorCode(err), releases.ErrorHint(err))
	}
}
