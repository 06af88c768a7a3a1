package releases

import (
	"context"
	"errors"
	"io"
	"time"
)

// Store keeps history (releases, deploys), the live pointer and locks. The
// bucket and the distribution are the truth for what exists and what is
// live; the store records who did what, and caches the rest.
type Store interface {
	ReleaseStore
	PinStore
	LiveStore
	DeployStore
	LockStore
	LinkStore
	FreezeStore
	ApprovalStore
	MirrorStore
	AuditStore
}

// ReleaseStore is the store of the site's releases as recorded, and when
// they were last synced with the bucket.
type ReleaseStore interface {
	// PutRelease records r; created is false when that release was already
	// recorded (the record is then left as it was). A record of the same
	// version that is pruned, or read from another manifest (Release.SameAs),
	// is replaced by r marked Reused, and the old record's pin goes: a name
	// published again is a new release.
	PutRelease(ctx context.Context, r Release) (created bool, err error)
	// PutReleases is PutRelease for many, in one transaction; created[i]
	// says whether rs[i] was new.
	PutReleases(ctx context.Context, rs []Release) (created []bool, err error)
	// AnnotateRelease sets a recorded release's commit and message where
	// they are empty (a non-empty one is kept) and returns the release.
	AnnotateRelease(ctx context.Context, site, version, commit, message string) (Release, error)
	// Release returns one release, ENOTFOUND when it is not recorded.
	Release(ctx context.Context, site, version string) (Release, error)
	// Releases returns the site's releases, newest first.
	Releases(ctx context.Context, site string) ([]Release, error)
	// SyncedAt is when the site's releases were last synced with its
	// bucket (zero: never); SetSyncedAt records it.
	SyncedAt(ctx context.Context, site string) (time.Time, error)
	SetSyncedAt(ctx context.Context, site string, at time.Time) error
	// MarkPruned records that retention deleted a release.
	MarkPruned(ctx context.Context, site, version string, at time.Time) error
}

// PinStore is the store of releases kept forever.
type PinStore interface {
	// SetPin pins a release; DeletePin releases the pin (false when there
	// was none); Pins lists a site's pins.
	SetPin(ctx context.Context, p Pin) error
	DeletePin(ctx context.Context, site, version string) (bool, error)
	Pins(ctx context.Context, site string) (map[string]Pin, error)
}

// LiveStore is the store of the live pointer.
type LiveStore interface {
	// Live returns the live pointer; ok is false when none is recorded.
	Live(ctx context.Context, site string) (live Live, ok bool, err error)
	// SetLive moves the live pointer outside a deploy (reconcile).
	SetLive(ctx context.Context, site string, live Live) error
}

// DeployStore is the store of deploys: started with the site's lock,
// saved as they go, finished.
type DeployStore interface {
	// StartDeploy takes the site's lock for d and records d in one
	// transaction. A held lock gives a *LockedError naming its holder.
	StartDeploy(ctx context.Context, d Deploy, lock Lock) error
	// SaveDeploy records d's progress; d must have been started.
	SaveDeploy(ctx context.Context, d Deploy) error
	// FinishDeploy records d in its final phase, moves the live pointer to
	// live when live is non-nil, and frees the lock d holds (or replaces
	// it with d.LockAfter), in one transaction.
	FinishDeploy(ctx context.Context, d Deploy, live *Live) error
	// Deploy returns one deploy, ENOTFOUND when unknown.
	Deploy(ctx context.Context, site, id string) (Deploy, error)
	// Deploys returns up to limit deploys of the site, newest first
	// (limit <= 0: all).
	Deploys(ctx context.Context, site string, limit int) ([]Deploy, error)
}

// LockStore is the store of site locks: a running deploy's, or a
// person's.
type LockStore interface {
	// TouchLock records that the process l names (Host, PID) runs the deploy
	// holding the site's lock, as of l.Heartbeat. It changes nothing when
	// the lock is not held by l.DeployID.
	TouchLock(ctx context.Context, l Lock) error
	// Lock returns the site's lock, nil when the site is free.
	Lock(ctx context.Context, site string) (*Lock, error)
	// AcquireLock takes a person's lock on a site; a held lock gives a
	// *LockedError naming its holder.
	AcquireLock(ctx context.Context, l Lock) error
	// ReleaseLock frees a person's lock and returns it (nil when the site
	// was free). A running deploy's lock is not released (ECONFLICT).
	ReleaseLock(ctx context.Context, site string) (*Lock, error)
	// ReleaseLockOf frees the lock only if owner (a deploy or prune id)
	// holds it.
	ReleaseLockOf(ctx context.Context, site, owner string) error
}

// LinkStore is the store of where deploys and releases are shown (chat
// threads and notices).
type LinkStore interface {
	// SetDeployLink records where a deploy is shown (a chat thread), under
	// a name such as "slack"; DeployLinks returns them.
	SetDeployLink(ctx context.Context, site, deployID, name, link string) error
	DeployLinks(ctx context.Context, site, deployID string) (map[string]string, error)
	// SetReleaseLink records where a release is shown (its chat notice),
	// under a name such as "slack"; ReleaseLinks returns them for every
	// release of the site that has one: version -> name -> link.
	SetReleaseLink(ctx context.Context, site, version, name, link string) error
	ReleaseLinks(ctx context.Context, site string) (map[string]map[string]string, error)
}

// FreezeStore is the store of a site's run-time freeze.
type FreezeStore interface {
	// SetFreeze records the site's run-time freeze, replacing an earlier
	// one; Freeze returns it (nil when none); DeleteFreeze removes it and
	// returns it (nil when there was none).
	SetFreeze(ctx context.Context, f Freeze) error
	Freeze(ctx context.Context, site string) (*Freeze, error)
	DeleteFreeze(ctx context.Context, site string) (*Freeze, error)
	// SwapFreeze replaces the site's run-time freeze with f (nil: none)
	// only while it is still was (nil: none), the one a permission was
	// decided on, and returns what it replaced; otherwise it changes
	// nothing and returns an error wrapping ErrFreezeChanged.
	SwapFreeze(ctx context.Context, site string, was, f *Freeze) (*Freeze, error)
}

// ApprovalStore is the store of approval requests.
type ApprovalStore interface {
	// CreateApproval records a new approval request; while another
	// request of the site is pending and not past its expiry (at
	// a.Requested), it refuses with a *PendingError naming that one.
	CreateApproval(ctx context.Context, a ApprovalRequest) error
	// UpdateApproval changes one request with fn in one transaction (fn's
	// error aborts it) and returns the request as stored; ENOTFOUND when
	// unknown.
	UpdateApproval(ctx context.Context, site, id string, fn func(*ApprovalRequest) error) (ApprovalRequest, error)
	// Approval returns one request; Approvals up to limit of the site's,
	// newest first (limit <= 0: all).
	Approval(ctx context.Context, site, id string) (ApprovalRequest, error)
	Approvals(ctx context.Context, site string, limit int) ([]ApprovalRequest, error)
}

// MirrorStore is the store of the outbox of records mirrored to the
// bucket, and what a rebuild imports from there.
type MirrorStore interface {
	// MirrorPending returns up to limit records waiting to be mirrored to
	// the bucket, oldest first; MirrorDone removes one once written
	// (unless it changed meanwhile, a state written again); MirrorCount
	// says how many wait. The store adds records to this outbox in the
	// transactions that record them (see mirror.go).
	MirrorPending(ctx context.Context, limit int) ([]MirrorRecord, error)
	MirrorDone(ctx context.Context, r MirrorRecord) error
	MirrorCount(ctx context.Context) (int, error)
	// ImportReleases, ImportDeploys and ImportAudit record, each in one
	// transaction, what Rebuild read from the bucket that the store does
	// not have (nothing goes to the outbox: it came from there). Empty
	// reports whether the store has no release, deploy or audit entry of
	// any site.
	ImportReleases(ctx context.Context, rs []Release) error
	ImportDeploys(ctx context.Context, ds []Deploy) error
	ImportAudit(ctx context.Context, es []AuditEntry) error
	Empty(ctx context.Context) (bool, error)
}

// AuditStore is the store of the audit log.
type AuditStore interface {
	// AppendAudit records who tried what, and what came of it.
	AppendAudit(ctx context.Context, e AuditEntry) error
	// Audit returns up to limit entries of a site, newest first.
	Audit(ctx context.Context, site string, limit int) ([]AuditEntry, error)
}

// AuditEntry is one line of the audit log: every command that changes or
// tries to change a site, refusals included.
type AuditEntry struct {
	Time   time.Time `json:"time"`
	Site   string    `json:"site"`
	Actor  string    `json:"actor"`
	Action string    `json:"action"`
	Result string    `json:"result"` // ResultOK, ResultRefused, ResultFailed, ResultInterrupted, ResultResumed
	Detail string    `json:"detail,omitempty"`
	Door   string    `json:"door,omitempty"` // slack, cli, api, console
	// Label is what the caller named itself beside its verified identity
	// (Actor): the API body's actor, $DEPLOYBOT_ACTOR. Never trusted.
	Label string `json:"label,omitempty"`
}

// ErrCopyRefused is wrapped by CopyFile's error when the bucket refused a
// conditional server-side copy (501 Not Implemented or 403 AccessDenied):
// https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes-enforce.html
// says a bucket policy that enforces conditional writes refuses every
// CopyObject, with the headers or without. The file's bytes can still be
// sent (PutFile).
var ErrCopyRefused = errors.New("the bucket refuses conditional server-side copies")

// FileOpener is a Bucket that reads a release's file, for a carry whose
// server-side copy the bucket refuses (ErrCopyRefused): publish reads the
// file and writes it again.
type FileOpener interface {
	// OpenFile reads path of release version; ENOTFOUND when missing.
	OpenFile(ctx context.Context, site Site, version, path string) (io.ReadCloser, error)
}

// ErrNoManifest is wrapped by Bucket errors when a version has no manifest:
// it was never published, its upload is unfinished, or it was pruned.
var ErrNoManifest = errors.New("no manifest")

// Bucket is the objects of a site's releases.
type Bucket interface {
	// ReadManifest returns the manifest of version; an ENOTFOUND error
	// wrapping ErrNoManifest when there is none.
	ReadManifest(ctx context.Context, site Site, version string) (*Manifest, error)
	// ManifestETag returns the manifest's ETag without reading it.
	ManifestETag(ctx context.Context, site Site, version string) (string, error)
	// ListVersions returns the versions that have a manifest, in no
	// particular order.
	ListVersions(ctx context.Context, site Site) ([]string, error)
	// WriteManifest creates the manifest, refusing (ECONFLICT) when one
	// exists: a published release is never overwritten.
	WriteManifest(ctx context.Context, site Site, m *Manifest) error
	// WriteManifestJSON is WriteManifest for a manifest already encoded,
	// size bytes read from body (publish streams a large site's from
	// disk rather than hold it).
	WriteManifestJSON(ctx context.Context, site Site, version string, body io.ReadSeeker, size int64) error
	// PutFile uploads one file of a release. PutFile and CopyFile stamp
	// the object with the user metadata ReleaseMetadata: version (the
	// release it is now part of), which answers through the CDN carry.
	//
	// Both only create: unless f.Replace, an object already at the key is
	// never overwritten (If-None-Match: *). One that is the object this
	// write would make (an earlier, interrupted publish of the same
	// version: same size, content, headers and stamp) is kept and the
	// write succeeds; any other is left as it is and the write fails
	// with ECONFLICT, naming the key.
	PutFile(ctx context.Context, site Site, version string, f File) error
	// CopyFile copies fromPath of release from into release to at f.Path
	// (objects up to MaxCopySize), server-side, setting f's headers.
	// f.Body, when set, is the file's content, read only to compare it
	// with an object already at the destination. An error wrapping
	// ErrCopyRefused means the bucket refuses conditional copies (a
	// bucket policy that enforces conditional writes): send the bytes
	// instead.
	CopyFile(ctx context.Context, site Site, from, fromPath, to string, f File) error
	// PutHistory writes one object under the site's history prefix: an
	// immutable record with If-None-Match: * (one already there is left
	// as it is), or with replace the current state of something, with
	// If-Match on the ETag it reads. ListHistory lists the keys under dir
	// (relative to the history prefix, as PutHistory takes them) that sort
	// after after ("": all), in key order; GetHistory reads one, an error wrapping ErrNoHistory when it
	// is not there.
	PutHistory(ctx context.Context, site Site, key string, body []byte, replace bool) error
	ListHistory(ctx context.Context, site Site, dir, after string) ([]string, error)
	GetHistory(ctx context.Context, site Site, key string) ([]byte, error)
	// LatestManifests returns the manifests of the n most recently
	// published releases, newest first, skipping those gone or not
	// valid. With files nil each holds its files. With files set, the
	// files go to it as they are decoded, one release after another, and
	// the manifests returned hold none, so a large release costs no
	// memory here.
	LatestManifests(ctx context.Context, site Site, n int, files *ManifestFiles) ([]*Manifest, error)

	// ListFolders returns the names of the release folders in the bucket,
	// with or without a manifest (one delimited listing, not every object).
	ListFolders(ctx context.Context, site Site) ([]string, error)
	// ReleaseObjects lists a release folder: path (relative) -> size.
	ReleaseObjects(ctx context.Context, site Site, version string) (map[string]int64, error)
	// FolderStats lists one folder: object count, size and newest object.
	FolderStats(ctx context.Context, site Site, version string) (Folder, error)
	// DeleteFolder deletes every object of a release folder (not the
	// manifest) and says how many objects and bytes went.
	DeleteFolder(ctx context.Context, site Site, version string) (objects int, bytes int64, err error)
	// DeleteManifest deletes a release's manifest; pruning does it last.
	DeleteManifest(ctx context.Context, site Site, version string) error
}

// Folder is a release folder as found in the bucket.
type Folder struct {
	Version string
	Objects int
	Bytes   int64
	Newest  time.Time // newest object's LastModified
	// SiteData: the folder holds a .deploybot/ folder, so it is the root
	// of some site (one this deploybot may not know), never an upload.
	SiteData bool
}

// File is one file to upload into a release folder.
type File struct {
	Path            string // relative to the release folder, forward slashes
	Body            io.ReadSeeker
	Size            int64
	ContentType     string
	CacheControl    string
	ContentEncoding string
	SHA256          string // hex, for integrity checks where the server supports them
	// Replace lets the write overwrite an object at the key. Of
	// deploybot's writes only the bot's carry at flip time sets it (it may
	// replace an earlier carry's copy, never a file the release's manifest
	// lists); a release's own files are written once.
	Replace bool
}

// CDN is a flip strategy: how a site's live release is read and changed.
// Callers see only steps, so a strategy with other steps (a key-value store
// write instead of a distribution update) needs no change in them.
type CDN interface {
	// Strategy names the strategy ("origin-path").
	Strategy() string
	// Current reads what the site serves now, from the CDN itself.
	Current(ctx context.Context, site Site) (Current, error)
	// Plan returns the ordered steps that move site from cur to version to.
	// deployID identifies the deploy to the CDN (idempotency keys).
	Plan(site Site, cur Current, to, deployID string) []Step
	// Resume reads the truth in the CDN for a deploy that was interrupted
	// in d.Phase and returns the steps left to finish it, and whether the
	// CDN already points at d.To. A *Error with code ECONFLICT means it
	// cannot be finished (the reason says why) and is to be marked failed;
	// any other error means the truth could not be read (try again later).
	Resume(ctx context.Context, site Site, d Deploy) (steps []Step, flipped bool, err error)
}

// MaxCopySize is the largest object one server-side copy takes: S3's
// CopyObject copies at most 5 GB
// (https://docs.aws.amazon.com/AmazonS3/latest/API/API_CopyObject.html).
// Publish sends larger unchanged files again instead, and the carry of
// skew protection leaves larger assets out.
const MaxCopySize int64 = 5 << 30

// Preflighter is a CDN that can tell, before a deploy starts, that the
// distribution is not set up for it (a kvs site whose distribution does
// not run the site's function, so a key write would change nothing anyone
// sees). Promote asks it before taking the lock and refuses with its error;
// nothing has changed then.
type Preflighter interface {
	Preflight(ctx context.Context, site Site) error
}

// Current is what the CDN serves: Version when the path names a release of
// the site, Path always (it may be a hand-made value).
type Current struct {
	Version string
	Path    string
}

// Step is one phase of a flip.
type Step struct {
	Phase Phase
	Title string // for people: "Updating the distribution's origin path"
	// Flips is true for the step after which the CDN points at the new
	// release (visitors start to get it as it propagates).
	Flips bool
	// Propagation, when set, says the step only waits this long for the
	// change to spread, with nothing to poll; where the site's answers
	// can be watched, the visible phase takes its place and keeps the
	// wait as its floor.
	Propagation time.Duration
	// Waits marks a step that waits for people or a set time (a
	// rollout's hold): it has no deadline, and a deploy with one gives
	// each other step the deploy timeout of its own.
	Waits bool
	Run   func(ctx context.Context) error
	// Record, when set, writes what the step learned into the deploy
	// after it succeeds, before the deploy is recorded again.
	Record func(d *Deploy)
}

// ManifestFiles takes the files of manifests as they are decoded (see
// Bucket.LatestManifests), for a reader that keeps less than all of them.
type ManifestFiles struct {
	// File gets each file of version's manifest, in the order stored
	// (Files, then Carried). An error stops the reading and is returned.
	File func(version string, f ManifestFile, carried bool) error
	// Done follows the last File of a version read (and stands alone for
	// one that was gone): ok says the manifest was whole and valid; when
	// it was not, what File got of it must be dropped.
	Done func(version string, ok bool)
}

// Operations are what every door offers a person: the service in the
// process (the command line, dev, serve's Slack) and the API's client
// (the command line with --server) both implement them, checked at
// compile time on each side, so a command works the same either way.
type Operations interface {
	Versions(ctx context.Context, site string) ([]VersionInfo, error)
	Sync(ctx context.Context, site string) ([]Release, error)
	Status(ctx context.Context, site string) (*Status, error)
	Promote(ctx context.Context, req PromoteRequest, p Progress) (*Outcome, error)
	Rollback(ctx context.Context, req RollbackRequest, p Progress) (*Outcome, error)
	Prune(ctx context.Context, req PruneRequest) (*PruneReport, error)
	PinRelease(ctx context.Context, site, version, actor, reason string) (*Pin, error)
	UnpinRelease(ctx context.Context, site, version, actor string) error
	History(ctx context.Context, site string, limit int) ([]AuditEntry, error)
	LockSite(ctx context.Context, site, actor, reason string) (*Lock, error)
	Freeze(ctx context.Context, req FreezeRequest) ([]Freeze, error)
	Approve(ctx context.Context, site, id, actor string, p Progress) (*Outcome, error)
	Reject(ctx context.Context, site, id, actor, why string) (ApprovalRequest, error)
	Approval(ctx context.Context, site, id string) (ApprovalRequest, error)
	Unfreeze(ctx context.Context, site string, all bool, actor string) ([]Freeze, error)
	UnlockSite(ctx context.Context, site, actor string) (*Lock, error)
	Preview(ctx context.Context, site, version, actor string, ttl time.Duration) (*Preview, error)
	ControlRollout(ctx context.Context, req RolloutRequest) (*Deploy, error)
}

var _ Operations = (*Service)(nil)
