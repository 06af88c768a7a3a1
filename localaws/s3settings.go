// Bucket settings: public access block, ownership controls, default
// encryption and bucket policy, a handler an operation.

package localaws

import (
	"encoding/xml"
	"io"
	"net/http"
	"slices"
	"strings"
)

// bucketSettingOp names the bucket subresource calls the stand-in models,
// routed as S3 routes them, by query parameter
// (https://docs.aws.amazon.com/AmazonS3/latest/API/API_PutPublicAccessBlock.html and the
// others' request syntax); "" for another request.
func bucketSettingOp(r *http.Request) string {
	q := r.URL.Query()
	verb := map[string]string{http.MethodPut: "Put", http.MethodGet: "Get", http.MethodDelete: "Delete"}[r.Method]
	if verb == "" {
		return ""
	}
	switch {
	case q.Has("publicAccessBlock"):
		return verb + "PublicAccessBlock"
	case q.Has("ownershipControls"):
		return verb + "BucketOwnershipControls"
	case q.Has("encryption"):
		return verb + "BucketEncryption"
	case q.Has("policyStatus") && verb == "Get":
		return "GetBucketPolicyStatus"
	case q.Has("policy"):
		return verb + "BucketPolicy"
	}
	return ""
}

// serveBucketSetting answers a bucketSettingOp: a Get answers from the
// bucket's config, a Put or Delete changes a copy of it that is saved
// before the answer.
func (s *s3Service) serveBucketSetting(w http.ResponseWriter, r *http.Request, op, name string) {
	body, err := io.ReadAll(io.LimitReader(readBody(r), 1<<20))
	if err != nil {
		writeS3Error(w, r, s3Error{Status: http.StatusBadRequest, Code: "IncompleteBody", Message: err.Error()})
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.buckets[name]
	if b == nil {
		writeS3Error(w, r, s3Error{Status: http.StatusNotFound, Code: "NoSuchBucket", Message: "The specified bucket does not exist"})
		return
	}
	c := &settingCall{w: w, r: r, op: op, name: name, body: body, cfg: b.cfg}
	if h := bucketSettings[op]; h != nil && !h(c) {
		return
	}
	old := b.cfg
	b.cfg = c.cfg
	if err := b.saveConfig(); err != nil {
		b.cfg = old
		writeS3Error(w, r, s3Error{Status: 500, Code: "InternalError", Message: err.Error()})
		return
	}
	w.Header().Set("x-amz-request-id", newRequestID())
	if strings.HasPrefix(op, "Delete") || op == "PutBucketPolicy" {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// settingCall is one bucket setting request, served under the service's
// mu: the body sent and a copy of the bucket's config to change.
type settingCall struct {
	w        http.ResponseWriter
	r        *http.Request
	op, name string
	body     []byte
	cfg      bucketConfig
}

// bucketSettings are the handlers of the bucketSettingOps. One that
// answers itself (a Get, a refusal) returns false; one that changed cfg
// returns true, and serveBucketSetting saves the config and answers.
var bucketSettings = map[string]func(c *settingCall) bool{
	"GetPublicAccessBlock":          getPublicAccessBlock,
	"PutPublicAccessBlock":          putPublicAccessBlock,
	"DeletePublicAccessBlock":       func(c *settingCall) bool { c.cfg.PublicAccessBlock = nil; return true },
	"GetBucketOwnershipControls":    getOwnershipControls,
	"PutBucketOwnershipControls":    putOwnershipControls,
	"DeleteBucketOwnershipControls": func(c *settingCall) bool { c.cfg.Ownership = ""; return true },
	"GetBucketEncryption":           getBucketEncryption,
	"PutBucketEncryption":           putBucketEncryption,
	// Deleting resets the default encryption to SSE-S3
	// (https://docs.aws.amazon.com/AmazonS3/latest/API/API_DeleteBucketEncryption.html).
	"DeleteBucketEncryption": func(c *settingCall) bool { c.cfg.Encryption = bucketEncryption{Algorithm: "AES256"}; return true },
	"GetBucketPolicy":        getBucketPolicy,
	"GetBucketPolicyStatus":  getBucketPolicy,
	"PutBucketPolicy":        putBucketPolicy,
	"DeleteBucketPolicy":     func(c *settingCall) bool { c.cfg.Policy = ""; return true },
}

// malformedXML is S3's answer to a body that is not the XML an operation
// takes.
var malformedXML = s3Error{Status: http.StatusBadRequest, Code: "MalformedXML", Message: "The XML you provided was not well-formed or did not validate against our published schema"}

func getPublicAccessBlock(c *settingCall) bool {
	p := c.cfg.PublicAccessBlock
	if p == nil {
		// https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetPublicAccessBlock.html
		writeS3Error(c.w, c.r, s3Error{Status: http.StatusNotFound, Code: "NoSuchPublicAccessBlockConfiguration", Message: "The public access block configuration was not found"})
		return false
	}
	type pab struct {
		XMLName                                                                     xml.Name `xml:"PublicAccessBlockConfiguration"`
		NS                                                                          string   `xml:"xmlns,attr"`
		BlockPublicAcls, IgnorePublicAcls, BlockPublicPolicy, RestrictPublicBuckets bool
	}
	writeXML(c.w, http.StatusOK, pab{NS: s3NS, BlockPublicAcls: p.BlockPublicAcls, IgnorePublicAcls: p.IgnorePublicAcls,
		BlockPublicPolicy: p.BlockPublicPolicy, RestrictPublicBuckets: p.RestrictPublicBuckets})
	return false
}

func putPublicAccessBlock(c *settingCall) bool {
	var p struct {
		XMLName                                                                     xml.Name `xml:"PublicAccessBlockConfiguration"`
		BlockPublicAcls, IgnorePublicAcls, BlockPublicPolicy, RestrictPublicBuckets bool
	}
	if xml.Unmarshal(c.body, &p) != nil {
		writeS3Error(c.w, c.r, malformedXML)
		return false
	}
	c.cfg.PublicAccessBlock = &publicAccessBlock{BlockPublicAcls: p.BlockPublicAcls, IgnorePublicAcls: p.IgnorePublicAcls,
		BlockPublicPolicy: p.BlockPublicPolicy, RestrictPublicBuckets: p.RestrictPublicBuckets}
	return true
}

func getOwnershipControls(c *settingCall) bool {
	if c.cfg.Ownership == "" {
		// https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetBucketOwnershipControls.html
		writeS3Error(c.w, c.r, s3Error{Status: http.StatusNotFound, Code: "OwnershipControlsNotFoundError", Message: "The bucket ownership controls were not found"})
		return false
	}
	type oc struct {
		XMLName   xml.Name `xml:"OwnershipControls"`
		NS        string   `xml:"xmlns,attr"`
		Ownership string   `xml:"Rule>ObjectOwnership"`
	}
	writeXML(c.w, http.StatusOK, oc{NS: s3NS, Ownership: c.cfg.Ownership})
	return false
}

func putOwnershipControls(c *settingCall) bool {
	var oc struct {
		XMLName xml.Name `xml:"OwnershipControls"`
		Rules   []string `xml:"Rule>ObjectOwnership"`
	}
	// One rule, with one of the three settings
	// (https://docs.aws.amazon.com/AmazonS3/latest/API/API_OwnershipControlsRule.html).
	if xml.Unmarshal(c.body, &oc) != nil || len(oc.Rules) != 1 ||
		!slices.Contains([]string{"BucketOwnerPreferred", "ObjectWriter", "BucketOwnerEnforced"}, oc.Rules[0]) {
		writeS3Error(c.w, c.r, malformedXML)
		return false
	}
	c.cfg.Ownership = oc.Rules[0]
	return true
}

func getBucketEncryption(c *settingCall) bool {
	type byDefault struct {
		SSEAlgorithm   string
		KMSMasterKeyID string `xml:",omitempty"`
	}
	type rule struct {
		ApplyServerSideEncryptionByDefault byDefault
		BucketKeyEnabled                   bool
	}
	type sse struct {
		XMLName xml.Name `xml:"ServerSideEncryptionConfiguration"`
		NS      string   `xml:"xmlns,attr"`
		Rule    rule
	}
	e := c.cfg.Encryption
	writeXML(c.w, http.StatusOK, sse{NS: s3NS, Rule: rule{ApplyServerSideEncryptionByDefault: byDefault{SSEAlgorithm: e.Algorithm, KMSMasterKeyID: e.KMSKeyID}, BucketKeyEnabled: e.BucketKey}})
	return false
}

func putBucketEncryption(c *settingCall) bool {
	var sse struct {
		XMLName xml.Name `xml:"ServerSideEncryptionConfiguration"`
		Rules   []struct {
			Algorithm        string `xml:"ApplyServerSideEncryptionByDefault>SSEAlgorithm"`
			KMSKeyID         string `xml:"ApplyServerSideEncryptionByDefault>KMSMasterKeyID"`
			BucketKeyEnabled bool
		} `xml:"Rule"`
	}
	// SSEAlgorithm: AES256 | aws:kms | aws:kms:dsse; a KMS key only with KMS
	// (https://docs.aws.amazon.com/AmazonS3/latest/API/API_ServerSideEncryptionByDefault.html).
	if xml.Unmarshal(c.body, &sse) != nil || len(sse.Rules) != 1 ||
		!slices.Contains([]string{"AES256", "aws:kms", "aws:kms:dsse"}, sse.Rules[0].Algorithm) {
		writeS3Error(c.w, c.r, malformedXML)
		return false
	}
	rule := sse.Rules[0]
	if rule.KMSKeyID != "" && rule.Algorithm == "AES256" {
		writeS3Error(c.w, c.r, s3Error{Status: http.StatusBadRequest, Code: "InvalidArgument", Message: "a KMSMasterKeyID is allowed only with SSEAlgorithm aws:kms or aws:kms:dsse"})
		return false
	}
	c.cfg.Encryption = bucketEncryption{Algorithm: rule.Algorithm, KMSKeyID: rule.KMSKeyID, BucketKey: rule.BucketKeyEnabled}
	return true
}

// getBucketPolicy answers GetBucketPolicy and GetBucketPolicyStatus.
func getBucketPolicy(c *settingCall) bool {
	if c.cfg.Policy == "" {
		// https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetBucketPolicy.html
		writeS3Error(c.w, c.r, s3Error{Status: http.StatusNotFound, Code: "NoSuchBucketPolicy", Message: "The bucket policy does not exist"})
		return false
	}
	if c.op == "GetBucketPolicy" {
		c.w.Header().Set("Content-Type", "application/json")
		c.w.Header().Set("x-amz-request-id", newRequestID())
		_, _ = io.WriteString(c.w, c.cfg.Policy)
		return false
	}
	doc, _ := parseBucketPolicy([]byte(c.cfg.Policy), c.name)
	type status struct {
		XMLName  xml.Name `xml:"PolicyStatus"`
		NS       string   `xml:"xmlns,attr"`
		IsPublic bool
	}
	writeXML(c.w, http.StatusOK, status{NS: s3NS, IsPublic: doc != nil && doc.public()})
	return false
}

func putBucketPolicy(c *settingCall) bool {
	doc, e := parseBucketPolicy(c.body, c.name)
	if e != nil {
		writeS3Error(c.w, c.r, *e)
		return false
	}
	// With BlockPublicPolicy on, S3 refuses a policy that grants public
	// access (https://docs.aws.amazon.com/AmazonS3/latest/userguide/access-control-block-public-access.html#access-control-block-public-access-options).
	if p := c.cfg.PublicAccessBlock; p != nil && p.BlockPublicPolicy && doc.public() {
		writeS3Error(c.w, c.r, s3Error{Status: http.StatusForbidden, Code: "AccessDenied",
			Message: "User is not authorized to perform: s3:PutBucketPolicy on resource: \"arn:aws:s3:::" + c.name + "\" because public policies are blocked by the BlockPublicPolicy block public access setting."})
		return false
	}
	c.cfg.Policy = string(c.body)
	return true
}
