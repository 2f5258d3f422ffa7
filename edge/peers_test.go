package edge

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/shoalcdn/shoal/swarm"
)

func getPeers(t *testing.T, h http.Handler, token string) (int, swarm.PeersReport) {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, "/admin/peers", nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var doc swarm.PeersReport
	if rec.Code == http.StatusOK {
		if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil {
			t.Fatalf("/admin/peers: %v in %s", err, rec.Body.String())
		}
	}
	return rec.Code, doc
}

func TestAdminPeers(t *testing.T) {
	o := newTestOrigin(t, "public, max-age=3600")
	c := newCluster(t, o, 3, func(cfg *Config) { cfg.Swarm.Zone = "rack-1" })
	want := o.put(t, "/p.bin", 1<<20, 21)
	_, body := c.get(0, "/p.bin")
	sameBytes(t, "via edge 0", body, want)
	_, body = c.get(1, "/p.bin")
	sameBytes(t, "via edge 1", body, want)

	h := c.edges[1].Admin("s3cret")
	if code, _ := getPeers(t, h, ""); code != http.StatusUnauthorized {
		t.Errorf("without the token: status %d, want 401", code)
	}
	code, doc := getPeers(t, h, "s3cret")
	if code != http.StatusOK {
		t.Fatalf("status %d", code)
	}
	if doc.Self != c.edges[1].Node().Self() || doc.Zone != "rack-1" || doc.Gossip {
		t.Errorf("header: self %q zone %q gossip %v", doc.Self, doc.Zone, doc.Gossip)
	}
	if len(doc.Members) != 3 {
		t.Fatalf("got %d members, want 3: %+v", len(doc.Members), doc.Members)
	}
	var received uint64
	for _, m := range doc.Members {
		if m.State != "alive" || m.Zone != "rack-1" || m.ID != m.Addr || m.Since.IsZero() {
			t.Errorf("member %+v: want alive in rack-1, ID = address", m)
		}
		if m.Self != (m.Addr == doc.Self) {
			t.Errorf("member %s: self %v", m.Addr, m.Self)
		}
		received += m.BytesReceived
	}
	// Every byte edge 1 received as a client of its peers is in the
	// per-member counts (which also hold the shards pushed to it).
	asClient := counterValue(t, c.edges[1].Edge, "shoal_peer_bytes_total")
	if asClient == 0 || float64(received) < asClient {
		t.Errorf("members account for %d bytes received, the edge's counter for %v", received, asClient)
	}
}

func TestAdminPeersShowsLeftMember(t *testing.T) {
	o := newTestOrigin(t, "")
	c := newGossipCluster(t, o, 3, 50, nil)
	gone := c.edges[2].Node().Self()
	c.leave(2)
	c.waitMembers(5 * time.Second)
	_, doc := getPeers(t, c.edges[0].Admin(""), "")
	states := map[string]string{}
	for _, m := range doc.Members {
		states[m.Addr] = m.State
	}
	if !doc.Gossip || len(doc.Members) != 3 || states[gone] != "left" {
		t.Errorf("after a leave: gossip %v, members %v; want the member that left as %q", doc.Gossip, states, "left")
	}
}

// The origin limit paces what an edge reads from the origin. Checked as a
// lower bound on the time a fill takes, which a slow machine only makes
// longer: 300 kB at 300 kB/s (a burst of a tenth of that) cannot arrive
// in much under 0.9s.
func TestOriginLimit(t *testing.T) {
	t.Parallel() // mostly waiting (parallelTests in cluster_test.go)
	o := newTestOrigin(t, "public, max-age=3600")
	c := newCluster(t, o, 1, func(cfg *Config) { cfg.OriginLimit = 300_000 })
	want := o.put(t, "/limited.bin", 300_000, 22)
	start := time.Now()
	_, body := c.get(0, "/limited.bin")
	took := time.Since(start)
	sameBytes(t, "through the origin limit", body, want)
	if took < 600*time.Millisecond {
		t.Errorf("300 kB came from the origin in %v through a 300 kB/s limit, want at least 0.6s", took)
	}
	t.Logf("300 kB through a 300 kB/s origin limit: %v", took.Round(time.Millisecond))
}
