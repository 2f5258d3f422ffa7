package swarm

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/quic-go/quic-go"
	"golang.org/x/sync/singleflight"
)

// transport is the QUIC side of a Node: the socket's quic.Transport and
// listener, the connections dialled to peers (one per peer, reused), the
// connections peers dialled here, and the two stops of a node's lifecycle
// (accept nothing more; close everything). A failed dial or connection
// marks the peer down in health.
type transport struct {
	creds       *Credentials
	quic        *quic.Config
	dialTimeout time.Duration
	health      *peerHealth
	// dialCtx ends dials: Close, or Shutdown once drained.
	dialCtx context.Context
	// onFail is told every failed connection, both sides, classified.
	onFail func(*ConnectError)
	// greet exchanges hellos on a connection just dialled (StatHello):
	// an error (ErrIncompatible) closes it. excluded reports a peer
	// kept out for its layout: only a probe dials it.
	greet    func(ctx context.Context, peer string, c *quic.Conn) error
	excluded func(peer string) bool

	ready     chan struct{} // closed once the node serves
	readyOnce sync.Once

	mu    sync.Mutex
	tr    *quic.Transport
	ln    *quic.Listener
	conns map[string]*quic.Conn // dialled, by peer
	// accepted holds the connections peers dialled, so that Close and
	// Shutdown can close them with a CONNECTION_CLOSE: closing the
	// transport alone drops them silently, and the peers would keep
	// sending requests into the void until their idle timeout.
	accepted map[*quic.Conn]struct{}
	// closed: Shutdown or Close was called; accept nothing more.
	closed bool
	// stopped: connections are closed; make no more calls. Between the
	// two, while Shutdown drains, the requests being served may still
	// call peers (a Fill fetches shards).
	stopped bool
	dialing singleflight.Group
	// serving counts the accepted connections being served; Shutdown
	// waits for it.
	serving sync.WaitGroup
}

func newTransport(creds *Credentials, dialTimeout time.Duration, health *peerHealth, dialCtx context.Context, onFail func(*ConnectError)) *transport {
	return &transport{
		creds:       creds,
		dialTimeout: dialTimeout,
		health:      health,
		dialCtx:     dialCtx,
		onFail:      onFail,
		quic: &quic.Config{
			HandshakeIdleTimeout: dialTimeout,
			// A peer that dies without closing its connections (a crash,
			// kill -9, a cable) is noticed by silence: with a PING every
			// second, three silent seconds end the connection and mark
			// the peer down. A slow request on a live peer is not silent.
			MaxIdleTimeout:                 3 * time.Second,
			KeepAlivePeriod:                time.Second,
			InitialStreamReceiveWindow:     2 << 20,
			MaxStreamReceiveWindow:         16 << 20,
			InitialConnectionReceiveWindow: 8 << 20,
			MaxConnectionReceiveWindow:     64 << 20,
			MaxIncomingStreams:             1024,
		},
		ready:    make(chan struct{}),
		conns:    make(map[string]*quic.Conn),
		accepted: make(map[*quic.Conn]struct{}),
	}
}

// listen makes pc the socket of the node, to accept peers and to dial
// them. It returns ErrServerClosed once the node is closed.
func (t *transport) listen(pc net.PacketConn) (*quic.Listener, error) {
	if uc, ok := pc.(interface {
		SetReadBuffer(int) error
		SetWriteBuffer(int) error
	}); ok {
		// Large bursts of shards arrive at once; the default socket buffer
		// drops them. The kernel caps this at net.core.rmem_max.
		_ = uc.SetReadBuffer(8 << 20)
		_ = uc.SetWriteBuffer(8 << 20)
	}
	tr := &quic.Transport{Conn: pc}
	ln, err := tr.Listen(t.creds.serverConfig(t.onFail), t.quic)
	if err != nil {
		return nil, fmt.Errorf("swarm: listen: %w", err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		ln.Close()
		tr.Close()
		return nil, ErrServerClosed
	}
	t.tr, t.ln = tr, ln
	return ln, nil
}

// unlisten closes the listener and the QUIC transport after a failed
// start (Close still finds them, and closes them again, harmlessly).
func (t *transport) unlisten() {
	t.mu.Lock()
	ln, tr := t.ln, t.tr
	t.mu.Unlock()
	ln.Close()
	tr.Close()
}

// markReady lets dials go ahead: the node serves.
func (t *transport) markReady() { t.readyOnce.Do(func() { close(t.ready) }) }

// accept waits for the next connection a peer dials. Each one counts in
// serving until its server calls served.
func (t *transport) accept(ctx context.Context, ln *quic.Listener) (*quic.Conn, error) {
	conn, err := ln.Accept(ctx)
	t.mu.Lock()
	defer t.mu.Unlock()
	// closed, not ctx: Shutdown closes the listener before it cancels
	// ctx, and Accept may report the listener first. Checking under mu
	// also orders serving.Add before Shutdown's serving.Wait.
	if t.closed {
		if conn != nil {
			conn.CloseWithError(0, "shutdown")
		}
		return nil, ErrServerClosed
	}
	if err != nil {
		return nil, fmt.Errorf("swarm: accept: %w", err)
	}
	t.accepted[conn] = struct{}{}
	t.serving.Add(1)
	return conn, nil
}

// served says that an accepted connection is no longer served.
func (t *transport) served() { t.serving.Done() }

// forget closes an accepted connection that died and forgets it.
func (t *transport) forget(conn *quic.Conn) {
	t.mu.Lock()
	delete(t.accepted, conn)
	t.mu.Unlock()
	conn.CloseWithError(0, "")
}

// stopAccepting closes the listener: accept nothing more.
func (t *transport) stopAccepting() {
	t.mu.Lock()
	t.closed = true
	ln := t.ln
	t.mu.Unlock()
	if ln != nil {
		ln.Close()
	}
}

// drain waits until the accepted connections have been served and their
// last answers have had time to go out, or until ctx is done, which it
// returns.
func (t *transport) drain(ctx context.Context) error {
	done := make(chan struct{})
	go func() { t.serving.Wait(); close(done) }()
	select {
	case <-done:
		t.linger(ctx)
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// linger gives the last answers time to reach the peers before their
// connections close: CloseWithError discards stream data not yet sent, and
// a lost packet is resent only after a probe timeout. It waits two probe
// timeouts of the slowest connection, or until ctx is done.
func (t *transport) linger(ctx context.Context) {
	t.mu.Lock()
	var d time.Duration
	for c := range t.accepted {
		s := c.ConnectionStats()
		// RFC 9002's PTO with quic-go's maximum ACK delay of 25ms.
		d = max(d, 2*(s.SmoothedRTT+max(4*s.MeanDeviation, time.Millisecond)+25*time.Millisecond))
	}
	t.mu.Unlock()
	if d == 0 {
		return
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-ctx.Done():
	}
}

// closeAll closes every connection, both ways, and the QUIC transport:
// no more calls.
func (t *transport) closeAll() {
	t.mu.Lock()
	t.stopped = true
	conns := t.conns
	t.conns = map[string]*quic.Conn{}
	accepted := t.accepted
	t.accepted = map[*quic.Conn]struct{}{}
	tr := t.tr
	t.mu.Unlock()
	for _, c := range conns {
		c.CloseWithError(0, "shutdown")
	}
	for c := range accepted {
		c.CloseWithError(0, "shutdown")
	}
	if tr != nil {
		tr.Close()
	}
}

// dialled returns the open connection dialled to peer, or nil.
func (t *transport) dialled(peer string) *quic.Conn {
	t.mu.Lock()
	c := t.conns[peer]
	t.mu.Unlock()
	if c == nil || c.Context().Err() != nil {
		return nil
	}
	return c
}

// conn returns the connection to peer, dialling it if there is none.
func (t *transport) conn(ctx context.Context, peer string) (*quic.Conn, error) {
	return t.get(ctx, peer, false)
}

// probe dials peer, unless connected, to meet it: it neither waits for
// nor starts the backoff of a failed peer (the first dials of a fleet
// starting up fail while the others start), and it dials a peer kept out
// for its layout, to see whether that changed.
func (t *transport) probe(ctx context.Context, peer string) error {
	_, err := t.get(ctx, peer, true)
	return err
}

func (t *transport) get(ctx context.Context, peer string, probe bool) (*quic.Conn, error) {
	select {
	case <-t.ready:
	case <-ctx.Done():
		return nil, ctx.Err()
	default:
		return nil, ErrNotServing
	}
	t.mu.Lock()
	if t.stopped {
		t.mu.Unlock()
		return nil, ErrServerClosed
	}
	if c := t.conns[peer]; c != nil && c.Context().Err() == nil {
		t.mu.Unlock()
		return c, nil
	}
	if !probe && t.health.isDown(peer, time.Now()) {
		t.mu.Unlock()
		return nil, ErrPeerDown
	}
	t.mu.Unlock()
	if !probe && t.excluded != nil && t.excluded(peer) {
		return nil, fmt.Errorf("%w: %s", ErrIncompatible, peer)
	}
	// One dial per peer at a time, a probe's or a request's: two would
	// race to store their connections and to mark the peer up or down.
	ch := t.dialing.DoChan(peer, func() (any, error) { return t.dial(peer, probe) })
	select {
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		return r.Val.(*quic.Conn), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// dial makes a connection to peer, greets it and keeps it, or marks peer
// down (unless probing) and reports why it failed.
func (t *transport) dial(peer string, probe bool) (*quic.Conn, error) {
	fail := func(err, verifyErr error) error {
		if !probe {
			t.markDown(peer, nil)
		}
		if t.dialCtx.Err() != nil {
			return fmt.Errorf("swarm: dial %s: %w", peer, err) // stopping: not the peer's doing
		}
		ce := classifyDial(peer, err, verifyErr)
		if t.onFail != nil {
			t.onFail(ce)
		}
		return ce
	}
	addr, err := net.ResolveUDPAddr("udp", peer)
	if err != nil {
		return nil, fail(err, nil)
	}
	dctx, cancel := context.WithTimeout(t.dialCtx, t.dialTimeout)
	defer cancel()
	// The check of the peer's chain runs inside the handshake; what it
	// found names the failure better than the TLS error does.
	var vmu sync.Mutex
	var verifyErr error
	cfg := t.creds.clientConfig(func(err error) {
		vmu.Lock()
		verifyErr = err
		vmu.Unlock()
	})
	c, err := t.tr.Dial(dctx, addr, cfg, t.quic)
	if err != nil {
		vmu.Lock()
		defer vmu.Unlock()
		return nil, fail(err, verifyErr)
	}
	if t.greet != nil {
		if err := t.greet(dctx, peer, c); err != nil {
			c.CloseWithError(0, "incompatible layout")
			if errors.Is(err, ErrIncompatible) {
				return nil, err
			}
			// The connection died under the hello: in TLS 1.3 the
			// dialler's handshake completes before the peer has checked
			// its certificate, and the peer's refusal arrives here.
			return nil, fail(err, nil)
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		c.CloseWithError(0, "shutdown")
		return nil, ErrServerClosed
	}
	if old := t.conns[peer]; old != nil && old.Context().Err() == nil {
		// A probe and a request dialled at once: keep one.
		c.CloseWithError(0, "")
		return old, nil
	}
	t.conns[peer] = c
	t.health.up(peer)
	return c, nil
}

// markDown starts or lengthens peer's backoff after a failed dial (conn
// nil) or a failure of conn. A connection's failure counts once, however
// many requests it fails, and not at all once conn has been replaced.
func (t *transport) markDown(peer string, conn *quic.Conn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if conn != nil && t.conns[peer] != conn {
		return
	}
	// Under t.mu, so that conn sees the connection gone and the peer
	// down together.
	t.health.markDown(peer)
	if c := t.conns[peer]; c != nil {
		delete(t.conns, peer)
		go c.CloseWithError(0, "peer failed")
	}
}

// failed classifies a transport error: the caller's own cancellation says
// nothing about the peer; a dead connection marks the peer down.
func (t *transport) failed(ctx context.Context, peer string, conn *quic.Conn, err error) error {
	if cerr := ctxErr(ctx); cerr != nil {
		return fmt.Errorf("%w (%w)", cerr, err)
	}
	if connectionFailed(conn, err) {
		t.markDown(peer, conn)
	}
	return err
}

// connectionFailed reports whether err ended conn as a whole rather than
// one stream. The error is checked as well as the connection's context,
// which is cancelled a moment after the streams have failed.
func connectionFailed(conn *quic.Conn, err error) bool {
	var (
		app   *quic.ApplicationError
		tr    *quic.TransportError
		idle  *quic.IdleTimeoutError
		reset *quic.StatelessResetError
	)
	return conn.Context().Err() != nil || errors.As(err, &app) || errors.As(err, &tr) ||
		errors.As(err, &idle) || errors.As(err, &reset)
}

// ctxErr is ctx.Err(), except that it reports a deadline that has passed
// before ctx's own timer has fired: the stream carries the same deadline,
// and its timer often fires first.
func ctxErr(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) {
		return context.DeadlineExceeded
	}
	return nil
}
