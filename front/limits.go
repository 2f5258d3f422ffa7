package front

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/quic-go/quic-go"
)

// connLimiter caps the open TCP connections of the listeners it wraps. At
// the cap, a new connection evicts the oldest one that is not in the middle
// of a request (a client that connected and sent nothing, or a keep-alive
// connection between requests); when every one is busy, the new one is
// closed. Idle hoarders cannot lock honest clients out, and the cap still
// bounds the file descriptors and goroutines that connections cost.
type connLimiter struct {
	max int
	m   *metrics

	mu    sync.Mutex
	conns map[*trackedConn]struct{}
	quic  map[*quic.Conn]*quicConn
	open  map[string]int // by listener
}

func newConnLimiter(max int, m *metrics) *connLimiter {
	return &connLimiter{max: max, m: m, conns: map[*trackedConn]struct{}{}, quic: map[*quic.Conn]*quicConn{}, open: map[string]int{}}
}

// trackedConn is an accepted connection the limiter knows.
type trackedConn struct {
	net.Conn
	lim      *connLimiter
	listener string
	since    time.Time      // when it last became idle (or was accepted)
	state    http.ConnState // guarded by lim.mu
	once     sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() { c.lim.remove(c) })
	return c.Conn.Close()
}

func (l *connLimiter) remove(c *trackedConn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.conns[c]; ok {
		delete(l.conns, c)
		l.open[c.listener]--
	}
}

// admit registers c, evicting or refusing as the cap demands. It reports
// whether c may be served.
func (l *connLimiter) admit(c *trackedConn) bool {
	l.mu.Lock()
	var victim *trackedConn
	if l.max > 0 && len(l.conns) >= l.max {
		for o := range l.conns {
			if (o.state == http.StateNew || o.state == http.StateIdle) && (victim == nil || o.since.Before(victim.since)) {
				victim = o
			}
		}
		if victim == nil {
			l.mu.Unlock()
			l.m.rejected.WithLabelValues("conn_limit").Inc()
			c.Conn.Close()
			return false
		}
		delete(l.conns, victim)
		l.open[victim.listener]--
		victim.once.Do(func() {}) // removed here already
	}
	l.conns[c] = struct{}{}
	l.open[c.listener]++
	l.mu.Unlock()
	if victim != nil {
		l.m.rejected.WithLabelValues("conn_evicted").Inc()
		victim.Conn.Close()
	}
	return true
}

// setState is http.Server.ConnState.
func (l *connLimiter) setState(c net.Conn, st http.ConnState) {
	var t *trackedConn
	for t == nil {
		switch x := c.(type) {
		case *trackedConn:
			t = x
		case interface{ NetConn() net.Conn }: // *tls.Conn, *framedConn
			c = x.NetConn()
		default:
			return
		}
	}
	l.mu.Lock()
	t.state = st
	if st == http.StateIdle {
		t.since = time.Now()
	}
	l.mu.Unlock()
}

func (l *connLimiter) openConns(listener string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open[listener]
}

// listener caps ln's connections; with maxHead > 0 it also follows their
// HTTP/1 framing (see framing).
func (l *connLimiter) listener(ln net.Listener, name string, maxHead int) net.Listener {
	return &limitListener{Listener: ln, lim: l, name: name, maxHead: maxHead}
}

type limitListener struct {
	net.Listener
	lim     *connLimiter
	name    string
	maxHead int
}

func (ln *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := ln.Listener.Accept()
		if err != nil {
			return nil, err
		}
		t := &trackedConn{Conn: c, lim: ln.lim, listener: ln.name, since: time.Now(), state: http.StateNew}
		if !ln.lim.admit(t) {
			continue
		}
		if ln.maxHead > 0 {
			return &framedConn{Conn: t, f: newFraming(ln.maxHead)}, nil
		}
		return t, nil
	}
}

// quicCapListener holds the QUIC connections of an HTTP/3 listener to the
// connection cap. QUIC connections are counted apart from TCP ones
// (listener "h3"), against the same number, and like TCP ones: at the cap
// a new connection evicts the oldest one with no request in flight (a
// client that connected and went quiet, or one between requests), which
// is closed with H3_NO_ERROR; when every one is in a request, the new one
// is closed with H3_EXCESSIVE_LOAD.
type quicCapListener struct {
	*quic.EarlyListener
	lim *connLimiter
}

// HTTP/3 error codes (RFC 9114 §8.1).
const (
	errH3NoError       = 0x0100
	errH3ExcessiveLoad = 0x0107
)

// quicConn is an accepted QUIC connection the limiter knows.
type quicConn struct {
	c      *quic.Conn
	active int       // requests in flight; guarded by connLimiter.mu
	since  time.Time // when it last became idle (or was accepted)
}

type quicConnKey struct{}

func (l *quicCapListener) Accept(ctx context.Context) (*quic.Conn, error) {
	for {
		c, err := l.EarlyListener.Accept(ctx)
		if err != nil {
			return nil, err
		}
		qc := &quicConn{c: c, since: time.Now()}
		if !l.lim.admitQUIC(qc) {
			c.CloseWithError(errH3ExcessiveLoad, "too many connections")
			continue
		}
		go func() {
			<-c.Context().Done()
			l.lim.mu.Lock()
			if l.lim.quic[c] == qc {
				delete(l.lim.quic, c)
				l.lim.open["h3"]--
			}
			l.lim.mu.Unlock()
		}()
		return c, nil
	}
}

// admitQUIC registers qc, evicting or refusing as the cap demands. It
// reports whether qc may be served.
func (l *connLimiter) admitQUIC(qc *quicConn) bool {
	l.mu.Lock()
	var victim *quicConn
	if l.max > 0 && len(l.quic) >= l.max {
		for _, o := range l.quic {
			if o.active == 0 && (victim == nil || o.since.Before(victim.since)) {
				victim = o
			}
		}
		if victim == nil {
			l.mu.Unlock()
			l.m.rejected.WithLabelValues("conn_limit").Inc()
			return false
		}
		delete(l.quic, victim.c)
		l.open["h3"]--
	}
	l.quic[qc.c] = qc
	l.open["h3"]++
	l.mu.Unlock()
	if victim != nil {
		l.m.rejected.WithLabelValues("conn_evicted").Inc()
		victim.c.CloseWithError(errH3NoError, "idle connection closed for a new one")
	}
	return true
}

// quicConnOf is the limiter's record of c, nil if it has none.
func (l *connLimiter) quicConnOf(c *quic.Conn) *quicConn {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.quic[c]
}

// quicBusy marks the start (+1) and end (-1) of a request on an HTTP/3
// connection, found in the request's context.
func (l *connLimiter) quicBusy(ctx context.Context, d int) {
	qc, ok := ctx.Value(quicConnKey{}).(*quicConn)
	if !ok {
		return
	}
	l.mu.Lock()
	qc.active += d
	if qc.active == 0 {
		qc.since = time.Now()
	}
	l.mu.Unlock()
}

// rateLimiter is a token bucket per client IP address.
type rateLimiter struct {
	rate  float64 // tokens per second
	burst float64

	mu      sync.Mutex
	buckets map[string]*bucket
	swept   time.Time
}

type bucket struct {
	tokens float64
	last   time.Time
}

// maxBuckets bounds the buckets kept: past it, the full ones (clients that
// have been quiet long enough to have their whole burst back) are dropped,
// since a new bucket starts full anyway.
const maxBuckets = 100_000

func newRateLimiter(rate float64, burst int) *rateLimiter {
	return &rateLimiter{rate: rate, burst: float64(burst), buckets: map[string]*bucket{}}
}

func (rl *rateLimiter) allow(ip string) bool {
	now := time.Now()
	rl.mu.Lock()
	defer rl.mu.Unlock()
	b, ok := rl.buckets[ip]
	if !ok {
		if len(rl.buckets) >= maxBuckets {
			rl.sweep(now)
		}
		b = &bucket{tokens: rl.burst, last: now}
		rl.buckets[ip] = b
	}
	b.tokens = min(rl.burst, b.tokens+now.Sub(b.last).Seconds()*rl.rate)
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

func (rl *rateLimiter) sweep(now time.Time) {
	full := time.Duration(rl.burst / rl.rate * float64(time.Second))
	for ip, b := range rl.buckets {
		if now.Sub(b.last) >= full {
			delete(rl.buckets, ip)
		}
	}
	if len(rl.buckets) >= maxBuckets {
		// Every client is busy: forget them all rather than grow.
		clear(rl.buckets)
	}
}

// paceWriter enforces a minimum send rate on a response: each write of n
// bytes must finish within window + n/rate, so a client must take the
// bytes at rate on average, with a window's slack for bursts and stalls,
// however large the response. The deadline is set for the write only and
// cleared after it: HTTP/2 resets a stream whose write deadline passes even
// while the handler is not writing (waiting for the origin, say), and a
// handler that waits is not the client's fault. A deadline the handler sets
// itself (the edge sets one per chunk) applies too: the earlier one wins.
type paceWriter struct {
	http.ResponseWriter
	rc     http.ResponseController // a value: one allocation less per request
	rate   float64
	window time.Duration
	own    time.Time // deadline the handler asked for; zero if none
}

func newPaceWriter(w http.ResponseWriter, rate int64, window time.Duration) *paceWriter {
	pw := &paceWriter{ResponseWriter: w, rc: *http.NewResponseController(w), rate: float64(rate), window: window}
	// A keep-alive connection may carry the last response's deadline.
	_ = pw.rc.SetWriteDeadline(time.Time{}) // ErrNotSupported: nothing to enforce with
	return pw
}

func (w *paceWriter) arm(n int) {
	d := time.Now().Add(w.window + time.Duration(float64(n)/w.rate*float64(time.Second)))
	if !w.own.IsZero() && w.own.Before(d) {
		d = w.own
	}
	_ = w.rc.SetWriteDeadline(d)
}

// paceChunk is the most a single deadline covers: a handler that writes a
// large buffer at once gets a deadline per chunk of it, not one long
// allowance for the whole.
const paceChunk = 64 << 10

func (w *paceWriter) Write(b []byte) (int, error) {
	var n int
	for len(b) > 0 {
		c := b[:min(len(b), paceChunk)]
		w.arm(len(c))
		m, err := w.ResponseWriter.Write(c)
		n += m
		if err != nil {
			return n, err
		}
		b = b[m:]
	}
	_ = w.rc.SetWriteDeadline(time.Time{})
	return n, nil
}

// SetWriteDeadline is found by http.ResponseController: the handler's own
// deadline joins the next writes'.
func (w *paceWriter) SetWriteDeadline(t time.Time) error {
	w.own = t
	return nil
}

// done arms the deadline for what the server sends after the handler: the
// buffered tail of the body, or a header alone.
func (w *paceWriter) done() { w.own = time.Time{}; w.arm(0) }

func (w *paceWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// paceBody enforces the same minimum rate on a request body (a slow POST
// holds a connection to the origin as long as it lasts): the body must
// arrive at rate on average since the request began, with a window's
// slack, and never stall for longer than a window. Each read gets the
// deadline by which its first byte is due.
type paceBody struct {
	io.ReadCloser
	rc     *http.ResponseController
	rate   float64
	window time.Duration
	start  time.Time
	last   time.Time // of the last progress
	n      int64
}

func newPaceBody(body io.ReadCloser, rc *http.ResponseController, rate int64, window time.Duration) *paceBody {
	now := time.Now()
	return &paceBody{ReadCloser: body, rc: rc, rate: float64(rate), window: window, start: now, last: now}
}

func (b *paceBody) Read(p []byte) (int, error) {
	due := b.start.Add(b.window + time.Duration(float64(b.n+1)/b.rate*float64(time.Second)))
	if stall := b.last.Add(b.window); stall.Before(due) {
		due = stall
	}
	_ = b.rc.SetReadDeadline(due)
	n, err := b.ReadCloser.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		// Too slow (or gone). The deadline stays in the past, so that
		// net/http's attempt to drain the rest fails at once too and the
		// connection is closed rather than held for the dribble.
		_ = b.rc.SetReadDeadline(time.Unix(1, 0))
		return n, err
	}
	_ = b.rc.SetReadDeadline(time.Time{})
	if n > 0 {
		b.n += int64(n)
		b.last = time.Now()
	}
	return n, err
}

// Hijack hands the connection over (an upgrade the reverse proxy tunnels)
// without the deadline set for this response: from then on the tunnel's
// owner sets its own.
func (w *paceWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := w.rc.Hijack()
	if err == nil {
		c.SetWriteDeadline(time.Time{})
	}
	return c, brw, err
}
