package latency

import (
	"slices"
	"sync"
	"time"
)

// HedgeTimer learns when to hedge a shard read from recent shard fetch
// latencies: an extra request goes out once a fetch has taken longer than
// the 95th percentile of the last fetches (times 1.25), so that about one
// read in twenty is hedged when peers behave, and a slow peer is worked
// around after a delay that fits the fleet, not a constant.
type HedgeTimer struct {
	fixed time.Duration // non-zero: always this

	mu      sync.Mutex
	samples [256]time.Duration
	n, next int
	cached  time.Duration
	stale   bool
}

const (
	hedgeInitial = 100 * time.Millisecond // until enough samples
	hedgeMin     = 2 * time.Millisecond
	// hedgeMax was 1s: over slow links (a 1 MiB shard takes seconds on a
	// congested 25 Mbit/s uplink) every read then hedged, adding a copy's
	// load to the links that were the bottleneck (10–12% of shard
	// requests hedged in the emulated network, 4–5% with this cap).
	hedgeMax     = 10 * time.Second
	hedgeSamples = 32
)

// NewHedgeTimer returns a HedgeTimer that learns, or with fixed not zero
// always answers fixed (Config.HedgeDelay of package edge).
func NewHedgeTimer(fixed time.Duration) *HedgeTimer { return &HedgeTimer{fixed: fixed} }

// Observe records how long a successful shard fetch took.
func (h *HedgeTimer) Observe(d time.Duration) {
	if h.fixed != 0 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.samples[h.next] = d
	h.next = (h.next + 1) % len(h.samples)
	h.n = min(h.n+1, len(h.samples))
	h.stale = true
}

// Delay returns how long to wait before hedging.
func (h *HedgeTimer) Delay() time.Duration {
	if h.fixed != 0 {
		return h.fixed
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.n < hedgeSamples {
		return hedgeInitial
	}
	if h.stale {
		s := slices.Clone(h.samples[:h.n])
		slices.Sort(s)
		p95 := s[(len(s)*95)/100]
		h.cached = min(max(p95*5/4, hedgeMin), hedgeMax)
		h.stale = false
	}
	return h.cached
}
