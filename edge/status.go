package edge

import (
	"context"
	"embed"
	"encoding/json"
	"net/http"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/shoalcdn/shoal/erasure"
	"github.com/shoalcdn/shoal/internal/sizedlru"
	"github.com/shoalcdn/shoal/store"
	"github.com/shoalcdn/shoal/swarm"
)

// The status page is the admin listener's "/": a static page (status.html,
// status.css, status.js, embedded in the binary, no external assets) that
// polls /status.json every 2 s and draws this edge, its peers, where its
// bytes came from over the last 15 minutes, and its hottest objects. The
// page itself holds no data and is public like the probes, because a
// browser cannot send a bearer token when it navigates; /status.json names
// objects and peers, so it sits behind the admin token like /metrics. The
// page takes the token from its URL fragment (#token=...), which browsers
// never send to the server, and sends it as "Authorization: Bearer".

const (
	// statusInterval is how often the sampler reads the counters.
	statusInterval = 5 * time.Second
	// statusReadings is how many readings the history keeps: 15 minutes.
	statusReadings = 180
	// statusHot is how many hot objects /status.json lists.
	statusHot = 20
)

//go:embed status.html status.css status.js
var statusFiles embed.FS

// Indexes of the sources in counters.served, in the page's stacking order.
const (
	idxMemory = iota
	idxDisk
	idxPeer
	idxOrigin
	numSources
)

func sourceIndex(src string) int {
	switch src {
	case srcMemory:
		return idxMemory
	case srcDisk:
		return idxDisk
	case srcPeer:
		return idxPeer
	case srcOrigin:
		return idxOrigin
	}
	return -1
}

// counters is one reading of the cumulative counters the page charts.
type counters struct {
	t           time.Time
	served      [numSources]int64
	originBytes int64
	originReqs  int64
	requests    int64 // client requests
}

func (c counters) servedTotal() int64 {
	var n int64
	for _, v := range c.served {
		n += v
	}
	return n
}

// readCounters reads the counters the page charts, as Stats and /metrics
// report them. It does not gather the whole registry: the page polls it
// every 2 s, and collectors may call Stats.
func (m *metrics) readCounters(now time.Time) counters {
	st := m.stats()
	c := counters{t: now, originBytes: st.OriginBytes, originReqs: st.OriginRequests}
	for src, v := range st.Served {
		if i := sourceIndex(src); i >= 0 {
			c.served[i] = v
		}
	}
	ch := make(chan prometheus.Metric, 16)
	go func() {
		m.requests.Collect(ch)
		close(ch)
	}()
	for metric := range ch {
		var d dto.Metric
		if metric.Write(&d) == nil {
			c.requests += int64(d.GetCounter().GetValue())
		}
	}
	return c
}

// history is a ring of the last statusReadings readings.
type history struct {
	mu   sync.Mutex
	buf  [statusReadings]counters
	next int // where the next reading goes
	n    int // readings held
}

func (h *history) add(c counters) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.buf[h.next] = c
	h.next = (h.next + 1) % len(h.buf)
	h.n = min(h.n+1, len(h.buf))
}

// statusPoint is what happened in one interval between two readings.
type statusPoint struct {
	// T is the end of the interval, in Unix seconds; Seconds its length.
	T       int64   `json:"t"`
	Seconds float64 `json:"seconds"`
	// Bytes served to clients in the interval, by source.
	Memory int64 `json:"memory"`
	Disk   int64 `json:"disk"`
	Peer   int64 `json:"peer"`
	Origin int64 `json:"origin"`
	// OriginBytes were received from the origin; Requests are client
	// requests.
	OriginBytes int64 `json:"origin_bytes"`
	Requests    int64 `json:"requests"`
	// Partial marks the interval still running: from the last reading to
	// now.
	Partial bool `json:"partial,omitempty"`
}

func interval(a, b counters) statusPoint {
	d := func(x, y int64) int64 { return max(0, y-x) }
	return statusPoint{
		T:           b.t.Unix(),
		Seconds:     b.t.Sub(a.t).Round(time.Millisecond).Seconds(),
		Memory:      d(a.served[idxMemory], b.served[idxMemory]),
		Disk:        d(a.served[idxDisk], b.served[idxDisk]),
		Peer:        d(a.served[idxPeer], b.served[idxPeer]),
		Origin:      d(a.served[idxOrigin], b.served[idxOrigin]),
		OriginBytes: d(a.originBytes, b.originBytes),
		Requests:    d(a.requests, b.requests),
	}
}

// series returns the intervals between the readings held, oldest first,
// then the running one from the last reading to now.
func (h *history) series(now counters) []statusPoint {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]statusPoint, 0, h.n)
	start := (h.next - h.n + len(h.buf)) % len(h.buf)
	for i := 1; i < h.n; i++ {
		out = append(out, interval(h.buf[(start+i-1)%len(h.buf)], h.buf[(start+i)%len(h.buf)]))
	}
	if h.n > 0 {
		p := interval(h.buf[(start+h.n-1)%len(h.buf)], now)
		p.Partial = true
		out = append(out, p)
	}
	return out
}

// statusConfig is what the status page reads; New fills it, and Admin
// makes a page from it.
type statusConfig struct {
	metrics *metrics
	hot     *hotObjects
	node    *swarm.Node
	mem     *sizedlru.Cache[erasure.SegmentID, *memSegment]
	store   *store.Store
	layout  erasure.Layout
	// memoryLimit is Config.MemoryCache.
	memoryLimit int64
	ready       readiness
	bg          background // runs the sampler until Shutdown
}

// readiness is the edge's state as /readyz reports it: the flags of Edge
// that Serve, ServePeers and Drain set.
type readiness struct {
	draining, serving, peersUp *atomic.Bool
}

// state is "draining", "ready" or "starting".
func (r readiness) state() string {
	switch {
	case r.draining.Load():
		return "draining"
	case r.serving.Load() && r.peersUp.Load():
		return "ready"
	}
	return "starting"
}

// statusPage serves the status page and keeps its history. Each Admin
// handler has one, reading from when the handler was made.
type statusPage struct {
	statusConfig
	started time.Time
	hist    history
}

// newStatusPage takes the first reading now, so that everything served
// after Admin returns is in the chart, and samples every statusInterval
// until the edge shuts down.
func newStatusPage(cfg statusConfig) *statusPage {
	now := time.Now()
	s := &statusPage{statusConfig: cfg, started: now}
	s.hist.add(cfg.metrics.readCounters(now))
	cfg.bg.goTracked(0, s.sample)
	return s
}

func (s *statusPage) sample(ctx context.Context) {
	t := time.NewTicker(statusInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			s.hist.add(s.metrics.readCounters(now))
		}
	}
}

// The JSON of /status.json.
type (
	statusDoc struct {
		Node   statusNode    `json:"node"`
		Peers  []statusPeer  `json:"peers"`
		Totals statusTotals  `json:"totals"`
		Series []statusPoint `json:"series"`
		Hot    []HotObject   `json:"hot"`
	}
	statusNode struct {
		Self    string `json:"self"`
		Version string `json:"version,omitempty"`
		// State is "ready", "starting" or "draining", as /readyz says.
		State string `json:"state"`
		// Now is the edge's clock in Unix seconds; Uptime is seconds since
		// the admin handler was made, which shoal does as the edge starts.
		Now         int64       `json:"now"`
		Uptime      float64     `json:"uptime_seconds"`
		Members     int         `json:"members"`
		SegmentSize int64       `json:"segment_size"`
		K           int         `json:"k"`
		M           int         `json:"m"`
		Memory      statusMem   `json:"memory"`
		Store       statusStore `json:"store"`
	}
	statusMem struct {
		Bytes    int64 `json:"bytes"`
		Limit    int64 `json:"limit"`
		Segments int   `json:"segments"`
	}
	statusStore struct {
		Bytes    int64  `json:"bytes"`
		Limit    int64  `json:"limit"`
		Shards   int    `json:"shards"`
		Writable bool   `json:"writable"`
		Reason   string `json:"reason,omitempty"`
	}
	statusPeer struct {
		Addr      string  `json:"addr"`
		Self      bool    `json:"self"`
		Connected bool    `json:"connected"`
		RTTMillis float64 `json:"rtt_ms"`
		Down      bool    `json:"down"`
		// DownUntil is when a down peer is tried again, in Unix seconds.
		DownUntil     int64  `json:"down_until,omitempty"`
		BytesSent     uint64 `json:"bytes_sent"`
		BytesReceived uint64 `json:"bytes_received"`
		// Zone is the peer's zone; empty until the fleet knows zones.
		Zone string `json:"zone"`
		// LastError is the last failed connection with the peer, in
		// words (empty: none), LastErrorAt when, in Unix seconds.
		LastError   string `json:"last_error,omitempty"`
		LastErrorAt int64  `json:"last_error_at,omitempty"`
		// Incompatible marks a peer kept out for a layout that differs.
		Incompatible bool `json:"incompatible,omitempty"`
	}
	statusTotals struct {
		// Served is body bytes sent to clients by source (memory, disk,
		// peer, origin), since the process started.
		Served         map[string]int64 `json:"served"`
		ServedTotal    int64            `json:"served_total"`
		OriginBytes    int64            `json:"origin_bytes"`
		OriginRequests int64            `json:"origin_requests"`
		Requests       int64            `json:"requests"`
		// Offload is 1 - OriginBytes/ServedTotal, null before anything was
		// served. It is below zero when this edge fetched more from the
		// origin (as the coordinator of segments others served) than it
		// served itself.
		Offload *float64 `json:"offload"`
	}
)

func (s *statusPage) doc() statusDoc {
	now := s.metrics.readCounters(time.Now())
	d := statusDoc{Series: s.hist.series(now), Hot: s.hot.top(statusHot)}

	n := &d.Node
	n.Self = s.node.Self()
	n.Version = buildVersion()
	n.State = s.ready.state()
	n.Now = now.t.Unix()
	n.Uptime = now.t.Sub(s.started).Round(time.Second).Seconds()
	n.Members = len(s.node.Members())
	n.SegmentSize = s.layout.SegmentSize
	n.K, n.M = s.layout.Params.K, s.layout.Params.M
	n.Memory.Bytes, n.Memory.Segments, _ = s.mem.Stats()
	n.Memory.Limit = s.memoryLimit
	st := s.store.Stats()
	n.Store = statusStore{Bytes: st.Bytes, Limit: st.Limit, Shards: st.Shards, Writable: st.Writable, Reason: st.Reason}

	for _, p := range s.node.Peers() {
		sp := statusPeer{
			Addr: p.Addr, Self: p.Self, Connected: p.Connected, Down: p.Down,
			RTTMillis: float64(p.RTT.Microseconds()) / 1000,
			BytesSent: p.BytesSent, BytesReceived: p.BytesReceived,
			Zone: p.Member.Zone,
		}
		if p.Down {
			sp.DownUntil = p.DownUntil.Unix()
		}
		if p.LastError != nil {
			sp.LastError, sp.LastErrorAt = p.LastError.Error(), p.LastErrorAt.Unix()
		}
		if p.Incompatible {
			sp.Incompatible = true
			sp.LastError = "layout differs: " + s.node.Layout().Diff(p.Layout)
		}
		d.Peers = append(d.Peers, sp)
	}

	t := &d.Totals
	t.Served = map[string]int64{
		srcMemory: now.served[idxMemory], srcDisk: now.served[idxDisk],
		srcPeer: now.served[idxPeer], srcOrigin: now.served[idxOrigin],
	}
	t.ServedTotal = now.servedTotal()
	t.OriginBytes, t.OriginRequests, t.Requests = now.originBytes, now.originReqs, now.requests
	if t.ServedTotal > 0 {
		r := 1 - float64(t.OriginBytes)/float64(t.ServedTotal)
		t.Offload = &r
	}
	return d
}

// buildVersion is the main module's version from the build info, empty
// when unknown.
func buildVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok || bi.Main.Version == "" || bi.Main.Version == "(devel)" {
		return ""
	}
	return bi.Main.Version
}

func (s *statusPage) serveJSON(w http.ResponseWriter, r *http.Request) {
	b, err := json.Marshal(s.doc())
	if err != nil {
		http.Error(w, "encoding status: "+err.Error(), http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.Write(append(b, '\n'))
}

// statusCSP allows the page its own script, stylesheet and JSON and
// nothing else: no inline script, no other origin, no framing.
const statusCSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// serveStatusFile serves one embedded file of the page.
func serveStatusFile(name, contentType string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		b, err := statusFiles.ReadFile(name)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		h := w.Header()
		h.Set("Content-Type", contentType)
		h.Set("Content-Security-Policy", statusCSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")
		w.Write(b)
	}
}

// routes registers the page and its JSON on mux; the JSON behind token.
func (s *statusPage) routes(mux *http.ServeMux, token string) {
	mux.Handle("GET /{$}", serveStatusFile("status.html", "text/html; charset=utf-8"))
	mux.Handle("GET /status.css", serveStatusFile("status.css", "text/css; charset=utf-8"))
	mux.Handle("GET /status.js", serveStatusFile("status.js", "text/javascript; charset=utf-8"))
	mux.Handle("GET /status.json", requireToken(token, http.HandlerFunc(s.serveJSON)))
}
