package slackbot

import (
	"context"
	"net/http"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/slack-go/slack"
	"golang.org/x/time/rate"
)

// Slack's Web API limits each method per workspace: chat.update is Tier 3,
// about 50 calls a minute, shared by every message the app updates
// (https://api.slack.com/apis/rate-limits). Past it Slack answers 429 with
// Retry-After in seconds; an app that keeps calling stays limited. Three
// things keep deploybot inside it:
//
//   - One back-off per method, shared by every sender (gatedClient): a 429
//     on chat.update holds every chat.update of this process until its
//     Retry-After has passed, so the cards, the thread replies and the
//     notices do not each find the limit on their own.
//   - slack-go's own retries (slack.RetryConfig): a 429 is sent again
//     after Retry-After (however long: a card must not be lost to a
//     45-second limit), and chat.update, which is safe to send twice, once
//     more after a 5xx or a reset connection. chat.postMessage is not: a
//     post whose answer was lost may have been posted.
//   - The notices' own pace (noticePace): keeping release notices true is
//     background work, paced at a fraction of the method's budget, so a
//     prune that retires 300 notices leaves room for the deploy cards and
//     threads people are watching.

// rateLimitRetries is how many times a 429 is sent again: at Slack's
// usual Retry-After of a few seconds to a minute, minutes of patience.
const rateLimitRetries = 8

// noticesPerMinute paces notice upkeep: below half of chat.update's Tier
// 3 budget, so cards and threads keep the rest.
const noticesPerMinute = 20

// retryConfig is what slack-go retries, and how.
func retryConfig() slack.RetryConfig {
	cfg := slack.RetryConfig{
		MaxRetries:         rateLimitRetries,
		RetryAfterDuration: 30 * time.Second, // a 429 without Retry-After
		RetryAfterJitter:   time.Second,      // replicas limited at once do not return at once
		BackoffInitial:     500 * time.Millisecond,
		BackoffMax:         5 * time.Second,
		BackoffJitter:      200 * time.Millisecond,
	}
	cfg.Handlers = []slack.RetryHandler{
		slack.NewRateLimitErrorRetryHandler(cfg),
		onceFor("chat.update", slack.NewServerErrorRetryHandler(cfg)),
		onceFor("chat.update", slack.NewConnectionErrorRetryHandler()),
	}
	return cfg
}

// onceForMethod lets h retry only method, and only once.
type onceForMethod struct {
	method string
	h      slack.RetryHandler
}

func onceFor(method string, h slack.RetryHandler) slack.RetryHandler { return onceForMethod{method, h} }

func (o onceForMethod) ShouldRetry(state *slack.RetryState, req *http.Request, resp *http.Response, err error) (bool, time.Duration) {
	if req == nil || path.Base(req.URL.Path) != o.method || state.Attempt >= 1 {
		return false, 0
	}
	return o.h.ShouldRetry(state, req, resp, err)
}

// gates holds, per Web API method, when Slack said it may be called again.
type gates struct {
	mu    sync.Mutex
	until map[string]time.Time
}

// wait returns once method may be called, or when ctx ends.
func (g *gates) wait(ctx context.Context, method string) error {
	g.mu.Lock()
	d := time.Until(g.until[method])
	g.mu.Unlock()
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// hold closes method for d from now.
func (g *gates) hold(method string, d time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.until == nil {
		g.until = map[string]time.Time{}
	}
	if until := time.Now().Add(d); until.After(g.until[method]) {
		g.until[method] = until
	}
}

// gatedClient is the HTTP client slack-go calls through: every call of a
// method waits while a 429 on that method holds it.
type gatedClient struct {
	next  *http.Client
	gates *gates
}

func (c *gatedClient) Do(req *http.Request) (*http.Response, error) {
	method := path.Base(req.URL.Path)
	if err := c.gates.wait(req.Context(), method); err != nil {
		return nil, err
	}
	resp, err := c.next.Do(req)
	if err == nil && resp.StatusCode == http.StatusTooManyRequests {
		c.gates.hold(method, retryAfter(resp.Header.Get("Retry-After")))
	}
	return resp, err
}

// retryAfter reads Retry-After as Slack sends it, in seconds; a value
// missing or unreadable holds for a second.
func retryAfter(v string) time.Duration {
	if s, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && s > 0 {
		return time.Duration(s) * time.Second
	}
	return time.Second
}

// noticePace is the notices' share of chat.update and chat.postMessage.
func noticePace() *rate.Limiter {
	return rate.NewLimiter(rate.Every(time.Minute/noticesPerMinute), 5)
}
