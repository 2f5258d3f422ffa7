package edge

import (
	"io"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are one edge's Prometheus collectors, in a registry of its own so
// that several edges can live in one process.
type metrics struct {
	reg           *prometheus.Registry
	servedBytes   *prometheus.CounterVec
	requests      *prometheus.CounterVec
	originReqs    prometheus.Counter
	originBytes   prometheus.Counter
	peerRequests  *prometheus.CounterVec
	peerBytes     prometheus.Counter
	segmentReads  *prometheus.CounterVec
	corruptShards *prometheus.CounterVec
	fills         *prometheus.CounterVec
	pushes        *prometheus.CounterVec
	hedges        prometheus.Counter
	repairs       prometheus.Counter
}

func newMetrics(e *Edge) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		servedBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_served_bytes_total", Help: "Body bytes sent to clients, by where they came from (memory, disk, peer, origin).",
		}, []string{"source"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_requests_total", Help: "Client requests, by method and status code.",
		}, []string{"method", "code"}),
		originReqs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shoal_origin_requests_total", Help: "Requests sent to the origin (HEAD, ranged GET and forwarded requests).",
		}),
		originBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shoal_origin_bytes_total", Help: "Response body bytes received from the origin.",
		}),
		peerRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_peer_requests_total", Help: "Requests sent to peers, by op and result.",
		}, []string{"op", "result"}),
		peerBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shoal_peer_bytes_total", Help: "Body bytes received from peers (shards, segments, records).",
		}),
		segmentReads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_segment_reads_total", Help: "Segments read for clients, by the tier that had them.",
		}, []string{"source"}),
		corruptShards: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_corrupt_shards_total", Help: "Shards that failed verification and were dropped, by where they were found (store, peer).",
		}, []string{"where"}),
		fills: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_fills_total", Help: "Segment fills this edge ran as coordinator, by what satisfied them.",
		}, []string{"source"}),
		pushes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_shard_pushes_total", Help: "Shards pushed to their holders after a fill, by result.",
		}, []string{"result"}),
		repairs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shoal_shard_repairs_total", Help: "Own shards rebuilt from a decoded segment because the store had lost them.",
		}),
		hedges: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shoal_hedged_requests_total", Help: "Extra shard requests sent because the first ones were slow or failed.",
		}),
	}
	m.reg.MustRegister(m.servedBytes, m.requests, m.originReqs, m.originBytes, m.peerRequests, m.peerBytes,
		m.segmentReads, m.corruptShards, m.fills, m.pushes, m.hedges, m.repairs,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "shoal_memory_cache_bytes", Help: "Bytes of decoded segments in the memory tier.",
		}, func() float64 { b, _, _ := e.mem.Stats(); return float64(b) }),
		storeGauge("shoal_store_bytes", "Bytes of shards in this edge's shard store.", e, func(s StoreStats) float64 { return float64(s.Bytes) }),
		storeGauge("shoal_store_limit_bytes", "The shard store's byte budget (--disk-cache).", e, func(s StoreStats) float64 { return float64(s.Limit) }),
		storeGauge("shoal_store_shards", "Shards in this edge's shard store.", e, func(s StoreStats) float64 { return float64(s.Shards) }),
		storeGauge("shoal_store_writable", "1 while the shard store stores, 0 while the disk refuses writes (full, read-only, failing).", e, func(s StoreStats) float64 {
			if s.Writable {
				return 1
			}
			return 0
		}),
		storeCounter("shoal_store_writes_total", "Shards written to the store.", e, func(s StoreStats) float64 { return float64(s.Writes) }),
		storeCounter("shoal_store_write_errors_total", "Shard and record writes that failed.", e, func(s StoreStats) float64 { return float64(s.WriteErrors) }),
		storeCounter("shoal_store_writes_skipped_total", "Shards not stored because the disk was refusing writes.", e, func(s StoreStats) float64 { return float64(s.Skipped) }),
		storeCounter("shoal_store_evictions_total", "Shards evicted to stay within the byte budget.", e, func(s StoreStats) float64 { return float64(s.Evictions) }),
		storeCounter("shoal_store_scrubbed_bytes_total", "Bytes read and verified by the background scrub.", e, func(s StoreStats) float64 { return float64(s.ScrubbedBytes) }),
		storeCounter("shoal_store_scrubbed_shards_total", "Shards read and verified by the background scrub.", e, func(s StoreStats) float64 { return float64(s.ScrubbedShards) }),
		storeCounter("shoal_store_scrub_passes_total", "Complete passes of the background scrub over the store.", e, func(s StoreStats) float64 { return float64(s.ScrubPasses) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "shoal_peers", Help: "Members of the fleet other than this edge.",
		}, func() float64 { return float64(len(e.node.Members()) - 1) }),
	)
	for _, s := range []string{srcMemory, srcDisk, srcPeer, srcOrigin} {
		m.servedBytes.WithLabelValues(s)
	}
	return m
}

func storeGauge(name, help string, e *Edge, f func(StoreStats) float64) prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 { return f(e.store.Stats()) })
}

func storeCounter(name, help string, e *Edge, f func(StoreStats) float64) prometheus.Collector {
	return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return f(e.store.Stats()) })
}

// countingTransport counts requests to the origin and the body bytes read
// from its responses.
type countingTransport struct {
	next  http.RoundTripper
	reqs  prometheus.Counter
	bytes prometheus.Counter
}

func (t *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	t.reqs.Inc()
	resp, err := t.next.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	body := &countingBody{ReadCloser: resp.Body, n: t.bytes}
	if rw, ok := resp.Body.(io.ReadWriteCloser); ok {
		// A 101 Switching Protocols body is the upgraded connection; the
		// reverse proxy needs to write to it.
		resp.Body = &countingRWBody{countingBody: body, w: rw}
	} else {
		resp.Body = body
	}
	return resp, nil
}

type countingRWBody struct {
	*countingBody
	w io.Writer
}

func (b *countingRWBody) Write(p []byte) (int, error) { return b.w.Write(p) }

type countingBody struct {
	io.ReadCloser
	n prometheus.Counter
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(float64(n))
	return n, err
}

// Stats is a snapshot of an edge's main counters.
type Stats struct {
	// Served is body bytes sent to clients, by source: memory, disk, peer,
	// origin.
	Served map[string]int64
	// OriginRequests and OriginBytes count requests to the origin and the
	// body bytes it sent.
	OriginRequests, OriginBytes int64
	// PeerBytes counts body bytes received from peers.
	PeerBytes int64
}

// Stats returns the current values of the edge's main counters, as
// /metrics reports them.
func (e *Edge) Stats() Stats {
	s := Stats{Served: map[string]int64{}}
	fams, err := e.m.reg.Gather()
	if err != nil {
		e.log.Warn("gathering metrics", "err", err)
	}
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			v := int64(m.GetCounter().GetValue())
			switch f.GetName() {
			case "shoal_served_bytes_total":
				for _, l := range m.GetLabel() {
					if l.GetName() == "source" {
						s.Served[l.GetValue()] = v
					}
				}
			case "shoal_origin_requests_total":
				s.OriginRequests = v
			case "shoal_origin_bytes_total":
				s.OriginBytes = v
			case "shoal_peer_bytes_total":
				s.PeerBytes = v
			}
		}
	}
	return s
}
