package releases

import "context"

// Changes to a site's AWS side outside a deploy: its bucket, distribution,
// functions and key value store, as setup, kvs-setup and routing-setup
// make them with --apply. The door makes the change through its cloud
// adapter; the service decides who may, and writes its one record, as it
// does for every other change. A plan (no --apply) changes nothing and is
// not recorded.

// Site change actions: the commands' names.
const (
	ActionSetup        = "setup"
	ActionKVSSetup     = "kvs-setup"
	ActionRoutingSetup = "routing-setup"
)

// SiteChange names a change to a site's AWS side.
type SiteChange struct {
	Site   string
	Action string // ActionSetup, ActionKVSSetup or ActionRoutingSetup
	// Actor is what the caller named itself: with a principal the door
	// verified, only the label beside it.
	Actor string
}

// ChangeSite runs change for ctx's principal if it holds the role the
// action needs on the site (the deployer's), and records it once: ok with
// the summary change returns of what it changed; refused when the
// principal may not (change does not run); failed when change returned an
// error, with the summary of how far it got (what it did and began), since
// by then something may have changed in AWS whatever the error's code. Nothing here holds the
// site's lock: setup creates the bucket the lock lives in.
func (s *Service) ChangeSite(ctx context.Context, req SiteChange, change func(ctx context.Context) (summary string, err error)) (err error) {
	ran, summary := false, ""
	defer func() {
		switch {
		case !ran:
			s.audit(ctx, req.Site, req.Actor, req.Action, "", err)
		case err != nil:
			detail := ErrorMessage(err)
			if summary != "" {
				detail += " (it got as far as: " + summary + ")"
			}
			s.auditAs(ctx, req.Site, req.Actor, req.Action, ResultFailed, detail, nil)
		default:
			s.auditAs(ctx, req.Site, req.Actor, req.Action, ResultOK, summary, nil)
		}
	}()
	site, err := s.Site(req.Site)
	if err != nil {
		return err
	}
	if req.Action != ActionSetup && req.Action != ActionKVSSetup && req.Action != ActionRoutingSetup {
		return Errorf(EINVALID, "%q is no change to a site's AWS side", req.Action)
	}
	if _, err := s.authorize(ctx, site, req.Action, req.Actor); err != nil {
		return err
	}
	ran = true
	summary, err = change(ctx)
	return err
}
