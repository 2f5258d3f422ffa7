package swarm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/shoalcdn/shoal/erasure"
	"github.com/shoalcdn/shoal/internal/throttle"
)

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
	// Layout is the segment size and shard counts of this node's fleet:
	// with the hash algorithm and the protocol version, what members
	// exchange when they meet (StatHello, gossip metadata). A member that
	// announces another is incompatible: kept out of placement and
	// coordination, and logged. Zero announces nothing and compares
	// nothing.
	Layout erasure.Layout
	// OnRequest, if set, is called after every outgoing request with its op,
	// a result label ("ok", "not_found", "error", "corrupt", "canceled",
	// "down"), the body bytes received and how long it took. It must be
	// quick.
	OnRequest func(op Op, result string, bytes int, took time.Duration)
	// ReadBatchWait is how long the socket reader waits after a read
	// that did not fill its batch before it reads again, so that
	// datagrams streaming in are handled (and acknowledged) together
	// rather than one wake-up each (batchread.go). It delays a datagram
	// by at most that much. Zero means DefaultReadBatchWait; negative
	// reads each datagram as it comes.
	ReadBatchWait time.Duration

	// noHello makes the node answer StatHello as a member of a release
	// before hellos did (tests).
	noHello bool
}

// Node is one member of the fleet on the peer protocol: it serves its
// shards to peers and calls peers on behalf of the edge, over one QUIC
// connection per peer with one stream per request.
//
// It is made of parts that each do one job and know only the parts they
// use: membership (members.go, gossip.go), peer health (peerstats.go:
// down-marking and what is measured of each peer), the transport
// (transport.go: the QUIC socket, listener and connections), the client
// (client.go: the requests this node makes) and the server (server.go:
// the requests it answers). Node wires them and runs the lifecycle.
type Node struct {
	cfg    Config
	log    *slog.Logger
	mem    *membership
	health *peerHealth
	tr     *transport
	client *client
	srv    *server

	// stopAccept ends accepting connections and streams (Shutdown,
	// Close); stopServe ends the requests being served and dials (Close,
	// or Shutdown once drained or out of time).
	acceptCtx  context.Context
	serveCtx   context.Context
	stopAccept context.CancelFunc
	stopServe  context.CancelFunc
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
	serveCtx, stopServe := context.WithCancel(context.Background())
	acceptCtx, stopAccept := context.WithCancel(serveCtx)
	log := cfg.Logger.With("component", "swarm", "self", cfg.Self)
	tracer := cfg.TracerProvider.Tracer("github.com/shoalcdn/shoal/swarm")
	upload := throttle.New(cfg.UploadLimit)
	mem := &membership{self: cfg.Self, zone: cfg.Zone, gossip: cfg.Gossip, onChange: cfg.OnMembersChange, log: log, layout: layoutOf(cfg.Layout)}
	health := newPeerHealth()
	onFail := func(e *ConnectError) {
		if health.connectFailed(e, time.Now()) {
			log.Warn("peer connection failed", "peer", e.Peer, "side", e.Side, "reason", e.Reason, "err", e.Detail)
		}
	}
	tr := newTransport(cfg.Credentials, cfg.DialTimeout, health, serveCtx, onFail)
	tr.excluded = mem.isIncompatible
	n := &Node{
		cfg:    cfg,
		log:    log,
		mem:    mem,
		health: health,
		tr:     tr,
		client: &client{
			tr:        tr,
			health:    health,
			tracer:    tracer,
			upload:    upload,
			zoneOf:    func(peer string) string { return mem.view.Load().byAddr[peer].Zone },
			zone:      cfg.Zone,
			onRequest: cfg.OnRequest,
		},
		srv: &server{
			tr:        tr,
			health:    health,
			store:     cfg.Store,
			handler:   cfg.Handler,
			log:       log,
			tracer:    tracer,
			upload:    upload,
			timeout:   cfg.ServeTimeout,
			acceptCtx: acceptCtx,
			serveCtx:  serveCtx,
		},
		acceptCtx:  acceptCtx,
		serveCtx:   serveCtx,
		stopAccept: stopAccept,
		stopServe:  stopServe,
	}
	tr.greet = n.greet
	if !cfg.noHello {
		n.srv.hello = n.answerHello
	}
	mem.setStatic(peers)
	return n, nil
}

// Self returns this node's peer address.
func (n *Node) Self() string { return n.cfg.Self }

// Ready is closed once Serve listens (and gossip, when on, has started).
func (n *Node) Ready() <-chan struct{} { return n.tr.ready }

// Serve accepts peers on pc until Shutdown or Close, and uses the same
// socket to dial them. It always returns a non-nil error; after Shutdown or
// Close, ErrServerClosed.
func (n *Node) Serve(pc net.PacketConn) error {
	if uc, ok := pc.(*net.UDPConn); ok {
		wait := n.cfg.ReadBatchWait
		if wait == 0 {
			wait = DefaultReadBatchWait
		}
		pc = newBatchConn(uc, wait)
	}
	ln, err := n.tr.listen(pc)
	if err != nil {
		return err
	}
	if n.cfg.Gossip != nil {
		if err := n.mem.startGossip(n.acceptCtx); err != nil {
			n.tr.unlisten()
			return err
		}
	}
	n.tr.markReady()
	if n.cfg.Gossip == nil {
		// Gossip metadata carries the layout; a static list has only
		// the peer protocol to say it.
		go n.meetPeers(n.serveCtx)
	}
	n.log.Info("peer protocol listening", "addr", pc.LocalAddr().String(), "members", len(n.Members()), "zone", n.cfg.Zone)
	return n.srv.serve(ln)
}

// Shutdown stops accepting, lets requests being served finish until ctx is
// done, then closes every connection and the socket's QUIC transport.
// While it waits, the requests being served may still call peers.
func (n *Node) Shutdown(ctx context.Context) error {
	// Leave first: the others stop placing shards here and asking for
	// them while this node drains.
	n.mem.stopGossip(true)
	n.tr.stopAccepting()
	n.stopAccept()
	err := n.tr.drain(ctx)
	n.tr.closeAll()
	n.stopServe()
	return err
}

// Close stops the node at once: listener, connections and in-flight
// requests.
func (n *Node) Close() error {
	// No goodbye: to the others this is a crash, noticed by probes.
	n.mem.stopGossip(false)
	n.tr.stopAccepting()
	n.stopAccept()
	// Connections first: requests cut off must fail at the peers as a
	// closed connection, a node gone, not as "failed: context canceled",
	// which reads as an answer about what they asked for.
	n.tr.closeAll()
	n.stopServe()
	return nil
}
