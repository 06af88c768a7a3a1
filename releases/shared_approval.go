package releases

import (
	"context"
	"errors"
	"fmt"
)

// approvalState is the body of a site's approval object: its latest
// request. A site has one pending request at most, so the latest is the
// only one that can still change; earlier ones are history, kept by the
// stores that saw them.
type approvalState struct {
	Request *ApprovalRequest `json:"request"`
	Write   string           `json:"write,omitempty"`
}

func (s *SharedStore) readApproval(ctx context.Context, site Site) (approvalState, string, error) {
	var st approvalState
	etag, err := s.readState(ctx, site, StateApproval, &st, func() string {
		a := st.Request
		switch {
		case a == nil:
			return ""
		case a.Site != site.Name:
			return fmt.Sprintf("names site %q", a.Site)
		case ValidateVersion(a.Version) != nil || !SafeID(a.ID) || a.Required < 0 || a.Required > 5 || len(a.Approvals) > 5:
			return "holds a request deploybot would not have made"
		}
		return ""
	})
	if err == nil && etag == "" && ctx.Value(seedingKey{}) == nil {
		return seed(ctx, s, site, st, s.readApproval)
	}
	return st, etag, err
}

// CreateApproval implements Store: the request becomes the site's latest
// in the bucket, unless the latest still waits (a *PendingError naming
// it), whichever process asked.
func (s *SharedStore) CreateApproval(ctx context.Context, a ApprovalRequest) error {
	site, err := s.site(a.Site)
	if err != nil {
		return err
	}
	for try := 1; ; try++ {
		st, etag, err := s.readApproval(ctx, site)
		if err != nil {
			return err
		}
		if p := st.Request; p != nil {
			if err := s.Cache.CacheApproval(ctx, *p); err != nil {
				return err
			}
			if p.Pending(a.Requested) {
				return &PendingError{Request: *p}
			}
		}
		err = s.writeState(ctx, site, StateApproval, approvalState{Request: &a}, etag)
		if err == nil {
			return s.Cache.CacheApproval(ctx, a)
		}
		if !errors.Is(err, ErrStateChanged) || try == casTries {
			return err
		}
	}
}

// UpdateApproval implements Store: the site's latest request changes in
// the bucket, by compare-and-swap (fn runs again on a fresh read when
// another process decided meanwhile); an earlier one only in the local
// store, where fn finds it decided.
func (s *SharedStore) UpdateApproval(ctx context.Context, siteName, id string, fn func(*ApprovalRequest) error) (ApprovalRequest, error) {
	site, err := s.site(siteName)
	if err != nil {
		return ApprovalRequest{}, err
	}
	for try := 1; ; try++ {
		st, etag, err := s.readApproval(ctx, site)
		if err != nil {
			return ApprovalRequest{}, err
		}
		if st.Request == nil || st.Request.ID != id {
			return s.Store.UpdateApproval(ctx, siteName, id, fn)
		}
		a := *st.Request
		a.Approvals = append([]ApprovalVote(nil), a.Approvals...)
		if err := fn(&a); err != nil {
			return ApprovalRequest{}, err
		}
		err = s.writeState(ctx, site, StateApproval, approvalState{Request: &a}, etag)
		if err == nil {
			return a, s.Cache.CacheApproval(ctx, a)
		}
		if !errors.Is(err, ErrStateChanged) || try == casTries {
			return ApprovalRequest{}, err
		}
	}
}

// Approval implements Store: the bucket's when it is the site's latest.
func (s *SharedStore) Approval(ctx context.Context, siteName, id string) (ApprovalRequest, error) {
	site, err := s.site(siteName)
	if err != nil {
		return ApprovalRequest{}, err
	}
	st, _, err := s.readApproval(ctx, site)
	if err != nil {
		return ApprovalRequest{}, err
	}
	if st.Request != nil && st.Request.ID == id {
		return *st.Request, s.Cache.CacheApproval(ctx, *st.Request)
	}
	return s.Store.Approval(ctx, siteName, id)
}

// Approvals implements Store: the local store's, with the bucket's latest
// request in it as the bucket says (asked by another process, or decided
// there since).
func (s *SharedStore) Approvals(ctx context.Context, siteName string, limit int) ([]ApprovalRequest, error) {
	site, err := s.site(siteName)
	if err != nil {
		return nil, err
	}
	st, _, err := s.readApproval(ctx, site)
	if err != nil {
		return nil, err
	}
	if st.Request != nil {
		if err := s.Cache.CacheApproval(ctx, *st.Request); err != nil {
			return nil, err
		}
	}
	return s.Store.Approvals(ctx, siteName, limit)
}
