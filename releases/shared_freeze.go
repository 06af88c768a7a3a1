package releases

import (
	"context"
	"errors"
	"fmt"
)

func (s *SharedStore) readFreeze(ctx context.Context, site Site) (freezeState, string, error) {
	var st freezeState
	etag, err := s.readState(ctx, site, StateFreeze, &st, func() string {
		if st.Freeze != nil && st.Freeze.Site != site.Name {
			return fmt.Sprintf("names site %q", st.Freeze.Site)
		}
		return ""
	})
	if err == nil && etag == "" && ctx.Value(seedingKey{}) == nil {
		return seed(ctx, s, site, st, s.readFreeze)
	}
	return st, etag, err
}

// updateFreeze is updateLock for the freeze object.
func (s *SharedStore) updateFreeze(ctx context.Context, site Site, change func(st *freezeState) bool) (freezeState, error) {
	for try := 1; ; try++ {
		st, etag, err := s.readFreeze(ctx, site)
		if err != nil {
			return st, err
		}
		was := st
		if !change(&st) {
			return was, nil
		}
		err = s.writeState(ctx, site, StateFreeze, st, etag)
		if err == nil {
			return was, nil
		}
		if !errors.Is(err, ErrStateChanged) || try == casTries {
			return was, err
		}
	}
}

// SetFreeze implements Store.
func (s *SharedStore) SetFreeze(ctx context.Context, f Freeze) error {
	site, err := s.site(f.Site)
	if err != nil {
		return err
	}
	if _, err := s.updateFreeze(ctx, site, func(st *freezeState) bool { st.Freeze = &f; return true }); err != nil {
		return err
	}
	return s.Cache.CacheFreeze(ctx, f.Site, &f)
}

// SwapFreeze implements Store: compared and replaced in one
// compare-and-swap of the bucket's freeze object.
func (s *SharedStore) SwapFreeze(ctx context.Context, siteName string, was, f *Freeze) (*Freeze, error) {
	site, err := s.site(siteName)
	if err != nil {
		return nil, err
	}
	var changed error
	before, err := s.updateFreeze(ctx, site, func(st *freezeState) bool {
		changed = nil
		if !SameFreeze(st.Freeze, was) {
			changed = FreezeChanged(siteName, st.Freeze)
			return false
		}
		if SameFreeze(st.Freeze, f) {
			return false
		}
		st.Freeze = f
		return true
	})
	if err == nil {
		err = changed
	}
	if err != nil {
		return nil, err
	}
	return before.Freeze, s.Cache.CacheFreeze(ctx, siteName, f)
}

// Freeze implements Store: the bucket's, cached locally.
func (s *SharedStore) Freeze(ctx context.Context, siteName string) (*Freeze, error) {
	site, err := s.site(siteName)
	if err != nil {
		return nil, err
	}
	st, _, err := s.readFreeze(ctx, site)
	if err != nil {
		return nil, err
	}
	return st.Freeze, s.Cache.CacheFreeze(ctx, siteName, st.Freeze)
}

// DeleteFreeze implements Store.
func (s *SharedStore) DeleteFreeze(ctx context.Context, siteName string) (*Freeze, error) {
	site, err := s.site(siteName)
	if err != nil {
		return nil, err
	}
	was, err := s.updateFreeze(ctx, site, func(st *freezeState) bool {
		if st.Freeze == nil {
			return false
		}
		st.Freeze = nil
		return true
	})
	if err != nil {
		return nil, err
	}
	return was.Freeze, s.Cache.CacheFreeze(ctx, siteName, nil)
}
