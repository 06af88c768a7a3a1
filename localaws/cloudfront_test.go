package localaws

import (
	"strings"
	"testing"
)

// FuzzParseConfig: the stand-in takes DistributionConfig XML from any
// client. It must not panic, and what it accepts must hold the rules it
// checks, so the flip never meets an origin it cannot serve.
func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(`<DistributionConfig><CallerReference>r</CallerReference><Aliases><Quantity>0</Quantity></Aliases>` +
		`<Origins><Quantity>1</Quantity><Items><Origin><Id>o</Id><DomainName>b.s3.amazonaws.com</DomainName><OriginPath>/www/v1</OriginPath></Origin></Items></Origins>` +
		`<DefaultCacheBehavior><TargetOriginId>o</TargetOriginId></DefaultCacheBehavior>` +
		`<CacheBehaviors><Quantity>1</Quantity><Items><CacheBehavior><PathPattern>/assets/*</PathPattern><TargetOriginId>o</TargetOriginId></CacheBehavior></Items></CacheBehaviors>` +
		`<CustomErrorResponses><Quantity>1</Quantity><Items><CustomErrorResponse><ErrorCode>403</ErrorCode><ResponsePagePath>/404.html</ResponsePagePath><ResponseCode>404</ResponseCode></CustomErrorResponse></Items></CustomErrorResponses>` +
		`<Enabled>true</Enabled></DistributionConfig>`))
	f.Add([]byte(`<DistributionConfig><CallerReference>r</CallerReference><Origins><Quantity>2</Quantity><Items><Origin><Id>o</Id></Origin></Items></Origins></DistributionConfig>`))
	f.Add([]byte(`<DistributionConfig><Origins><Items><Origin><OriginPath>www/</OriginPath></Origin></Items></Origins>`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		c, cerr := parseConfig(raw)
		if cerr != nil {
			// 404 NoSuchOrigin: a cache behaviour names no origin.
			if (cerr.Status != 400 && cerr.Code != "NoSuchOrigin") || cerr.Code == "" {
				t.Fatalf("refusal without a 400 and a code: %+v", cerr)
			}
			return
		}
		if c.CallerReference == "" || len(c.Origins.Items) == 0 || c.Origins.Quantity != len(c.Origins.Items) {
			t.Fatalf("accepted %+v", c)
		}
		for _, o := range c.Origins.Items {
			if o.ID == "" || o.DomainName == "" || (o.OriginPath != "" && (!strings.HasPrefix(o.OriginPath, "/") || strings.HasSuffix(o.OriginPath, "/"))) {
				t.Fatalf("accepted origin %+v", o)
			}
		}
		for _, b := range c.behaviors() {
			if _, ok := c.origin(b.TargetOriginID); !ok {
				t.Fatalf("accepted a behaviour without its origin: %+v", b)
			}
		}
		for _, e := range c.CustomErrorResponses.Items {
			if e.ResponsePagePath != "" && (e.ResponseCode == "" || !strings.HasPrefix(e.ResponsePagePath, "/")) {
				t.Fatalf("accepted error response %+v", e)
			}
		}
	})
}
