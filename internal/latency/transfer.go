package latency

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"
)

// Shard transfer timeouts that follow the links. A fixed PeerTimeout (5 s)
// fits fast links, but a flash crowd over slow ones (25 Mbit/s uplinks,
// each carrying several shard reads and pushes at once) takes longer than
// that for a live peer to send a 1 MiB shard: the request was cancelled,
// its bytes wasted, and it was sent again over the same congested links,
// so slow sites retried and waited 10–19 s for a first byte
// (bench/README.md). A dead peer does not need the timeout: its QUIC
// connection ends after the idle timeout (3 s), and a slow one is worked
// around by hedging. So the timeout of a transfer is learned from the
// transfers this edge saw complete: PeerTimeout, or four times the time the
// 95th percentile of recent transfers took per byte, for this many bytes,
// whichever is longer, at most maxTransferTimeout. A transfer that runs
// out of time counts as a sample of what it had taken by then, so
// timeouts raise the next timeout instead of repeating.

const (
	// transferSamples is how many recent transfers the timeout follows.
	transferSamples = 128
	// transferMinSamples: until then the timeout is PeerTimeout.
	transferMinSamples = 8
	// transferMinBytes: smaller transfers say more about round trips
	// than about the links' throughput.
	transferMinBytes = 32 << 10
	// transferHeadroom is how many times the 95th percentile's time a
	// transfer gets.
	transferHeadroom = 4
	// maxTransferTimeout caps a learned timeout (PeerTimeout if longer).
	maxTransferTimeout = 60 * time.Second
)

// TransferClock learns shard transfer timeouts; see above.
type TransferClock struct {
	base time.Duration // PeerTimeout: the least a transfer gets

	mu      sync.Mutex
	perByte [transferSamples]float64 // seconds per byte
	n, next int
	cached  float64 // the 95th percentile of perByte
	stale   bool
}

// NewTransferClock returns a TransferClock whose timeouts are at least
// base (Config.PeerTimeout of package edge).
func NewTransferClock(base time.Duration) *TransferClock { return &TransferClock{base: base} }

// observe records that a transfer of size bytes took took (or ran out of
// time after took).
func (c *TransferClock) observe(size int, took time.Duration) {
	if size < transferMinBytes || took <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.perByte[c.next] = took.Seconds() / float64(size)
	c.next = (c.next + 1) % len(c.perByte)
	c.n = min(c.n+1, len(c.perByte))
	c.stale = true
}

// Timeout returns how long a transfer of size bytes may take.
func (c *TransferClock) Timeout(size int) time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n < transferMinSamples {
		return c.base
	}
	if c.stale {
		s := slices.Clone(c.perByte[:c.n])
		slices.Sort(s)
		c.cached = s[(len(s)*95)/100]
		c.stale = false
	}
	d := time.Duration(transferHeadroom * c.cached * float64(size) * float64(time.Second))
	return max(c.base, min(d, maxTransferTimeout))
}

// ObserveTransfer records a finished transfer of size bytes that started
// at start, under ctx (the transfer's own deadline): a success, or one
// that ran out of its time (a sample of at least that long); other
// failures say nothing of the links.
func (c *TransferClock) ObserveTransfer(ctx context.Context, size int, start time.Time, err error) {
	switch {
	case err == nil:
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded):
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) > 0 {
			return // not this transfer's deadline
		}
	default:
		return
	}
	c.observe(size, time.Since(start))
}
