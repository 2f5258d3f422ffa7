package swarm

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/quic-go/quic-go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"golang.org/x/sync/singleflight"
	"golang.org/x/time/rate"

	"github.com/shoalcdn/shoal/erasure"
	"github.com/shoalcdn/shoal/internal/throttle"
)

// ShardStore is what a node needs of the local shard store to answer
// GetShard and PutShard.
type ShardStore interface {
	// Shard returns a verified shard and its descriptor.
	Shard(id erasure.ShardID) (*erasure.Descriptor, []byte, bool)
	// PutShard stores a shard that has been verified against d.
	PutShard(id erasure.ShardID, d *erasure.Descriptor, data []byte) error
}

// Handler answers the requests whose meaning belongs to the edge: Stat
// (an object record by cache key) and Fill (fetch and place one segment).
// Payloads are opaque to this package. Return ErrNotFound for "not here".
type Handler interface {
	Stat(ctx context.Context, key []byte) ([]byte, error)
	Fill(ctx context.Context, payload []byte) (*Segment, error)
}

// Segment is a whole segment with its descriptor, as a Fill returns it.
type Segment struct {
	Descriptor *erasure.Descriptor
	// Data is the segment's bytes, verified against Descriptor. Nil (for a
	// segment that is not empty) is a placed answer: the coordinator put
	// the segment's shards on their holders, and the requester reads them
	// from there, k holders at a time, rather than the whole segment from
	// the coordinator's uplink. A Handler answers so only when the payload
	// asks for it.
	Data []byte
	// Source says where the coordinator found the segment: "origin" when it
	// had to fetch it, else the tier that had it ("memory", "disk", "peer").
	Source string
}

// Errors returned by a Node.
var (
	// ErrNotFound: the peer does not have what was asked for.
	ErrNotFound = errors.New("swarm: not found")
	// ErrPeerDown: the peer failed recently and is not being tried again yet.
	ErrPeerDown = errors.New("swarm: peer is down")
	// ErrServerClosed is returned by Serve after Shutdown or Close.
	ErrServerClosed = errors.New("swarm: server closed")
	// ErrNotServing: a request was made before Serve was called.
	ErrNotServing = errors.New("swarm: node is not serving")
	// ErrStale: the version a request names no longer exists. A Handler
	// returns an error wrapping it to answer StatusStale; a caller gets a
	// *RemoteError that wraps it.
	ErrStale = errors.New("swarm: stale version")
)

// RemoteError is a failure the remote peer reported.
type RemoteError struct {
	Peer    string
	Op      Op
	Status  Status
	Message string
}

// Timeout reports whether the peer ran out of time (StatusTimeout), so
// that callers can tell a gateway timeout from a failure.
func (e *RemoteError) Timeout() bool { return e.Status == StatusTimeout }

// Unwrap makes a StatusStale answer match ErrStale.
func (e *RemoteError) Unwrap() error {
	if e.Status == StatusStale {
		return ErrStale
	}
	return nil
}

func (e *RemoteError) Error() string {
	return fmt.Sprintf("swarm: %v at %s: status %d: %s", e.Op, e.Peer, e.Status, e.Message)
}

// Config configures a Node.
type Config struct {
	// Self is this node's peer address as the other members spell it
	// (host:port). Required.
	Self string
	// Peers is the static member list. It may include Self, so a whole
	// fleet can share one list. Ignored when Gossip is set.
	Peers []string
	// Gossip, if set, makes membership dynamic: members join and leave by
	// gossip (see GossipConfig).
	Gossip *GossipConfig
	// Zone is this node's zone (a Kubernetes topology.kubernetes.io/zone,
	// a rack, a site). Shards are placed among the members of the reader's
	// zone; other zones are read before the origin. Empty is a zone too.
	// With a static list every member is in this node's zone.
	Zone string
	// Credentials are the fleet CA and this node's certificate. Required.
	Credentials *Credentials
	// Store serves GetShard and takes PutShard. Required.
	Store ShardStore
	// Handler answers Stat and Fill. Nil answers them "not found".
	Handler Handler
	// Logger receives structured logs. Nil means slog.Default().
	Logger *slog.Logger
	// TracerProvider makes spans for served requests and outgoing calls.
	// Nil means no tracing.
	TracerProvider trace.TracerProvider
	// DialTimeout bounds a QUIC handshake. Zero means 2s.
	DialTimeout time.Duration
	// ServeTimeout bounds serving one request, including a Fill's origin
	// fetch. Zero means 60s.
	ServeTimeout time.Duration
	// OnMembersChange, if set, is called after every change of the member
	// set (a join, a leave, a death). It must not block, nor call
	// MemberList or Peers: it runs with membership (and memberlist's
	// node table) locked.
	OnMembersChange func()
	// UploadLimit caps the shard and segment bytes this node sends to peers
	// (answers to GetShard and Fill, PutShard pushes), in bytes per
	// second, with a token bucket. Zero means no limit.
	UploadLimit int64
	// OnRequest, if set, is called after every outgoing request with its op,
	// a result label ("ok", "not_found", "error", "corrupt", "canceled",
	// "down"), the body bytes received and how long it took. It must be
	// quick.
	OnRequest func(op Op, result string, bytes int, took time.Duration)
}

// Node is one member of the fleet on the peer protocol: it serves its
// shards to peers and calls peers on behalf of the edge, over one QUIC
// connection per peer with one stream per request.
type Node struct {
	cfg    Config
	log    *slog.Logger
	tracer trace.Tracer
	quic   *quic.Config

	// memMu serializes membership updates; readers load mem.view.
	memMu      sync.Mutex
	mem        membership
	ml         *memberlist.Memberlist // nil without gossip, or once stopped
	stopJoin   context.CancelFunc
	gossipDone chan struct{}

	ready     chan struct{}
	tr        *quic.Transport
	ln        *quic.Listener
	readyOnce sync.Once

	mu    sync.Mutex
	conns map[string]*quic.Conn // dialled, by peer
	// accepted holds the connections peers dialled, so that Close and
	// Shutdown can close them with a CONNECTION_CLOSE: closing the
	// transport alone drops them silently, and the peers would keep
	// sending requests into the void until their idle timeout.
	accepted map[*quic.Conn]struct{}
	down     map[string]downState
	stats    map[string]*peerStats // measured, by peer address
	// zoneShards counts the shard bytes fetched from peers of this zone
	// [0] and of other zones [1]; n.mu guards it.
	zoneShards [2]uint64
	upload     *rate.Limiter // nil: no limit
	// closed: Shutdown or Close was called; accept nothing more.
	closed bool
	// stopped: connections are closed; make no more calls. Between the
	// two, while Shutdown drains, the requests being served may still
	// call peers (a Fill fetches shards).
	stopped bool
	dialing singleflight.Group

	// acceptCtx ends accepting connections and streams (Shutdown, Close);
	// serveCtx ends the requests being served and dials (Close, or
	// Shutdown once drained or out of time).
	acceptCtx  context.Context
	stopAccept context.CancelFunc
	serveCtx   context.Context
	stopServe  context.CancelFunc
	wg         sync.WaitGroup
}

type downState struct {
	until   time.Time
	backoff time.Duration
}

// New returns a Node for cfg. It does no I/O; call Serve to start it.
func New(cfg Config) (*Node, error) {
	if cfg.Self == "" {
		return nil, errors.New("swarm: Config.Self is required")
	}
	if cfg.Credentials == nil {
		return nil, errors.New("swarm: Config.Credentials is required: peers authenticate with a certificate from the fleet CA")
	}
	if cfg.Store == nil {
		return nil, errors.New("swarm: Config.Store is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.TracerProvider == nil {
		cfg.TracerProvider = noop.NewTracerProvider()
	}
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = 2 * time.Second
	}
	if cfg.ServeTimeout == 0 {
		cfg.ServeTimeout = 60 * time.Second
	}
	if len(cfg.Zone) > maxMetaZone {
		return nil, fmt.Errorf("swarm: zone %q is longer than %d bytes", cfg.Zone, maxMetaZone)
	}
	var peers []string
	if cfg.Gossip != nil {
		if err := cfg.Gossip.check(); err != nil {
			return nil, err
		}
	} else {
		peers = cfg.Peers
	}
	ctx, cancel := context.WithCancel(context.Background())
	actx, acancel := context.WithCancel(ctx)
	n := &Node{
		cfg:    cfg,
		log:    cfg.Logger.With("component", "swarm", "self", cfg.Self),
		tracer: cfg.TracerProvider.Tracer("github.com/shoalcdn/shoal/swarm"),
		quic: &quic.Config{
			HandshakeIdleTimeout: cfg.DialTimeout,
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
		ready:      make(chan struct{}),
		conns:      make(map[string]*quic.Conn),
		accepted:   make(map[*quic.Conn]struct{}),
		down:       make(map[string]downState),
		stats:      make(map[string]*peerStats),
		upload:     throttle.New(cfg.UploadLimit),
		acceptCtx:  actx,
		stopAccept: acancel,
		serveCtx:   ctx,
		stopServe:  cancel,
	}
	n.setStatic(peers)
	return n, nil
}

// Self returns this node's peer address.
func (n *Node) Self() string { return n.cfg.Self }

// Ready is closed once Serve listens (and gossip, when on, has started).
func (n *Node) Ready() <-chan struct{} { return n.ready }

// Alive reports whether peer is worth asking now: it is a member, not in
// the backoff that follows a failure, nor avoided after sending a corrupt
// shard.
func (n *Node) Alive(peer string) bool {
	if peer == n.cfg.Self {
		return true
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	now := time.Now()
	if _, member := n.mem.view.Load().byAddr[peer]; !member {
		return false // it left or died: not worth a dial
	}
	return now.After(n.down[peer].until) && !n.avoidedLocked(peer, now)
}

// Serve accepts peers on pc until Shutdown or Close, and uses the same
// socket to dial them. It always returns a non-nil error; after Shutdown or
// Close, ErrServerClosed.
func (n *Node) Serve(pc net.PacketConn) error {
	if uc, ok := pc.(*net.UDPConn); ok {
		// Large bursts of shards arrive at once; the default socket buffer
		// drops them. The kernel caps this at net.core.rmem_max.
		_ = uc.SetReadBuffer(8 << 20)
		_ = uc.SetWriteBuffer(8 << 20)
	}
	tr := &quic.Transport{Conn: pc}
	ln, err := tr.Listen(n.cfg.Credentials.ServerConfig(), n.quic)
	if err != nil {
		return fmt.Errorf("swarm: listen: %w", err)
	}
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		ln.Close()
		tr.Close()
		return ErrServerClosed
	}
	n.tr, n.ln = tr, ln
	n.mu.Unlock()
	if n.cfg.Gossip != nil {
		if err := n.startGossip(); err != nil {
			ln.Close()
			tr.Close()
			return err
		}
	}
	n.readyOnce.Do(func() { close(n.ready) })
	n.log.Info("peer protocol listening", "addr", pc.LocalAddr().String(), "members", len(n.Members()), "zone", n.cfg.Zone)
	for {
		conn, err := ln.Accept(n.acceptCtx)
		n.mu.Lock()
		// closed, not acceptCtx: Shutdown closes the listener before it
		// cancels acceptCtx, and Accept may report the listener first.
		// Checking under mu also orders wg.Add before Shutdown's wg.Wait.
		if n.closed {
			n.mu.Unlock()
			if conn != nil {
				conn.CloseWithError(0, "shutdown")
			}
			return ErrServerClosed
		}
		if err != nil {
			n.mu.Unlock()
			return fmt.Errorf("swarm: accept: %w", err)
		}
		n.accepted[conn] = struct{}{}
		n.wg.Add(1)
		n.mu.Unlock()
		go func() {
			defer n.wg.Done()
			n.serveConn(conn)
		}()
	}
}

// Shutdown stops accepting, lets requests being served finish until ctx is
// done, then closes every connection and the socket's QUIC transport.
// While it waits, the requests being served may still call peers.
func (n *Node) Shutdown(ctx context.Context) error {
	// Leave first: the others stop placing shards here and asking for
	// them while this node drains.
	n.stopGossip(true)
	n.stopAccepting()
	done := make(chan struct{})
	go func() { n.wg.Wait(); close(done) }()
	var err error
	select {
	case <-done:
		n.linger(ctx)
	case <-ctx.Done():
		err = ctx.Err()
	}
	n.closeAll()
	n.stopServe()
	return err
}

// linger gives the last answers time to reach the peers before their
// connections close: CloseWithError discards stream data not yet sent, and
// a lost packet is resent only after a probe timeout. It waits two probe
// timeouts of the slowest connection, or until ctx is done.
func (n *Node) linger(ctx context.Context) {
	n.mu.Lock()
	var d time.Duration
	for c := range n.accepted {
		s := c.ConnectionStats()
		// RFC 9002's PTO with quic-go's maximum ACK delay of 25ms.
		d = max(d, 2*(s.SmoothedRTT+max(4*s.MeanDeviation, time.Millisecond)+25*time.Millisecond))
	}
	n.mu.Unlock()
	if d == 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// Close stops the node at once: listener, connections and in-flight
// requests.
func (n *Node) Close() error {
	// No goodbye: to the others this is a crash, noticed by probes.
	n.stopGossip(false)
	n.stopAccepting()
	// Connections first: requests cut off must fail at the peers as a
	// closed connection, a node gone, not as "failed: context canceled",
	// which reads as an answer about what they asked for.
	n.closeAll()
	n.stopServe()
	return nil
}

func (n *Node) stopAccepting() {
	n.mu.Lock()
	n.closed = true
	ln := n.ln
	n.mu.Unlock()
	if ln != nil {
		ln.Close()
	}
	n.stopAccept()
}

func (n *Node) closeAll() {
	n.mu.Lock()
	n.stopped = true
	conns := n.conns
	n.conns = map[string]*quic.Conn{}
	accepted := n.accepted
	n.accepted = map[*quic.Conn]struct{}{}
	tr := n.tr
	n.mu.Unlock()
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

func (n *Node) serveConn(conn *quic.Conn) {
	defer func() {
		// When the node stops, Shutdown or Close closes the connection,
		// after the last answers have gone out; else the connection died.
		if n.acceptCtx.Err() == nil {
			n.mu.Lock()
			delete(n.accepted, conn)
			n.mu.Unlock()
			conn.CloseWithError(0, "")
		}
	}()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		st, err := conn.AcceptStream(n.acceptCtx)
		if err != nil {
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			n.serveStream(conn, st)
		}()
	}
}

var traceContext = propagation.TraceContext{}

type traceCarrier struct{ tp string }

func (c *traceCarrier) Get(key string) string {
	if key == "traceparent" {
		return c.tp
	}
	return ""
}
func (c *traceCarrier) Set(key, value string) {
	if key == "traceparent" && len(value) <= MaxTraceParent {
		c.tp = value
	}
}
func (c *traceCarrier) Keys() []string { return []string{"traceparent"} }

func (n *Node) serveStream(conn *quic.Conn, st *quic.Stream) {
	defer st.Close()
	// The peer grants a new stream only when this one is done both ways,
	// and the receiving side is done only once its FIN has been read or
	// the read cancelled. The answer does not wait for the FIN, which may
	// come in a packet of its own, so without this every such request
	// would keep one of the MaxIncomingStreams until the connection died.
	// A no-op once Read has returned io.EOF.
	defer st.CancelRead(0)
	st.SetDeadline(time.Now().Add(n.cfg.ServeTimeout))
	ctx, cancel := context.WithTimeout(n.serveCtx, n.cfg.ServeTimeout)
	defer cancel()
	br := bufio.NewReaderSize(st, 4<<10)
	req, err := ReadRequest(br)
	if err != nil {
		var se *quic.StreamError
		if errors.As(err, &se) && se.Remote && se.ErrorCode == 2 {
			// The requester gave up before sending it all (a hedged
			// request that lost, a client that went away): not a bad request.
			n.log.Debug("peer request cancelled by the requester", "peer", conn.RemoteAddr().String(), "err", err)
			return
		}
		n.log.Warn("bad peer request", "peer", conn.RemoteAddr().String(), "err", err)
		st.CancelRead(1)
		n.writeError(st, 0, StatusBadRequest, err)
		return
	}
	ctx = traceContext.Extract(ctx, &traceCarrier{tp: req.TraceParent})
	ctx, span := n.tracer.Start(ctx, "swarm.serve "+req.Op.String(), trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(attribute.String("shoal.peer", conn.RemoteAddr().String())))
	defer span.End()

	var resp Response
	var body []byte
	switch req.Op {
	case OpGetShard:
		span.SetAttributes(attribute.String("shoal.shard", req.Shard.String()))
		d, data, ok := n.cfg.Store.Shard(req.Shard)
		if !ok {
			n.writeError(st, req.Op, StatusNotFound, ErrNotFound)
			return
		}
		resp, body = Response{Descriptor: d, BodyLen: len(data)}, data
	case OpPutShard:
		data := make([]byte, req.BodyLen)
		h := hashers.Get().(*erasure.Hasher)
		err := readBody(br, data, h)
		sum := h.Sum()
		hashers.Put(h)
		if err != nil {
			n.writeError(st, req.Op, StatusBadRequest, fmt.Errorf("reading shard: %w", err))
			return
		}
		if err := req.Descriptor.CheckShardSum(int(req.Shard.Index), len(data), sum); err != nil {
			n.log.Warn("peer pushed a corrupt shard", "peer", conn.RemoteAddr().String(), "shard", req.Shard.String(), "err", err)
			n.writeError(st, req.Op, StatusBadRequest, err)
			return
		}
		n.countServed(conn, 0, len(data))
		if err := n.cfg.Store.PutShard(req.Shard, req.Descriptor, data); err != nil {
			n.writeError(st, req.Op, StatusFailed, err)
			return
		}
	case OpStat, OpFill:
		if n.cfg.Handler == nil {
			n.writeError(st, req.Op, StatusNotFound, ErrNotFound)
			return
		}
		if req.Op == OpStat {
			body, err = n.cfg.Handler.Stat(ctx, req.Payload)
			resp.BodyLen = len(body)
		} else {
			var seg *Segment
			if seg, err = n.cfg.Handler.Fill(ctx, req.Payload); err == nil {
				if seg == nil {
					err = errors.New("swarm: fill handler returned no segment")
				} else {
					resp = Response{Descriptor: seg.Descriptor, BodyLen: len(seg.Data), Message: seg.Source}
					body = seg.Data
				}
			}
		}
		if err != nil {
			status := StatusFailed
			var te interface{ Timeout() bool }
			switch {
			case errors.Is(err, ErrNotFound):
				status = StatusNotFound
			case errors.Is(err, ErrStale):
				status = StatusStale
			case errors.Is(err, context.DeadlineExceeded), errors.As(err, &te) && te.Timeout():
				status = StatusTimeout
			}
			if status != StatusNotFound {
				span.SetStatus(codes.Error, err.Error())
			}
			n.writeError(st, req.Op, status, err)
			return
		}
	}
	// What the store or handler gave must make a frame the peer accepts:
	// a nil descriptor would panic in Append, and a length the descriptor
	// contradicts would reach the peer as a malformed frame, not an error.
	if err := checkAnswer(req.Op, &resp); err != nil {
		n.log.Error("cannot answer peer", "peer", conn.RemoteAddr().String(), "op", req.Op.String(), "err", err)
		n.writeError(st, req.Op, StatusFailed, err)
		return
	}
	hdr := resp.Append(make([]byte, 0, 64+MaxDescriptor), req.Op)
	if _, err := st.Write(hdr); err != nil {
		return
	}
	if len(body) > 0 {
		lim := n.upload
		if req.Op == OpStat {
			lim = nil // records are small and not what the limit is for
		}
		w, err := throttle.Write(ctx, st, body, lim)
		n.countServed(conn, w, 0)
		if err != nil {
			n.log.Debug("peer went away mid-response", "peer", conn.RemoteAddr().String(), "op", req.Op.String(), "err", err)
		}
	}
}

// checkAnswer checks an OK response against the limits and lengths that
// ReadResponse enforces.
func checkAnswer(op Op, r *Response) error {
	switch op {
	case OpGetShard, OpFill:
		if r.Descriptor == nil {
			return fmt.Errorf("swarm: %v answer has no descriptor", op)
		}
		want := r.Descriptor.ShardLen
		if op == OpFill {
			want = r.Descriptor.Length
			if r.BodyLen == 0 {
				want = 0 // a placed answer
			}
		}
		if r.BodyLen != want {
			return fmt.Errorf("swarm: %v answer of %d bytes, descriptor says %d", op, r.BodyLen, want)
		}
	case OpStat:
		if r.BodyLen > MaxPayload {
			return fmt.Errorf("swarm: stat record of %d bytes exceeds %d", r.BodyLen, MaxPayload)
		}
	}
	return nil
}

func (n *Node) writeError(st *quic.Stream, op Op, status Status, err error) {
	r := Response{Status: status, Message: err.Error()}
	st.Write(r.Append(nil, op))
}

// Connect makes sure there is a connection to peer, dialling it if there
// is none. Requests dial on demand; Connect lets a caller pay for the
// handshake ahead of the first request.
func (n *Node) Connect(ctx context.Context, peer string) error {
	_, err := n.conn(ctx, peer)
	return err
}

// conn returns the connection to peer, dialling it if there is none.
func (n *Node) conn(ctx context.Context, peer string) (*quic.Conn, error) {
	select {
	case <-n.ready:
	case <-ctx.Done():
		return nil, ctx.Err()
	default:
		return nil, ErrNotServing
	}
	n.mu.Lock()
	if n.stopped {
		n.mu.Unlock()
		return nil, ErrServerClosed
	}
	if c := n.conns[peer]; c != nil && c.Context().Err() == nil {
		n.mu.Unlock()
		return c, nil
	}
	if d := n.down[peer]; time.Now().Before(d.until) {
		n.mu.Unlock()
		return nil, ErrPeerDown
	}
	n.mu.Unlock()
	ch := n.dialing.DoChan(peer, func() (any, error) {
		addr, err := net.ResolveUDPAddr("udp", peer)
		if err != nil {
			n.markDown(peer, nil)
			return nil, fmt.Errorf("swarm: resolve %s: %w", peer, err)
		}
		dctx, cancel := context.WithTimeout(n.serveCtx, n.cfg.DialTimeout)
		defer cancel()
		c, err := n.tr.Dial(dctx, addr, n.cfg.Credentials.ClientConfig(), n.quic)
		if err != nil {
			n.markDown(peer, nil)
			return nil, fmt.Errorf("swarm: dial %s: %w", peer, err)
		}
		n.mu.Lock()
		defer n.mu.Unlock()
		if n.stopped {
			c.CloseWithError(0, "shutdown")
			return nil, ErrServerClosed
		}
		n.conns[peer] = c
		delete(n.down, peer)
		return c, nil
	})
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

// markDown starts or lengthens peer's backoff after a failed dial (conn
// nil) or a failure of conn. A connection's failure counts once, however
// many requests it fails, and not at all once conn has been replaced.
func (n *Node) markDown(peer string, conn *quic.Conn) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if conn != nil && n.conns[peer] != conn {
		return
	}
	d := n.down[peer]
	d.backoff = min(max(2*d.backoff, 500*time.Millisecond), 30*time.Second)
	d.until = time.Now().Add(d.backoff)
	n.down[peer] = d
	if c := n.conns[peer]; c != nil {
		delete(n.conns, peer)
		go c.CloseWithError(0, "peer failed")
	}
}

// roundTrip sends one request on a new stream and reads the response header
// and body. The body goes into a new buffer, or into into when that is not
// nil (which must then have the body's length). When verify is set, the
// body (even an empty one) is hashed as it arrives and verify judges the
// hash: a body that fails it is never returned.
func (n *Node) roundTrip(ctx context.Context, peer string, req *Request, reqBody []byte, into []byte, verify func(*Response, erasure.Hash) error) (resp *Response, body []byte, err error) {
	start := time.Now()
	sentBody := 0
	ctx, span := n.tracer.Start(ctx, "swarm."+req.Op.String(), trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("shoal.peer", peer), attribute.String("shoal.peer.zone", n.ZoneOf(peer))))
	defer func() {
		result := resultLabel(ctx, err)
		span.SetAttributes(attribute.String("shoal.result", result), attribute.Int("shoal.bytes", len(body)))
		if err != nil && result != "not_found" {
			span.SetStatus(codes.Error, err.Error())
		}
		span.End()
		took := time.Since(start)
		n.observe(peer, req.Op, result, sentBody, len(body), took)
		if n.cfg.OnRequest != nil {
			n.cfg.OnRequest(req.Op, result, len(body), took)
		}
	}()
	if span.SpanContext().IsValid() {
		c := &traceCarrier{}
		traceContext.Inject(ctx, c)
		req.TraceParent = c.tp
	}
	conn, err := n.conn(ctx, peer)
	if err != nil {
		return nil, nil, err
	}
	if span.IsRecording() {
		span.SetAttributes(attribute.Int64("shoal.peer.rtt_us", conn.ConnectionStats().SmoothedRTT.Microseconds()))
	}
	st, err := conn.OpenStreamSync(ctx)
	if err != nil {
		return nil, nil, n.failed(ctx, peer, conn, fmt.Errorf("swarm: %v to %s: %w", req.Op, peer, err))
	}
	if dl, ok := ctx.Deadline(); ok {
		st.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() {
		st.CancelRead(2)
		st.CancelWrite(2)
	})
	defer stop()
	defer st.CancelRead(0) // no-op once the response is fully read
	hdr := req.Append(make([]byte, 0, 128+len(req.Payload)+MaxDescriptor))
	if _, err := st.Write(hdr); err != nil {
		return nil, nil, n.failed(ctx, peer, conn, fmt.Errorf("swarm: %v to %s: %w", req.Op, peer, err))
	}
	if len(reqBody) > 0 {
		var err error
		if sentBody, err = throttle.Write(ctx, st, reqBody, n.upload); err != nil {
			return nil, nil, n.failed(ctx, peer, conn, fmt.Errorf("swarm: %v to %s: %w", req.Op, peer, err))
		}
	}
	st.Close()
	br := bufio.NewReaderSize(st, 4<<10)
	resp, err = ReadResponse(br, req.Op)
	if err != nil {
		return nil, nil, n.failed(ctx, peer, conn, fmt.Errorf("swarm: %v from %s: %w", req.Op, peer, err))
	}
	switch resp.Status {
	case StatusOK:
	case StatusNotFound:
		return nil, nil, fmt.Errorf("swarm: %v at %s: %w", req.Op, peer, ErrNotFound)
	default:
		return nil, nil, &RemoteError{Peer: peer, Op: req.Op, Status: resp.Status, Message: resp.Message}
	}
	switch {
	case into == nil:
		if resp.BodyLen > 0 {
			body = make([]byte, resp.BodyLen)
		}
	case len(into) == resp.BodyLen:
		body = into
	default:
		// Not the peer's fault: the caller expected another length (a
		// descriptor it did not expect either). The stream is cancelled.
		return nil, nil, fmt.Errorf("swarm: %v from %s: a body of %d bytes for a buffer of %d", req.Op, peer, resp.BodyLen, len(into))
	}
	var h *erasure.Hasher
	if verify != nil {
		h = hashers.Get().(*erasure.Hasher)
		defer hashers.Put(h)
	}
	if err := readBody(br, body, h); err != nil {
		return nil, nil, n.failed(ctx, peer, conn, fmt.Errorf("swarm: %v body from %s: %w", req.Op, peer, err))
	}
	if verify != nil {
		if err := verify(resp, h.Sum()); err != nil {
			return nil, nil, err
		}
	}
	return resp, body, nil
}

// hashers holds the Hashers that verify bodies as they arrive.
var hashers = sync.Pool{New: func() any { return new(erasure.Hasher) }}

// hashStep is how many received bytes readBody lets pile up before it
// hashes them: a multiple of the Hasher's 16 KiB block, so that nothing is
// copied, and small enough that the bytes are still in cache.
const hashStep = 64 << 10

// readBody fills body from rd, as io.ReadFull does, and, when h is not nil,
// hashes it into h (after a Reset) as it arrives: the bytes are hashed
// while still in cache, and the check needs no second pass over them.
func readBody(rd io.Reader, body []byte, h *erasure.Hasher) error {
	if h != nil {
		h.Reset()
	}
	off, hashed := 0, 0
	for off < len(body) {
		m, err := rd.Read(body[off:])
		off += m
		if h != nil && off-hashed >= hashStep {
			end := hashed + (off-hashed)/hashStep*hashStep
			h.Write(body[hashed:end])
			hashed = end
		}
		if err != nil && off < len(body) {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
	}
	if h != nil {
		h.Write(body[hashed:])
	}
	return nil
}

// failed classifies a transport error: the caller's own cancellation says
// nothing about the peer; a dead connection marks the peer down.
func (n *Node) failed(ctx context.Context, peer string, conn *quic.Conn, err error) error {
	if cerr := ctxErr(ctx); cerr != nil {
		return fmt.Errorf("%w (%w)", cerr, err)
	}
	if connectionFailed(conn, err) {
		n.markDown(peer, conn)
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

func resultLabel(ctx context.Context, err error) string {
	var ie *erasure.IntegrityError
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, ErrNotFound):
		return "not_found"
	case errors.As(err, &ie):
		return "corrupt"
	case errors.Is(err, ErrPeerDown):
		return "down"
	case ctxErr(ctx) != nil:
		return "canceled"
	default:
		return "error"
	}
}

// GetShard fetches a shard from peer. The shard is verified against the
// descriptor that came with it; a mismatch is an *erasure.IntegrityError.
// The caller still checks that the descriptor is the one it expects.
func (n *Node) GetShard(ctx context.Context, peer string, id erasure.ShardID) (*erasure.Descriptor, []byte, error) {
	return n.getShard(ctx, peer, id, nil)
}

// GetShardInto is GetShard reading the shard into dst, which must be as
// long as the shard (the descriptor's ShardLen: the segment's length over
// k, rounded up), rather than into a new buffer: a reader that rebuilds a
// segment can have each data shard land in its place in the segment (see
// erasure.Coder.DecodeInPlace) and save an allocation and a copy. A shard of
// another length is an error, and dst is not written. On any error, dst's
// bytes are unspecified.
func (n *Node) GetShardInto(ctx context.Context, peer string, id erasure.ShardID, dst []byte) (*erasure.Descriptor, error) {
	if len(dst) == 0 {
		return nil, errors.New("swarm: GetShardInto: empty buffer")
	}
	d, _, err := n.getShard(ctx, peer, id, dst)
	return d, err
}

func (n *Node) getShard(ctx context.Context, peer string, id erasure.ShardID, dst []byte) (*erasure.Descriptor, []byte, error) {
	resp, body, err := n.roundTrip(ctx, peer, &Request{Op: OpGetShard, Shard: id}, nil, dst, func(r *Response, sum erasure.Hash) error {
		if err := r.Descriptor.CheckShardSum(int(id.Index), r.BodyLen, sum); err != nil {
			return fmt.Errorf("swarm: shard %v from %s: %w", id, peer, err)
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return resp.Descriptor, body, nil
}

// PutShard pushes a shard to peer, which verifies it against d and stores it.
func (n *Node) PutShard(ctx context.Context, peer string, id erasure.ShardID, d *erasure.Descriptor, data []byte) error {
	if len(data) != d.ShardLen {
		return &erasure.IntegrityError{Shard: int(id.Index), Reason: "length"}
	}
	_, _, err := n.roundTrip(ctx, peer, &Request{Op: OpPutShard, Shard: id, Descriptor: d, BodyLen: len(data)}, data, nil, nil)
	return err
}

// Stat asks peer for the record stored under key (the payload is the edge's).
func (n *Node) Stat(ctx context.Context, peer string, key []byte) ([]byte, error) {
	if len(key) == 0 || len(key) > MaxKey {
		return nil, fmt.Errorf("swarm: stat: key of %d bytes (want 1..%d)", len(key), MaxKey)
	}
	_, body, err := n.roundTrip(ctx, peer, &Request{Op: OpStat, Payload: key}, nil, nil, nil)
	return body, err
}

// Fill asks peer, a segment's coordinator, to produce the segment that
// payload names: the returned segment has been verified against the
// returned descriptor, or is a placed answer (Data nil, see Segment).
func (n *Node) Fill(ctx context.Context, peer string, payload []byte) (*Segment, error) {
	if len(payload) == 0 || len(payload) > MaxPayload {
		return nil, fmt.Errorf("swarm: fill: payload of %d bytes (want 1..%d)", len(payload), MaxPayload)
	}
	resp, body, err := n.roundTrip(ctx, peer, &Request{Op: OpFill, Payload: payload}, nil, nil, func(r *Response, sum erasure.Hash) error {
		if r.BodyLen == 0 && r.Descriptor.Length > 0 {
			return nil // placed: the shards are verified as they are read
		}
		if err := r.Descriptor.CheckSegmentSum(r.BodyLen, sum); err != nil {
			return fmt.Errorf("swarm: segment from %s: %w", peer, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(body) == 0 && resp.Descriptor.Length > 0 {
		body = nil
	}
	return &Segment{Descriptor: resp.Descriptor, Data: body, Source: resp.Message}, nil
}

// PeerInfo is what a node knows about one member of the fleet.
type PeerInfo struct {
	// Addr is the member's peer address; Self marks this node.
	Addr string
	Self bool
	// Connected reports an open connection dialled to the member; RTT is
	// its smoothed round-trip time (zero without a connection).
	Connected bool
	RTT       time.Duration
	// Down reports that the member failed recently and is being skipped
	// until DownUntil.
	Down      bool
	DownUntil time.Time
	// BytesSent and BytesReceived count the QUIC payload exchanged on the
	// current connection (retransmissions included).
	BytesSent, BytesReceived uint64
	// Member is what membership says of the peer: ID, zone, state.
	Member Member
	// PayloadSent and PayloadReceived count the shard, segment and record
	// bytes exchanged with the peer since this node started, both as
	// client and as server.
	PayloadSent, PayloadReceived uint64
	// Throughput is the peer's recent shard throughput in bytes/s (zero
	// until measured); Failures its recent failures, decaying with a
	// half-life of 30s.
	Throughput float64
	Failures   float64
	// CorruptShards counts shards from the peer that failed verification;
	// AvoidedUntil is when it is asked again after the last one.
	CorruptShards uint64
	AvoidedUntil  time.Time
	// ShardBytesReceived counts the bytes of the shards fetched from the
	// peer that verified, since this node started.
	ShardBytesReceived uint64
}

// Peers returns every member with its connection state, in member order.
func (n *Node) Peers() []PeerInfo {
	sus := n.suspects()
	n.mu.Lock()
	defer n.mu.Unlock()
	now := time.Now()
	v := n.mem.view.Load()
	out := make([]PeerInfo, 0, len(v.all))
	for _, m := range v.all {
		p := PeerInfo{Addr: m, Self: m == n.cfg.Self, Member: sus.apply(v.byAddr[m])}
		if s := n.stats[m]; s != nil {
			p.PayloadSent, p.PayloadReceived = s.sent, s.received
			p.Throughput, p.Failures = s.rate, s.decayedFailures(now)
			p.CorruptShards, p.ShardBytesReceived = s.corrupt, s.shards
			if now.Before(s.avoidUntil) {
				p.AvoidedUntil = s.avoidUntil
			}
		}
		if c := n.conns[m]; c != nil && c.Context().Err() == nil {
			st := c.ConnectionStats()
			p.Connected, p.RTT, p.BytesSent, p.BytesReceived = true, st.SmoothedRTT, st.BytesSent, st.BytesReceived
		}
		if d := n.down[m]; now.Before(d.until) {
			p.Down, p.DownUntil = true, d.until
		}
		out = append(out, p)
	}
	return out
}

// RTT returns the smoothed round-trip time to peer, or zero when there is
// no connection to it.
func (n *Node) RTT(peer string) time.Duration {
	n.mu.Lock()
	c := n.conns[peer]
	n.mu.Unlock()
	if c == nil || c.Context().Err() != nil {
		return 0
	}
	return c.ConnectionStats().SmoothedRTT
}
