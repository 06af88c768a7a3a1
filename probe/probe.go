// Package probe fetches health check URLs over HTTP for releases'
// automatic rollback.
package probe

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/deploybot/deploybot/releases"
)

// maxBody is how much of an answer is read to look for the expected text:
// a health page, not a download.
const maxBody = 1 << 20

// HTTP probes with GET.
type HTTP struct {
	// Client defaults to one with a 10 s timeout, so one hung request
	// cannot outlast the check interval by much.
	Client *http.Client
}

var _ releases.Prober = (*HTTP)(nil)

var defaultClient = &http.Client{Timeout: 10 * time.Second}

// Probe GETs url and returns the status and up to 1 MiB of the body.
func (h *HTTP) Probe(ctx context.Context, url string) (int, []byte, error) {
	c := h.Client
	if c == nil {
		c = defaultClient
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("User-Agent", "deploybot-health-check")
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("GET %s: %w", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return resp.StatusCode, nil, fmt.Errorf("GET %s: reading the body: %w", url, err)
	}
	return resp.StatusCode, body, nil
}
