package edge

import (
	"context"
	"sync"
	"time"
)

// tasks is the edge's background work: goroutines that Shutdown cancels
// and waits for (store writes, replication, pushes, refreshes, the repair
// and purge-sync loops), and the bound on background store writes. The
// roles get it as their background (segments.go).
type tasks struct {
	ctx    context.Context // cancelled by stop
	cancel context.CancelFunc
	// timeout bounds goBackground's work: Config.PeerTimeout.
	timeout time.Duration
	disk    chan struct{} // background store writes in flight

	mu     sync.Mutex // orders go's Add before wait's Wait
	closed bool
	wg     sync.WaitGroup
}

var _ background = (*tasks)(nil)

func newTasks(timeout time.Duration, diskWrites int) *tasks {
	t := &tasks{timeout: timeout, disk: make(chan struct{}, diskWrites)}
	t.ctx, t.cancel = context.WithCancel(context.Background())
	return t
}

// goBackground runs f on a tracked goroutine with a context bounded by
// the peer timeout that stop cancels. Once stop has been called, it runs
// nothing.
func (t *tasks) goBackground(f func(ctx context.Context)) {
	t.goTracked(t.timeout, f)
}

// goTracked is goBackground with its own time limit (0: none but
// stop's). It reports whether f was started.
func (t *tasks) goTracked(timeout time.Duration, f func(ctx context.Context)) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return false
	}
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		ctx, cancel := t.ctx, context.CancelFunc(func() {})
		if timeout > 0 {
			ctx, cancel = context.WithTimeout(ctx, timeout)
		}
		defer cancel()
		f(ctx)
	}()
	return true
}

// diskWrite runs f in the background once fewer than cap(disk) store
// writes are running: at once or not at all, or with wait, after waiting
// for a slot (backpressure from the disk), and reports whether it did.
func (t *tasks) diskWrite(wait bool, f func()) bool {
	if wait {
		select {
		case t.disk <- struct{}{}:
		case <-t.ctx.Done():
			return false
		}
	} else {
		select {
		case t.disk <- struct{}{}:
		default:
			return false
		}
	}
	t.goBackground(func(context.Context) {
		defer func() { <-t.disk }()
		f()
	})
	return true
}

// stop cancels the background work and starts no more.
func (t *tasks) stop() {
	t.cancel()
	t.mu.Lock()
	t.closed = true
	t.mu.Unlock()
}

// wait waits for the background work to end, or for ctx.
func (t *tasks) wait(ctx context.Context) {
	done := make(chan struct{})
	go func() { t.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
}
