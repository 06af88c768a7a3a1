// What each CloudFront point of presence serves while a change
// propagates.

package localaws

import (
	"strings"
	"time"
)

// popState is one PoP's view of a distribution: it serves Old until At,
// then the distribution's config.
type popState struct {
	Old distConfig `json:"old"`
	At  time.Time  `json:"at"`
}

// popConfig is what PoP pop serves at now.
func (d *distribution) popConfig(pop int, now time.Time) distConfig {
	if pop < len(d.Pops) && now.Before(d.Pops[pop].At) {
		return d.Pops[pop].Old
	}
	return d.Config
}

// edgeView is what one PoP serves for a distribution at one moment.
type edgeView struct {
	id   string
	cfg  distConfig
	invs []*invalidation // immutable once made
}

// purged reports whether an answer for viewer path p that PoP pop cached
// at stored has been purged by now.
func (v edgeView) purged(pop int, p string, stored, now time.Time) bool {
	for _, inv := range v.invs {
		if at := inv.purgeAt(pop); stored.Before(at) && !now.Before(at) && inv.covers(p) {
			return true
		}
	}
	return false
}

// within is a random moment inside a window of length d; callers hold mu.
func (s *cfService) within(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return time.Duration(s.rng.Int64N(int64(d) + 1))
}

// serving returns what PoP pop serves for host: the distribution whose
// alias or domain name is host, or the only one there is.
func (s *cfService) serving(host string, pop int) (edgeView, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if h, _, ok := strings.Cut(host, ":"); ok {
		host = h
	}
	var pick *distribution
	for _, d := range s.dists {
		if strings.EqualFold(d.DomainName, host) || strings.EqualFold(d.ID, strings.Split(host, ".")[0]) {
			pick = d
		}
		for _, a := range d.Config.Aliases.Items {
			if strings.EqualFold(a, host) {
				pick = d
			}
		}
	}
	if pick == nil && len(s.dists) == 1 {
		for _, d := range s.dists {
			pick = d
		}
	}
	if pick == nil {
		return edgeView{}, false
	}
	return edgeView{id: pick.ID, cfg: pick.popConfig(pop, s.now()), invs: append([]*invalidation(nil), pick.Invalidations...)}, true
}
