package releases

import (
	"context"
	"errors"
	"fmt"
)

// pinsState is the body of a site's pins object.
type pinsState struct {
	Pins  []Pin  `json:"pins"`
	Write string `json:"write,omitempty"`
}

func (s *SharedStore) readPins(ctx context.Context, site Site) (pinsState, string, error) {
	var st pinsState
	etag, err := s.readState(ctx, site, StatePins, &st, func() string {
		for _, p := range st.Pins {
			if p.Site != site.Name || ValidateVersion(p.Version) != nil {
				return fmt.Sprintf("holds a pin of site %q, version %q", p.Site, p.Version)
			}
		}
		return ""
	})
	if err == nil && etag == "" && ctx.Value(seedingKey{}) == nil {
		return seed(ctx, s, site, st, s.readPins)
	}
	return st, etag, err
}

// updatePins changes the site's pins object by compare-and-swap and
// caches the result.
func (s *SharedStore) updatePins(ctx context.Context, siteName string, change func(pins []Pin) ([]Pin, bool)) error {
	site, err := s.site(siteName)
	if err != nil {
		return err
	}
	for try := 1; ; try++ {
		st, etag, err := s.readPins(ctx, site)
		if err != nil {
			return err
		}
		pins, ok := change(st.Pins)
		if !ok {
			return s.Cache.CachePins(ctx, siteName, st.Pins)
		}
		err = s.writeState(ctx, site, StatePins, pinsState{Pins: pins}, etag)
		if err == nil {
			return s.Cache.CachePins(ctx, siteName, pins)
		}
		if !errors.Is(err, ErrStateChanged) || try == casTries {
			return err
		}
	}
}

// SetPin implements Store.
func (s *SharedStore) SetPin(ctx context.Context, p Pin) error {
	return s.updatePins(ctx, p.Site, func(pins []Pin) ([]Pin, bool) {
		out := []Pin{p}
		for _, q := range pins {
			if q.Version != p.Version {
				out = append(out, q)
			}
		}
		return out, true
	})
}

// DeletePin implements Store.
func (s *SharedStore) DeletePin(ctx context.Context, site, version string) (bool, error) {
	had := false
	if err := s.updatePins(ctx, site, func(pins []Pin) ([]Pin, bool) {
		var out []Pin
		for _, q := range pins {
			if q.Version == version {
				had = true
				continue
			}
			out = append(out, q)
		}
		return out, had
	}); err != nil {
		return false, err
	}
	return had, nil
}

// Pins implements Store: the bucket's, cached locally.
func (s *SharedStore) Pins(ctx context.Context, siteName string) (map[string]Pin, error) {
	site, err := s.site(siteName)
	if err != nil {
		return nil, err
	}
	st, _, err := s.readPins(ctx, site)
	if err != nil {
		return nil, err
	}
	if err := s.Cache.CachePins(ctx, siteName, st.Pins); err != nil {
		return nil, err
	}
	out := make(map[string]Pin, len(st.Pins))
	for _, p := range st.Pins {
		out[p.Version] = p
	}
	return out, nil
}
