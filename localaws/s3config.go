package localaws

import (
	"encoding/xml"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// DefaultRegion is the region of buckets made without a location
// constraint (CreateBucket with no CreateBucketConfiguration, EnsureSite):
// S3's default, US East (N. Virginia)
// (https://docs.aws.amazon.com/AmazonS3/latest/API/API_CreateBucketConfiguration.html).
const DefaultRegion = "us-east-1"

// publicAccessBlock is a bucket's Block Public Access configuration
// (https://docs.aws.amazon.com/AmazonS3/latest/API/API_PublicAccessBlockConfiguration.html).
type publicAccessBlock struct {
	BlockPublicAcls       bool `json:"block_public_acls"`
	IgnorePublicAcls      bool `json:"ignore_public_acls"`
	BlockPublicPolicy     bool `json:"block_public_policy"`
	RestrictPublicBuckets bool `json:"restrict_public_buckets"`
}

// bucketEncryption is a bucket's default encryption rule
// (https://docs.aws.amazon.com/AmazonS3/latest/API/API_ServerSideEncryptionByDefault.html).
type bucketEncryption struct {
	Algorithm string `json:"algorithm"`
	KMSKeyID  string `json:"kms_key_id,omitempty"`
	BucketKey bool   `json:"bucket_key,omitempty"`
}

// bucketConfig is what S3 keeps of a bucket besides its objects: where
// it is and its settings. It is saved beside the objects, in the
// bucket's directory (bucketConfigFile).
type bucketConfig struct {
	Region            string             `json:"region"`
	PublicAccessBlock *publicAccessBlock `json:"public_access_block,omitempty"`
	// Ownership is the Object Ownership setting; "" when the bucket has
	// no ownership controls.
	Ownership  string           `json:"ownership,omitempty"`
	Encryption bucketEncryption `json:"encryption"`
	// Policy is the bucket policy as it was put; "" when none.
	Policy string `json:"policy,omitempty"`
}

const bucketConfigFile = ".bucket-config"

// newBucketConfig is what S3 gives a new bucket in region. Since April
// 2023 every new bucket has S3 Block Public Access on (all four settings)
// and ACLs disabled (Object Ownership: bucket owner enforced)
// (https://aws.amazon.com/about-aws/whats-new/2022/12/amazon-s3-automatically-enable-block-public-access-disable-access-control-lists-buckets-april-2023/,
// https://docs.aws.amazon.com/AmazonS3/latest/userguide/create-bucket-overview.html),
// and since January 2023 default encryption with SSE-S3 (AES256)
// (https://docs.aws.amazon.com/AmazonS3/latest/userguide/default-encryption-faq.html).
func newBucketConfig(region string) bucketConfig {
	return bucketConfig{Region: region,
		PublicAccessBlock: &publicAccessBlock{BlockPublicAcls: true, IgnorePublicAcls: true, BlockPublicPolicy: true, RestrictPublicBuckets: true},
		Ownership:         "BucketOwnerEnforced",
		Encryption:        bucketEncryption{Algorithm: "AES256"}}
}

// loadBucketConfig reads a bucket's settings; a bucket made before the
// stand-in kept them has a new bucket's, in the default region.
func loadBucketConfig(dir string) (bucketConfig, error) {
	cfg := newBucketConfig(DefaultRegion)
	if _, err := os.Stat(filepath.Join(dir, bucketConfigFile)); os.IsNotExist(err) {
		return cfg, nil
	}
	cfg = bucketConfig{}
	err := loadJSON(filepath.Join(dir, bucketConfigFile), &cfg)
	if cfg.Region == "" {
		cfg.Region = DefaultRegion
	}
	return cfg, err
}

func (b *s3Bucket) saveConfig() error { return saveJSON(filepath.Join(b.dir, bucketConfigFile), b.cfg) }

// credentialScope finds the region of a SigV4 credential scope
// (KEY/DATE/REGION/SERVICE/aws4_request).
var credentialScope = regexp.MustCompile(`Credential=[^/,\s]+/\d{8}/([^/]+)/[^/]+/aws4_request`)

// signingRegion is the region a request is signed for, from its
// Authorization header or, for a presigned URL, X-Amz-Credential
// (https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-auth-using-authorization-header.html);
// "" for an unsigned request. The stand-in is reached at one address, so
// a request's signing region stands for the regional endpoint it was
// sent to as well.
func signingRegion(r *http.Request) string {
	if m := credentialScope.FindStringSubmatch(r.Header.Get("Authorization")); m != nil {
		return m[1]
	}
	if parts := strings.Split(r.URL.Query().Get("X-Amz-Credential"), "/"); len(parts) == 5 {
		return parts[2]
	}
	return ""
}

// knownRegion reports whether S3 takes region as a location constraint:
// the values the API documents for it
// (https://docs.aws.amazon.com/AmazonS3/latest/API/API_CreateBucketConfiguration.html),
// as the SDK's enum lists them.
func knownRegion(region string) bool {
	return slices.Contains(s3types.BucketLocationConstraint("").Values(), s3types.BucketLocationConstraint(region))
}

// optInRegions are the regions launched after March 20, 2019, where a
// request that arrives for a bucket of another region is answered 400,
// not redirected
// (https://docs.aws.amazon.com/AmazonS3/latest/userguide/UsingRouting.html).
var optInRegions = []string{"ap-east-1", "me-south-1", "af-south-1", "eu-south-1", "ap-southeast-3", "me-central-1",
	"eu-central-2", "eu-south-2", "ap-south-2", "ap-southeast-4", "il-central-1", "ca-west-1", "ap-southeast-5",
	"ap-southeast-7", "mx-central-1", "ap-east-2", "ap-southeast-6"}

// wrongRegion answers, and reports true, when a request signed for (so
// sent to the endpoint of) one region names a bucket of another. A path-style
// request to another region's endpoint is answered 301
// PermanentRedirect with the endpoint to use
// (https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html#ErrorCodeList,
// https://docs.aws.amazon.com/AmazonS3/latest/userguide/UsingRouting.html),
// for a bucket of a region launched after March 20, 2019 400
// IllegalLocationConstraintException (same pages); a HEAD request gets the
// status alone, with x-amz-bucket-region, as HeadBucket documents
// (https://docs.aws.amazon.com/AmazonS3/latest/API/API_HeadBucket.html).
// GetBucketLocation answers from any region (API_GetBucketLocation.html),
// and CreateBucket has its own rules (createBucket). Unsigned requests are
// not checked: the stand-in takes them as before.
func (s *s3Service) wrongRegion(w http.ResponseWriter, r *http.Request, bucket string) bool {
	region := signingRegion(r)
	if region == "" {
		return false
	}
	s.mu.RLock()
	b := s.buckets[bucket]
	var home string
	if b != nil {
		home = b.cfg.Region
	}
	s.mu.RUnlock()
	if b == nil || home == region {
		return false
	}
	if slices.Contains(optInRegions, home) {
		// Only a HEAD request's answer names the region: AWS documents
		// x-amz-bucket-region on HeadBucket's answers, not on this error.
		named := ""
		if r.Method == http.MethodHead {
			named = home
		}
		writeS3Error(w, r, s3Error{Status: http.StatusBadRequest, Code: "IllegalLocationConstraintException", BucketRegion: named,
			Message: fmt.Sprintf("The %s location constraint is incompatible for the region specific endpoint this request was sent to.", home)})
		return true
	}
	writeS3Error(w, r, s3Error{Status: http.StatusMovedPermanently, Code: "PermanentRedirect", BucketRegion: home,
		Message:  "The bucket you are attempting to access must be addressed using the specified endpoint. Please send all future requests to this endpoint.",
		Endpoint: bucket + ".s3." + home + ".amazonaws.com", Bucket: bucket})
	return true
}

// createBucketRegion checks a CreateBucket request's location constraint
// against the endpoint it was sent to (its signing region) and returns
// the bucket's region, as
// https://docs.aws.amazon.com/AmazonS3/latest/API/API_CreateBucket.html and
// API_CreateBucketConfiguration.html describe: no constraint is
// us-east-1, which is not a valid constraint itself
// (InvalidLocationConstraint); a constraint that is not the region of
// the endpoint, or none sent to another region's endpoint, is
// IllegalLocationConstraintException
// (https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html#ErrorCodeList).
// The legacy constraint EU is eu-west-1.
func createBucketRegion(r *http.Request, body []byte) (string, *s3Error) {
	var req struct {
		LocationConstraint string
	}
	if len(strings.TrimSpace(string(body))) > 0 {
		if err := xml.Unmarshal(body, &req); err != nil {
			e := malformedXML
			return "", &e
		}
	}
	lc := req.LocationConstraint
	invalid := &s3Error{Status: http.StatusBadRequest, Code: "InvalidLocationConstraint", Message: "The specified location-constraint is not valid"}
	if lc == DefaultRegion || lc != "" && !knownRegion(lc) {
		return "", invalid
	}
	region := lc
	switch lc {
	case "":
		region = DefaultRegion
	case "EU":
		region = "eu-west-1"
	}
	if sr := signingRegion(r); sr != "" && sr != region {
		name := lc
		if name == "" {
			name = "unspecified"
		}
		return "", &s3Error{Status: http.StatusBadRequest, Code: "IllegalLocationConstraintException",
			Message: fmt.Sprintf("The %s location constraint is incompatible for the region specific endpoint this request was sent to.", name)}
	}
	return region, nil
}

// EnsureBucketIn creates bucket, if missing, in region, with the settings
// S3 gives a new bucket, as CreateBucket with that location constraint
// would; for tests of buckets outside the default region.
func (s *Server) EnsureBucketIn(bucket, region string) error {
	if !validBucketName(bucket) {
		return fmt.Errorf("localaws: invalid bucket name %q", bucket)
	}
	if region != DefaultRegion && !knownRegion(region) {
		return fmt.Errorf("localaws: S3 has no region %q", region)
	}
	_, err := s.s3.ensureBucket(bucket, region)
	return err
}

// ensureBucket creates bucket in region if missing and returns it.
func (s *s3Service) ensureBucket(name, region string) (*s3Bucket, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if b := s.buckets[name]; b != nil {
		return b, nil
	}
	return s.newBucket(name, region)
}

// newBucket makes a bucket; callers hold mu.
func (s *s3Service) newBucket(name, region string) (*s3Bucket, error) {
	dir := filepath.Join(s.root, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	b := &s3Bucket{name: name, dir: dir, created: s.now(), objects: map[string]*object{}, cfg: newBucketConfig(region)}
	if err := b.saveConfig(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	s.buckets[name] = b
	return b, nil
}
