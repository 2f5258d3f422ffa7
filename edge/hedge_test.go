package edge

import (
	"testing"
	"time"
)

func TestHedgeTimerLearns(t *testing.T) {
	h := newHedgeTimer(0)
	if got := h.delay(); got != hedgeInitial {
		t.Fatalf("before samples: %v, want %v", got, hedgeInitial)
	}
	for i := range 100 {
		d := 4 * time.Millisecond
		if i%50 == 0 {
			d = 300 * time.Millisecond // two outliers in a hundred: above the 95th
		}
		h.observe(d)
	}
	if got := h.delay(); got != 5*time.Millisecond {
		t.Errorf("p95 of 4ms fetches ×1.25: got %v, want 5ms", got)
	}
	// Slow links, not a slow peer: 3s per shard fetch. A hedge after the
	// old cap of 1s would double nearly every request.
	for range 256 {
		h.observe(3 * time.Second)
	}
	if got, want := h.delay(), 3750*time.Millisecond; got != want {
		t.Errorf("slow links: got %v, want %v (×1.25, not capped at 1s)", got, want)
	}
	for range 256 {
		h.observe(time.Minute)
	}
	if got := h.delay(); got != hedgeMax {
		t.Errorf("slow fleet: got %v, want the cap %v", got, hedgeMax)
	}
	if got := newHedgeTimer(7 * time.Millisecond).delay(); got != 7*time.Millisecond {
		t.Errorf("fixed: got %v", got)
	}
}
