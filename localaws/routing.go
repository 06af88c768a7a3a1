package localaws

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// cfErrorResponse is one of a distribution's CustomErrorResponses.
type cfErrorResponse struct {
	ErrorCode          int    `json:"error_code"`
	ResponsePagePath   string `json:"response_page_path,omitempty"`
	ResponseCode       string `json:"response_code,omitempty"`
	ErrorCachingMinTTL *int64 `xml:"ErrorCachingMinTTL" json:"error_caching_min_ttl,omitempty"`
}

// customErrorCodes are the origin status codes a custom error response
// may name, and customResponseCodes the codes it may answer with
// (https://docs.aws.amazon.com/cloudfront/latest/APIReference/API_CustomErrorResponse.html).
var (
	customErrorCodes    = []int{400, 403, 404, 405, 414, 416, 500, 501, 502, 503, 504}
	customResponseCodes = []int{200, 400, 403, 404, 405, 414, 416, 500, 501, 502, 503, 504}
)

// maxCacheBehaviors is CloudFront's default quota of cache behaviours per
// distribution
// (https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/cloudfront-limits.html#limits-web-distributions).
const maxCacheBehaviors = 75

// checkRouting refuses what CloudFront refuses in a config's cache
// behaviours and custom error responses.
func checkRouting(c distConfig) *cfError {
	origins := map[string]bool{}
	for _, o := range c.Origins.Items {
		origins[o.ID] = true
	}
	if c.CacheBehaviors.Quantity != len(c.CacheBehaviors.Items) {
		return &cfError{Status: 400, Code: "InvalidArgument", Message: "CacheBehaviors: Quantity must match the number of items"}
	}
	if len(c.CacheBehaviors.Items) > maxCacheBehaviors {
		return &cfError{Status: 400, Code: "TooManyCacheBehaviors", Message: fmt.Sprintf("Your request contains more CacheBehaviors than are allowed per distribution (%d).", maxCacheBehaviors)}
	}
	patterns := map[string]bool{}
	for _, b := range c.behaviors() {
		if !origins[b.TargetOriginID] {
			return &cfError{Status: 404, Code: "NoSuchOrigin", Message: "No origin exists with the specified Origin Id: " + b.TargetOriginID}
		}
		if b.FunctionAssociations.Quantity != len(b.FunctionAssociations.Items) {
			return &cfError{Status: 400, Code: "InvalidArgument", Message: "FunctionAssociations: Quantity must match the number of items"}
		}
	}
	for _, b := range c.CacheBehaviors.Items {
		if b.PathPattern == "" || len(b.PathPattern) > 255 {
			return &cfError{Status: 400, Code: "InvalidArgument", Message: "A cache behavior needs a PathPattern of 1 to 255 characters."}
		}
		if patterns[b.PathPattern] {
			return &cfError{Status: 400, Code: "InvalidArgument", Message: "Two cache behaviors have the path pattern " + b.PathPattern + "."}
		}
		patterns[b.PathPattern] = true
	}
	if c.CustomErrorResponses.Quantity != len(c.CustomErrorResponses.Items) {
		return &cfError{Status: 400, Code: "InvalidArgument", Message: "CustomErrorResponses: Quantity must match the number of items"}
	}
	codes := map[int]bool{}
	for _, e := range c.CustomErrorResponses.Items {
		if !contains(customErrorCodes, e.ErrorCode) || codes[e.ErrorCode] {
			return &cfError{Status: 400, Code: "InvalidErrorCode", Message: fmt.Sprintf("The error code %d is not valid or is listed twice.", e.ErrorCode)}
		}
		codes[e.ErrorCode] = true
		if e.ResponsePagePath != "" && !strings.HasPrefix(e.ResponsePagePath, "/") {
			return &cfError{Status: 400, Code: "InvalidArgument", Message: "ResponsePagePath must begin with /: " + e.ResponsePagePath}
		}
		// "If you specify a value for ResponsePagePath, you must also
		// specify a value for ResponseCode" (API_CustomErrorResponse).
		if (e.ResponsePagePath == "") != (e.ResponseCode == "") {
			return &cfError{Status: 400, Code: "InvalidResponseCode", Message: "ResponsePagePath and ResponseCode are set together or not at all."}
		}
		if e.ResponseCode != "" {
			if n, err := strconv.Atoi(e.ResponseCode); err != nil || !contains(customResponseCodes, n) {
				return &cfError{Status: 400, Code: "InvalidResponseCode", Message: "The response code " + e.ResponseCode + " is not valid."}
			}
		}
	}
	return nil
}

func contains(list []int, n int) bool {
	for _, v := range list {
		if v == n {
			return true
		}
	}
	return false
}

// behaviorFor is the cache behaviour a viewer path goes to: the first
// whose path pattern matches, in order, else the default one
// (https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/DownloadDistValuesCacheBehavior.html#DownloadDistValuesPathPattern).
func (c distConfig) behaviorFor(p string) cfBehavior {
	for _, b := range c.CacheBehaviors.Items {
		if matchPathPattern(b.PathPattern, p) {
			return b
		}
	}
	return c.DefaultCacheBehavior
}

// matchPathPattern matches a path against a CloudFront path pattern: "*"
// stands for zero or more characters (slashes included), "?" for exactly
// one, everything else for itself, case-sensitively; the pattern's leading
// slash is optional.
func matchPathPattern(pattern, p string) bool {
	pattern = "/" + strings.TrimPrefix(pattern, "/")
	// Iterative glob match with backtracking to the last star: linear
	// in practice, quadratic at worst for patterns of many stars.
	pi, si, star, mark := 0, 0, -1, 0
	for si < len(p) {
		switch {
		case pi < len(pattern) && (pattern[pi] == '?' || pattern[pi] == p[si]):
			pi, si = pi+1, si+1
		case pi < len(pattern) && pattern[pi] == '*':
			star, mark = pi, si
			pi++
		case star >= 0:
			pi, mark = star+1, mark+1
			si = mark
		default:
			return false
		}
	}
	for pi < len(pattern) && pattern[pi] == '*' {
		pi++
	}
	return pi == len(pattern)
}

// origin returns the origin with id.
func (c distConfig) origin(id string) (cfOrigin, bool) {
	for _, o := range c.Origins.Items {
		if o.ID == id {
			return o, true
		}
	}
	return cfOrigin{}, false
}

// errorResponse is the custom error response for an origin status.
func (c distConfig) errorResponse(status int) (cfErrorResponse, bool) {
	for _, e := range c.CustomErrorResponses.Items {
		if e.ErrorCode == status {
			return e, true
		}
	}
	return cfErrorResponse{}, false
}

// errorTTL is how long the edge caches an error answered with e: its
// ErrorCachingMinTTL when set, else the cache policy's error TTL.
func (e cfErrorResponse) errorTTL(def time.Duration) time.Duration {
	if e.ErrorCachingMinTTL != nil {
		return time.Duration(*e.ErrorCachingMinTTL) * time.Second
	}
	return def
}

// websiteEndpoint reports whether an origin is an S3 website endpoint
// (bucket.s3-website-us-east-1.amazonaws.com, or s3-website.REGION),
// which serves index documents and redirects, unlike the REST endpoint
// (https://docs.aws.amazon.com/AmazonS3/latest/userguide/WebsiteEndpoints.html).
func websiteEndpoint(o cfOrigin) bool {
	return strings.Contains(strings.ToLower(o.DomainName), ".s3-website")
}
