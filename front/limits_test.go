package front

import (
	"testing"
	"testing/synctest"
	"time"
)

func TestRateLimiter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rl := newRateLimiter(10, 5)
		allowed := func(ip string, n int) int {
			ok := 0
			for range n {
				if rl.allow(ip) {
					ok++
				}
			}
			return ok
		}
		if got := allowed("a", 20); got != 5 {
			t.Fatalf("a burst of 20: %d allowed, want the burst of 5", got)
		}
		if got := allowed("b", 3); got != 3 {
			t.Fatalf("another address: %d of 3 allowed", got)
		}
		time.Sleep(500 * time.Millisecond) // 5 tokens back at 10/s
		if got := allowed("a", 20); got != 5 {
			t.Fatalf("after 0.5s: %d allowed, want 5", got)
		}
		time.Sleep(time.Hour)
		if got := allowed("a", 20); got != 5 {
			t.Fatalf("after an hour: %d allowed, want the burst of 5, no more", got)
		}
	})
}

func TestRateLimiterBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rl := newRateLimiter(1000, 1)
		for i := range maxBuckets + 10 {
			rl.allow(string(rune(i)))
			if i%1000 == 0 {
				time.Sleep(time.Millisecond)
			}
		}
		if n := len(rl.buckets); n > maxBuckets {
			t.Fatalf("%d buckets kept, want at most %d", n, maxBuckets)
		}
	})
}
