// Package cloud adapts AWS (S3 and CloudFront, through aws-sdk-go-v2) to
// the releases interfaces: S3Bucket is a releases.Bucket and OriginPath a
// releases.CDN. Both work against any endpoint speaking the AWS wire
// protocols, such as the localaws stand-in.
package cloud

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudfront"
	"github.com/aws/aws-sdk-go-v2/service/cloudfrontkeyvaluestore"
	"github.com/aws/aws-sdk-go-v2/service/iam"
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
	// Connections is how many requests to one host may be in flight and
	// keep their connection afterwards. Zero: 64, above publish's default
	// of 16 and prune's 4 parallel deletes. The SDK's default keeps 10 idle
	// connections per host, so 16 workers would close and reopen (and with
	// real S3, re-handshake TLS for) six connections all the time.
	Connections int
	// Observe, when set, is told of every API call the clients make
	// (see Call), for a record of the permissions they use.
	Observe func(Call)
}

// StaticCredentials returns fixed credentials, for local stand-ins.
func StaticCredentials(id, secret string) aws.CredentialsProvider {
	return credentials.NewStaticCredentialsProvider(id, secret, "")
}

// NewClients builds the S3 and CloudFront clients.
func NewClients(ctx context.Context, st Settings) (*s3.Client, *cloudfront.Client, error) {
	cfg, err := loadConfig(ctx, st)
	if err != nil {
		return nil, nil, err
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

// NewKVSClient builds the CloudFront KeyValueStore client (the kvs
// strategy's). Its calls are signed with SigV4A, which the SDK does with
// the same credentials.
func NewKVSClient(ctx context.Context, st Settings) (*cloudfrontkeyvaluestore.Client, error) {
	cfg, err := loadConfig(ctx, st)
	if err != nil {
		return nil, err
	}
	var base *url.URL
	if st.Endpoint != "" {
		if base, err = url.Parse(st.Endpoint); err != nil {
			return nil, fmt.Errorf("aws endpoint %q: %w", st.Endpoint, err)
		}
	}
	return cloudfrontkeyvaluestore.NewFromConfig(cfg, func(o *cloudfrontkeyvaluestore.Options) {
		if base != nil {
			o.EndpointResolverV2 = kvsEndpoint{base: base, fallback: cloudfrontkeyvaluestore.NewDefaultEndpointResolverV2()}
		}
	}), nil
}

// NewIAMClient builds the IAM client check simulates permissions with.
// IAM is global: its calls are signed for us-east-1 whatever aws.region
// says (aws-cn and aws-us-gov have their own, which the SDK's endpoint
// rules pick from the region).
func NewIAMClient(ctx context.Context, st Settings) (*iam.Client, error) {
	cfg, err := loadConfig(ctx, st)
	if err != nil {
		return nil, err
	}
	return iam.NewFromConfig(cfg, func(o *iam.Options) {
		if st.Endpoint != "" {
			o.BaseEndpoint = aws.String(st.Endpoint)
		}
	}), nil
}

func loadConfig(ctx context.Context, st Settings) (aws.Config, error) {
	attempts := st.MaxAttempts
	if attempts <= 0 {
		attempts = 6
	}
	conns := st.Connections
	if conns <= 0 {
		conns = 64
	}
	httpClient := awshttp.NewBuildableClient().WithTransportOptions(func(t *http.Transport) {
		t.MaxIdleConnsPerHost = conns
		if t.MaxIdleConns < conns {
			t.MaxIdleConns = conns
		}
	})
	opts := []func(*config.LoadOptions) error{
		config.WithRegion(st.Region),
		config.WithHTTPClient(httpClient),
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
		return aws.Config{}, fmt.Errorf("loading AWS configuration: %w", err)
	}
	if st.Observe != nil {
		cfg.APIOptions = append(cfg.APIOptions, observe(st.Observe))
	}
	return cfg, nil
}
