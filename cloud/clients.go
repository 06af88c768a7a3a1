// Package cloud adapts AWS (S3 and CloudFront, through aws-sdk-go-v2) to
// the releases interfaces: S3Bucket is a releases.Bucket and OriginPath a
// releases.CDN. Both work against any endpoint speaking the AWS wire
// protocols, such as the localaws stand-in.
package cloud

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudfront"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Settings say where AWS is.
type Settings struct {
	Region string
	// Endpoint, when set, is the base endpoint of both clients, and S3 uses
	// path-style addressing (what S3-compatible servers expect).
	Endpoint string
	// Credentials, when non-nil, replace the SDK's default chain (env,
	// profile, IRSA). Used by `deploybot dev`, which has no account.
	Credentials aws.CredentialsProvider
	// MaxAttempts per API call, first try included. Zero: 6.
	MaxAttempts int
}

// StaticCredentials returns fixed credentials, for local stand-ins.
func StaticCredentials(id, secret string) aws.CredentialsProvider {
	return credentials.NewStaticCredentialsProvider(id, secret, "")
}

// NewClients builds the S3 and CloudFront clients.
func NewClients(ctx context.Context, st Settings) (*s3.Client, *cloudfront.Client, error) {
	attempts := st.MaxAttempts
	if attempts <= 0 {
		attempts = 6
	}
	opts := []func(*config.LoadOptions) error{
		config.WithRegion(st.Region),
		config.WithRetryer(func() aws.Retryer {
			// The standard retryer backs off with jitter on 5xx, throttling
			// and connection errors. Its client-side retry quota is off: a
			// deploy is a handful of calls and must not give up early
			// because a publish in the same process saw many retries.
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = attempts
				o.MaxBackoff = 5 * time.Second
				o.RateLimiter = ratelimit.None
			})
		}),
	}
	if st.Credentials != nil {
		opts = append(opts, config.WithCredentialsProvider(st.Credentials))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("loading AWS configuration: %w", err)
	}
	s3c := s3.NewFromConfig(cfg, func(o *s3.Options) {
		// Objects copied server-side or uploaded in parts have no
		// whole-object checksum; that is expected, not worth a log line.
		o.DisableLogOutputChecksumValidationSkipped = true
		if st.Endpoint != "" {
			o.BaseEndpoint = aws.String(st.Endpoint)
			o.UsePathStyle = true
		}
	})
	cfc := cloudfront.NewFromConfig(cfg, func(o *cloudfront.Options) {
		if st.Endpoint != "" {
			o.BaseEndpoint = aws.String(st.Endpoint)
		}
	})
	return s3c, cfc, nil
}
