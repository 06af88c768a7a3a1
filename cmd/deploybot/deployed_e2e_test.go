package main_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudfront"

	"github.com/deploybot/deploybot/cloud"
)

// waitDeployed waits until the stand-in at api says distribution id is
// Deployed: from then on every PoP of its edge serves the last change
// (before, each PoP takes it at its own moment in the propagation window).
func waitDeployed(t *testing.T, api, id string) {
	t.Helper()
	ctx := context.Background()
	_, cfc, err := cloud.NewClients(ctx, cloud.Settings{Region: "us-east-1", Endpoint: api, Credentials: cloud.StaticCredentials("e2e-waiter", "secret")})
	if err != nil {
		t.Fatal(err)
	}
	w := cloudfront.NewDistributionDeployedWaiter(cfc, func(o *cloudfront.DistributionDeployedWaiterOptions) {
		o.MinDelay, o.MaxDelay = 20*time.Millisecond, 200*time.Millisecond
	})
	if err := w.Wait(ctx, &cloudfront.GetDistributionInput{Id: aws.String(id)}, time.Minute); err != nil {
		t.Fatalf("distribution %s never deployed: %v", id, err)
	}
}

// waitDeployed waits until the world's distribution has deployed its
// last change.
func (w *world) waitDeployed() { w.t.Helper(); waitDeployed(w.t, w.api, "E2ETEST") }

// waitInvalidated waits until every invalidation of the world's
// distribution has Completed.
func (w *world) waitInvalidated() {
	w.t.Helper()
	ctx := context.Background()
	_, cfc, err := cloud.NewClients(ctx, cloud.Settings{Region: "us-east-1", Endpoint: w.api, Credentials: cloud.StaticCredentials("e2e-waiter", "secret")})
	if err != nil {
		w.t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		out, err := cfc.ListInvalidations(ctx, &cloudfront.ListInvalidationsInput{DistributionId: aws.String("E2ETEST")})
		if err != nil {
			w.t.Fatal(err)
		}
		done := out.InvalidationList != nil
		if done {
			for _, inv := range out.InvalidationList.Items {
				done = done && aws.ToString(inv.Status) == "Completed"
			}
		}
		if done {
			return
		}
		if time.Now().After(deadline) {
			w.t.Fatal("the distribution's invalidations never completed")
		}
		time.Sleep(50 * time.Millisecond) // a poll: CloudFront has no waiter for all of them
	}
}

// advance moves the stand-in's clock forward by d (a Go duration), as
// that much time passing would, without waiting for it.
func (w *world) advance(d string) {
	w.t.Helper()
	req, _ := http.NewRequest(http.MethodPut, w.api+"/_localaws/clock", strings.NewReader(`{"advance":"`+d+`"}`))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		w.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		w.t.Fatalf("advancing the stand-in's clock: %s", resp.Status)
	}
}
