package cloud

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	cftypes "github.com/aws/aws-sdk-go-v2/service/cloudfront/types"

	"github.com/deploybot/deploybot/releases"
)

// This file is deploybot setup --output: the site's AWS side written as a
// CloudFormation or Terraform template, for teams that keep their
// infrastructure in code, without calling AWS. The template is built from
// the values setup creates (newDistributionConfig, ReadStatement, the
// function code generators, setup_values.go) and the associations and
// error responses kvs-setup and routing-setup make (associate,
// associateResponse, setErrorPages), run on the distribution
// configuration in memory, so a template and setup cannot drift apart.
//
// What the template leaves out: the live origin path and the live key.
// A deploy changes them; declared in a template, every apply would undo
// the last deploy.

// Template output formats.
const (
	FormatCloudFormation = "cloudformation"
	FormatTerraform      = "terraform"
)

// TemplateFormats are the formats Template writes.
var TemplateFormats = []string{FormatCloudFormation, FormatTerraform}

// Template writes the site's AWS side, as setup would create it, as a
// template in format. An origin-path site refuses CloudFormation (see
// cloudFormationRefusal).
func Template(site releases.Site, format string) ([]byte, error) {
	switch format {
	case FormatCloudFormation:
		if site.Strategy != StrategyKVS {
			return nil, cloudFormationRefusal(site)
		}
		m, err := buildModel(site)
		if err != nil {
			return nil, err
		}
		return cloudFormation(m)
	case FormatTerraform:
		m, err := buildModel(site)
		if err != nil {
			return nil, err
		}
		return terraform(m)
	}
	return nil, releases.Errorf(releases.EINVALID, "unknown template format %q (%s)", format, strings.Join(TemplateFormats, " or "))
}

// cloudFormationRefusal: an origin-path site's live release is the
// distribution's origin path, which every promote changes. A stack update
// that touches the distribution sends its whole configuration, and with
// it the template's origin path, so it would put the site back on
// whatever release the template names; and CloudFormation has no way to
// leave one property of a resource unmanaged (its answer to a change made
// outside it is drift detection, and drift-aware change sets overwrite
// the drifted property with the template's value:
// https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/drift-aware-change-sets.html).
func cloudFormationRefusal(site releases.Site) error {
	return releases.Errorf(releases.EINVALID, "site %s is on strategy origin-path, whose live release is the distribution's origin path: every CloudFormation stack update that touches the distribution would set it back to the template's, undoing the last promote, and CloudFormation cannot leave one property unmanaged. Either move the site to strategy kvs (its origin path stays empty and its live release is a key in the key value store, data no template declares), or use --output terraform (which ignores the origin in lifecycle.ignore_changes)", site.Name)
}

// refs are placeholders the model's strings carry where the template
// names another resource's id; each format spells them its own way.
const (
	refBucketDomain   = "@@deploybot.bucket-domain@@"
	refOACID          = "@@deploybot.oac-id@@"
	refDistributionID = "@@deploybot.distribution-id@@"
	refPartition      = "@@deploybot.partition@@"
	refAccount        = "@@deploybot.account@@"
	refKVSARN         = "@@deploybot.kvs-arn@@"
	refKVSID          = "@@deploybot.kvs-id@@"
	// refDistributionARN stands for the whole ARN ReadStatement is given.
	refDistributionARN = "@@deploybot.distribution-arn@@"
)

// refFunction is the placeholder of a function's ARN, by its role.
func refFunction(role string) string { return "@@deploybot.function-" + role + "@@" }

var refPattern = regexp.MustCompile(`@@deploybot\.[a-z0-9-]+@@`)

// distARNPlaceholder is the distribution ARN spelt from placeholders, for
// ReadStatement (which reads the partition from it).
var distARNPlaceholder = "arn:" + refPartition + ":cloudfront::" + refAccount + ":distribution/" + refDistributionID

// Function roles, as in refFunction.
const (
	roleKVS     = "kvs"
	roleRouter  = "router"
	roleRelease = "release"
)

// siteModel is what a template declares, in setup's own values, with
// refs where one resource names another.
type siteModel struct {
	site    releases.Site
	install string
	kvs     bool
	oac     *cftypes.OriginAccessControlConfig
	dist    distSpec
	tags    []cftypes.Tag
	// policy is the bucket policy document: setup's read statement
	// alone (setup merges it into a policy the bucket has; a template
	// declares the whole document).
	policy     PolicyDocument
	kvsName    string
	kvsComment string
	functions  []modelFunction
}

type modelFunction struct {
	role   string
	name   string
	code   string
	config *cftypes.FunctionConfig
}

func buildModel(site releases.Site) (*siteModel, error) {
	m := &siteModel{site: site, install: InstallName(site), kvs: site.Strategy == StrategyKVS,
		oac: newOACConfig(site), tags: setupTags(site)}
	dc := newDistributionConfig(site, "", refOACID)
	// newDistributionConfig spells the bucket's regional domain from the
	// region setup creates it in; a template's bucket is in the stack's
	// region, whose domain the template reads from the bucket.
	dc.Origins.Items[0].DomainName = aws.String(refBucketDomain)
	o, err := findOrigin(site, dc)
	if err != nil {
		return nil, err
	}
	origin := aws.ToString(o.Id)
	// What kvs-setup and routing-setup do to the distribution: the
	// viewer-request function (the kvs function, or the router when the
	// routing needs one), the viewer-response one, the error pages.
	if m.kvs {
		m.kvsName, m.kvsComment = KVSName(site), kvsComment(site)
		code, err := FunctionCode(site, refKVSID)
		if err != nil {
			return nil, err
		}
		m.functions = append(m.functions, modelFunction{roleKVS, FunctionName(site), code, kvsFunctionConfig(site, refKVSARN)})
		if _, err := associate(site, dc, origin, refFunction(roleKVS)); err != nil {
			return nil, err
		}
	} else if NeedsRouter(site) {
		code, err := RouterCode(site)
		if err != nil {
			return nil, err
		}
		m.functions = append(m.functions, modelFunction{roleRouter, RouterName(site), code, routerFunctionConfig(site)})
		if _, err := associate(site, dc, origin, refFunction(roleRouter)); err != nil {
			return nil, err
		}
	}
	if !site.NoReleaseHeader {
		code, err := ReleaseHeaderCode(site)
		if err != nil {
			return nil, err
		}
		m.functions = append(m.functions, modelFunction{roleRelease, ReleaseHeaderName(site), code, releaseHeaderFunctionConfig(site)})
		if _, err := associateResponse(site, dc, origin, refFunction(roleRelease), ""); err != nil {
			return nil, err
		}
	}
	if _, err := setErrorPages(site, dc); err != nil {
		return nil, err
	}
	if m.dist, err = distributionSpec(dc); err != nil {
		return nil, err
	}
	st := ReadStatement(site, distARNPlaceholder)
	if cond := st.Condition["StringEquals"]["AWS:SourceArn"]; len(cond) == 1 && cond[0] == distARNPlaceholder {
		cond[0] = refDistributionARN
	}
	m.policy = PolicyDocument{Version: "2012-10-17", Statement: []Statement{st}}
	return m, nil
}

// distSpec is the distribution configuration a template declares, field
// by field. distributionSpec fills it from setup's, and refuses a field it
// does not know: a setting newDistributionConfig gains fails the tests
// until both templates declare it.
type distSpec struct {
	Comment           string
	Enabled           bool
	DefaultRootObject string
	HTTPVersion       string
	IPv6              bool
	Origins           []originSpec
	Default           behaviorSpec
	ErrorResponses    []errorSpec
}

type originSpec struct {
	ID, Domain, OACID string
}

type behaviorSpec struct {
	TargetOriginID       string
	ViewerProtocolPolicy string
	CachePolicyID        string
	Compress             bool
	Allowed, Cached      []string
	Functions            []assocSpec
}

type assocSpec struct {
	Event, ARN string
}

type errorSpec struct {
	Code         int32
	Page         string
	ResponseCode string
	MinTTL       int64
}

// distributionSpec reads setup's distribution configuration into a
// distSpec; what it reads is cleared from a copy, and what is left must
// be nothing.
func distributionSpec(in *cftypes.DistributionConfig) (distSpec, error) {
	var s distSpec
	dc := *in
	// CloudFormation and Terraform make the caller reference themselves.
	dc.CallerReference = nil
	s.Comment, dc.Comment = aws.ToString(dc.Comment), nil
	s.Enabled, dc.Enabled = aws.ToBool(dc.Enabled), nil
	s.DefaultRootObject, dc.DefaultRootObject = aws.ToString(dc.DefaultRootObject), nil
	s.HTTPVersion, dc.HttpVersion = string(dc.HttpVersion), ""
	s.IPv6, dc.IsIPV6Enabled = aws.ToBool(dc.IsIPV6Enabled), nil
	if dc.Origins != nil {
		for _, o := range dc.Origins.Items {
			if aws.ToString(o.OriginPath) != "" {
				return s, fmt.Errorf("template: origin %s has origin path %q; a template leaves the origin path to deploys", aws.ToString(o.Id), aws.ToString(o.OriginPath))
			}
			// An OAC origin keeps an empty S3OriginConfig, as setup sends it
			// (CloudFormation declares it so; Terraform leaves it out).
			if c := o.S3OriginConfig; c != nil {
				if aws.ToString(c.OriginAccessIdentity) != "" {
					return s, fmt.Errorf("template: origin %s reads through origin access identity %s, not an origin access control", aws.ToString(o.Id), aws.ToString(c.OriginAccessIdentity))
				}
				cc := *c
				cc.OriginAccessIdentity = nil
				if err := leftOver("S3 origin", cc); err != nil {
					return s, err
				}
				o.S3OriginConfig = nil
			}
			s.Origins = append(s.Origins, originSpec{ID: aws.ToString(o.Id), Domain: aws.ToString(o.DomainName), OACID: aws.ToString(o.OriginAccessControlId)})
			o.Id, o.DomainName, o.OriginAccessControlId, o.OriginPath = nil, nil, nil, nil
			if err := leftOver("origin", o); err != nil {
				return s, err
			}
		}
		dc.Origins = nil
	}
	if b := dc.DefaultCacheBehavior; b != nil {
		c := *b
		s.Default = behaviorSpec{TargetOriginID: aws.ToString(c.TargetOriginId), ViewerProtocolPolicy: string(c.ViewerProtocolPolicy),
			CachePolicyID: aws.ToString(c.CachePolicyId), Compress: aws.ToBool(c.Compress)}
		c.TargetOriginId, c.ViewerProtocolPolicy, c.CachePolicyId, c.Compress = nil, "", nil, nil
		if m := c.AllowedMethods; m != nil {
			for _, v := range m.Items {
				s.Default.Allowed = append(s.Default.Allowed, string(v))
			}
			if m.CachedMethods != nil {
				for _, v := range m.CachedMethods.Items {
					s.Default.Cached = append(s.Default.Cached, string(v))
				}
			}
			c.AllowedMethods = nil
		}
		if c.FunctionAssociations != nil {
			for _, fa := range c.FunctionAssociations.Items {
				s.Default.Functions = append(s.Default.Functions, assocSpec{Event: string(fa.EventType), ARN: aws.ToString(fa.FunctionARN)})
			}
			c.FunctionAssociations = nil
		}
		if err := leftOver("default cache behavior", c); err != nil {
			return s, err
		}
		dc.DefaultCacheBehavior = nil
	}
	if dc.CustomErrorResponses != nil {
		for _, e := range dc.CustomErrorResponses.Items {
			s.ErrorResponses = append(s.ErrorResponses, errorSpec{Code: aws.ToInt32(e.ErrorCode), Page: aws.ToString(e.ResponsePagePath),
				ResponseCode: aws.ToString(e.ResponseCode), MinTTL: aws.ToInt64(e.ErrorCachingMinTTL)})
			e.ErrorCode, e.ResponsePagePath, e.ResponseCode, e.ErrorCachingMinTTL = nil, nil, nil, nil
			if err := leftOver("custom error response", e); err != nil {
				return s, err
			}
		}
		dc.CustomErrorResponses = nil
	}
	return s, leftOver("distribution", dc)
}

// leftOver refuses a setting no template declares.
func leftOver(what string, v any) error {
	rv := reflect.ValueOf(v)
	for i := 0; i < rv.NumField(); i++ {
		if f := rv.Type().Field(i); f.IsExported() && !rv.Field(i).IsZero() {
			return fmt.Errorf("template: the %s setting %s has no template counterpart: add it to distributionSpec and both templates", what, f.Name)
		}
	}
	return nil
}

// splitRefs cuts s at its refs: literal text and refs, in order.
func splitRefs(s string) []string {
	var out []string
	for {
		loc := refPattern.FindStringIndex(s)
		if loc == nil {
			if s != "" {
				out = append(out, s)
			}
			return out
		}
		if loc[0] > 0 {
			out = append(out, s[:loc[0]])
		}
		out = append(out, s[loc[0]:loc[1]])
		s = s[loc[1]:]
	}
}

func isRef(s string) bool { return s != "" && refPattern.FindString(s) == s }

// orderedJSON is v as JSON values that keep their keys' order: objects
// as jsonObject, arrays as []any, the rest as encoding/json decodes them.
func orderedJSON(v any) (any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	return decodeOrdered(dec)
}

func decodeOrdered(dec *json.Decoder) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch t := tok.(type) {
	case json.Delim:
		if t == '[' {
			list := []any{}
			for dec.More() {
				v, err := decodeOrdered(dec)
				if err != nil {
					return nil, err
				}
				list = append(list, v)
			}
			_, err := dec.Token()
			return list, err
		}
		obj := jsonObject{}
		for dec.More() {
			k, err := dec.Token()
			if err != nil {
				return nil, err
			}
			v, err := decodeOrdered(dec)
			if err != nil {
				return nil, err
			}
			obj = append(obj, field{k.(string), v})
		}
		_, err := dec.Token()
		return obj, err
	}
	return tok, nil
}

// jsonObject is a JSON object that keeps its keys in order.
type jsonObject []field

type field struct {
	key   string
	value any
}

func (o jsonObject) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, f := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(f.key)
		b.Write(k)
		b.WriteByte(':')
		v, err := marshalNoEscape(f.value)
		if err != nil {
			return nil, err
		}
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// marshalNoEscape is json.Marshal without HTML escaping (function code
// is full of < and &).
func marshalNoEscape(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(b.Bytes(), "\n"), nil
}
