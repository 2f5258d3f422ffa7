package bench

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// edgeMetricsText is a trimmed /metrics of a real edge: counters by label,
// histograms and gauges around the ones the harness reads.
const edgeMetricsText = `# HELP shoal_served_bytes_total Body bytes sent to clients, by where they came from (memory, disk, peer, origin).
# TYPE shoal_served_bytes_total counter
shoal_served_bytes_total{source="disk"} 0
shoal_served_bytes_total{source="memory"} 2.097152e+07
shoal_served_bytes_total{source="origin"} 4.194304e+06
shoal_served_bytes_total{source="peer"} 3.3554432e+07
# HELP shoal_origin_bytes_total Response body bytes received from the origin.
# TYPE shoal_origin_bytes_total counter
shoal_origin_bytes_total 4.194304e+06
# HELP shoal_hedged_requests_total Extra shard requests sent because the first ones were slow or failed.
# TYPE shoal_hedged_requests_total counter
shoal_hedged_requests_total 7
# HELP shoal_peer_requests_total Requests sent to peers, by op and result.
# TYPE shoal_peer_requests_total counter
shoal_peer_requests_total{op="fill",result="ok"} 3
shoal_peer_requests_total{op="get_shard",result="canceled"} 5
shoal_peer_requests_total{op="get_shard",result="not_found"} 12
shoal_peer_requests_total{op="get_shard",result="ok"} 83
shoal_peer_requests_total{op="put_shard",result="ok"} 40
shoal_peer_requests_total{op="stat",result="ok"} 2
# HELP shoal_peer_request_duration_seconds Requests to peers (shard fetches and pushes, lookups, fills), by op and result.
# TYPE shoal_peer_request_duration_seconds histogram
shoal_peer_request_duration_seconds_bucket{op="get_shard",result="ok",le="0.001"} 10
shoal_peer_request_duration_seconds_bucket{op="get_shard",result="ok",le="+Inf"} 83
shoal_peer_request_duration_seconds_sum{op="get_shard",result="ok"} 1.5
shoal_peer_request_duration_seconds_count{op="get_shard",result="ok"} 83
# HELP shoal_hit_ratio Share of client body bytes this edge served without the origin (memory, disk, peers), since start.
# TYPE shoal_hit_ratio gauge
shoal_hit_ratio NaN
# HELP go_goroutines Number of goroutines that currently exist.
# TYPE go_goroutines gauge
go_goroutines 42
`

func TestParseEdgeCounters(t *testing.T) {
	c, err := parseEdgeCounters(strings.NewReader(edgeMetricsText))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{"disk": 0, "memory": 20 << 20, "origin": 4 << 20, "peer": 32 << 20}
	for k, v := range want {
		if c.Served[k] != v {
			t.Errorf("served[%s] = %v, want %v", k, c.Served[k], v)
		}
	}
	if c.OriginBytes != 4<<20 {
		t.Errorf("origin bytes = %v, want %v", c.OriginBytes, 4<<20)
	}
	if c.Hedged != 7 {
		t.Errorf("hedged = %v, want 7", c.Hedged)
	}
	if c.GetShard != 100 {
		t.Errorf("get_shard requests = %v, want 100 (all results, no other op)", c.GetShard)
	}

	d := c.sub(edgeCounters{Served: map[string]float64{"memory": 1 << 20}, Hedged: 2, GetShard: 50, OriginBytes: 1})
	if d.Served["memory"] != 19<<20 || d.Served["peer"] != 32<<20 || d.Hedged != 5 || d.GetShard != 50 || d.OriginBytes != 4<<20-1 {
		t.Errorf("sub = %+v", d)
	}
	s := d.add(d)
	if s.Served["peer"] != 64<<20 || s.Hedged != 10 || s.GetShard != 100 {
		t.Errorf("add = %+v", s)
	}
}

func TestParseEdgeCountersErrors(t *testing.T) {
	if _, err := parseEdgeCounters(strings.NewReader("shoal_served_bytes_total{source=\"memory\" 12\n")); err == nil {
		t.Error("malformed exposition gave no error")
	}
	c, err := parseEdgeCounters(strings.NewReader(""))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Served) != 0 || c.Hedged != 0 {
		t.Errorf("empty exposition = %+v, want zero counters", c)
	}
}

func TestScrapeEdge(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		w.Write([]byte(edgeMetricsText))
	}))
	defer srv.Close()
	c, err := scrapeEdge(context.Background(), srv.Client(), srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	if c.Hedged != 7 {
		t.Errorf("hedged = %v, want 7", c.Hedged)
	}
	if _, err := scrapeEdge(context.Background(), srv.Client(), srv.URL+"/nothing"); err == nil {
		t.Error("a 404 gave no error")
	}
}
