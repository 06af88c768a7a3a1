package releases

import (
	"context"
)

// LockSite takes a person's lock: promotes and rollbacks of the site are
// refused, naming the holder, until UnlockSite.
func (s *Service) LockSite(ctx context.Context, siteName, actor, reason string) (_ *Lock, err error) {
	defer func() { s.audit(ctx, siteName, actor, "lock", reason, err) }()
	site, err := s.Site(siteName)
	if err != nil {
		return nil, err
	}
	if actor, err = s.authorizeActor(ctx, site, "lock", actor); err != nil {
		return nil, err
	}
	if reason == "" {
		return nil, Errorf(EINVALID, "say why site %s is locked", site.Name)
	}
	if err := checkReason("the reason", reason); err != nil {
		return nil, err
	}
	l := Lock{Site: site.Name, Holder: actor, Reason: reason, Since: s.now()}
	if err := s.Store.AcquireLock(ctx, l); err != nil {
		return nil, err
	}
	s.logger().InfoContext(ctx, "site locked", "site", site.Name, "actor", actor, "reason", reason)
	return &l, nil
}

// UnlockSite frees a person's lock; it returns the lock freed, nil when
// the site was not locked.
func (s *Service) UnlockSite(ctx context.Context, siteName, actor string) (l *Lock, err error) {
	defer func() {
		// A site that was not locked did not change: nothing to record.
		if err != nil || l != nil {
			s.audit(ctx, siteName, actor, "unlock", "", err)
		}
	}()
	site, err := s.Site(siteName)
	if err != nil {
		return nil, err
	}
	if actor, err = s.authorizeActor(ctx, site, "unlock", actor); err != nil {
		return nil, err
	}
	l, err = s.Store.ReleaseLock(ctx, site.Name)
	if err != nil {
		return nil, err
	}
	if l != nil {
		s.logger().InfoContext(ctx, "site unlocked", "site", site.Name, "actor", actor, "was_held_by", l.Holder)
	}
	return l, nil
}
