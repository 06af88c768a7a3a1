package localaws

import (
	"encoding/xml"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// distConfig is the part of a DistributionConfig the stand-in acts on. The
// whole document is kept as sent (Raw) and returned byte for byte, so fields
// the stand-in does not model survive a read-modify-write.
type distConfig struct {
	XMLName         xml.Name `xml:"DistributionConfig" json:"-"`
	CallerReference string   `json:"caller_reference"`
	Aliases         struct {
		Quantity int      `json:"quantity"`
		Items    []string `xml:"Items>CNAME" json:"items"`
	} `json:"aliases"`
	DefaultRootObject string `json:"default_root_object"`
	Origins           struct {
		Quantity int        `json:"quantity"`
		Items    []cfOrigin `xml:"Items>Origin" json:"items"`
	} `json:"origins"`
	DefaultCacheBehavior cfBehavior `json:"default_cache_behavior"`
	CacheBehaviors       struct {
		Quantity int          `json:"quantity"`
		Items    []cfBehavior `xml:"Items>CacheBehavior" json:"items"`
	} `json:"cache_behaviors"`
	CustomErrorResponses struct {
		Quantity int               `json:"quantity"`
		Items    []cfErrorResponse `xml:"Items>CustomErrorResponse" json:"items"`
	} `json:"custom_error_responses"`
	Comment     string `json:"comment"`
	Enabled     bool   `json:"enabled"`
	PriceClass  string `json:"price_class,omitempty"`
	HTTPVersion string `xml:"HttpVersion" json:"http_version,omitempty"`
}

type cfFunctionAssoc struct {
	FunctionARN string `json:"function_arn"`
	EventType   string `json:"event_type"`
}

// cfBehavior is a cache behaviour: the default one (no PathPattern) or
// one of CacheBehaviors.
type cfBehavior struct {
	PathPattern          string `json:"path_pattern,omitempty"`
	TargetOriginID       string `xml:"TargetOriginId" json:"target_origin_id"`
	FunctionAssociations struct {
		Quantity int               `json:"quantity"`
		Items    []cfFunctionAssoc `xml:"Items>FunctionAssociation" json:"items"`
	} `json:"function_associations"`
	LambdaFunctionAssociations struct {
		Quantity int             `json:"quantity"`
		Items    []cfLambdaAssoc `xml:"Items>LambdaFunctionAssociation" json:"items"`
	} `json:"lambda_function_associations"`
	ViewerProtocolPolicy string `json:"viewer_protocol_policy,omitempty"`
	CachePolicyID        string `xml:"CachePolicyId" json:"cache_policy_id,omitempty"`
}

// cfLambdaAssoc is a Lambda@Edge association of a cache behaviour. The
// stand-in keeps it (the config round-trips) but runs no Lambda code.
type cfLambdaAssoc struct {
	LambdaFunctionARN string `xml:"LambdaFunctionARN" json:"lambda_function_arn"`
	EventType         string `json:"event_type"`
	IncludeBody       bool   `json:"include_body,omitempty"`
}

// viewerRequestFunction is the ARN of the function the behaviour runs on
// viewer requests, or "".
func (b cfBehavior) viewerRequestFunction() string { return b.function("viewer-request") }

// viewerResponseFunction is the ARN of the function the behaviour runs on
// viewer responses, or "".
func (b cfBehavior) viewerResponseFunction() string { return b.function("viewer-response") }

func (b cfBehavior) function(event string) string {
	for _, fa := range b.FunctionAssociations.Items {
		if fa.EventType == event {
			return fa.FunctionARN
		}
	}
	return ""
}

// behaviors lists the cache behaviours in the order CloudFront matches
// them: the path-pattern ones as listed, then the default one.
func (c distConfig) behaviors() []cfBehavior {
	return append(append([]cfBehavior(nil), c.CacheBehaviors.Items...), c.DefaultCacheBehavior)
}

type cfOrigin struct {
	ID             string `xml:"Id" json:"id"`
	DomainName     string `json:"domain_name"`
	OriginPath     string `json:"origin_path"`
	S3OriginConfig *struct {
		OriginAccessIdentity string `json:"oai,omitempty"`
	} `json:"s3,omitempty"`
	CustomOriginConfig    *struct{} `json:"custom,omitempty"`
	OriginAccessControlID string    `xml:"OriginAccessControlId" json:"oac,omitempty"`
}

// checkAssociations refuses a config whose function associations name a
// function that does not exist or was never published, as CloudFront does.
func (s *cfService) checkAssociations(c distConfig) *cfError {
	for _, b := range c.behaviors() {
		if err := s.checkBehaviorAssociations(b); err != nil {
			return err
		}
	}
	return nil
}

func (s *cfService) checkBehaviorAssociations(b cfBehavior) *cfError {
	events := map[string]bool{}
	for _, fa := range b.FunctionAssociations.Items {
		// One function per event type and cache behaviour
		// (https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/edge-functions-restrictions.html).
		if events[fa.EventType] {
			return &cfError{Status: 400, Code: "InvalidFunctionAssociation", Message: "A cache behavior can have only one function association for event type " + fa.EventType + "."}
		}
		events[fa.EventType] = true
		if s.published == nil || !s.published(fa.FunctionARN) {
			return &cfError{Status: 400, Code: "InvalidFunctionAssociation", Message: "The function ARN " + fa.FunctionARN + " does not name a published function."}
		}
		if fa.EventType != "viewer-request" && fa.EventType != "viewer-response" {
			return &cfError{Status: 400, Code: "InvalidFunctionAssociation", Message: "CloudFront Functions run on viewer-request or viewer-response, not " + fa.EventType + "."}
		}
	}
	return nil
}

// parseConfig checks a DistributionConfig as CloudFront would for the
// fields the stand-in models.
func parseConfig(raw []byte) (distConfig, *cfError) {
	var c distConfig
	if err := xml.Unmarshal(raw, &c); err != nil {
		return c, &cfError{Status: 400, Code: "MalformedXML", Message: err.Error()}
	}
	if c.CallerReference == "" {
		return c, &cfError{Status: 400, Code: "InvalidArgument", Message: "CallerReference is required"}
	}
	if c.Origins.Quantity != len(c.Origins.Items) || len(c.Origins.Items) == 0 {
		return c, &cfError{Status: 400, Code: "InvalidArgument", Message: "Origins: Quantity must match the number of items and be at least 1"}
	}
	if c.Aliases.Quantity != len(c.Aliases.Items) {
		return c, &cfError{Status: 400, Code: "InvalidArgument", Message: "Aliases: Quantity must match the number of items"}
	}
	for _, o := range c.Origins.Items {
		if p := o.OriginPath; p != "" && (!strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/")) {
			return c, &cfError{Status: 400, Code: "InvalidArgument", Message: fmt.Sprintf("The parameter origin path must begin with / and must not end with /: %q", p)}
		}
		if o.ID == "" || o.DomainName == "" {
			return c, &cfError{Status: 400, Code: "InvalidArgument", Message: "an origin needs an Id and a DomainName"}
		}
	}
	if cerr := checkRouting(c); cerr != nil {
		return c, cerr
	}
	return c, nil
}

// managedCachePolicies are the ids of CloudFront's managed cache
// policies
// (https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/using-managed-cache-policies.html).
// The stand-in has no API for policies of one's own, so a behaviour names
// one of these or none.
var managedCachePolicies = map[string]string{
	"658327ea-f89d-4fab-a63d-7e88639e58f6": "CachingOptimized",
	"4135ea2d-6df8-44a3-9df3-4b5a84be39ad": "CachingDisabled",
	"b2884449-e4de-46a7-ac36-70bc7f1ddd6d": "CachingOptimizedForUncompressedObjects",
	"08627262-05a9-4f76-9ded-b50ca2e3a84f": "Elemental-MediaPackage",
	"2e54312d-136d-493c-8eb9-b001f22f67d2": "Amplify",
	"83da9c7e-98b4-4e11-a168-04f0df8e2c65": "UseOriginCacheControlHeaders",
	"4cc15a8a-d715-48a4-82b8-cc0b614638fe": "UseOriginCacheControlHeaders-QueryStrings",
}

// CachingDisabledID is the managed CachingDisabled cache policy's id.
const CachingDisabledID = "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"

// CachingOptimizedID is the managed CachingOptimized cache policy's id.
const CachingOptimizedID = "658327ea-f89d-4fab-a63d-7e88639e58f6"

// lambdaVersionARN is a Lambda@Edge function: a numbered version
// (not $LATEST, not an alias) of a function in us-east-1
// (https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/lambda-at-edge-function-restrictions.html).
var (
	lambdaARN        = regexp.MustCompile(`^arn:aws:lambda:([a-z0-9-]+):\d{12}:function:[A-Za-z0-9_-]+(:[^:]+)?$`)
	lambdaVersionARN = regexp.MustCompile(`:function:[A-Za-z0-9_-]+:\d+$`)
)

// enumError is CloudFront's answer to a value outside an enumeration:
// request validation answers MalformedXML naming the field.
func enumError(field, v string, ok ...string) *cfError {
	if slices.Contains(ok, v) {
		return nil
	}
	return &cfError{Status: 400, Code: "MalformedXML", Message: fmt.Sprintf("1 validation error detected: Value '%s' at '%s' failed to satisfy constraint: Member must satisfy enum value set: [%s]", v, field, strings.Join(ok, ", "))}
}

// checkConfig refuses, as CloudFront does, what the stand-in can know of
// a config beyond its shape (parseConfig): settings outside their
// documented values
// (https://docs.aws.amazon.com/cloudfront/latest/APIReference/API_DistributionConfig.html,
// API_DefaultCacheBehavior.html), a cache policy that does not exist
// (NoSuchCachePolicy), origin access that names an origin access control
// that does not exist (InvalidOriginAccessControl) or has both one and an
// origin access identity (IllegalOriginAccessConfiguration)
// (https://docs.aws.amazon.com/cloudfront/latest/APIReference/API_CreateDistribution.html#API_CreateDistribution_Errors),
// and edge function associations CloudFront refuses (checkEdgeFunctions).
// Callers hold mu.
func (s *cfService) checkConfig(c distConfig) *cfError {
	if c.PriceClass != "" {
		if e := enumError("distributionConfig.priceClass", c.PriceClass, "PriceClass_100", "PriceClass_200", "PriceClass_All", "None"); e != nil {
			return e
		}
	}
	if c.HTTPVersion != "" {
		if e := enumError("distributionConfig.httpVersion", c.HTTPVersion, "http1.1", "http2", "http3", "http2and3"); e != nil {
			return e
		}
	}
	if len(c.Comment) > 128 {
		return &cfError{Status: 400, Code: "InvalidArgument", Message: "The parameter Comment is too long (at most 128 characters)."}
	}
	for _, o := range c.Origins.Items {
		if o.OriginAccessControlID == "" {
			continue
		}
		if o.S3OriginConfig != nil && o.S3OriginConfig.OriginAccessIdentity != "" {
			return &cfError{Status: 400, Code: "IllegalOriginAccessConfiguration", Message: "An origin cannot contain both an origin access control (OAC) and an origin access identity (OAI)."}
		}
		if s.oacs[o.OriginAccessControlID] == nil {
			return &cfError{Status: 400, Code: "InvalidOriginAccessControl", Message: "The origin access control is not valid: " + o.OriginAccessControlID}
		}
	}
	for _, b := range c.behaviors() {
		if b.ViewerProtocolPolicy != "" {
			if e := enumError("distributionConfig.defaultCacheBehavior.viewerProtocolPolicy", b.ViewerProtocolPolicy, "allow-all", "https-only", "redirect-to-https"); e != nil {
				return e
			}
		}
		if id := b.CachePolicyID; id != "" && managedCachePolicies[id] == "" {
			return &cfError{Status: 404, Code: "NoSuchCachePolicy", Message: "The cache policy does not exist: " + id}
		}
		if e := checkEdgeFunctions(b); e != nil {
			return e
		}
	}
	return s.checkAssociations(c)
}

// checkEdgeFunctions applies CloudFront's rules for a cache behaviour's
// Lambda@Edge associations and their combination with CloudFront
// Functions
// (https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/edge-function-restrictions-all.html):
// each event type has at most one edge function, and CloudFront
// Functions and Lambda@Edge cannot be combined in viewer events (a
// function on viewer-request or viewer-response excludes Lambda@Edge on
// either); Lambda@Edge functions are numbered versions in us-east-1
// (lambda-at-edge-function-restrictions.html), refused with
// InvalidLambdaFunctionAssociation.
func checkEdgeFunctions(b cfBehavior) *cfError {
	la := b.LambdaFunctionAssociations
	if la.Quantity != len(la.Items) {
		return &cfError{Status: 400, Code: "InconsistentQuantities", Message: "LambdaFunctionAssociations: the value of Quantity and the size of Items don't match."}
	}
	events := map[string]bool{}
	viewerLambda := false
	for _, a := range la.Items {
		if e := enumError("distributionConfig.defaultCacheBehavior.lambdaFunctionAssociations.member.eventType", a.EventType,
			"viewer-request", "viewer-response", "origin-request", "origin-response"); e != nil {
			return e
		}
		if events[a.EventType] {
			return &cfError{Status: 400, Code: "InvalidLambdaFunctionAssociation", Message: "The event type of a function association must be unique in the cache behavior. Event type " + a.EventType + " cannot be associated with two functions."}
		}
		events[a.EventType] = true
		viewerLambda = viewerLambda || strings.HasPrefix(a.EventType, "viewer-")
		m := lambdaARN.FindStringSubmatch(a.LambdaFunctionARN)
		switch {
		case m == nil:
			return &cfError{Status: 400, Code: "InvalidLambdaFunctionAssociation", Message: "The specified Lambda@Edge function association is invalid: " + a.LambdaFunctionARN}
		case m[1] != "us-east-1":
			return &cfError{Status: 400, Code: "InvalidLambdaFunctionAssociation", Message: "The function must be in region 'us-east-1'. ARN: " + a.LambdaFunctionARN}
		case !lambdaVersionARN.MatchString(a.LambdaFunctionARN):
			return &cfError{Status: 400, Code: "InvalidLambdaFunctionAssociation", Message: "The function ARN must reference a specific function version. (The ARN must end with the version number.) ARN: " + a.LambdaFunctionARN}
		}
	}
	for _, fa := range b.FunctionAssociations.Items {
		if events[fa.EventType] {
			return &cfError{Status: 400, Code: "InvalidFunctionAssociation", Message: "The event type of a function association must be unique in the cache behavior. Event type " + fa.EventType + " cannot be associated with two functions."}
		}
		if viewerLambda {
			return &cfError{Status: 400, Code: "InvalidFunctionAssociation", Message: "You can't combine CloudFront Functions and Lambda@Edge in viewer events (viewer request and viewer response) of one cache behavior."}
		}
	}
	return nil
}
