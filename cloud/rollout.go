package cloud

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"regexp"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudfrontkeyvaluestore"
	kvstypes "github.com/aws/aws-sdk-go-v2/service/cloudfrontkeyvaluestore/types"

	"github.com/deploybot/deploybot/releases"
)

// A rolling release on a kvs site: while the site's rollout key
// ("<site>.rollout") names a candidate and a percent, the viewer-request
// function (FunctionCode) serves the candidate to the visitors whose
// cohort is below the percent, and the live key's release to the others.
// The release is in the URI, so it is in the cache key: cached copies of
// the two releases never mix.
//
// A visitor's cohort comes in two parts. The base (0..99) is what the
// deploybot-cohort cookie holds; on a visitor's first request, before it
// has the cookie, both functions derive the same base from a hash of the
// viewer's address and user agent, and the viewer-response function
// (ReleaseHeaderCode) sets the cookie to it, so the visitor keeps its base
// when its address changes. The rollout's salt then permutes the bases
// (Cohort), so each rollout starts on other visitors. A visitor gets the
// candidate when Cohort(base, salt) < percent: as the percent grows the
// set only gains visitors, and a visitor never goes back to live before
// an abort (percent 0, or the key deleted).
//
// The base is one of 100 values, not an identifier, and is set on the
// first answer of a kvs site whether or not a rollout is running, so a
// rollout that starts later finds visitors already placed.

// RolloutKeySuffix names the key that holds a site's rolling release:
// "<site>.rollout".
const RolloutKeySuffix = ".rollout"

// CohortCookie is the cookie that holds a visitor's base cohort.
const CohortCookie = "deploybot-cohort"

// CohortMaxAge is how long the cohort cookie lives (seconds): 30 days, far
// longer than a rollout; once it has expired, the next answer sets it again
// from the visitor's address and user agent of the day.
const CohortMaxAge = 30 * 24 * 60 * 60

// rolloutPattern is the rollout key's one accepted form,
// "r1:<percent>:<salt>:<candidate>": a format tag, the percent (0..100, no
// leading zeros), the salt (8 lower-case hex digits) and the candidate (a
// version, releases.ValidateVersion). At most 3+1+3+1+8+1+128 = 145
// bytes, under the KeyValueStore's 1 KB value
// (https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/kvs-with-functions-create-s3-kvp.html).
// The same text is the JavaScript regular expression the function parses
// the value with, so Go and the edge accept the same values; anything else
// (a later format a function of this version does not know, a hand edit)
// is no rollout at the edge: everyone gets live.
const rolloutPattern = `^r1:(0|[1-9][0-9]?|100):([0-9a-f]{8}):([A-Za-z0-9][A-Za-z0-9._-]{0,127})$`

var rolloutRE = regexp.MustCompile(rolloutPattern)

// cohortPattern is the one accepted form of the cohort cookie's value.
const cohortPattern = `^(0|[1-9][0-9]?)$`

// Rollout is what a site's rollout key holds.
type Rollout struct {
	// Candidate is the release the visitors below Percent get.
	Candidate string `json:"candidate"`
	// Percent is the share of visitors on the candidate, 0..100; 0 is
	// everyone on live (an abort), 100 everyone on the candidate.
	Percent int `json:"percent"`
	// Salt permutes the cohorts, one per rollout (NewSalt).
	Salt uint32 `json:"salt"`
}

// Encode is the key's value, or EINVALID for a rollout the function would
// not accept.
func (r Rollout) Encode() (string, error) {
	if err := releases.ValidateVersion(r.Candidate); err != nil {
		return "", err
	}
	if r.Percent < 0 || r.Percent > 100 {
		return "", releases.Errorf(releases.EINVALID, "a rollout's percent is 0 to 100, not %d", r.Percent)
	}
	return fmt.Sprintf("r1:%d:%08x:%s", r.Percent, r.Salt, r.Candidate), nil
}

// DecodeRollout parses a rollout key's value as strictly as the function
// does: what it refuses, the edge treats as no rollout.
func DecodeRollout(v string) (Rollout, error) {
	m := rolloutRE.FindStringSubmatch(v)
	if m == nil {
		return Rollout{}, releases.Errorf(releases.EINVALID, "%q is not a rollout (r1:<percent 0-100>:<salt, 8 hex digits>:<version>)", v)
	}
	pct, _ := strconv.Atoi(m[1])
	salt, _ := strconv.ParseUint(m[2], 16, 32)
	return Rollout{Candidate: m[3], Percent: pct, Salt: uint32(salt)}, nil
}

// NewSalt is a random salt for a new rollout.
func NewSalt() (uint32, error) {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return 0, err
	}
	return binary.BigEndian.Uint32(b[:]), nil
}

// Cohort is a base cohort's place in the line of the rollout with this
// salt, 0..99: base*a + b mod 100, with a odd and not a multiple of 5
// (coprime with 100), so that each salt is a permutation of the 100 bases
// and a percent p puts exactly the bases of p cohorts on the candidate.
// The function computes the same (cohortJS).
func Cohort(base int, salt uint32) int {
	a := 2*int(salt%50) + 1
	if a%5 == 0 {
		a += 2
	}
	b := int(salt / 50 % 100)
	return (a*(base%100) + b) % 100
}

// BaseCohort is the base a visitor without the cookie gets, from its
// address and user agent: the first 32 bits of SHA-256 of "ip user-agent",
// mod 100 (the bias of 2^32 mod 100 is under one in 40 million).
func BaseCohort(ip, userAgent string) int {
	sum := sha256.Sum256([]byte(ip + " " + userAgent))
	return int(binary.BigEndian.Uint32(sum[:4]) % 100)
}

// Serves reports whether a visitor of this base cohort gets the candidate.
func (r Rollout) Serves(base int) bool { return Cohort(base, r.Salt) < r.Percent }

// cohortJS is what both functions share: the base cohort of the visitor
// an event is about. The viewer-response event carries the viewer's
// request (its cookies and headers, user-agent included) and the viewer
// object
// (https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/functions-event-structure.html),
// so the response function derives the same base the request function
// did, rather than relying on a header the request function would add:
// the documentation does not say that a viewer-response event sees a
// viewer-request function's changes. One SHA-256 of some hundred bytes
// per first visit, well inside a function's compute budget
// (https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/cloudfront-function-restrictions.html#cloudfront-function-restrictions-compute-utilization).
var cohortJS = `
const COHORT = ` + strconv.Quote(CohortCookie) + `;
const COHORT_RE = /` + cohortPattern + `/;

// base is the visitor's base cohort, 0..99: its cookie, else a hash of
// its address and user agent (what the viewer-response function sets).
function base(event) {
  var c = event.request.cookies[COHORT];
  if (c && COHORT_RE.test(c.value)) return Number(c.value);
  var ua = event.request.headers['user-agent'];
  var h = crypto.createHash('sha256').update(event.viewer.ip + ' ' + (ua ? ua.value : '')).digest('hex');
  return parseInt(h.substring(0, 8), 16) % 100;
}
`

// rolloutJS is the viewer-request function's part: the candidate for this
// visitor, or null. It costs one more key read per request (a missing key
// is a rejected read), which CloudFront bills with the function's
// invocation; the live key stays a key of its own, as promote, rollback
// and every reader of it know it.
var rolloutJS = `
const ROLLOUT = /` + rolloutPattern + `/;

// candidate is the release a rolling release gives this visitor, or null:
// a missing or malformed key is no rollout.
async function candidate(event) {
  var v;
  try { v = await kvs.get(SITE + ` + strconv.Quote(RolloutKeySuffix) + `); } catch (e) { return null; }
  var m = ROLLOUT.exec(v);
  if (!m) return null;
  var salt = parseInt(m[2], 16);
  var a = 2 * (salt % 50) + 1;
  if (a % 5 === 0) a += 2;
  var cohort = (a * base(event) + Math.floor(salt / 50) % 100) % 100;
  return cohort < Number(m[1]) ? m[3] : null;
}
`

// cohortCookieJS is the viewer-response function's part: it sets the
// cookie on an answer to a visitor that did not send a valid one.
// CloudFront runs viewer-response functions per viewer, on cache hits and
// misses, after the cache
// (https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/function-code-choose-purpose.html),
// so the Set-Cookie never enters a cached copy. Not on answers of 400 and
// over (no viewer-response function runs on those); the next good answer
// sets it.
const cohortCookieJS = `  var cc = event.request.cookies[COHORT];
  if (!cc || !COHORT_RE.test(cc.value)) {
    if (!response.cookies) response.cookies = {};
    response.cookies[COHORT] = { value: String(base(event)), attributes: COHORT_ATTRS };
  }
`

// cohortAttrs are the cohort cookie's attributes: the whole site, about 30
// days, not for scripts, sent on top-level navigation from other sites
// (Lax), and over HTTPS only unless the site is plain HTTP.
func cohortAttrs(site releases.Site) string {
	return fmt.Sprintf("Path=/; Max-Age=%d; HttpOnly; %sSameSite=Lax", CohortMaxAge, secureAttr(site))
}

// ErrNotARollout is in the chain of the error for a rollout key whose
// value the function would not accept.
var ErrNotARollout = errors.New("not a rollout")

// Rollout reads the site's rollout key: false when there is none. A value
// the function would not accept is an error (the edge serves live).
func (k *KVS) Rollout(ctx context.Context, site releases.Site) (Rollout, bool, error) {
	if err := notSetUp(site); err != nil {
		return Rollout{}, false, err
	}
	key := site.Name + RolloutKeySuffix
	out, err := k.Client.GetKey(ctx, &cloudfrontkeyvaluestore.GetKeyInput{KvsARN: aws.String(site.KVSARN), Key: aws.String(key)})
	var nf *kvstypes.ResourceNotFoundException
	if errors.As(err, &nf) {
		return Rollout{}, false, nil
	}
	if err != nil {
		return Rollout{}, false, k.wrap(site, "reading key "+key, err)
	}
	r, err := DecodeRollout(aws.ToString(out.Value))
	if err != nil {
		return Rollout{}, false, releases.Errorf(releases.ECONFLICT, "site %s: key %s holds %q, which is not a rollout; the edge serves everyone the live release: %w",
			site.Name, key, aws.ToString(out.Value), ErrNotARollout)
	}
	return r, true, nil
}

// SetRollout changes the rollout key from what from says (nil: no key)
// to what to says (nil: delete the key, which ends the rollout at the
// edge), with If-Match on the store's ETag, as the live key is written
// (KVS.write): a conflict reads again once, and a key that no longer holds
// from means someone else changed the rollout (a pause, an abort), which
// stops this change rather than overwrite theirs. A key that already holds
// to is done (a resumed step). Each write reaches the edge in seconds
// (DefaultKVSPropagation).
func (k *KVS) SetRollout(ctx context.Context, site releases.Site, from, to *Rollout) error {
	if err := notSetUp(site); err != nil {
		return err
	}
	key := site.Name + RolloutKeySuffix
	var value string
	if to != nil {
		var err error
		if value, err = to.Encode(); err != nil {
			return err
		}
	}
	return k.swapKey(ctx, site, key, func() (bool, error) {
		cur, ok, err := k.Rollout(ctx, site)
		// A malformed value is no rollout, as at the edge: a change from
		// no rollout may replace it, and clearing deletes it.
		malformed := errors.Is(err, ErrNotARollout)
		if err != nil && !malformed {
			return false, err
		}
		var found *Rollout
		if ok {
			found = &cur
		}
		switch {
		case to == nil && !ok && !malformed, to != nil && ok && cur == *to:
			return true, nil
		case (from == nil) != (found == nil), from != nil && cur != *from:
			return false, releases.Errorf(releases.ECONFLICT, "site %s: key %s was changed by someone else (expected %s, found %s); nothing was changed",
				site.Name, key, describeRollout(from), describeRollout(found))
		}
		return false, nil
	}, func(etag *string) error {
		var err error
		if to != nil {
			_, err = k.Client.PutKey(ctx, &cloudfrontkeyvaluestore.PutKeyInput{KvsARN: aws.String(site.KVSARN), Key: aws.String(key),
				Value: aws.String(value), IfMatch: etag})
		} else {
			_, err = k.Client.DeleteKey(ctx, &cloudfrontkeyvaluestore.DeleteKeyInput{KvsARN: aws.String(site.KVSARN), Key: aws.String(key),
				IfMatch: etag})
		}
		return err
	})
}

// describeRollout says, for people, what a rollout key holds.
func describeRollout(r *Rollout) string {
	if r == nil {
		return "no rollout"
	}
	return fmt.Sprintf("%s at %d%%", r.Candidate, r.Percent)
}
