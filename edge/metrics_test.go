package edge

import (
	"net/http"
	"net/http/httptest"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// TestMetricsParseAsPrometheusText scrapes /metrics after real traffic and
// reads it with Prometheus's own text parser.
func TestMetricsParseAsPrometheusText(t *testing.T) {
	o := newTestOrigin(t, "public, max-age=3600")
	c := newCluster(t, o, 3, nil)
	want := o.put(t, "/m.bin", 2<<20, 9)
	for i := range c.edges {
		_, body := c.get(i, "/m.bin")
		sameBytes(t, "body", body, want)
	}
	e := c.edges[2]
	admin := httptest.NewServer(e.Admin("secret"))
	defer admin.Close()

	resp, err := http.Get(admin.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("/metrics without the token: status %d, want 401", resp.StatusCode)
	}
	req, _ := http.NewRequest(http.MethodGet, admin.URL+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer secret")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("Prometheus text parser: %v", err)
	}
	sum := func(name string, label ...string) float64 {
		f := fams[name]
		if f == nil {
			t.Errorf("metric %s missing", name)
			return 0
		}
		var v float64
		for _, m := range f.GetMetric() {
			if len(label) == 2 && !hasLabel(m, label[0], label[1]) {
				continue
			}
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				v += m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				v += m.GetGauge().GetValue()
			case dto.MetricType_HISTOGRAM:
				v += float64(m.GetHistogram().GetSampleCount())
			}
		}
		return v
	}
	st := e.Stats()
	if got := sum("shoal_served_bytes_total", "source", "peer") + sum("shoal_served_bytes_total", "source", "memory"); got != float64(st.Served[srcPeer]+st.Served[srcMemory]) || got == 0 {
		t.Errorf("served bytes from the fleet: %v, Stats says %v", got, st.Served)
	}
	for _, name := range []string{"shoal_request_duration_seconds", "shoal_segment_read_duration_seconds", "shoal_peer_request_duration_seconds"} {
		if sum(name) == 0 {
			t.Errorf("histogram %s has no samples", name)
		}
		if f := fams[name]; f != nil && f.GetType() != dto.MetricType_HISTOGRAM {
			t.Errorf("%s is a %v, want a histogram", name, f.GetType())
		}
	}
	if sum("shoal_origin_request_duration_seconds") == 0 && sum("shoal_origin_requests_total") != 0 {
		t.Error("origin requests were made but not timed")
	}
	if got := sum("shoal_hit_ratio"); got <= 0 || got > 1 {
		t.Errorf("hit ratio %v", got)
	}
	if got := sum("shoal_origin_offload_ratio"); got > 1 {
		t.Errorf("offload ratio %v", got)
	}
	if got := sum("shoal_peer_up"); got != 2 {
		t.Errorf("shoal_peer_up sums to %v, want 2 live peers", got)
	}
	if sum("shoal_peer_rtt_seconds") <= 0 {
		t.Error("no peer RTT")
	}
	for _, name := range []string{"shoal_origin_requests_total", "shoal_origin_bytes_total", "shoal_peer_requests_total",
		"shoal_store_bytes", "shoal_store_shards", "shoal_store_writable", "shoal_memory_cache_bytes",
		"shoal_hedged_requests_total", "shoal_hedged_requests_won_total", "go_goroutines", "process_resident_memory_bytes"} {
		if fams[name] == nil {
			t.Errorf("metric %s missing", name)
		}
	}
}

func hasLabel(m *dto.Metric, name, value string) bool {
	for _, l := range m.GetLabel() {
		if l.GetName() == name && l.GetValue() == value {
			return true
		}
	}
	return false
}
