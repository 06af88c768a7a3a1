package releases

import (
	"context"
	"errors"
	"time"
)

// runState is the body of a site's object for one scheduled job: the
// latest planned time a process claimed to run it for.
type runState struct {
	At    time.Time `json:"at"`
	Write string    `json:"write,omitempty"`
}

// runClaimAhead is how far past the run planned now a scheduled run's
// claim may be dated and still hold.
const runClaimAhead = 24 * time.Hour

// ClaimRun claims the run of job (a scheduled prune) that site's schedule
// planned for at: of all the processes whose timers fire for that time,
// exactly one gets true, and every other false. A process that is down
// claims nothing, so a run is lost only when none is up.
func (s *SharedStore) ClaimRun(ctx context.Context, siteName, job string, at time.Time) (bool, error) {
	site, err := s.site(siteName)
	if err != nil {
		return false, err
	}
	key := "runs/" + job + ".json"
	for try := 1; ; try++ {
		var st runState
		etag, err := s.readState(ctx, site, key, &st, func() string { return "" })
		if err != nil {
			return false, err
		}
		// A claim dated over a day past the run planned now was not
		// made by a process whose clock agrees (or by deploybot): it
		// holds nothing, or no planned run would ever run again.
		if !st.At.Before(at) && !st.At.After(at.Add(runClaimAhead)) {
			return false, nil
		}
		err = s.writeState(ctx, site, key, runState{At: at.UTC()}, etag)
		if err == nil {
			return true, nil
		}
		if !errors.Is(err, ErrStateChanged) || try == casTries {
			return false, err
		}
	}
}
