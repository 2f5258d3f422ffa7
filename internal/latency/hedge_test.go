package latency

import (
	"testing"
	"time"
)

func TestHedgeTimerLearns(t *testing.T) {
	h := NewHedgeTimer(0)
	if got := h.Delay(); got != hedgeInitial {
		t.Fatalf("before samples: %v, want %v", got, hedgeInitial)
	}
	for i := range 100 {
		d := 4 * time.Millisecond
		if i%50 == 0 {
			d = 300 * time.Millisecond // two outliers in a hundred: above the 95th
		}
		h.Observe(d)
	}
	if got := h.Delay(); got != 5*time.Millisecond {
		t.Errorf("p95 of 4ms fetches ×1.25: got %v, want 5ms", got)
	}
	// Slow links, not a slow peer: 3s per shard fetch. A hedge after the
	// old cap of 1s would double nearly every request.
	for range 256 {
		h.Observe(3 * time.Second)
	}
	if got, want := h.Delay(), 3750*time.Millisecond; got != want {
		t.Errorf("slow links: got %v, want %v (×1.25, not capped at 1s)", got, want)
	}
	for range 256 {
		h.Observe(time.Minute)
	}
	if got := h.Delay(); got != hedgeMax {
		t.Errorf("slow fleet: got %v, want the cap %v", got, hedgeMax)
	}
	if got := NewHedgeTimer(7 * time.Millisecond).Delay(); got != 7*time.Millisecond {
		t.Errorf("fixed: got %v", got)
	}
}
