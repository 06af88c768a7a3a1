package cloud

import (
	"github.com/aws/aws-sdk-go-v2/aws"
	cftypes "github.com/aws/aws-sdk-go-v2/service/cloudfront/types"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/deploybot/deploybot/releases"
)

// The values setup and the setup commands create, in one place, so that
// what they make through the API and what deploybot setup --output
// writes as a template (template.go) cannot drift apart.

// bucketPublicAccessBlock is Block Public Access, all four settings on.
func bucketPublicAccessBlock() *s3types.PublicAccessBlockConfiguration {
	t := aws.Bool(true)
	return &s3types.PublicAccessBlockConfiguration{BlockPublicAcls: t, IgnorePublicAcls: t, BlockPublicPolicy: t, RestrictPublicBuckets: t}
}

// bucketOwnership is object ownership BucketOwnerEnforced (ACLs off).
func bucketOwnership() *s3types.OwnershipControls {
	return &s3types.OwnershipControls{Rules: []s3types.OwnershipControlsRule{{ObjectOwnership: s3types.ObjectOwnershipBucketOwnerEnforced}}}
}

// bucketEncryption is default encryption SSE-S3.
func bucketEncryption() *s3types.ServerSideEncryptionConfiguration {
	return &s3types.ServerSideEncryptionConfiguration{Rules: []s3types.ServerSideEncryptionRule{{
		ApplyServerSideEncryptionByDefault: &s3types.ServerSideEncryptionByDefault{SSEAlgorithm: s3types.ServerSideEncryptionAes256}}}}
}

// newOACConfig is the origin access control setup creates for the site.
func newOACConfig(site releases.Site) *cftypes.OriginAccessControlConfig {
	return &cftypes.OriginAccessControlConfig{
		Name: aws.String(OACName(site)), Description: aws.String("deploybot: reads the releases of site " + site.Name),
		OriginAccessControlOriginType: cftypes.OriginAccessControlOriginTypesS3,
		SigningBehavior:               cftypes.OriginAccessControlSigningBehaviorsAlways,
		SigningProtocol:               cftypes.OriginAccessControlSigningProtocolsSigv4}
}

// setupTags are the tags of the distribution setup creates.
func setupTags(site releases.Site) []cftypes.Tag {
	return []cftypes.Tag{
		{Key: aws.String(TagInstall), Value: aws.String(InstallName(site))},
		{Key: aws.String(TagSite), Value: aws.String(site.Name)}}
}

// kvsComment is the comment of the key value store setup creates.
func kvsComment(site releases.Site) string { return "deploybot: the live release of site " + site.Name }

// kvsFunctionConfig is the configuration of a kvs site's viewer-request
// function (FunctionName), reading the store kvsARN.
func kvsFunctionConfig(site releases.Site, kvsARN string) *cftypes.FunctionConfig {
	return &cftypes.FunctionConfig{Comment: aws.String("deploybot: serves the live release of " + site.Name), Runtime: cftypes.FunctionRuntimeCloudfrontJs20,
		KeyValueStoreAssociations: &cftypes.KeyValueStoreAssociations{Quantity: aws.Int32(1), Items: []cftypes.KeyValueStoreAssociation{{KeyValueStoreARN: aws.String(kvsARN)}}}}
}

// routerFunctionConfig is the configuration of an origin-path site's
// routing function (RouterName).
func routerFunctionConfig(site releases.Site) *cftypes.FunctionConfig {
	return &cftypes.FunctionConfig{Comment: aws.String("deploybot: routing of " + site.Name), Runtime: cftypes.FunctionRuntimeCloudfrontJs20}
}

// releaseHeaderFunctionConfig is the configuration of the site's
// viewer-response function (ReleaseHeaderName).
func releaseHeaderFunctionConfig(site releases.Site) *cftypes.FunctionConfig {
	return &cftypes.FunctionConfig{Comment: aws.String("deploybot: names the release of " + site.Name + "'s answers"), Runtime: cftypes.FunctionRuntimeCloudfrontJs20}
}
