package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/deploybot/deploybot/releases"
)

// Client talks to a running serve's API: the command line uses it with
// --server while serve holds the store.
type Client struct {
	URL   string
	Token string
	HTTP  *http.Client // nil: no overall timeout (a deploy streams for minutes)
}

// The API's client offers every operation the service does.
var _ releases.Operations = (*Client)(nil)

func (c *Client) http() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return &http.Client{Transport: &http.Transport{Proxy: http.ProxyFromEnvironment, ResponseHeaderTimeout: 2 * time.Minute}}
}

func (c *Client) do(ctx context.Context, method, path string, body any) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(c.URL, "/")+path, rd)
	if err != nil {
		return nil, releases.Errorf(releases.EINVALID, "--server %q: %v", c.URL, err)
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http().Do(req)
	if err != nil {
		return nil, fmt.Errorf("reaching deploybot at %s: %w", c.URL, err)
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		return nil, decodeError(resp)
	}
	return resp, nil
}

func decodeError(resp *http.Response) error {
	var eb errorBody
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if json.Unmarshal(raw, &eb) != nil || eb.Error == "" {
		eb.Error = fmt.Sprintf("%s: %s", resp.Status, strings.TrimSpace(string(raw)))
	}
	code := eb.Code
	if code == "" {
		code = releases.EINTERNAL
		if resp.StatusCode == http.StatusUnauthorized {
			code = releases.EUNAUTHORIZED
		}
	}
	return remoteError(code, eb.Error, eb.Hint)
}

// remoteError is the domain error an answer describes, hint included, so
// that the command line says the same with and without --server.
func remoteError(code, msg, hint string) error {
	return &releases.Error{Code: orInternal(code), Message: msg, Hint: hint}
}

func (c *Client) getJSON(ctx context.Context, path string, v any) error {
	return c.callJSON(ctx, http.MethodGet, path, nil, v)
}

// callJSON calls the API with body (nil: none) and decodes its JSON
// answer into v.
func (c *Client) callJSON(ctx context.Context, method, path string, body, v any) error {
	resp, err := c.do(ctx, method, path, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("decoding the answer of %s: %w", path, err)
	}
	return nil
}

// Sites lists the configured site names.
func (c *Client) Sites(ctx context.Context) ([]string, error) {
	var out struct {
		Sites []string `json:"sites"`
	}
	err := c.getJSON(ctx, "/api/v1/sites", &out)
	return out.Sites, err
}

// Versions is the server's `versions`.
func (c *Client) Versions(ctx context.Context, site string) ([]releases.VersionInfo, error) {
	var vs []releases.VersionInfo
	err := c.getJSON(ctx, "/api/v1/sites/"+url.PathEscape(site)+"/releases", &vs)
	return vs, err
}

// Status is the server's `status`.
func (c *Client) Status(ctx context.Context, site string) (*releases.Status, error) {
	var st releases.Status
	err := c.getJSON(ctx, "/api/v1/sites/"+url.PathEscape(site)+"/status", &st)
	return &st, err
}

// Diff compares two releases of a site on the server (as `diff`).
func (c *Client) Diff(ctx context.Context, site, from, to string) (*releases.Diff, error) {
	var d releases.Diff
	q := url.Values{"from": {from}, "to": {to}}
	err := c.getJSON(ctx, "/api/v1/sites/"+url.PathEscape(site)+"/diff?"+q.Encode(), &d)
	return &d, err
}

// Deploy runs a promote or rollback on the server, passing its progress
// events to progress as they arrive.
func (c *Client) Deploy(ctx context.Context, site string, kind releases.Kind, req DeployRequest, progress releases.Progress) (*releases.Outcome, error) {
	resp, err := c.do(ctx, http.MethodPost, "/api/v1/sites/"+url.PathEscape(site)+"/"+string(kind), req)
	if err != nil {
		return nil, err
	}
	return c.readStream(resp, progress)
}

// readStream reads a deploy's NDJSON answer: progress events, then a
// result or an error line.
func (c *Client) readStream(resp *http.Response, progress releases.Progress) (*releases.Outcome, error) {
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		var we WireEvent
		if err := json.Unmarshal(sc.Bytes(), &we); err != nil {
			return nil, fmt.Errorf("decoding progress: %w", err)
		}
		switch {
		case we.Result != nil:
			return we.Result, nil
		case we.Type == "" && we.Err != "":
			return nil, remoteError(we.Code, we.Err, we.Hint)
		case progress != nil && we.Deploy != nil:
			e := releases.Event{Type: we.Type, Phase: we.Phase, Title: we.Title, Deploy: *we.Deploy,
				Elapsed: time.Duration(we.Seconds * float64(time.Second))}
			if we.Err != "" {
				e.Err = remoteError(we.Code, we.Err, we.Hint)
			}
			progress(e)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading progress from %s: %w", c.URL, err)
	}
	return nil, errors.New("the server closed the stream without a result; `deploybot status` shows where the deploy is")
}

func orInternal(code string) string {
	if code == "" {
		return releases.EINTERNAL
	}
	return code
}

// Promote makes a release live through the server, as the service's
// Promote does in process.
func (c *Client) Promote(ctx context.Context, req releases.PromoteRequest, p releases.Progress) (*releases.Outcome, error) {
	return c.Deploy(ctx, req.Site, releases.KindPromote, DeployRequest{Version: req.Version, Actor: req.Actor, Reason: req.Reason, NoVerify: req.NoVerify, OverrideFreeze: req.Override, Rollback: req.Back, Gradual: req.Gradual}, p)
}

// Rollback goes back through the server, as the service's Rollback does.
func (c *Client) Rollback(ctx context.Context, req releases.RollbackRequest, p releases.Progress) (*releases.Outcome, error) {
	return c.Deploy(ctx, req.Site, releases.KindRollback, DeployRequest{Version: req.Version, Actor: req.Actor, Reason: req.Reason}, p)
}

// Approve approves a request on the server; the approval that completes
// it runs the deploy there, its progress streamed to progress.
func (c *Client) Approve(ctx context.Context, site, id, actor string, progress releases.Progress) (*releases.Outcome, error) {
	resp, err := c.do(ctx, http.MethodPost, "/api/v1/sites/"+url.PathEscape(site)+"/approvals/"+url.PathEscape(id)+"/approve", DecisionRequest{Actor: actor})
	if err != nil {
		return nil, err
	}
	return c.readStream(resp, progress)
}

// Reject rejects (or withdraws) a request on the server.
func (c *Client) Reject(ctx context.Context, site, id, actor, why string) (releases.ApprovalRequest, error) {
	var a releases.ApprovalRequest
	err := c.callJSON(ctx, http.MethodPost, "/api/v1/sites/"+url.PathEscape(site)+"/approvals/"+url.PathEscape(id)+"/reject", DecisionRequest{Actor: actor, Reason: why}, &a)
	return a, err
}

// Approval reads one request on the server.
func (c *Client) Approval(ctx context.Context, site, id string) (releases.ApprovalRequest, error) {
	var a releases.ApprovalRequest
	err := c.getJSON(ctx, "/api/v1/sites/"+url.PathEscape(site)+"/approvals/"+url.PathEscape(id), &a)
	return a, err
}

// Sync has the server list the site's bucket for releases now and
// returns those it recorded.
func (c *Client) Sync(ctx context.Context, site string) ([]releases.Release, error) {
	var out SyncResponse
	err := c.callJSON(ctx, http.MethodPost, "/api/v1/sites/"+url.PathEscape(site)+"/sync", struct{}{}, &out)
	return out.Added, err
}

// Backup streams a snapshot of the server's store into w.
func (c *Client) Backup(ctx context.Context, w io.Writer) (int64, error) {
	resp, err := c.do(ctx, http.MethodGet, "/api/v1/backup", nil)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	return io.Copy(w, resp.Body)
}

// Prune runs a retention run on the server.
func (c *Client) Prune(ctx context.Context, req releases.PruneRequest) (*releases.PruneReport, error) {
	site, dryRun, actor := req.Site, req.DryRun, req.Actor
	resp, err := c.do(ctx, http.MethodPost, "/api/v1/sites/"+url.PathEscape(site)+"/prune", PruneRequest{DryRun: dryRun, Actor: actor})
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out struct {
		Report *releases.PruneReport `json:"report"`
		Error  string                `json:"error"`
		Code   string                `json:"code"`
		Hint   string                `json:"hint"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, fmt.Errorf("decoding the prune report: %w", err)
	}
	if out.Error != "" {
		return out.Report, remoteError(out.Code, out.Error, out.Hint)
	}
	return out.Report, nil
}

// PinRelease pins a release on the server.
func (c *Client) PinRelease(ctx context.Context, site, version, actor, reason string) (*releases.Pin, error) {
	resp, err := c.do(ctx, http.MethodPost, "/api/v1/sites/"+url.PathEscape(site)+"/pins", PinRequest{Version: version, Actor: actor, Reason: reason})
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var p releases.Pin
	if err := json.NewDecoder(resp.Body).Decode(&p); err != nil {
		return nil, err
	}
	return &p, nil
}

// History reads the site's audit log from the server, newest first.
func (c *Client) History(ctx context.Context, site string, limit int) ([]releases.AuditEntry, error) {
	resp, err := c.do(ctx, http.MethodGet, "/api/v1/sites/"+url.PathEscape(site)+"/history?limit="+strconv.Itoa(limit), nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var h []releases.AuditEntry
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&h); err != nil {
		return nil, fmt.Errorf("reading the history: %w", err)
	}
	return h, nil
}

// UnpinRelease releases a pin on the server, for actor.
func (c *Client) UnpinRelease(ctx context.Context, site, version, actor string) error {
	resp, err := c.do(ctx, http.MethodDelete, "/api/v1/sites/"+url.PathEscape(site)+"/pins/"+url.PathEscape(version)+"?actor="+url.QueryEscape(actor), nil)
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// LockSite locks a site on the server.
// ControlRollout pauses, resumes, advances or aborts a site's rollout.
func (c *Client) ControlRollout(ctx context.Context, req releases.RolloutRequest) (*releases.Deploy, error) {
	resp, err := c.do(ctx, http.MethodPost, "/api/v1/sites/"+url.PathEscape(req.Site)+"/rollout", RolloutRequest{Action: req.Action, Actor: req.Actor, Reason: req.Reason})
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var d releases.Deploy
	if err := json.NewDecoder(resp.Body).Decode(&d); err != nil {
		return nil, err
	}
	return &d, nil
}

func (c *Client) LockSite(ctx context.Context, site, actor, reason string) (*releases.Lock, error) {
	resp, err := c.do(ctx, http.MethodPut, "/api/v1/sites/"+url.PathEscape(site)+"/lock", LockRequest{Actor: actor, Reason: reason})
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var l releases.Lock
	if err := json.NewDecoder(resp.Body).Decode(&l); err != nil {
		return nil, err
	}
	return &l, nil
}

// UnlockSite releases a site's lock on the server; nil when none was held.
func (c *Client) UnlockSite(ctx context.Context, site, actor string) (*releases.Lock, error) {
	resp, err := c.do(ctx, http.MethodDelete, "/api/v1/sites/"+url.PathEscape(site)+"/lock?actor="+url.QueryEscape(actor), nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out UnlockResponse
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, err
	}
	return out.Released, nil
}

// Freeze freezes a site (or every site) on the server; a duration in
// req.Until counts from the server's clock.
func (c *Client) Freeze(ctx context.Context, req releases.FreezeRequest) ([]releases.Freeze, error) {
	site := req.Site
	if req.All {
		site = AllSites
	}
	resp, err := c.do(ctx, http.MethodPut, "/api/v1/sites/"+url.PathEscape(site)+"/freeze", FreezeRequest{Until: req.Until, Reason: req.Reason, Actor: req.Actor})
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out FreezeResponse
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, err
	}
	return out.Frozen, nil
}

// Unfreeze lifts a site's (or every site's) run-time freeze on the server.
func (c *Client) Unfreeze(ctx context.Context, site string, all bool, actor string) ([]releases.Freeze, error) {
	if all {
		site = AllSites
	}
	resp, err := c.do(ctx, http.MethodDelete, "/api/v1/sites/"+url.PathEscape(site)+"/freeze?actor="+url.QueryEscape(actor), nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out UnfreezeResponse
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, err
	}
	return out.Lifted, nil
}

// Preview makes a preview link on the server.
func (c *Client) Preview(ctx context.Context, site, version, actor string, ttl time.Duration) (*releases.Preview, error) {
	resp, err := c.do(ctx, http.MethodPost, "/api/v1/sites/"+url.PathEscape(site)+"/previews", PreviewRequest{Version: version, TTLSeconds: int64(ttl / time.Second), Actor: actor})
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var p releases.Preview
	if err := json.NewDecoder(resp.Body).Decode(&p); err != nil {
		return nil, err
	}
	return &p, nil
}
