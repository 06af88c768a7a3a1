// Package releases is deploybot's domain: sites, releases, deploys and locks,
// the interfaces the outside world is reached through (Store, Bucket, CDN),
// and the services that promote, roll back and record releases. It imports no
// Slack, AWS or bbolt package; adapters at the edges implement its interfaces.
package releases

import (
	"path"
	"regexp"
	"strings"
	"time"
)

// Site is one static site: a bucket and prefix holding its releases and the
// distribution that serves one of them.
type Site struct {
	Name string
	// Install namespaces the site's account-wide AWS names (functions,
	// origin access control, key value store); "" lets the adapter derive
	// one from the bucket and prefix.
	Install        string
	Bucket         string
	Prefix         string // "www/": releases live at <Prefix><version>/
	DistributionID string
	OriginID       string // empty: the distribution's only S3 origin
	Strategy       string // flip strategy, "" = DefaultStrategy
	KVSARN         string // the key value store of strategy kvs
	URL            string // public address, for preview links
	Channel        string
	Deployers      []string
	// Previewers may make preview links too (Slack user and user-group
	// ids), beyond the deployers, who always may.
	Previewers []string
	Retention  Policy
	// SkewReleases is the site's skew protection: how many previous
	// releases' fingerprinted assets publish carries into a new release;
	// when above zero, a flip also gives the target the live release's
	// assets it lacks (see PhaseCarry). Zero turns both off.
	SkewReleases int
	// Health is checked after every promote (see HealthPolicy).
	Health HealthPolicy
	// Routing maps paths that name no file (see Routing).
	Routing Routing
	// NoReleaseHeader leaves the distribution's viewer responses alone:
	// the site's setup then publishes no function that names the release
	// in ReleaseHeader (answers still carry MetadataHeader).
	NoReleaseHeader bool
	// RepoURL is where the site's source is browsed (see
	// present.ParseRepo), for links to commits, compares and pull
	// requests; "" for none.
	RepoURL string
	// Approval is who must approve a promote before it runs (see
	// approval.go); its Approvers also decide overrides of freezes.
	Approval Approval
	// Windows are the times promotes are allowed (none: any time);
	// Freezes the configured times they are not (see guard.go).
	Windows []Window
	Freezes []Freeze
	// Rollout is the site's gradual promote (strategy kvs); unset steps
	// and interval take the defaults.
	Rollout RolloutPolicy
}

// Approval is a site's four-eyes rule: Required approvals by Approvers
// (Slack user or user-group ids; none: the deployers), other than the
// person who asked, within Timeout. Required 0: promotes need none.
type Approval struct {
	Required  int
	Approvers []string
	Timeout   time.Duration
}

// ApproverIDs are the ids that may approve the site's promotes and
// override its freezes: the approvers, or the deployers when it names none.
func (s Site) ApproverIDs() []string {
	if len(s.Approval.Approvers) > 0 {
		return s.Approval.Approvers
	}
	return s.Deployers
}

// ReleasePath is the folder of a release inside the bucket, "www/v42/".
func (s Site) ReleasePath(version string) string { return s.Prefix + version + "/" }

// PrefixesOverlap reports whether one key prefix contains the other (the
// empty prefix contains every other). Two sites in one bucket whose
// prefixes overlap would see each other's objects as their own: one site's
// release folder, or its whole prefix, would look like the other's
// abandoned upload and be pruned.
func PrefixesOverlap(a, b string) bool {
	return strings.HasPrefix(a, b) || strings.HasPrefix(b, a)
}

// ManifestKey is where the manifest of version lives. Manifests sit outside
// every release folder so that no release can contain another's manifest.
func (s Site) ManifestKey(version string) string {
	return s.ManifestPrefix() + version + ".json"
}

// ManifestPrefix is the key prefix that all manifests of the site share.
func (s Site) ManifestPrefix() string { return s.Prefix + ".deploybot/releases/" }

// OriginPath is the CloudFront origin path that serves version: a leading
// slash and no trailing one, as CloudFront requires.
func (s Site) OriginPath(version string) string {
	return "/" + strings.TrimSuffix(s.Prefix+version, "/")
}

// VersionFromOriginPath is the inverse of OriginPath. ok is false when the
// path does not point at a release folder of this site (a hand-made change,
// an empty origin path, another site's folder).
func (s Site) VersionFromOriginPath(p string) (version string, ok bool) {
	p = strings.TrimSuffix(strings.TrimPrefix(p, "/"), "/")
	prefix := s.Prefix
	if !strings.HasPrefix(p, prefix) {
		return "", false
	}
	v := p[len(prefix):]
	if ValidateVersion(v) != nil || path.Base(v) != v {
		return "", false
	}
	return v, true
}

var versionRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// ValidateVersion refuses version names that cannot safely be a folder name,
// a key and an origin path. The same rule holds at every door.
func ValidateVersion(v string) error {
	if !versionRE.MatchString(v) {
		return Errorf(EINVALID, "invalid version %q: a version is 1 to 128 letters, digits, '.', '_' or '-', starting with a letter or digit", v)
	}
	return nil
}

// Release is one immutable build of a site. It exists once its manifest
// exists in the bucket.
type Release struct {
	Site    string `json:"site"`
	Version string `json:"version"`
	Commit  string `json:"commit,omitempty"`
	Message string `json:"message,omitempty"`
	Build
	PublishedAt time.Time `json:"published_at"`
	Files       int       `json:"files"`
	Bytes       int64     `json:"bytes"`
	RecordedAt  time.Time `json:"recorded_at"`
	// Pruned is set when retention deleted the release: it stays in
	// history but cannot be promoted.
	Pruned   bool      `json:"pruned,omitempty"`
	PrunedAt time.Time `json:"pruned_at,omitzero"`
	// ManifestETag is the ETag of the manifest the record was read from:
	// a manifest is written once (If-None-Match: *), so it names this
	// release's content as long as the name stays in use. When the name
	// is published again after a prune, the new manifest is another
	// object, and the record another release ("" in records written
	// before deploybot kept it).
	ManifestETag string `json:"manifest_etag,omitempty"`
	// Reused: the version name belonged to an earlier release (pruned,
	// or replaced in the bucket) before this one. Deploys of the name
	// that do not say which manifest they moved to (written before
	// deploybot recorded it) are then the earlier release's, not this
	// one's.
	Reused bool `json:"reused,omitempty"`
}

// SameAs reports whether r and o are records of one release: the same
// version read from the same manifest. A record that does not know its
// manifest's ETag is taken for the same.
func (r Release) SameAs(o Release) bool {
	return r.Version == o.Version && (r.ManifestETag == "" || o.ManifestETag == "" || r.ManifestETag == o.ManifestETag)
}

// Deployed reports whether deploy d moved the site to this release (and
// not to an earlier release of the same name).
func (r Release) Deployed(d Deploy) bool { return r.is(d.To, d.ToManifest) }

// Left reports whether deploy d moved the site away from this release:
// it was live when d started.
func (r Release) Left(d Deploy) bool { return r.is(d.From, d.FromManifest) }

// is reports whether a deploy's version and manifest ETag name r. A deploy
// or record from before deploybot kept ETags names r by version, unless r
// reuses a name that an earlier release had.
func (r Release) is(version, etag string) bool {
	if version == "" || version != r.Version {
		return false
	}
	if etag == "" || r.ManifestETag == "" {
		return r.ManifestETag == "" || !r.Reused
	}
	return etag == r.ManifestETag
}

// Manifest is the release's record in the bucket, written last: the list of
// every file of the release. Its presence is what makes a release exist.
type Manifest struct {
	Version string `json:"version"`
	Commit  string `json:"commit,omitempty"`
	Message string `json:"message,omitempty"`
	Build
	PublishedAt time.Time `json:"published_at"`
	// Files is never empty in a published release (publish refuses an
	// empty directory); omitted when empty, publish writes it separately
	// as it streams the manifest.
	Files []ManifestFile `json:"files,omitempty"`
	// Ancestors are the build's commit and its ancestors, newest first,
	// at most MaxAncestors, as publish found them in the CI's checkout;
	// they let a diff say how many commits a release is ahead of another.
	// Kept in the manifest only (15 KB at most), not in the store.
	Ancestors []string `json:"ancestors,omitempty"`
	// Carried are fingerprinted assets of earlier releases copied into
	// this one (skew protection): pages loaded before a flip keep finding
	// their assets after it. They are not part of the build.
	Carried []ManifestFile `json:"carried,omitempty"`
	// Stamped: every object of the release carries ReleaseMetadata, so
	// answers through the CDN name the release (see visible.go).
	Stamped bool `json:"stamped,omitempty"`
	// ETag is the manifest object's ETag as the bucket gave it when it was
	// read (not part of the JSON): what tells one publish of a version
	// name from a later one of the same name.
	ETag string `json:"-"`
}

// ManifestFile is one file of a release, its path relative to the release
// folder with forward slashes.
type ManifestFile struct {
	Path         string `json:"path"`
	Size         int64  `json:"size"`
	SHA256       string `json:"sha256"`
	ContentType  string `json:"content_type,omitempty"`
	CacheControl string `json:"cache_control,omitempty"`
	// ContentEncoding is set for pre-compressed files.
	ContentEncoding string `json:"content_encoding,omitempty"`
	// From names the release a carried file was copied from.
	From string `json:"from,omitempty"`
}

// Release summarises the manifest for the store.
func (m *Manifest) Release(site string) Release {
	r := Release{Site: site, Version: m.Version, Commit: m.Commit, Message: m.Message, Build: m.Build,
		PublishedAt: m.PublishedAt, Files: len(m.Files), ManifestETag: m.ETag}
	for _, f := range m.Files {
		r.Bytes += f.Size
	}
	return r
}

// Kind says what a deploy does.
type Kind string

const (
	KindPromote  Kind = "promote"
	KindRollback Kind = "rollback"
)

// Phase is where a deploy is. The CDN strategy names the steps in between;
// pending, done and failed are common to all.
type Phase string

const (
	PhasePending Phase = "pending"
	PhaseDone    Phase = "done"
	PhaseFailed  Phase = "failed"
)

// Final reports whether a deploy in phase p will not change again.
func (p Phase) Final() bool { return p == PhaseDone || p == PhaseFailed }

// PhaseRecord is one step of a deploy with its timing; Ended is zero while it runs.
type PhaseRecord struct {
	Phase   Phase     `json:"phase"`
	Started time.Time `json:"started"`
	Ended   time.Time `json:"ended,omitzero"`
	Error   string    `json:"error,omitempty"`
}

// Deploy is one promote or rollback. It is written to the store at every
// phase change, before the step acts, so after a crash it says exactly what
// to check in AWS.
type Deploy struct {
	ID     string `json:"id"`
	Site   string `json:"site"`
	Kind   Kind   `json:"kind"`
	Actor  string `json:"actor"`
	Reason string `json:"reason,omitempty"`
	From   string `json:"from"` // version live before, "" if none or unknown
	// FromManifest is the ETag of From's manifest as recorded when the
	// deploy started ("" when unknown; see Release.Left).
	FromManifest string `json:"from_manifest,omitempty"`
	FromPath     string `json:"from_path"`
	To           string `json:"to"`
	// ToManifest is the ETag of To's manifest when the deploy started:
	// which release of that name it moved to (see Release.Deployed).
	ToManifest string        `json:"to_manifest,omitempty"`
	Strategy   string        `json:"strategy"`
	Phase      Phase         `json:"phase"`
	Phases     []PhaseRecord `json:"phases"`
	Error      string        `json:"error,omitempty"`
	StartedAt  time.Time     `json:"started_at"`
	FinishedAt time.Time     `json:"finished_at,omitzero"`
	// FlippedAt is when the step that points the CDN at To ended;
	// VisibleAt is when every answer of the site's url began to name To
	// (the visible phase; zero when the site has no url or the release
	// is not stamped).
	FlippedAt time.Time `json:"flipped_at,omitzero"`
	VisibleAt time.Time `json:"visible_at,omitzero"`
	// ApprovedBy are who approved the promote (its id is the approval
	// request's); empty for a deploy that needed no approval.
	ApprovedBy []string `json:"approved_by,omitempty"`
	// LockAfter is the lock the site is left under when the deploy ends,
	// taken in the transaction that records the end (an automatic
	// rollback leaves the site locked, with no moment in which someone
	// could promote the bad release again); nil: the site is freed.
	LockAfter *Lock `json:"lock_after,omitempty"`
	// Door is the door the deploy came through (see WithDoor), so that
	// the record of its interruption, written by whichever process
	// recovers it, names it.
	Door string `json:"door,omitempty"`
	// InterruptRecorded says the audit log already has this run's
	// interruption (a stop the process saw); a runner killed outright
	// wrote nothing, and its recovery writes it.
	InterruptRecorded bool `json:"interrupt_recorded,omitempty"`
	// Rollout is a gradual deploy's plan and where it is; nil for a
	// deploy that flips everyone at once.
	Rollout *Rollout `json:"rollout,omitempty"`
}

// fillLockAfter makes LockAfter a lock of this site held by no deploy,
// dated from the deploy's end.
func (d *Deploy) fillLockAfter() {
	if d.LockAfter != nil {
		d.LockAfter.Site, d.LockAfter.DeployID, d.LockAfter.Since = d.Site, "", d.FinishedAt
	}
}

// Lock keeps other deploys off a site. A running deploy holds one (DeployID
// set); a person may hold one to freeze the site (DeployID empty).
type Lock struct {
	Site     string    `json:"site"`
	Holder   string    `json:"holder"`
	Reason   string    `json:"reason,omitempty"`
	DeployID string    `json:"deploy_id,omitempty"`
	Since    time.Time `json:"since"`
	// Host, PID and Heartbeat say which process runs the deploy that holds
	// the lock, and when it last said it was alive; empty for a person's
	// lock.
	Host      string    `json:"host,omitempty"`
	PID       int       `json:"pid,omitempty"`
	Process   string    `json:"process,omitempty"` // a random id of the process, which a reused pid does not share
	Heartbeat time.Time `json:"heartbeat,omitzero"`
	// Left says the runner stopped (a shutdown) and handed the deploy
	// over: it is gone for every process at once.
	Left bool `json:"left,omitempty"`
}

// Live is the store's record of what a site serves.
type Live struct {
	Version  string    `json:"version"`
	Since    time.Time `json:"since"`
	DeployID string    `json:"deploy_id,omitempty"`
}
