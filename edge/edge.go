package edge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"golang.org/x/sync/singleflight"

	"github.com/shoalcdn/shoal/erasure"
	"github.com/shoalcdn/shoal/internal/throttle"
	"github.com/shoalcdn/shoal/manifest"
	"github.com/shoalcdn/shoal/origin"
	"github.com/shoalcdn/shoal/swarm"
)

// Config configures an Edge.
type Config struct {
	// Origin configures the client for the origin. Origin.Base is required
	// unless Origins is set; its other fields then apply to every origin.
	Origin origin.ClientConfig
	// Origins, when not empty, makes the edge front several sites: it maps
	// a Host name (matched case-insensitively, without port) to its
	// origin's base URL; "*" is the origin of any other Host. Without "*",
	// a request for a Host not listed gets 421. Keys are then per site
	// (see origins.go); every edge of a fleet needs the same map.
	Origins map[string]string
	// Swarm configures the peer protocol: Self, Peers and Credentials are
	// required. The edge sets Store, Handler, Logger, TracerProvider and
	// OnRequest itself.
	Swarm swarm.Config
	// Layout is how objects are cut and coded. Zero fields mean 4 MiB
	// segments and 4+2 shards. Every edge of a fleet must use the same.
	Layout erasure.Layout
	// MemoryCache bounds the decoded segments kept in memory, in bytes.
	// Zero means 256 MiB.
	MemoryCache int64
	// Store configures the shard store: Dir (empty keeps shards in memory),
	// Limit and ScrubRate. The edge sets Logger and OnCorrupt.
	Store StoreConfig
	// ReadAhead is how many segments a response fetches ahead of the one it
	// is sending. Zero means 2; negative is an error.
	ReadAhead int
	// HedgeDelay is how long a segment read waits for its first k shards
	// before it asks one more holder. Zero means learned: 1.25 times the
	// 95th percentile of recent shard fetches, within 2ms..10s (100ms until
	// 32 fetches have been seen).
	HedgeDelay time.Duration
	// OriginLimit caps the bytes per second read from the origin (a token
	// bucket over every response body). Zero means no limit.
	OriginLimit int64
	// RepairDelay is how long the member set must stay unchanged before
	// the shards whose placement moved are rebuilt and sent to their new
	// holders (see repair.go). Zero means 2s; negative turns repair off.
	RepairDelay time.Duration
	// PeerTimeout bounds one shard request to a peer, or push to one, while
	// the links are fast: where transfers are seen to take longer, the
	// bound follows them, up to a minute (timeouts.go). Zero means 5s.
	PeerTimeout time.Duration
	// MaxHeuristicFreshness caps the freshness guessed from Last-Modified
	// when the origin sends no explicit lifetime. Zero means 24h.
	MaxHeuristicFreshness time.Duration
	// Trust, when set, makes the edge verify every segment against the
	// object's manifest signed by one of its keys (package manifest)
	// before serving it. Objects without a manifest are served with a
	// warning unless RequireSigned.
	Trust *manifest.Verifier
	// RequireSigned refuses (502) objects that have no valid manifest.
	RequireSigned bool
	// ServeStaleOnError is how long past its freshness an object may be
	// served when the origin fails (transport error or 5xx) and its
	// response has no stale-if-error, must-revalidate, proxy-revalidate,
	// no-cache or s-maxage. Zero means never (RFC 9111 §4.2.4's default).
	ServeStaleOnError time.Duration
	// ForwardMisses makes an edge that is alone in its fleet forward a cold
	// GET miss as the client's own request (miss.go): one origin request
	// per miss instead of a HEAD and ranged GETs, and the client's
	// conditionals and fields reach the origin as sent. The price: a
	// response longer than one segment is cut after its header, and the
	// bytes the origin had already sent are wasted (on loopback, megabytes
	// per miss). Off by default, so origin egress stays 1.0× the bytes
	// asked for; for small-object sites and conformance runs.
	ForwardMisses bool
	// PlacedFills makes this edge ask a segment's coordinator for a placed
	// answer to its Fill (placement.go): the descriptor once k shards are
	// at their holders, the shards then read from k holders, so that a
	// flash crowd's copies are uploaded by every holder rather than the
	// coordinator alone. Off in the zero Config; shoal edge turns it on
	// (--placed-fills, measured faster on a quiet machine: bench/README.md).
	// On a CPU-starved machine (tests under -race on a loaded box) the
	// longer wait for the answer made reads time out and refetch from the
	// origin. Every edge answers placed Fills whatever this says.
	PlacedFills bool
	// FillProbe is how long a Fill at a segment's coordinator may go
	// unanswered before this edge probes the coordinator (placement.go);
	// one that answers neither of two probes, each given 1.5 × FillProbe,
	// is taken for dead and the next rank asked. Zero means no probes: a
	// dead coordinator's Fill ends with the QUIC idle timeout (3 s). Off
	// by default: on a CPU-starved machine a live coordinator missed its
	// probes and its segment was fetched from the origin twice.
	FillProbe time.Duration
	// MaxRanges is how many ranges one request may ask for, after
	// overlapping and nearby ranges are merged; beyond it the Range field
	// is ignored and the whole object sent. Zero means 16.
	MaxRanges int
	// Logger receives structured logs. Nil means slog.Default().
	Logger *slog.Logger
	// TracerProvider makes spans. Nil means no tracing.
	TracerProvider trace.TracerProvider
	// Now returns the current time. Nil means time.Now. Tests set it to
	// move time without sleeping.
	Now func() time.Time
}

// Edge is one node of the fleet: the HTTP front clients talk to, the
// memory tier and shard store behind it, and its member of the swarm.
// An Edge is an http.Handler for clients; Admin is the admin listener's.
type Edge struct {
	cfg    Config
	log    *slog.Logger
	tracer trace.Tracer
	sites  *sites // the origins, by Host (origins.go)
	node   *swarm.Node
	coder  *erasure.Coder
	m      *metrics

	hot     *hotObjects
	ids     objectIDs // memo of Record.ID (objectids.go)
	records *sizedLRU[string, *Record]
	purges  *purgeLog // purges known, exchanged with peers (purgelog.go)
	mem     *sizedLRU[erasure.SegmentID, *memSegment]
	store   *Store

	stats singleflight.Group // record lookups, by key
	reads singleflight.Group // segment reads below the memory tier, by segment
	fills singleflight.Group // segment fills as coordinator, by segment

	signed     *signed   // nil unless Config.Trust is set
	refreshing sync.Map  // keys refreshed in the background (stale-while-revalidate)
	pending    sync.Map  // keys with a forwarded miss in flight (miss.go)
	vary       varyIndex // how targets vary (vary.go)

	hedge    *hedgeTimer
	xfer     *transferClock // shard transfer timeouts (timeouts.go)
	repair   *repairer
	pushSem  chan struct{} // shard pushes to peers in flight
	diskSem  chan struct{} // background store writes in flight
	bgMu     sync.Mutex    // orders goBackground's Add before Shutdown's Wait
	bgClosed bool
	bg       sync.WaitGroup
	bgCtx    context.Context
	stopBg   context.CancelFunc

	mu       sync.Mutex
	httpSrv  []clientServer // Serve's, and those of Attach
	serving  atomic.Bool
	peersUp  atomic.Bool
	draining atomic.Bool
}

// memSegment is a decoded segment in the memory tier.
type memSegment struct {
	d    *erasure.Descriptor
	data []byte
	// held is the size of the array data lives in, when larger: a segment
	// fetched from the origin shares its array with its parity shards.
	held int
	// verified is set once data has matched the object's signed manifest.
	verified atomic.Bool
	// placed follows the shards of a segment this edge filled, nil
	// otherwise (placement.go).
	placed atomic.Pointer[placement]
}

func (s *memSegment) cost() int64 { return int64(max(len(s.data), s.held)) }

// Sources of a segment's bytes, the values of the source label.
const (
	srcMemory = "memory"
	srcDisk   = "disk"
	srcPeer   = "peer"
	srcOrigin = "origin"
)

// New returns an Edge for cfg: it opens the shard store (and loads the
// records kept there) but serves nothing until ServePeers and Serve.
func New(cfg Config) (*Edge, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.TracerProvider == nil {
		cfg.TracerProvider = noop.NewTracerProvider()
	}
	cfg.Layout = cfg.Layout.WithDefaults()
	if err := cfg.Layout.Validate(); err != nil {
		return nil, fmt.Errorf("edge: %w", err)
	}
	cfg.MemoryCache = orDefault(cfg.MemoryCache, 256<<20)
	if cfg.ReadAhead < 0 {
		return nil, fmt.Errorf("edge: ReadAhead %d is negative", cfg.ReadAhead)
	}
	cfg.ReadAhead = orDefault(cfg.ReadAhead, 2)
	cfg.PeerTimeout = orDefault(cfg.PeerTimeout, 5*time.Second)
	cfg.MaxHeuristicFreshness = orDefault(cfg.MaxHeuristicFreshness, 24*time.Hour)
	cfg.MaxRanges = orDefault(cfg.MaxRanges, 16)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	coder, err := erasure.NewCoder(cfg.Layout.Params)
	if err != nil {
		return nil, fmt.Errorf("edge: %w", err)
	}
	e := &Edge{
		cfg:     cfg,
		log:     cfg.Logger.With("component", "edge", "self", cfg.Swarm.Self),
		tracer:  cfg.TracerProvider.Tracer("github.com/shoalcdn/shoal/edge"),
		coder:   coder,
		records: newSizedLRU[string](64<<20, func(r *Record) int64 { return int64(512 + len(r.Key) + headerSize(r.Header)) }),
		mem:     newSizedLRU[erasure.SegmentID](cfg.MemoryCache, (*memSegment).cost),
		hedge:   newHedgeTimer(cfg.HedgeDelay),
		xfer:    newTransferClock(cfg.PeerTimeout),
		pushSem: make(chan struct{}, 64),
		diskSem: make(chan struct{}, 16),
		hot:     newHotObjects(),
	}
	e.bgCtx, e.stopBg = context.WithCancel(context.Background())
	e.m = newMetrics(e) // its gauges read e.mem, e.store and e.node only when scraped
	if cfg.Trust != nil {
		e.signed = newSigned(cfg.Trust, cfg.RequireSigned, e.m.reg)
	} else if cfg.RequireSigned {
		return nil, errors.New("edge: RequireSigned needs Trust (--trust-key)")
	}
	scfg := cfg.Store
	scfg.Logger = cfg.Logger
	scfg.OnCorrupt = func(id erasure.ShardID, err error) {
		e.m.corruptShards.WithLabelValues("store").Inc()
		e.log.Warn("deleted a corrupt shard from the store", "shard", id.String(), "err", err)
	}
	if e.store, err = OpenStore(scfg); err != nil {
		return nil, err
	}
	// Records kept on disk wait for a peer's purge log (purgelog.go).
	e.purges = newPurgeLog(scfg.Dir)
	heldRecords := e.store.Records()
	if !e.expectsPeers() {
		e.admitRecords(heldRecords)
		heldRecords = nil
	}

	// Each origin client's transport is wrapped to count requests and bytes
	// (and share the OriginLimit); its reverse proxy for other methods
	// shares it.
	limit := throttle.New(cfg.OriginLimit)
	wrap := func(rt http.RoundTripper) http.RoundTripper {
		return limitOrigin(&countingTransport{next: rt, reqs: e.m.originReqs, bytes: e.m.originBytes, duration: e.m.originDuration}, limit)
	}
	if e.sites, err = newSites(cfg, wrap, e.newProxy); err != nil {
		return nil, fmt.Errorf("edge: %w", err)
	}

	e.repair = newRepairer(e)
	ncfg := cfg.Swarm
	ncfg.OnMembersChange = e.repair.notify
	ncfg.Store = e.store
	ncfg.Handler = (*peerHandler)(e)
	ncfg.Logger = cfg.Logger
	ncfg.TracerProvider = cfg.TracerProvider
	ncfg.OnRequest = func(op swarm.Op, result string, n int, took time.Duration) {
		e.m.peerRequests.WithLabelValues(op.String(), result).Inc()
		e.m.peerDuration.WithLabelValues(op.String(), result).Observe(took.Seconds())
		e.m.peerBytes.Add(float64(n))
	}
	if e.node, err = swarm.New(ncfg); err != nil {
		return nil, fmt.Errorf("edge: %w", err)
	}
	e.goBackground(func(context.Context) { e.store.Run(e.bgCtx) })
	e.goBackground(func(context.Context) { e.repair.run(e.bgCtx) })
	e.goTracked(0, func(ctx context.Context) { e.runPurgeSync(ctx, heldRecords) })
	e.goBackground(func(context.Context) { e.repair.replace(e.bgCtx) })
	return e, nil
}

func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

func headerSize(h map[string][]string) int {
	n := 0
	for k, vs := range h {
		for _, v := range vs {
			n += len(k) + len(v)
		}
	}
	return n
}

// now is the clock of every freshness, age, expiry and purge decision
// (Config.Now); timeouts, deadlines and rates stay on the wall clock.
func (e *Edge) now() time.Time { return e.cfg.Now() }

// Node returns the edge's swarm member.
func (e *Edge) Node() *swarm.Node { return e.node }

// ServePeers serves the peer protocol on pc until Shutdown; see swarm.Node.Serve.
func (e *Edge) ServePeers(pc net.PacketConn) error {
	e.peersUp.Store(true)
	defer e.peersUp.Store(false)
	return e.node.Serve(pc)
}

// Serve serves clients on ln until Shutdown, with the timeouts and limits a
// server facing the internet needs. It returns http.ErrServerClosed after
// Shutdown.
func (e *Edge) Serve(ln net.Listener) error {
	srv := &http.Server{
		Handler:           e,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(e.log.Handler(), slog.LevelWarn),
	}
	e.mu.Lock()
	if e.draining.Load() {
		e.mu.Unlock()
		return http.ErrServerClosed
	}
	e.httpSrv = append(e.httpSrv, srv)
	e.mu.Unlock()
	e.serving.Store(true)
	return srv.Serve(ln)
}

// Drain makes /readyz report 503 while the edge goes on serving, so that
// load balancers stop sending before Shutdown closes the listeners.
func (e *Edge) Drain() { e.draining.Store(true) }

// Shutdown stops accepting clients, lets in-flight responses finish until
// ctx is done, then stops the peer protocol and background work.
func (e *Edge) Shutdown(ctx context.Context) error {
	e.draining.Store(true)
	e.mu.Lock()
	srvs := e.httpSrv
	e.mu.Unlock()
	var errs []error
	for _, s := range srvs {
		if err := s.Shutdown(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	e.stopBg()
	e.bgMu.Lock()
	e.bgClosed = true
	e.bgMu.Unlock()
	done := make(chan struct{})
	go func() { e.bg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
	if err := e.node.Shutdown(ctx); err != nil {
		errs = append(errs, err)
	}
	if err := e.store.Close(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Close stops everything at once.
func (e *Edge) Close() error {
	e.draining.Store(true)
	e.mu.Lock()
	srvs := e.httpSrv
	e.mu.Unlock()
	for _, s := range srvs {
		s.Close()
	}
	e.stopBg()
	err := e.node.Close()
	e.store.Close()
	return err
}
