package cloud

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// Logical ids of the CloudFormation template: one stack per site.
const (
	cfnBucket       = "Bucket"
	cfnBucketPolicy = "BucketPolicy"
	cfnOAC          = "OriginAccessControl"
	cfnDistribution = "Distribution"
	cfnKVS          = "KeyValueStore"
)

// cfnFunctionIDs are the functions' logical ids, by role.
var cfnFunctionIDs = map[string]string{roleKVS: "Function", roleRouter: "RouterFunction", roleRelease: "ReleaseHeaderFunction"}

// cfnRef is how CloudFormation names what a ref stands for.
func cfnRef(ref string) (any, error) {
	getAtt := func(id, attr string) any { return jsonObject{{"Fn::GetAtt", []any{id, attr}}} }
	switch ref {
	case refBucketDomain:
		return getAtt(cfnBucket, "RegionalDomainName"), nil
	case refOACID:
		return getAtt(cfnOAC, "Id"), nil
	case refDistributionID:
		return jsonObject{{"Ref", cfnDistribution}}, nil
	case refPartition:
		return jsonObject{{"Ref", "AWS::Partition"}}, nil
	case refAccount:
		return jsonObject{{"Ref", "AWS::AccountId"}}, nil
	case refKVSARN:
		return getAtt(cfnKVS, "Arn"), nil
	case refKVSID:
		// The store's id, the last part of its ARN (KVSID).
		return getAtt(cfnKVS, "Id"), nil
	case refDistributionARN:
		// AWS::CloudFront::Distribution has no Arn attribute.
		return jsonObject{{"Fn::Sub", "arn:${AWS::Partition}:cloudfront::${AWS::AccountId}:distribution/${" + cfnDistribution + "}"}}, nil
	}
	for role, id := range cfnFunctionIDs {
		if ref == refFunction(role) {
			return getAtt(id, "FunctionARN"), nil
		}
	}
	return nil, fmt.Errorf("template: no CloudFormation spelling for %s", ref)
}

// cfnString is s with its refs spelt for CloudFormation: s itself, one
// ref's value, or an Fn::Join of the parts.
func cfnString(s string) (any, error) {
	parts := splitRefs(s)
	if len(parts) == 0 || len(parts) == 1 && !isRef(parts[0]) {
		return s, nil
	}
	var vals []any
	for _, p := range parts {
		if !isRef(p) {
			vals = append(vals, p)
			continue
		}
		v, err := cfnRef(p)
		if err != nil {
			return nil, err
		}
		vals = append(vals, v)
	}
	if len(vals) == 1 {
		return vals[0], nil
	}
	return jsonObject{{"Fn::Join", []any{"", vals}}}, nil
}

// cfnValues spells every string of v (jsonObject, []any and scalars) for
// CloudFormation.
func cfnValues(v any) (any, error) {
	switch t := v.(type) {
	case string:
		return cfnString(t)
	case jsonObject:
		out := make(jsonObject, len(t))
		for i, f := range t {
			val, err := cfnValues(f.value)
			if err != nil {
				return nil, err
			}
			out[i] = field{f.key, val}
		}
		return out, nil
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			val, err := cfnValues(e)
			if err != nil {
				return nil, err
			}
			out[i] = val
		}
		return out, nil
	}
	return v, nil
}

func cloudFormation(m *siteModel) ([]byte, error) {
	resources := jsonObject{cfnBucketResource(m)}
	policy, err := orderedJSON(m.policy)
	if err != nil {
		return nil, err
	}
	resources = append(resources, field{cfnBucketPolicy, jsonObject{
		{"Type", "AWS::S3::BucketPolicy"},
		{"Properties", jsonObject{{"Bucket", jsonObject{{"Ref", cfnBucket}}}, {"PolicyDocument", policy}}}}})
	resources = append(resources, field{cfnOAC, jsonObject{
		{"Type", "AWS::CloudFront::OriginAccessControl"},
		{"Properties", jsonObject{{"OriginAccessControlConfig", jsonObject{
			{"Name", aws.ToString(m.oac.Name)},
			{"Description", aws.ToString(m.oac.Description)},
			{"OriginAccessControlOriginType", string(m.oac.OriginAccessControlOriginType)},
			{"SigningBehavior", string(m.oac.SigningBehavior)},
			{"SigningProtocol", string(m.oac.SigningProtocol)}}}}}}})
	if m.kvs {
		// No ImportSource: the store's keys (the live release, the
		// preview signing key) are data that deploys and kvs-setup write.
		resources = append(resources, field{cfnKVS, jsonObject{
			{"Type", "AWS::CloudFront::KeyValueStore"},
			{"Properties", jsonObject{{"Name", m.kvsName}, {"Comment", m.kvsComment}}}}})
	}
	for _, f := range m.functions {
		resources = append(resources, cfnFunction(f))
	}
	dist, err := cfnDistributionConfig(m.dist)
	if err != nil {
		return nil, err
	}
	var tags []any
	for _, t := range m.tags {
		tags = append(tags, jsonObject{{"Key", aws.ToString(t.Key)}, {"Value", aws.ToString(t.Value)}})
	}
	resources = append(resources, field{cfnDistribution, jsonObject{
		{"Type", "AWS::CloudFront::Distribution"},
		{"Properties", jsonObject{{"DistributionConfig", dist}, {"Tags", tags}}}}})

	resolved, err := cfnValues(resources)
	if err != nil {
		return nil, err
	}
	doc := jsonObject{
		{"AWSTemplateFormatVersion", "2010-09-09"},
		{"Description", fmt.Sprintf("deploybot site %s (install %s): what deploybot setup creates, without the live release, which deploys write to the key value store", m.site.Name, m.install)},
		{"Metadata", jsonObject{{"deploybot", jsonObject{
			{"site", m.site.Name},
			{"install", m.install},
			{"generated_by", "deploybot setup --site " + m.site.Name + " --output cloudformation"},
			{"after_create", "write the outputs DistributionId and KeyValueStoreArn into the site's distribution_id and kvs.arn; deploybot kvs-setup --site " + m.site.Name + " --apply then writes the preview signing key (data, like the live key); the first promote writes the live key"},
		}}}},
		{"Resources", resolved},
		{"Outputs", cfnOutputs(m)},
	}
	raw, err := marshalNoEscape(doc)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	if err := json.Indent(&out, raw, "", "  "); err != nil {
		return nil, err
	}
	out.WriteByte('\n')
	return out.Bytes(), nil
}

// cfnDistributionConfig is the DistributionConfig property. The origin
// path is not declared (see Template).
// cfnBucketResource is the bucket, with its public access block,
// ownership controls and encryption.
func cfnBucketResource(m *siteModel) field {
	pab, own, enc := bucketPublicAccessBlock(), bucketOwnership(), bucketEncryption()
	var rules []any
	for _, r := range own.Rules {
		rules = append(rules, jsonObject{{"ObjectOwnership", string(r.ObjectOwnership)}})
	}
	var sse []any
	for _, r := range enc.Rules {
		sse = append(sse, jsonObject{{"ServerSideEncryptionByDefault", jsonObject{{"SSEAlgorithm", string(r.ApplyServerSideEncryptionByDefault.SSEAlgorithm)}}}})
	}
	return field{cfnBucket, jsonObject{
		{"Type", "AWS::S3::Bucket"},
		// The bucket holds every release: deleting the stack keeps it.
		{"DeletionPolicy", "Retain"},
		{"UpdateReplacePolicy", "Retain"},
		{"Properties", jsonObject{
			{"BucketName", m.site.Bucket},
			{"PublicAccessBlockConfiguration", jsonObject{
				{"BlockPublicAcls", aws.ToBool(pab.BlockPublicAcls)},
				{"IgnorePublicAcls", aws.ToBool(pab.IgnorePublicAcls)},
				{"BlockPublicPolicy", aws.ToBool(pab.BlockPublicPolicy)},
				{"RestrictPublicBuckets", aws.ToBool(pab.RestrictPublicBuckets)}}},
			{"OwnershipControls", jsonObject{{"Rules", rules}}},
			{"BucketEncryption", jsonObject{{"ServerSideEncryptionConfiguration", sse}}}}}}}
}

func cfnFunction(f modelFunction) field {
	cfg := jsonObject{{"Comment", aws.ToString(f.config.Comment)}, {"Runtime", string(f.config.Runtime)}}
	if a := f.config.KeyValueStoreAssociations; a != nil {
		var items []any
		for _, s := range a.Items {
			items = append(items, jsonObject{{"KeyValueStoreARN", aws.ToString(s.KeyValueStoreARN)}})
		}
		cfg = append(cfg, field{"KeyValueStoreAssociations", items})
	}
	return field{cfnFunctionIDs[f.role], jsonObject{
		{"Type", "AWS::CloudFront::Function"},
		{"Properties", jsonObject{
			{"Name", f.name},
			{"AutoPublish", true},
			{"FunctionConfig", cfg},
			{"FunctionCode", f.code}}}}}
}

// cfnOutputs are what deploybot's configuration takes from the stack.
func cfnOutputs(m *siteModel) jsonObject {
	outputs := jsonObject{
		{"DistributionId", jsonObject{
			{"Description", "sites[].distribution_id of site " + m.site.Name + " in deploybot's configuration"},
			{"Value", jsonObject{{"Ref", cfnDistribution}}}}},
		{"DistributionDomain", jsonObject{
			{"Description", "the distribution's domain: the site's address until a CNAME points at it"},
			{"Value", jsonObject{{"Fn::GetAtt", []any{cfnDistribution, "DomainName"}}}}}},
	}
	if m.kvs {
		outputs = append(outputs, field{"KeyValueStoreArn", jsonObject{
			{"Description", "sites[].kvs.arn of site " + m.site.Name + " in deploybot's configuration"},
			{"Value", jsonObject{{"Fn::GetAtt", []any{cfnKVS, "Arn"}}}}}})
	}
	return outputs
}

func cfnDistributionConfig(d distSpec) (jsonObject, error) {
	c := jsonObject{{"Comment", d.Comment}, {"Enabled", d.Enabled}}
	if d.DefaultRootObject != "" {
		c = append(c, field{"DefaultRootObject", d.DefaultRootObject})
	}
	c = append(c, field{"HttpVersion", d.HTTPVersion}, field{"IPV6Enabled", d.IPv6})
	var origins []any
	for _, o := range d.Origins {
		origins = append(origins, jsonObject{
			{"Id", o.ID}, {"DomainName", o.Domain}, {"OriginAccessControlId", o.OACID},
			{"S3OriginConfig", jsonObject{{"OriginAccessIdentity", ""}}}})
	}
	c = append(c, field{"Origins", origins})
	b := d.Default
	beh := jsonObject{{"TargetOriginId", b.TargetOriginID}, {"ViewerProtocolPolicy", b.ViewerProtocolPolicy},
		{"CachePolicyId", b.CachePolicyID}, {"Compress", b.Compress}, {"AllowedMethods", anyStrings(b.Allowed)}, {"CachedMethods", anyStrings(b.Cached)}}
	if len(b.Functions) > 0 {
		var fas []any
		for _, fa := range b.Functions {
			fas = append(fas, jsonObject{{"EventType", fa.Event}, {"FunctionARN", fa.ARN}})
		}
		beh = append(beh, field{"FunctionAssociations", fas})
	}
	c = append(c, field{"DefaultCacheBehavior", beh})
	if len(d.ErrorResponses) > 0 {
		var ers []any
		for _, e := range d.ErrorResponses {
			er := jsonObject{{"ErrorCode", e.Code}}
			if e.Page != "" {
				code, err := strconv.Atoi(e.ResponseCode)
				if err != nil {
					return nil, fmt.Errorf("template: response code %q: %v", e.ResponseCode, err)
				}
				er = append(er, field{"ResponsePagePath", e.Page}, field{"ResponseCode", code})
			}
			er = append(er, field{"ErrorCachingMinTTL", e.MinTTL})
			ers = append(ers, er)
		}
		c = append(c, field{"CustomErrorResponses", ers})
	}
	return c, nil
}

func anyStrings(in []string) []any {
	out := make([]any, len(in))
	for i, s := range in {
		out[i] = s
	}
	return out
}
