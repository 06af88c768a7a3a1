// Package probe fetches a site's URLs over HTTP: health checks for
// releases' automatic rollback, and the release answers name for the
// visible phase.
package probe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"syscall"
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
	// EdgeClient makes the visible phase's requests; nil: one that opens
	// a connection per request, with a 10 s timeout.
	EdgeClient *http.Client
}

var _ releases.Prober = (*HTTP)(nil)

var defaultClient = &http.Client{Timeout: 10 * time.Second}

// Probe GETs url and returns the status and up to 1 MiB of the body.
func (h *HTTP) Probe(ctx context.Context, url string) (int, []byte, error) {
	return h.ProbeWithCookie(ctx, url, "")
}

var _ releases.CookieProber = (*HTTP)(nil)

// ProbeWithCookie is Probe with a Cookie header ("" for none): a rollout's
// health checks are sent as one of the candidate's visitors.
func (h *HTTP) ProbeWithCookie(ctx context.Context, url, cookie string) (int, []byte, error) {
	c := h.Client
	if c == nil {
		c = defaultClient
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("User-Agent", "deploybot-health-check")
	if cookie != "" {
		req.Header.Set("Cookie", cookie)
	}
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

var _ releases.EdgeProber = (*HTTP)(nil)

// edgeClient opens a connection per request, each to the next of the
// site's addresses (spreadDialer): from one machine that is the only way
// to reach several servers of the edge. Redirects are followed, as a
// browser would.
var edgeClient = newEdgeClient(net.DefaultResolver.LookupIPAddr)

func newEdgeClient(lookup func(ctx context.Context, host string) ([]net.IPAddr, error)) *http.Client {
	d := &spreadDialer{lookup: lookup, d: net.Dialer{Timeout: 10 * time.Second}}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		Proxy: http.ProxyFromEnvironment, DialContext: d.DialContext, DisableKeepAlives: true, ResponseHeaderTimeout: 10 * time.Second}}
}

// spreadDialer dials each connection to the next of the host's addresses
// in turn. A CloudFront name resolves to several addresses of the
// nearest edge location, and Go's dialer would take the first one every
// time; an address that does not answer passes to the next. What it
// cannot do is reach other edge locations: those serve other parts of
// the world.
type spreadDialer struct {
	lookup func(ctx context.Context, host string) ([]net.IPAddr, error)
	next   atomic.Uint64
	d      net.Dialer
}

func (s *spreadDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	ips, err := s.lookup(ctx, host)
	if err != nil || len(ips) == 0 {
		return s.d.DialContext(ctx, network, addr)
	}
	first := int(s.next.Add(1)-1) % len(ips)
	var lastErr error
	for k := range ips {
		ip := ips[(first+k)%len(ips)]
		c, err := s.d.DialContext(ctx, network, net.JoinHostPort(ip.String(), port))
		if err == nil {
			return c, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

// maxDrain is how much of an answer ProbeRelease reads before it closes
// the connection: only the header matters.
const maxDrain = 64 << 10

// ProbeRelease GETs url and returns the release its answer names in
// releases.MetadataHeader (or releases.ReleaseHeader), "" when neither
// is there. The answer is outside input: a value that is not a version
// name is an error, not a release.
func (h *HTTP) ProbeRelease(ctx context.Context, url string) (string, int, error) {
	return h.ProbeReleaseWithCookie(ctx, url, "")
}

var _ releases.CookieEdgeProber = (*HTTP)(nil)

// ProbeReleaseWithCookie is ProbeRelease with a Cookie header ("" for
// none): a rollout step watches the candidate's visitors.
func (h *HTTP) ProbeReleaseWithCookie(ctx context.Context, url, cookie string) (string, int, error) {
	c := h.EdgeClient
	if c == nil {
		c = edgeClient
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", 0, err
	}
	req.Header.Set("User-Agent", "deploybot-visible-check")
	if cookie != "" {
		req.Header.Set("Cookie", cookie)
	}
	resp, err := c.Do(req)
	if err != nil {
		if unreachable(err) {
			return "", 0, fmt.Errorf("GET %s: %w: %w", url, releases.ErrUnreachable, err)
		}
		return "", 0, fmt.Errorf("GET %s: %w", url, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain))
	v, err := ReleaseOf(resp.Header)
	if err != nil {
		return "", resp.StatusCode, fmt.Errorf("GET %s: %w", url, err)
	}
	return v, resp.StatusCode, nil
}

// unreachable reports an error that says the address cannot be reached
// at all: its name does not resolve, or the host refuses the connection
// or has no route. A timeout is not one: a slow edge is still an edge.
func unreachable(err error) bool {
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return !dnsErr.IsTimeout
	}
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH)
}

// ReleaseOf reads the release an answer names from its headers
// (releases.MetadataHeader, else releases.ReleaseHeader): "" when it
// names none, an error when the value is not a version name.
func ReleaseOf(h http.Header) (string, error) {
	v := h.Get(releases.MetadataHeader)
	if v == "" {
		v = h.Get(releases.ReleaseHeader)
	}
	if v == "" {
		return "", nil
	}
	if err := releases.ValidateVersion(v); err != nil {
		return "", fmt.Errorf("the answer names release %.40q, which is not a version name", v)
	}
	return v, nil
}
