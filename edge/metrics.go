package edge

import (
	"io"
	"math"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	dto "github.com/prometheus/client_model/go"

	"github.com/shoalcdn/shoal/erasure"
	"github.com/shoalcdn/shoal/internal/sizedlru"
	"github.com/shoalcdn/shoal/store"
	"github.com/shoalcdn/shoal/swarm"
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
	placedFills   prometheus.Counter
	streamPlaced  *prometheus.CounterVec
	abandoned     prometheus.Counter
	hedges        prometheus.Counter
	hedgesWon     prometheus.Counter
	retries       prometheus.Counter
	repairs       prometheus.Counter

	requestDuration *prometheus.HistogramVec
	segmentDuration *prometheus.HistogramVec
	peerDuration    *prometheus.HistogramVec
	originDuration  prometheus.Histogram

	// The children the serving path uses on every request, looked up once
	// (WithLabelValues hashes its labels and takes a lock each time). Each
	// is made on first use, so that /metrics lists what happened, as
	// before.
	served      [numSources]prometheus.Counter
	reads       [numSources]lazyChild[prometheus.Counter]
	segDuration [numSources]lazyChild[prometheus.Observer]
	reqDuration [numMethods]lazyChild[prometheus.Observer]
	reqCount    [numMethods][numCodes]lazyChild[prometheus.Counter]
}

// lazyChild is a metric vector's child, made on first use.
type lazyChild[T any] struct{ p atomic.Pointer[T] }

func (c *lazyChild[T]) get(make func() T) T {
	if p := c.p.Load(); p != nil {
		return *p
	}
	v := make()
	c.p.Store(&v) // a race makes the same child twice: the vector dedups
	return v
}

// numMethods counts the labels of methodSlot; numCodes covers the status
// codes 100 to 599. (numSources, the tiers of sourceSlot, is status.go's.)
const (
	numMethods = 8
	numCodes   = 500
)

// sources are the source labels, in sourceSlot's order.
var sources = [numSources]string{srcMemory, srcDisk, srcPeer, srcOrigin}

// servedFrom is the served-bytes counter of src.
func (m *metrics) servedFrom(src string) prometheus.Counter {
	i := sourceSlot(src)
	if sources[i] != src {
		return m.servedBytes.WithLabelValues(src)
	}
	return m.served[i]
}

// methodSlot numbers the method labels of the requests metrics: the
// methods the edge knows, and OTHER for any other (a client may send any
// token as a method, and each would otherwise be a series of its own).
func methodSlot(method string) (int, string) {
	switch method {
	case http.MethodGet:
		return 0, http.MethodGet
	case http.MethodHead:
		return 1, http.MethodHead
	case http.MethodPost:
		return 2, http.MethodPost
	case http.MethodPut:
		return 3, http.MethodPut
	case http.MethodDelete:
		return 4, http.MethodDelete
	case http.MethodOptions:
		return 5, http.MethodOptions
	case http.MethodPatch:
		return 6, http.MethodPatch
	}
	return 7, "OTHER"
}

// segmentRead is the segment-reads counter of src.
func (m *metrics) segmentRead(src string) prometheus.Counter {
	i := sourceSlot(src)
	if sources[i] != src {
		return m.segmentReads.WithLabelValues(src)
	}
	return m.reads[i].get(func() prometheus.Counter { return m.segmentReads.WithLabelValues(src) })
}

// segmentTime is the segment-read-duration histogram of src.
func (m *metrics) segmentTime(src string) prometheus.Observer {
	i := sourceSlot(src)
	if sources[i] != src {
		return m.segmentDuration.WithLabelValues(src)
	}
	return m.segDuration[i].get(func() prometheus.Observer { return m.segmentDuration.WithLabelValues(src) })
}

// requestTime is the request-duration histogram of method.
func (m *metrics) requestTime(method string) prometheus.Observer {
	i, label := methodSlot(method)
	return m.reqDuration[i].get(func() prometheus.Observer { return m.requestDuration.WithLabelValues(label) })
}

// request is the requests counter of method and code.
func (m *metrics) request(method string, code int) prometheus.Counter {
	i, label := methodSlot(method)
	if code < 100 || code >= 100+numCodes {
		return m.requests.WithLabelValues(label, strconv.Itoa(code))
	}
	return m.reqCount[i][code-100].get(func() prometheus.Counter { return m.requests.WithLabelValues(label, strconv.Itoa(code)) })
}

// latencyBuckets span a loopback shard fetch (≈1 ms) to a slow origin (30 s).
var latencyBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

// newMetrics returns the edge's counters and histograms, registered;
// watch adds the gauges read from the memory tier, store and swarm once
// those exist.
func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		servedBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_served_bytes_total", Help: "Body bytes sent to clients, by where they came from (memory, disk, peer, origin).",
		}, []string{"source"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_requests_total", Help: "Client requests, by method and status code.",
		}, []string{"method", "code"}),
		originReqs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shoal_origin_requests_total", Help: "Requests sent to the origin (fill GETs, forwarded requests, ranged refills, and with --ranged-fills or --trust-key HEAD lookups).",
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
		placedFills: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shoal_fills_placed_total", Help: "Fills answered to a peer with the descriptor alone, the segment's shards being at their holders (the peer reads them there).",
		}),
		streamPlaced: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_streamed_segments_placed_total", Help: "Segments this edge cut from a streamed fill, by who placed their shards: their coordinator (sent the segment once), or this edge (the coordinator failed).",
		}, []string{"by"}),
		abandoned: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shoal_fills_abandoned_total", Help: "Fills at a segment coordinator given up because it stopped answering probes (then asked of the next rank).",
		}),
		repairs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shoal_shard_repairs_total", Help: "Own shards rebuilt from a decoded segment because the store had lost them.",
		}),
		hedges: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shoal_hedged_requests_total", Help: "Extra shard requests sent because the first ones were slow (the hedge delay passed).",
		}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shoal_shard_retries_total", Help: "Shard requests sent to another holder because one failed (not found, error, corrupt).",
		}),
		hedgesWon: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shoal_hedged_requests_won_total", Help: "Extra shard requests whose shard completed a segment read.",
		}),
		requestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "shoal_request_duration_seconds", Help: "Client requests, from arrival to the last byte sent, by method.", Buckets: latencyBuckets,
		}, []string{"method"}),
		segmentDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "shoal_segment_read_duration_seconds", Help: "Segment reads for clients, by the tier that had the segment.", Buckets: latencyBuckets,
		}, []string{"source"}),
		peerDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "shoal_peer_request_duration_seconds", Help: "Requests to peers (shard fetches and pushes, lookups, fills), by op and result.", Buckets: latencyBuckets,
		}, []string{"op", "result"}),
		originDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "shoal_origin_request_duration_seconds", Help: "Requests to the origin, until the response body is read.", Buckets: latencyBuckets,
		}),
	}
	m.reg.MustRegister(m.servedBytes, m.requests, m.originReqs, m.originBytes, m.peerRequests, m.peerBytes,
		m.segmentReads, m.corruptShards, m.fills, m.pushes, m.placedFills, m.streamPlaced, m.abandoned, m.hedges, m.hedgesWon, m.retries, m.repairs,
		m.requestDuration, m.segmentDuration, m.peerDuration, m.originDuration,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "shoal_hit_ratio", Help: "Share of client body bytes this edge served without the origin (memory, disk, peers), since start.",
		}, func() float64 { return m.ratio(false) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "shoal_origin_offload_ratio", Help: "1 - origin body bytes / client body bytes served, since start: how much the fleet spared the origin.",
		}, func() float64 { return m.ratio(true) }),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	for i, s := range sources {
		m.served[i] = m.servedBytes.WithLabelValues(s)
	}
	return m
}

// watch registers the collectors that read the memory tier, the shard
// store and the swarm, each only when scraped. New calls it once they
// exist: the store and the swarm report to m as they are made.
func (m *metrics) watch(mem *sizedlru.Cache[erasure.SegmentID, *memSegment], st *store.Store, node *swarm.Node) {
	m.reg.MustRegister(swarmCollector{node}, peerCollector{node},
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "shoal_memory_cache_bytes", Help: "Bytes of decoded segments in the memory tier.",
		}, func() float64 { b, _, _ := mem.Stats(); return float64(b) }),
		storeGauge("shoal_store_bytes", "Bytes of shards in this edge's shard store.", st, func(s store.Stats) float64 { return float64(s.Bytes) }),
		storeGauge("shoal_store_limit_bytes", "The shard store's byte budget (--disk-cache).", st, func(s store.Stats) float64 { return float64(s.Limit) }),
		storeGauge("shoal_store_shards", "Shards in this edge's shard store.", st, func(s store.Stats) float64 { return float64(s.Shards) }),
		storeGauge("shoal_store_writable", "1 while the shard store stores, 0 while the disk refuses writes (full, read-only, failing).", st, func(s store.Stats) float64 {
			if s.Writable {
				return 1
			}
			return 0
		}),
		storeCounter("shoal_store_writes_total", "Shards written to the store.", st, func(s store.Stats) float64 { return float64(s.Writes) }),
		storeCounter("shoal_store_write_errors_total", "Shard and record writes that failed.", st, func(s store.Stats) float64 { return float64(s.WriteErrors) }),
		storeCounter("shoal_store_writes_skipped_total", "Shards and records not stored because the disk was refusing writes.", st, func(s store.Stats) float64 { return float64(s.Skipped) }),
		storeCounter("shoal_store_evictions_total", "Shards evicted to stay within the byte budget.", st, func(s store.Stats) float64 { return float64(s.Evictions) }),
		storeCounter("shoal_store_scrubbed_bytes_total", "Bytes read and verified by the background scrub.", st, func(s store.Stats) float64 { return float64(s.ScrubbedBytes) }),
		storeCounter("shoal_store_scrubbed_shards_total", "Shards read and verified by the background scrub.", st, func(s store.Stats) float64 { return float64(s.ScrubbedShards) }),
		storeCounter("shoal_store_scrub_passes_total", "Complete passes of the background scrub over the store.", st, func(s store.Stats) float64 { return float64(s.ScrubPasses) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "shoal_peers", Help: "Members of the fleet other than this edge.",
		}, func() float64 { return float64(len(node.Members()) - 1) }),
	)
}

// ratio computes the hit ratio, or with offload the origin offload ratio,
// from the counters; NaN before anything was served.
func (m *metrics) ratio(offload bool) float64 {
	st := m.stats()
	var total int64
	for _, v := range st.Served {
		total += v
	}
	if total == 0 {
		return math.NaN()
	}
	if offload {
		return 1 - float64(st.OriginBytes)/float64(total)
	}
	return float64(total-st.Served[srcOrigin]) / float64(total)
}

// peerCollector reports each member's RTT and state at scrape time.
type peerCollector struct{ node *swarm.Node }

var (
	peerRTTDesc  = prometheus.NewDesc("shoal_peer_rtt_seconds", "Smoothed QUIC round-trip time to each connected peer.", []string{"peer"}, nil)
	peerUpDesc   = prometheus.NewDesc("shoal_peer_up", "1 for a peer that is not marked down, 0 while it is skipped after failures.", []string{"peer"}, nil)
	peerRecvDesc = prometheus.NewDesc("shoal_peer_connection_received_bytes", "QUIC bytes received on the current connection to each peer.", []string{"peer"}, nil)
)

func (c peerCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- peerRTTDesc
	ch <- peerUpDesc
	ch <- peerRecvDesc
}

func (c peerCollector) Collect(ch chan<- prometheus.Metric) {
	for _, p := range c.node.Peers() {
		if p.Self {
			continue
		}
		up := 1.0
		if p.Down {
			up = 0
		}
		ch <- prometheus.MustNewConstMetric(peerUpDesc, prometheus.GaugeValue, up, p.Addr)
		if p.Connected {
			ch <- prometheus.MustNewConstMetric(peerRTTDesc, prometheus.GaugeValue, p.RTT.Seconds(), p.Addr)
			ch <- prometheus.MustNewConstMetric(peerRecvDesc, prometheus.GaugeValue, float64(p.BytesReceived), p.Addr)
		}
	}
}

func storeGauge(name, help string, s *store.Store, f func(store.Stats) float64) prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 { return f(s.Stats()) })
}

func storeCounter(name, help string, s *store.Store, f func(store.Stats) float64) prometheus.Collector {
	return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return f(s.Stats()) })
}

// countingTransport counts requests to the origin, the body bytes read
// from its responses, and how long each took until its body was done.
type countingTransport struct {
	next     http.RoundTripper
	reqs     prometheus.Counter
	bytes    prometheus.Counter
	duration prometheus.Histogram
}

func (t *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	t.reqs.Inc()
	start := time.Now()
	resp, err := t.next.RoundTrip(r)
	if err != nil {
		t.duration.Observe(time.Since(start).Seconds())
		return nil, err
	}
	body := &countingBody{ReadCloser: resp.Body, n: t.bytes, done: func() { t.duration.Observe(time.Since(start).Seconds()) }}
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
	n    prometheus.Counter
	done func() // called once, at EOF or Close
	once sync.Once
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(float64(n))
	if err != nil {
		b.once.Do(b.done)
	}
	return n, err
}

func (b *countingBody) Close() error {
	b.once.Do(b.done)
	return b.ReadCloser.Close()
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
// /metrics reports them. It reads the counters directly (not through the
// registry), so collectors may call it.
func (e *Edge) Stats() Stats { return e.m.stats() }

func (m *metrics) stats() Stats {
	s := Stats{Served: map[string]int64{}}
	for i, src := range sources {
		s.Served[src] = counterOf(m.served[i])
	}
	s.OriginRequests = counterOf(m.originReqs)
	s.OriginBytes = counterOf(m.originBytes)
	s.PeerBytes = counterOf(m.peerBytes)
	return s
}

func counterOf(c prometheus.Counter) int64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return 0
	}
	return int64(m.GetCounter().GetValue())
}
