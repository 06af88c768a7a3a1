package releases

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"
)

// How deploybot knows, rather than guesses, when visitors get a release.
//
// Publish stamps every object of a release with the S3 user metadata
// ReleaseMetadata, naming the release. S3 answers it as the header
// MetadataHeader, and CloudFront passes an S3 origin's user metadata on to
// viewers as it is (it removes only the headers listed in
// https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/RequestAndResponseBehaviorS3Origin.html#response-s3-removed-headers),
// cached copies included: an answer names the release it really came
// from, on both strategies, whatever the cache holds. The stamp costs some
// 40 bytes of metadata per object and nothing per request.
//
// Visitors see it as ReleaseHeader: the site's setup (routing-setup,
// kvs-setup) puts a small viewer-response function on the distribution
// that renames the header, unless the site turns it off (NoReleaseHeader),
// for instance to keep a viewer-response function of its own. That costs
// one function invocation per request; the visible phase reads either
// name, so it works without the function too.
//
// After the flip, the visible phase asks the site's url until every answer
// in a round names the new release. It asks the url as a visitor does,
// with no cache-busting query: under the managed CachingOptimized policy
// the query is not part of the cache key, so it would change nothing, and
// under a policy that keys on it, it would skip the cached copies
// visitors get and report the release too early.
const (
	// ReleaseMetadata is the S3 user metadata key publish writes.
	ReleaseMetadata = "deploybot-release"
	// MetadataHeader is how S3, and CloudFront without the site's
	// viewer-response function, answer it. When an answer carries both
	// names, this one wins: it is the stamp of the object served, where
	// the other may come from someone else's function.
	MetadataHeader = "X-Amz-Meta-Deploybot-Release"
	// ReleaseHeader is the name visitors see.
	ReleaseHeader = "X-Deploybot-Release"
)

// PhaseVisible is the step after the flip that watches the site's
// address until visitors get the new release.
const PhaseVisible Phase = "visible"

// Visible phase defaults: a round of VisibleProbes requests each second;
// DefaultVisibleTimeout bounds the phase (a kvs key has reached the edge
// in seconds, an origin-path flip is visible once its invalidation is
// done, so minutes mean something is wrong).
const (
	VisibleProbes         = 4
	DefaultVisibleTimeout = 10 * time.Minute
	visibleInterval       = time.Second
)

// DefaultVisibleUnreachable is how long the visible phase goes on while
// every answer is that the site's address cannot be reached at all (see
// ErrUnreachable): half a minute outlasts a resolver's hiccup, and a typo
// in the url does not hold a deploy for the phase's whole bound.
const DefaultVisibleUnreachable = 30 * time.Second

// ErrUnreachable is wrapped by an EdgeProber's error when the address
// could not be reached at all: its name does not resolve, or nothing
// accepts connections there. Visitors cannot reach it either; more
// likely, the configured url is wrong.
var ErrUnreachable = errors.New("cannot be reached")

// EdgeProber asks a site's public address which release answers (an HTTP
// adapter at the edge).
type EdgeProber interface {
	// ProbeRelease GETs url on a connection of its own (so that requests
	// may reach different edge servers) and returns the release the
	// answer names ("" when it names none) and its status.
	ProbeRelease(ctx context.Context, url string) (release string, status int, err error)
}

// roundTally is what one round of probes found.
type roundTally struct {
	want   string
	named  int            // answers naming want
	others map[string]int // other releases named, and how often
	none   int            // answers naming no release
	errs   []string
	// unreachable counts the errors that say the address cannot be
	// reached at all (ErrUnreachable).
	unreachable int
}

func (t roundTally) total() int {
	n := t.named + t.none + len(t.errs)
	for _, c := range t.others {
		n += c
	}
	return n
}

// String says what a round found, for people: "3 of 4 answers name v42;
// 1 names v41".
func (t roundTally) String() string {
	parts := []string{fmt.Sprintf("%d of %d answers name %s", t.named, t.total(), t.want)}
	var vs []string
	for v := range t.others {
		vs = append(vs, v)
	}
	sort.Strings(vs)
	for _, v := range vs {
		parts = append(parts, fmt.Sprintf("%d name %s", t.others[v], v))
	}
	if t.none > 0 {
		parts = append(parts, fmt.Sprintf("%d name no release", t.none))
	}
	if len(t.errs) > 0 {
		// An error may quote what the edge answered: cut, as it goes to
		// the thread and into the deploy's record.
		parts = append(parts, fmt.Sprintf("%d failed (%s)", len(t.errs), shorten(t.errs[0], 200)))
	}
	return strings.Join(parts, "; ")
}

// probeRound sends VisibleProbes requests at once.
func (s *Service) probeRound(ctx context.Context, url, want string) roundTally {
	t := roundTally{want: want, others: map[string]int{}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range VisibleProbes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, _, err := s.EdgeProber.ProbeRelease(ctx, url)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				t.errs = append(t.errs, ErrorMessage(err))
				if errors.Is(err, ErrUnreachable) {
					t.unreachable++
				}
			case got == want:
				t.named++
			case got == "":
				t.none++
			default:
				t.others[got]++
			}
		}()
	}
	wg.Wait()
	return t
}

// visibleStep watches site's url after the flip to to, until a round of
// answers all name to and at least floor has passed since the step began
// (a kvs site keeps its fixed propagation wait as the floor: AWS
// documents no bound on a key's reach, and one vantage point sees few
// edge locations). It records when visitors began to get to on the
// deploy. Nil when the site has no url, nothing probes, or the release
// was published before releases were stamped (its answers cannot say).
func (s *Service) visibleStep(site Site, to string, stamped bool, floor time.Duration) *Step {
	if !s.watches(site) || !stamped {
		return nil
	}
	timeout := s.VisibleTimeout
	if timeout <= 0 {
		timeout = DefaultVisibleTimeout
	}
	interval := s.VisibleInterval
	if interval <= 0 {
		interval = visibleInterval
	}
	downFor := s.VisibleUnreachable
	if downFor <= 0 {
		downFor = DefaultVisibleUnreachable
	}
	var seen time.Time
	return &Step{Phase: PhaseVisible, Title: "Waiting until visitors get " + to + " at " + site.URL,
		Record: func(d *Deploy) { d.VisibleAt = seen },
		Run: func(ctx context.Context) error {
			start := s.now()
			var last string
			var down time.Time // since when no probe has reached the address
			for {
				t := s.probeRound(ctx, site.URL, to)
				if ctx.Err() != nil {
					return ctx.Err()
				}
				now := s.now()
				if err := unreachableFor(site, t, &down, now, downFor); err != nil {
					return err
				}
				if t.named == t.total() {
					if seen.IsZero() {
						seen = now
					}
					if now.Sub(start) >= floor {
						s.logger().InfoContext(ctx, "visitors get the release", "site", site.Name, "version", to, "url", site.URL,
							"since", seen, "answers", t.total())
						return nil
					}
				} else {
					seen = time.Time{}
					if msg := t.String(); msg != last {
						Note(ctx, msg)
						last = msg
					}
				}
				if now.Sub(start) >= timeout {
					return Errorf(EINTERNAL, "after %s, visitors at %s do not all get %s yet: %s", timeout, site.URL, to, t.String())
				}
				wait := interval
				if !seen.IsZero() {
					wait = min(wait, floor-now.Sub(start))
				}
				if err := Wait(ctx, s.After, wait); err != nil {
					return err
				}
			}
		}}
}

// unreachableFor ends the visible phase once every probe since *down
// (set here, at the first such round) has found site's address cannot be
// reached, for downFor; any other answer starts the count again.
func unreachableFor(site Site, t roundTally, down *time.Time, now time.Time, downFor time.Duration) error {
	if t.total() == 0 || t.unreachable < t.total() {
		*down = time.Time{}
		return nil
	}
	if down.IsZero() {
		*down = now
	}
	if now.Sub(*down) < downFor {
		return nil
	}
	return Errorf(EINTERNAL, "the address %s of site %s cannot be reached: every probe for %s failed (%s); check sites[].url of %s in the configuration (a typo, or a name not in DNS yet)",
		site.URL, site.Name, now.Sub(*down).Round(time.Second), shorten(t.errs[0], 200), site.Name)
}

// watches reports whether the visible phase can watch site: it has a url
// and something probes it.
func (s *Service) watches(site Site) bool { return site.URL != "" && s.EdgeProber != nil }

// afterFlip puts the visible phase into a strategy's steps: in place of a
// step that only waits a fixed time for the change to spread
// (Step.Propagation, kept as the floor), else at the end. Without a
// visible step the steps are left as they are.
func (s *Service) afterFlip(site Site, steps []Step, to string, stamped bool) []Step {
	floor := time.Duration(0)
	at := -1
	for i, st := range steps {
		if st.Propagation > 0 {
			floor, at = st.Propagation, i
		}
	}
	v := s.visibleStep(site, to, stamped, floor)
	if v == nil {
		return steps
	}
	if at >= 0 {
		out := append([]Step(nil), steps[:at]...)
		out = append(out, *v)
		return append(out, steps[at+1:]...)
	}
	return append(steps, *v)
}
