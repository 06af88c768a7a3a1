package cloud

import (
	"context"
	"reflect"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go/middleware"
)

// Call is one AWS API call as deploybot made it: what IAM authorizes
// (the service's action prefix, the operation, the resources named).
// Settings.Observe sees each once, before its first attempt.
type Call struct {
	// Service is the IAM action prefix: s3, cloudfront,
	// cloudfront-keyvaluestore.
	Service string `json:"service"`
	// Operation is the API's name, such as PutObject.
	Operation string `json:"operation"`
	// Params are the inputs that name resources: Bucket, Key, Prefix,
	// CopySource, Id, DistributionId, Name, KvsARN; and the conditions of
	// S3 writes that policies can require (IfNoneMatch, IfMatch: the
	// condition keys s3:if-none-match and s3:if-match).
	Params map[string]string `json:"params,omitempty"`
	// Keys are the keys of a DeleteObjects batch.
	Keys []string `json:"keys,omitempty"`
}

// iamPrefix maps the SDK's service ids to IAM's action prefixes.
var iamPrefix = map[string]string{"S3": "s3", "CloudFront": "cloudfront", "CloudFront KeyValueStore": "cloudfront-keyvaluestore"}

// resourceParams are the input fields that name what a call acts on, and
// the write conditions a policy can ask for.
var resourceParams = []string{"Bucket", "Key", "Prefix", "CopySource", "Id", "DistributionId", "Name", "KvsARN", "IfNoneMatch", "IfMatch"}

// observe adds a middleware that reports each call to fn. It costs a
// reflection over the input's top-level fields per call.
func observe(fn func(Call)) func(*middleware.Stack) error {
	return func(stack *middleware.Stack) error {
		return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("deploybotObserveCall",
			func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
				id := awsmiddleware.GetServiceID(ctx)
				c := Call{Service: iamPrefix[id], Operation: awsmiddleware.GetOperationName(ctx), Params: map[string]string{}}
				if c.Service == "" {
					c.Service = strings.ToLower(id)
				}
				v := reflect.ValueOf(in.Parameters)
				if v.Kind() == reflect.Pointer && !v.IsNil() && v.Elem().Kind() == reflect.Struct {
					for _, name := range resourceParams {
						f := v.Elem().FieldByName(name)
						if f.IsValid() && f.Type() == reflect.TypeOf((*string)(nil)) && !f.IsNil() {
							c.Params[name] = f.Elem().String()
						}
					}
				}
				if d, ok := in.Parameters.(*s3.DeleteObjectsInput); ok && d.Delete != nil {
					for _, o := range d.Delete.Objects {
						c.Keys = append(c.Keys, aws.ToString(o.Key))
					}
				}
				fn(c)
				return next.HandleInitialize(ctx, in)
			}), middleware.After)
	}
}
