package cloud

import (
	"strings"
)

// BucketOfOrigin is the bucket an S3 origin's domain name reads, or ""
// when the name is not an S3 REST endpoint. CloudFront takes the REST
// endpoint in the virtual-hosted forms S3 documents
// (https://docs.aws.amazon.com/AmazonS3/latest/userguide/VirtualHosting.html,
// https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/DownloadDistS3AndCustomOrigins.html):
// bucket.s3.amazonaws.com, bucket.s3.REGION.amazonaws.com, the legacy
// bucket.s3-REGION.amazonaws.com, and the same under amazonaws.com.cn. A
// bucket name may itself hold dots, so the name is what comes before the
// last ".s3." or ".s3-" label.
func BucketOfOrigin(domain string) string {
	d := strings.TrimSuffix(strings.ToLower(domain), ".")
	var rest string
	switch {
	case strings.HasSuffix(d, ".amazonaws.com"):
		rest = strings.TrimSuffix(d, ".amazonaws.com")
	case strings.HasSuffix(d, ".amazonaws.com.cn"):
		rest = strings.TrimSuffix(d, ".amazonaws.com.cn")
	default:
		return ""
	}
	// rest is bucket.s3, bucket.s3.REGION, bucket.s3-REGION (or a
	// website endpoint, bucket.s3-website..., which findOrigin refuses).
	i := strings.LastIndex(rest, ".s3")
	if i <= 0 {
		return ""
	}
	tail := rest[i+len(".s3"):]
	switch {
	case tail == "":
	case strings.HasPrefix(tail, "-website"):
		return ""
	case strings.HasPrefix(tail, ".") && !strings.Contains(tail[1:], "."):
	case strings.HasPrefix(tail, "-") && !strings.Contains(tail, "."):
	default:
		return ""
	}
	return rest[:i]
}
