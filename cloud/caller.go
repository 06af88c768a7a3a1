package cloud

import (
	"context"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/deploybot/deploybot/releases"
)

// CallerIdentityAPI is the STS call that says who the credentials are.
type CallerIdentityAPI interface {
	GetCallerIdentity(ctx context.Context, in *sts.GetCallerIdentityInput, optFns ...func(*sts.Options)) (*sts.GetCallerIdentityOutput, error)
}

var _ CallerIdentityAPI = (*sts.Client)(nil)

// NewSTSClient builds the STS client; with an endpoint set, it goes there
// too, as S3 and CloudFront do (the local stand-in answers it).
// GetCallerIdentity needs no IAM permission.
func NewSTSClient(ctx context.Context, st Settings) (*sts.Client, error) {
	cfg, err := loadConfig(ctx, st)
	if err != nil {
		return nil, err
	}
	return sts.NewFromConfig(cfg, func(o *sts.Options) {
		if st.Endpoint != "" {
			o.BaseEndpoint = aws.String(st.Endpoint)
		}
	}), nil
}

// Caller is who the command line acts as: the AWS principal its
// credentials belong to, asked once per process (the first operation that
// needs it) and remembered. Label is what $DEPLOYBOT_ACTOR says, recorded
// beside it.
type Caller struct {
	API   CallerIdentityAPI
	Label string

	once sync.Once
	p    releases.Principal
	err  error
}

// Principal implements the service's Caller: the ARN of the credentials.
func (c *Caller) Principal(ctx context.Context) (releases.Principal, error) {
	c.once.Do(func() {
		out, err := c.API.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
		if err != nil {
			c.err = releases.Errorf(releases.EUNAUTHORIZED, "could not tell who you are (sts:GetCallerIdentity: %v): deploybot decides what the command line may do on its AWS identity; check the credentials, or go through a running serve with --server", err)
			return
		}
		arn := aws.ToString(out.Arn)
		if arn == "" {
			c.err = releases.Errorf(releases.EUNAUTHORIZED, "sts:GetCallerIdentity named no ARN")
			return
		}
		c.p = releases.Principal{Kind: releases.PrincipalAWS, ID: arn, Label: c.Label}
	})
	return c.p, c.err
}
