package cloud

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/deploybot/deploybot/releases"
)

// The kvs strategy rolls releases out (releases.Roller) through the
// site's rollout key (rollout.go).
var _ releases.Roller = (*KVS)(nil)

func rolloutOf(sh releases.Share) *Rollout {
	if sh.Percent == 0 {
		return nil
	}
	return &Rollout{Candidate: sh.Candidate, Percent: sh.Percent, Salt: sh.Salt}
}

// SetShare implements releases.Roller: the rollout key from from to to,
// by compare-and-set (SetRollout); a share of 0 deletes the key.
func (k *KVS) SetShare(ctx context.Context, site releases.Site, from, to releases.Share) error {
	return k.SetRollout(ctx, site, rolloutOf(from), rolloutOf(to))
}

// CurrentShare implements releases.Roller. A value the function would
// not accept is no share, as at the edge.
func (k *KVS) CurrentShare(ctx context.Context, site releases.Site) (releases.Share, error) {
	r, ok, err := k.Rollout(ctx, site)
	if errors.Is(err, ErrNotARollout) || err == nil && !ok {
		return releases.Share{}, nil
	}
	if err != nil {
		return releases.Share{}, err
	}
	return releases.Share{Candidate: r.Candidate, Percent: r.Percent, Salt: r.Salt}, nil
}

// ShareDelay implements releases.Roller: a key write's propagation.
func (k *KVS) ShareDelay() time.Duration { return k.propagation() }

// CandidateCookie implements releases.Roller: the cohort cookie of the
// base that comes first in sh's salt (its place 0 is below any share).
func (k *KVS) CandidateCookie(sh releases.Share) string {
	for base := range 100 {
		if Cohort(base, sh.Salt) == 0 {
			return fmt.Sprintf("%s=%d", CohortCookie, base)
		}
	}
	return "" // not reached: each salt is a permutation of the bases
}

// NewSalt implements releases.Roller.
func (k *KVS) NewSalt() (uint32, error) { return NewSalt() }
