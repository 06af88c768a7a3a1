package releases

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"
)

// PruneRequest asks for one retention run.
type PruneRequest struct {
	Site   string
	DryRun bool
	Actor  string
}

// PrunedRelease is one release (or abandoned upload) a prune deleted, or
// would delete in a dry run.
type PrunedRelease struct {
	Version   string `json:"version"`
	Objects   int    `json:"objects"`
	Bytes     int64  `json:"bytes"`
	Abandoned bool   `json:"abandoned,omitempty"` // a folder that never got a manifest
	Error     string `json:"error,omitempty"`
}

// KeptRelease is a release a prune kept, and why.
type KeptRelease struct {
	Version string `json:"version"`
	Reason  string `json:"reason"`
}

// PruneReport is the outcome of a run.
type PruneReport struct {
	ID       string          `json:"id"`
	Site     string          `json:"site"`
	DryRun   bool            `json:"dry_run"`
	Actor    string          `json:"actor"`
	Started  time.Time       `json:"started"`
	Seconds  float64         `json:"seconds"`
	Deleted  []PrunedRelease `json:"deleted"`
	Kept     []KeptRelease   `json:"kept"`
	Objects  int             `json:"objects"`
	Bytes    int64           `json:"bytes"`
	Skipped  string          `json:"skipped,omitempty"` // why nothing was done
	Failures int             `json:"failures"`
}

// prunePrefix marks a lock held by a prune run.
const prunePrefix = "prune:"

// Prune applies the site's retention policy. It keeps the live release,
// both ends of a running deploy, the last keep_deployed live releases,
// pinned and young releases and the newest keep; it deletes the rest
// (objects first, manifest last, so an interrupted prune leaves a release
// that the next run finds and finishes) and folders that never got a
// manifest once they are older than the grace period. It holds the site's
// lock while it deletes, so no deploy can start towards a release being
// deleted; a run that finds a deploy running skips and says so. A dry run
// is the same plan (planPrune), not carried out: its numbers are the ones
// the prune after it prints, unless the bucket changes in between.
func (s *Service) Prune(ctx context.Context, req PruneRequest) (rep *PruneReport, err error) {
	defer func() {
		if rep != nil {
			s.auditPrune(ctx, req, rep, err)
		} else if err != nil {
			s.audit(ctx, req.Site, req.Actor, pruneAction(req), "", err)
		}
	}()
	return s.prune(ctx, &req)
}

// PruneSkipped is the report of a run that did not start (another run
// of the site was going on, or the process was stopping), recorded as
// refused like any run that found the site busy.
//
// Who asks is checked as for a run: a caller who may not prune is refused
// (and recorded so), busy site or not.
func (s *Service) PruneSkipped(ctx context.Context, req PruneRequest, why string) (*PruneReport, error) {
	site, err := s.Site(req.Site)
	if err == nil {
		req.Actor, err = s.authorizeActor(ctx, site, "prune", req.Actor)
	}
	if err != nil {
		s.audit(ctx, req.Site, req.Actor, pruneAction(req), "", err)
		return nil, err
	}
	rep := &PruneReport{Site: site.Name, DryRun: req.DryRun, Actor: req.Actor, Started: s.now(),
		Skipped: why, Deleted: []PrunedRelease{}, Kept: []KeptRelease{}}
	s.auditPrune(ctx, req, rep, nil)
	return rep, nil
}

// pruneAction names a prune's record.
func pruneAction(req PruneRequest) string {
	if req.DryRun {
		return "prune --dry-run"
	}
	return "prune"
}

// auditPrune records a run: who, dry or not, what came of it. A run that
// found the site busy did nothing: refused.
func (s *Service) auditPrune(ctx context.Context, req PruneRequest, rep *PruneReport, err error) {
	e := AuditEntry{Site: rep.Site, Actor: req.Actor, Action: pruneAction(req), Result: ResultOK, Door: DoorOf(ctx),
		Detail: fmt.Sprintf("%d release(s), %d objects, %d bytes", len(rep.Deleted)-rep.Failures, rep.Objects, rep.Bytes)}
	switch {
	case err != nil:
		e.Result, e.Detail = ResultFailed, ErrorMessage(err)
	case rep.Skipped != "":
		e.Result, e.Detail = ResultRefused, rep.Skipped
	}
	s.Audit(ctx, e)
}

func (s *Service) prune(ctx context.Context, req *PruneRequest) (*PruneReport, error) {
	site, err := s.Site(req.Site)
	if err != nil {
		return nil, err
	}
	if req.Actor, err = s.authorizeActor(ctx, site, "prune", req.Actor); err != nil {
		return nil, err
	}
	start := s.now()
	rep := &PruneReport{ID: NewDeployID(start), Site: site.Name, DryRun: req.DryRun, Actor: req.Actor, Started: start,
		Deleted: []PrunedRelease{}, Kept: []KeptRelease{}}
	log := s.logger().With("prune_id", rep.ID, "site", site.Name, "dry_run", req.DryRun)
	defer func() { rep.Seconds = s.now().Sub(start).Seconds() }()

	// Fenced (another process freed this prune's lock, taking it for
	// dead, and may be deploying): the deletes stop at once.
	ctx, stopPrune := context.WithCancelCause(ctx)
	defer stopPrune(nil)

	lock, err := s.Store.Lock(ctx, site.Name)
	if err != nil {
		return nil, err
	}
	if lock != nil && lock.DeployID != "" {
		rep.Skipped = fmt.Sprintf("%s by %s is running (%s); pruning waits for the next run", lockWhat(*lock), lock.Holder, lock.Reason)
		log.InfoContext(ctx, "prune skipped", "reason", rep.Skipped)
		return rep, nil
	}
	if !req.DryRun && lock == nil {
		// No deploy may start while releases are being deleted. A person's
		// lock (a freeze) already keeps deploys off, so it is left alone.
		release, err := s.holdPruneLock(ctx, site, rep, stopPrune, log)
		if err != nil || rep.Skipped != "" {
			return rep, err
		}
		defer release()
	}
	if err := s.planPrune(ctx, site, rep, log); err != nil {
		return nil, err
	}
	if req.DryRun {
		for _, d := range rep.Deleted {
			rep.Objects += d.Objects
			rep.Bytes += d.Bytes
		}
		log.InfoContext(ctx, "prune dry run", "would_delete", len(rep.Deleted), "objects", rep.Objects, "bytes", rep.Bytes)
		return rep, nil
	}
	return rep, s.deletePlanned(ctx, site, rep, log)
}

// holdPruneLock takes the site's lock for the prune of rep and keeps its
// heartbeat until release is called; rep.Skipped says why not when a
// deploy took the site first.
func (s *Service) holdPruneLock(ctx context.Context, site Site, rep *PruneReport, fenced func(error), log *slog.Logger) (release func(), err error) {
	host, pid := s.runner()
	l := Lock{Site: site.Name, Holder: rep.Actor, Reason: "pruning old releases", DeployID: prunePrefix + rep.ID, Since: rep.Started,
		Host: host, PID: pid, Process: processID, Heartbeat: rep.Started}
	running.Store(l.DeployID, true) // before the lock is visible, as a deploy does
	if err := s.Store.AcquireLock(ctx, l); err != nil {
		running.Delete(l.DeployID)
		var le *LockedError
		if errors.As(err, &le) {
			rep.Skipped = le.Error()
			return nil, nil
		}
		return nil, err
	}
	stopBeat := make(chan struct{})
	go s.beat(ctx, l, stopBeat, fenced)
	return func() {
		close(stopBeat)
		running.Delete(l.DeployID)
		if err := s.Store.ReleaseLockOf(context.WithoutCancel(ctx), site.Name, l.DeployID); err != nil {
			log.ErrorContext(ctx, "releasing the prune lock", "err", err)
		}
	}, nil
}

// pruneInput is what a prune plans from: the records every process made
// and what the bucket and the CDN hold now.
type pruneInput struct {
	all     []Release // every record, pruned ones too
	rels    []Release // those not pruned
	deploys []Deploy
	pins    map[string]Pin
	cur     Current
	folders []string
	running *Deploy
}

// readPruneInput reads what a prune plans from. What was live (the
// rollback targets kept) is judged from the deploys every process ran,
// not only this store's: a prune that cannot catch up with them does not
// run.
func (s *Service) readPruneInput(ctx context.Context, site Site) (*pruneInput, error) {
	if _, err := s.PullHistory(ctx, site.Name); err != nil {
		return nil, err
	}
	if _, err := s.Sync(ctx, site.Name); err != nil {
		return nil, err
	}
	in := &pruneInput{}
	var err error
	if in.all, err = s.Store.Releases(ctx, site.Name); err != nil {
		return nil, err
	}
	for _, r := range in.all {
		if !r.Pruned {
			in.rels = append(in.rels, r)
		}
	}
	if in.deploys, err = s.Store.Deploys(ctx, site.Name, 500); err != nil {
		return nil, err
	}
	if in.pins, err = s.Store.Pins(ctx, site.Name); err != nil {
		return nil, err
	}
	if _, in.cur, err = s.current(ctx, site); err != nil {
		return nil, err
	}
	if in.folders, err = s.Bucket.ListFolders(ctx, site); err != nil {
		return nil, err
	}
	for _, d := range in.deploys {
		if !d.Phase.Final() {
			in.running = &d
			break
		}
	}
	return in, nil
}

// planPrune fills rep with what the prune deletes and keeps, and why. A
// release to delete is measured by listing its folder (one listing per
// 1,000 objects): its record counts the files its publish uploaded, not
// those it carried from an earlier release, and the dry run must say
// what the prune will delete.
func (s *Service) planPrune(ctx context.Context, site Site, rep *PruneReport, log *slog.Logger) error {
	in, err := s.readPruneInput(ctx, site)
	if err != nil {
		return err
	}
	protect, err := s.pruneProtected(ctx, site, in.cur, in.deploys, in.rels)
	if err != nil {
		return err
	}
	if in.running != nil {
		protect[in.running.To], protect[in.running.From] = KeepDeploying, KeepDeploying
	}
	protect[in.cur.Version] = KeepLive
	delete(protect, "")
	policy := site.Retention
	if policy.Grace <= 0 {
		policy.Grace = DefaultGrace
	}
	plan := PlanPrune(PlanInput{Releases: in.rels, Deploys: in.deploys, Live: in.cur.Version, Running: in.running, Pins: in.pins, Protect: protect, Now: s.now(), Policy: policy})
	for v, why := range plan.Kept {
		rep.Kept = append(rep.Kept, KeptRelease{Version: v, Reason: why})
	}
	for _, r := range plan.Delete {
		if o := s.foreignOwner(site, r.Version); o != "" {
			rep.keepForeign(ctx, site, r.Version, "site "+o, log)
			continue
		}
		f, err := s.Bucket.FolderStats(ctx, site, r.Version)
		if err != nil {
			return err
		}
		rep.Deleted = append(rep.Deleted, PrunedRelease{Version: r.Version, Objects: f.Objects, Bytes: f.Bytes})
	}
	if err := s.planFolders(ctx, site, in, protect, policy, rep, log); err != nil {
		return err
	}
	sort.Slice(rep.Kept, func(i, j int) bool { return rep.Kept[i].Version < rep.Kept[j].Version })
	return nil
}

// planFolders adds to rep the folders no release record keeps: uploads
// abandoned longer than the grace period, and releases whose prune was
// interrupted after their manifest went.
func (s *Service) planFolders(ctx context.Context, site Site, in *pruneInput, protect map[string]string, policy Policy, rep *PruneReport, log *slog.Logger) error {
	known, pruned := map[string]bool{}, map[string]bool{}
	for _, r := range in.all {
		known[r.Version], pruned[r.Version] = true, r.Pruned
	}
	for _, v := range in.folders {
		if known[v] && !pruned[v] {
			continue
		}
		// Whatever the records say of it (pruned before, never recorded),
		// the folder the site serves and the one a rollback would go to
		// stay.
		if why, ok := protect[v]; ok {
			rep.Kept = append(rep.Kept, KeptRelease{Version: v, Reason: why})
			continue
		}
		if o := s.foreignOwner(site, v); o != "" {
			rep.keepForeign(ctx, site, v, "site "+o, log)
			continue
		}
		f, err := s.Bucket.FolderStats(ctx, site, v)
		if err != nil {
			return err
		}
		if f.Objects == 0 {
			continue
		}
		if f.SiteData {
			rep.keepForeign(ctx, site, v, "it holds .deploybot/", log)
			continue
		}
		// A pruned release whose folder remains was interrupted after its
		// manifest went: finish it.
		if !pruned[v] && s.now().Sub(f.Newest) < policy.Grace {
			rep.Kept = append(rep.Kept, KeptRelease{Version: v, Reason: KeepUploading})
			continue
		}
		rep.Deleted = append(rep.Deleted, PrunedRelease{Version: v, Objects: f.Objects, Bytes: f.Bytes, Abandoned: true})
	}
	return nil
}

// foreignOwner names the other configured site whose prefix in this
// bucket holds release folder v of site ("" when none): defence in
// depth, whatever the configuration check said, nothing of another site
// is deleted.
func (s *Service) foreignOwner(site Site, v string) string {
	folder := site.ReleasePath(v)
	for _, o := range s.Sites {
		if o.Name != site.Name && o.Bucket == site.Bucket && PrefixesOverlap(folder, o.Prefix) {
			return o.Name
		}
	}
	return ""
}

// keepForeign keeps folder v of site, which belongs to owner.
func (rep *PruneReport) keepForeign(ctx context.Context, site Site, v, owner string, log *slog.Logger) {
	rep.Kept = append(rep.Kept, KeptRelease{Version: v, Reason: KeepOtherSite + " (" + owner + ")"})
	log.WarnContext(ctx, "prune left a folder that belongs to another site", "folder", site.ReleasePath(v), "site_of_it", owner)
}

// deletePlanned carries out the plan in rep: each folder, then its
// manifest, then its record; what was deleted is counted as the bucket
// answered. A deletion that fails is reported and tried again next run.
func (s *Service) deletePlanned(ctx context.Context, site Site, rep *PruneReport, log *slog.Logger) error {
	for i := range rep.Deleted {
		d := &rep.Deleted[i]
		if err := ctx.Err(); err != nil {
			d.Error = err.Error()
			rep.Failures++
			continue
		}
		n, b, err := s.Bucket.DeleteFolder(ctx, site, d.Version)
		d.Objects, d.Bytes = n, b
		if err == nil && !d.Abandoned {
			err = s.Bucket.DeleteManifest(ctx, site, d.Version)
		}
		if err == nil && !d.Abandoned {
			err = s.Store.MarkPruned(ctx, site.Name, d.Version, s.now())
		}
		if err != nil {
			d.Error = ErrorMessage(err)
			rep.Failures++
			log.ErrorContext(ctx, "pruning a release failed; the next run tries again", "version", d.Version, "err", err)
			continue
		}
		rep.Objects += n
		rep.Bytes += b
		log.InfoContext(ctx, "release pruned", "version", d.Version, "objects", n, "bytes", b, "abandoned", d.Abandoned)
	}
	log.InfoContext(ctx, "prune finished", "deleted", len(rep.Deleted)-rep.Failures, "objects", rep.Objects, "bytes", rep.Bytes, "failures", rep.Failures)
	if rep.Failures > 0 {
		return Errorf(EINTERNAL, "prune of %s: %d of %d deletions failed; the next run tries them again", site.Name, rep.Failures, len(rep.Deleted))
	}
	return nil
}

// pruneProtected are the releases no prune deletes whatever the policy and
// the records say, beyond the live one: the rollback target, worked out
// from what the CDN serves now, and the releases a promote waits for
// approval of.
func (s *Service) pruneProtected(ctx context.Context, site Site, cur Current, deploys []Deploy, rels []Release) (map[string]string, error) {
	protect := map[string]string{}
	h := &rollbackHistory{site: site, live: cur.Version, deploys: deploys, rels: make(map[string]Release, len(rels))}
	for _, r := range rels {
		h.rels[r.Version] = r
	}
	target, err := s.rollbackTarget(ctx, site, h)
	switch {
	case err == nil:
		protect[target] = KeepRollback
	case ErrorCode(err) != ENOTFOUND:
		return nil, err
	}
	approvals, err := s.Store.Approvals(ctx, site.Name, 0)
	if err != nil {
		return nil, err
	}
	now := s.now()
	for _, a := range approvals {
		if a.Pending(now) {
			protect[a.Version] = KeepApproval
		}
	}
	return protect, nil
}

func lockWhat(l Lock) string {
	if strings.HasPrefix(l.DeployID, prunePrefix) {
		return "a prune"
	}
	return "deploy " + l.DeployID
}

// PinRelease keeps a release forever.
func (s *Service) PinRelease(ctx context.Context, siteName, version, actor, reason string) (_ *Pin, err error) {
	defer func() { s.audit(ctx, siteName, actor, "pin", joinDetail(version, reason), err) }()
	site, err := s.Site(siteName)
	if err != nil {
		return nil, err
	}
	if actor, err = s.authorizeActor(ctx, site, "pin", actor); err != nil {
		return nil, err
	}
	if err := checkReason("the reason", reason); err != nil {
		return nil, err
	}
	if err := ValidateVersion(version); err != nil {
		return nil, err
	}
	if _, err := s.Sync(ctx, site.Name); err != nil {
		return nil, err
	}
	r, err := s.Store.Release(ctx, site.Name, version)
	if err != nil {
		return nil, err
	}
	if r.Pruned {
		return nil, Errorf(ECONFLICT, "%s of site %s was pruned on %s; it cannot be pinned", version, site.Name, r.PrunedAt.UTC().Format("2006-01-02"))
	}
	p := Pin{Site: site.Name, Version: version, By: actor, Reason: reason, At: s.now()}
	if err := s.Store.SetPin(ctx, p); err != nil {
		return nil, err
	}
	return &p, nil
}

// UnpinRelease releases a pin; ENOTFOUND when the release was not pinned.
func (s *Service) UnpinRelease(ctx context.Context, siteName, version, actor string) (err error) {
	defer func() { s.audit(ctx, siteName, actor, "unpin", version, err) }()
	site, err := s.Site(siteName)
	if err != nil {
		return err
	}
	if actor, err = s.authorizeActor(ctx, site, "unpin", actor); err != nil {
		return err
	}
	if err := ValidateVersion(version); err != nil {
		return err
	}
	had, err := s.Store.DeletePin(ctx, site.Name, version)
	if err != nil {
		return err
	}
	if !had {
		return Errorf(ENOTFOUND, "%s of site %s is not pinned", version, site.Name)
	}
	return nil
}
