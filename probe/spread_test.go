package probe

import (
	"context"
	"net"
	"net/http"
	"strconv"
	"sync"
	"testing"
)

// The visible phase's requests go to each of the site's addresses in
// turn, and past one that does not answer.
func TestEdgeRequestsSpreadOverTheSitesAddresses(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]int{}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		local := r.Context().Value(http.LocalAddrContextKey).(net.Addr).String()
		host, _, _ := net.SplitHostPort(local)
		mu.Lock()
		seen[host]++
		mu.Unlock()
		w.Header().Set("X-Amz-Meta-Deploybot-Release", "v1")
	})
	ln1, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln1.Addr().(*net.TCPAddr).Port
	ln2, err := net.Listen("tcp", "127.0.0.2:"+strconv.Itoa(port))
	if err != nil {
		t.Skipf("no second loopback address here: %v", err)
	}
	for _, ln := range []net.Listener{ln1, ln2} {
		srv := &http.Server{Handler: handler}
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })
	}
	// 127.0.0.3 listens nowhere: its turns go to the next address.
	addrs := []net.IPAddr{{IP: net.ParseIP("127.0.0.1")}, {IP: net.ParseIP("127.0.0.3")}, {IP: net.ParseIP("127.0.0.2")}}
	h := &HTTP{EdgeClient: newEdgeClient(func(_ context.Context, host string) ([]net.IPAddr, error) {
		if host != "edge.example" {
			t.Errorf("looked up %q", host)
		}
		return addrs, nil
	})}
	h.EdgeClient.Transport.(*http.Transport).Proxy = nil // edge.example is this test's name, wherever the machine's proxy points
	for range 6 {
		v, status, err := h.ProbeRelease(context.Background(), "http://edge.example:"+strconv.Itoa(port)+"/")
		if err != nil || v != "v1" || status != 200 {
			t.Fatalf("probe: %q %d %v", v, status, err)
		}
	}
	// Turns: .1, .3 (refused: .2), .2, .1, .3 (.2), .2.
	if seen["127.0.0.1"] != 2 || seen["127.0.0.2"] != 4 {
		t.Fatalf("requests by address: %v", seen)
	}
}
