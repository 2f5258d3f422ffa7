package latency

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestTransferClockLearns(t *testing.T) {
	const base = 5 * time.Second
	c := NewTransferClock(base)
	for range transferMinSamples - 1 {
		c.observe(1<<20, 30*time.Second)
	}
	if got := c.Timeout(1 << 20); got != base {
		t.Fatalf("before %d samples: %v, want PeerTimeout %v", transferMinSamples, got, base)
	}
	// Fast links: a 1 MiB shard in 10ms, so 4 × 10ms is far below the floor.
	c = NewTransferClock(base)
	for range 100 {
		c.observe(1<<20, 10*time.Millisecond)
	}
	if got := c.Timeout(1 << 20); got != base {
		t.Errorf("fast links: %v, want PeerTimeout %v", got, base)
	}
	// Slow links: 1 MiB in 3s (a 25 Mbit/s uplink shared by a few
	// transfers): four times that, scaled to the size asked about.
	for range transferSamples {
		c.observe(1<<20, 3*time.Second)
	}
	if got, want := c.Timeout(1<<20), 12*time.Second; got != want {
		t.Errorf("slow links, 1 MiB: %v, want %v", got, want)
	}
	if got, want := c.Timeout(2<<20), 24*time.Second; got != want {
		t.Errorf("slow links, 2 MiB: %v, want %v", got, want)
	}
	if got := c.Timeout(100 << 20); got != maxTransferTimeout {
		t.Errorf("100 MiB: %v, want the cap %v", got, maxTransferTimeout)
	}
	// Small transfers say nothing about throughput.
	c = NewTransferClock(base)
	for range 100 {
		c.observe(1<<10, time.Minute)
	}
	if got := c.Timeout(1 << 20); got != base {
		t.Errorf("after small transfers only: %v, want %v", got, base)
	}
	// A PeerTimeout above the cap stays the floor.
	if got := NewTransferClock(2 * time.Minute).Timeout(1 << 20); got != 2*time.Minute {
		t.Errorf("long PeerTimeout: %v", got)
	}
}

// TestTransferClockCountsTimeouts: a transfer that ran out of its own time
// is a sample of at least that long, so repeated timeouts stretch the
// next; a cancellation or another failure is no sample.
func TestTransferClockCountsTimeouts(t *testing.T) {
	c := NewTransferClock(100 * time.Millisecond)
	other := errors.New("connection refused")
	for range 20 {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		c.ObserveTransfer(ctx, 1<<20, time.Now().Add(-time.Second), context.Canceled)
		c.ObserveTransfer(context.Background(), 1<<20, time.Now().Add(-time.Second), other)
	}
	if c.n != 0 {
		t.Fatalf("cancelled and failed transfers gave %d samples, want 0", c.n)
	}
	// A parent's deadline still ahead: not this transfer's timeout.
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	c.ObserveTransfer(ctx, 1<<20, time.Now().Add(-time.Second), context.DeadlineExceeded)
	cancel()
	if c.n != 0 {
		t.Fatalf("a deadline error under a live deadline gave a sample")
	}
	prev := c.Timeout(1 << 20)
	for round := range 3 {
		to := c.Timeout(1 << 20)
		for range transferMinSamples {
			ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Millisecond))
			c.ObserveTransfer(ctx, 1<<20, time.Now().Add(-to), fmt.Errorf("get shard: %w", context.DeadlineExceeded))
			cancel()
		}
		next := c.Timeout(1 << 20)
		if next <= prev {
			t.Fatalf("round %d: after timeouts of %v the timeout is %v, want longer", round, to, next)
		}
		prev = next
	}
}
