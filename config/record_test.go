package config

import (
	"strings"
	"testing"
)

func TestRecordSiteKeys(t *testing.T) {
	lookup := env(map[string]string{"SITE": "docs"})
	cases := []struct {
		name, doc, site string
		keys            map[string]string
		want            string // the file after, exactly
		err             string
	}{
		{
			name: "block mapping keeps comments",
			doc:  "# top\nsites:\n  # the main site\n  - name: www   # ours\n    bucket: b   # the bucket\n    prefix: www/\n",
			site: "www", keys: map[string]string{"distribution_id": "E2ABC"},
			want: "# top\nsites:\n  # the main site\n  - name: www   # ours\n    distribution_id: \"E2ABC\"\n    bucket: b   # the bucket\n    prefix: www/\n",
		},
		{
			name: "second site, both keys",
			doc:  "sites:\n  - name: www\n    bucket: b\n    prefix: www/\n  - name: docs\n    bucket: b\n    prefix: docs/\n    strategy: kvs\n",
			site: "docs", keys: map[string]string{"distribution_id": "E3", "kvs.arn": "arn:aws:cloudfront::123456789012:key-value-store/abc"},
			want: "sites:\n  - name: www\n    bucket: b\n    prefix: www/\n  - name: docs\n    kvs: {arn: \"arn:aws:cloudfront::123456789012:key-value-store/abc\"}\n    distribution_id: \"E3\"\n    bucket: b\n    prefix: docs/\n    strategy: kvs\n",
		},
		{
			name: "flow mapping",
			doc:  "sites:\n  - {name: www, bucket: b, prefix: www/}  # one line\n",
			site: "www", keys: map[string]string{"distribution_id": "E2"},
			want: "sites:\n  - {name: www, distribution_id: \"E2\", bucket: b, prefix: www/}  # one line\n",
		},
		{
			name: "a site named by a variable",
			doc:  "sites:\n  - name: ${SITE}\n    bucket: b\n",
			site: "docs", keys: map[string]string{"distribution_id": "E4"},
			want: "sites:\n  - name: ${SITE}\n    distribution_id: \"E4\"\n    bucket: b\n",
		},
		{
			name: "no newline at the end",
			doc:  "sites:\n  - bucket: b\n    name: www",
			site: "www", keys: map[string]string{"distribution_id": "E5"},
			want: "sites:\n  - bucket: b\n    name: www\n    distribution_id: \"E5\"\n",
		},
		{
			name: "never overwrites",
			doc:  "sites:\n  - name: www\n    bucket: b\n    distribution_id: EOTHER\n",
			site: "www", keys: map[string]string{"distribution_id": "E2"},
			err: "sets distribution_id to \"EOTHER\" already",
		},
		{
			name: "an existing kvs key",
			doc:  "sites:\n  - name: docs\n    bucket: b\n    strategy: kvs\n    kvs: {}\n",
			site: "docs", keys: map[string]string{"kvs.arn": "arn:aws:cloudfront::123456789012:key-value-store/abc"},
			err: "add kvs.arn: \"arn:aws:cloudfront::123456789012:key-value-store/abc\" to it by hand",
		},
		{
			name: "unknown site",
			doc:  "sites:\n  - name: www\n    bucket: b\n",
			site: "blog", keys: map[string]string{"distribution_id": "E2"},
			err: "no site blog",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, err := RecordSiteKeys([]byte(c.doc), c.site, c.keys, lookup)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("got %v, want an error with %q\n%s", err, c.err, out)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(out) != c.want {
				t.Fatalf("got:\n%s\nwant:\n%s", out, c.want)
			}
		})
	}
}

// Whatever the file, RecordSiteKeys never panics, and what it returns
// loads with the site holding the new id and every other site unchanged.
func FuzzRecordSiteKeys(f *testing.F) {
	f.Add([]byte("sites:\n  - name: www\n    bucket: b\n"), "E2")
	f.Add([]byte("sites:\n  - {name: www, bucket: b}\n"), "E3")
	f.Add([]byte("# c\nsites:\n  - bucket: b\n    name: www # x\n  - {name: docs, bucket: c, prefix: d/}\n"), "E4")
	f.Fuzz(func(t *testing.T, doc []byte, id string) {
		if id == "" {
			return
		}
		before, err := Parse(doc, env(nil))
		out, rerr := RecordSiteKeys(doc, "www", map[string]string{"distribution_id": id}, env(nil))
		if rerr != nil {
			return
		}
		if err != nil {
			t.Fatalf("wrote into a file that does not load: %v", err)
		}
		after, err := Parse(out, env(nil))
		if err != nil {
			t.Fatalf("the written file does not load: %v\n%s", err, out)
		}
		if s, _ := after.Site("www"); s.DistributionID != id {
			t.Fatalf("distribution_id %q, want %q", s.DistributionID, id)
		}
		if len(before.Sites) != len(after.Sites) {
			t.Fatalf("%d sites, then %d", len(before.Sites), len(after.Sites))
		}
	})
}
