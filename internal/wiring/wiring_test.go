package wiring

import (
	"path/filepath"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/cloudfront"
	"github.com/aws/aws-sdk-go-v2/service/cloudfrontkeyvaluestore"

	"github.com/deploybot/deploybot/cloud"
	"github.com/deploybot/deploybot/releases"
	"github.com/deploybot/deploybot/store"
)

func openStore(t *testing.T) *store.DB {
	t.Helper()
	db, err := store.Open(filepath.Join(t.TempDir(), "deploybot.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// The zero Config is production's: state shared through the bucket,
// probes on, the pid check on, the kvs strategy when its client is given.
func TestServiceProduction(t *testing.T) {
	db, bucket := openStore(t), &cloud.S3Bucket{}
	sites := []releases.Site{{Name: "www"}}
	svc := Service(Config{Sites: sites, Store: db, Bucket: bucket, CF: &cloudfront.Client{}, KVS: &cloudfrontkeyvaluestore.Client{}})
	shared, ok := svc.Store.(*releases.SharedStore)
	if !ok {
		t.Fatalf("Store is %T, want the shared store", svc.Store)
	}
	if shared.State != bucket || len(shared.Sites) != 1 {
		t.Errorf("shared store: state %v, sites %v; want the bucket and the sites", shared.State, shared.Sites)
	}
	if _, ok := svc.CDNs[releases.DefaultStrategy].(*cloud.OriginPath); !ok {
		t.Errorf("origin-path adapter is %T", svc.CDNs[releases.DefaultStrategy])
	}
	if _, ok := svc.CDNs[cloud.StrategyKVS].(*cloud.KVS); !ok {
		t.Errorf("kvs adapter is %T", svc.CDNs[cloud.StrategyKVS])
	}
	if svc.Prober == nil || svc.EdgeProber == nil {
		t.Error("probes are off")
	}
	if aliveCheck != nil && svc.ProcessAlive == nil {
		t.Error("the pid check is off")
	}
}

func TestServiceSwitches(t *testing.T) {
	db := openStore(t)
	svc := Service(Config{Store: db, Bucket: &cloud.S3Bucket{}, CF: &cloudfront.Client{}, Unshared: true, NoProbes: true, NoPIDCheck: true})
	if svc.Store != releases.Store(db) {
		t.Errorf("Store is %T, want the local store alone", svc.Store)
	}
	if _, ok := svc.CDNs[cloud.StrategyKVS]; ok {
		t.Error("kvs offered without its client")
	}
	if svc.Prober != nil || svc.EdgeProber != nil || svc.ProcessAlive != nil {
		t.Error("a switched-off part is on")
	}
}
