package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// edgeCounters are the counters the harness reads from an edge's /metrics
// (their names are documented in edge/metrics.go and the README). Figures
// of a run are the difference of two scrapes.
type edgeCounters struct {
	// Served is shoal_served_bytes_total by source (memory, disk, peer, origin).
	Served map[string]float64
	// OriginBytes is shoal_origin_bytes_total: what the edge says it read
	// from the origin, to compare with the counting proxy.
	OriginBytes float64
	// Hedged is shoal_hedged_requests_total.
	Hedged float64
	// GetShard is shoal_peer_requests_total{op="get_shard"}, all results.
	GetShard float64
}

// parseEdgeCounters reads the Prometheus text exposition format.
func parseEdgeCounters(r io.Reader) (edgeCounters, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		return edgeCounters{}, fmt.Errorf("bench: metrics: %w", err)
	}
	c := edgeCounters{Served: map[string]float64{}}
	if f := fams["shoal_served_bytes_total"]; f != nil {
		for _, m := range f.GetMetric() {
			c.Served[label(m, "source")] += m.GetCounter().GetValue()
		}
	}
	c.OriginBytes = sumCounter(fams["shoal_origin_bytes_total"], nil)
	c.Hedged = sumCounter(fams["shoal_hedged_requests_total"], nil)
	c.GetShard = sumCounter(fams["shoal_peer_requests_total"], map[string]string{"op": "get_shard"})
	return c, nil
}

// sumCounter adds up the counters of f whose labels include match.
func sumCounter(f *dto.MetricFamily, match map[string]string) float64 {
	var sum float64
	for _, m := range f.GetMetric() {
		ok := true
		for k, v := range match {
			if label(m, k) != v {
				ok = false
				break
			}
		}
		if ok {
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// sub returns c - before, counter by counter.
func (c edgeCounters) sub(before edgeCounters) edgeCounters {
	d := edgeCounters{
		Served:      map[string]float64{},
		OriginBytes: c.OriginBytes - before.OriginBytes,
		Hedged:      c.Hedged - before.Hedged,
		GetShard:    c.GetShard - before.GetShard,
	}
	for k, v := range c.Served {
		d.Served[k] = v - before.Served[k]
	}
	return d
}

// add returns c + o, counter by counter.
func (c edgeCounters) add(o edgeCounters) edgeCounters {
	s := edgeCounters{
		Served:      map[string]float64{},
		OriginBytes: c.OriginBytes + o.OriginBytes,
		Hedged:      c.Hedged + o.Hedged,
		GetShard:    c.GetShard + o.GetShard,
	}
	for k, v := range c.Served {
		s.Served[k] += v
	}
	for k, v := range o.Served {
		s.Served[k] += v
	}
	return s
}

// scrapeEdge fetches and parses an edge's /metrics; admin is the admin
// listener's base URL.
func scrapeEdge(ctx context.Context, c *http.Client, admin string) (edgeCounters, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, admin+"/metrics", nil)
	if err != nil {
		return edgeCounters{}, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return edgeCounters{}, fmt.Errorf("bench: scraping %s: %w", admin, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return edgeCounters{}, fmt.Errorf("bench: scraping %s: %s", admin, resp.Status)
	}
	return parseEdgeCounters(resp.Body)
}
