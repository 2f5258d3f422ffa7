package edge

import (
	"context"
	"errors"
	"fmt"
	"io"
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
	"github.com/shoalcdn/shoal/internal/digest"
	"github.com/shoalcdn/shoal/internal/latency"
	"github.com/shoalcdn/shoal/internal/purgelog"
	"github.com/shoalcdn/shoal/internal/sizedlru"
	"github.com/shoalcdn/shoal/internal/throttle"
	"github.com/shoalcdn/shoal/manifest"
	"github.com/shoalcdn/shoal/origin"
	"github.com/shoalcdn/shoal/store"
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
	Store store.Config
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
	// bound follows them, up to a minute (internal/latency). Zero means 5s.
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
	// ForwardMisses is kept for callers of the previous versions: misses
	// are forwarded as the client sent them whenever streamed fills leave
	// them (below), in a fleet of any size. With RangedFills it restores
	// the old rule: an edge alone in its fleet forwards a cold GET miss
	// (miss.go), one that is not fills by HEAD and ranged GETs.
	ForwardMisses bool
	// RangedFills turns streamed fills off (the previous versions' fill
	// path, kept for comparison for one version): a miss is then a HEAD at
	// the object's coordinator and one ranged GET per segment at each
	// segment's coordinator. By default (streamed.go) a miss is one GET by
	// the edge that took it: the object's coordinator grants one fill
	// lease per key for the fleet, the holder forwards the client's
	// request to the origin (without Range), the response
	// header makes the record, and the body streams to the client while it
	// is cut into segments, coded and placed; other edges read the
	// segments from the holder as they are cut. No HEAD is sent that the
	// client did not send.
	RangedFills bool
	// DirectFills turns placed fills off: this edge then asks a segment's
	// coordinator for the whole segment in the answer to its Fill. By
	// default, as in shoal edge (--placed-fills, measured faster on a
	// quiet machine: bench/README.md), it asks for a placed answer
	// (placement.go): the descriptor once k shards are at their holders,
	// the shards then read from k holders, so that a flash crowd's copies
	// are uploaded by every holder rather than the coordinator alone. On a
	// CPU-starved machine (tests under -race on a loaded box) the longer
	// wait for a placed answer once made reads time out and refetch from
	// the origin. Every edge answers placed Fills whatever this says.
	DirectFills bool
	// FillProbe is how long a Fill at a segment's coordinator may go
	// unanswered before this edge probes the coordinator (placement.go);
	// one that answers neither of two probes, each given 1.5 × FillProbe,
	// is taken for dead and the next rank asked. Zero means no probes: a
	// dead coordinator's Fill ends with the QUIC idle timeout (3 s). Off
	// by default: on a CPU-starved machine a live coordinator missed its
	// probes and its segment was fetched from the origin twice.
	FillProbe time.Duration
	// Registry says whether origins are OCI registries (registry.go):
	// RegistryAuto ("" too) asks each origin's /v2/; RegistryOn and
	// RegistryOff decide for all. A registry's content by digest is kept by
	// digest, read with the origin's permission for each client's
	// credentials, and checked against its digest. Off with RangedFills or
	// Trust (RegistryOn is then an error).
	Registry RegistryMode
	// RegistryNames are the names clients give the registry an origin is,
	// when they differ from its URL's host (docker.io for
	// https://registry-1.docker.io): a mirror request (containerd's
	// "?ns=<registry>") for a registry not named so is answered 404, and
	// containerd asks its next host.
	RegistryNames []string
	// MaxRanges is how many ranges one request may ask for, after
	// overlapping and nearby ranges are merged; beyond it the Range field
	// is ignored and the whole object sent. Zero means 16.
	MaxRanges int
	// Logger receives structured logs. Nil means slog.Default().
	Logger *slog.Logger
	// TracerProvider makes spans. Nil means no tracing.
	TracerProvider trace.TracerProvider
	// Now returns the current time for every freshness, age, expiry,
	// revalidation and purge decision (timeouts, deadlines and rates stay
	// on the wall clock). Nil means time.Now. Tests set it to move time
	// without sleeping.
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
	records *sizedlru.Cache[string, *Record]
	purges  *purgeLog // purges known, exchanged with peers (purgelog.go)
	mem     *sizedlru.Cache[erasure.SegmentID, *memSegment]
	store   *store.Store

	stats singleflight.Group // record lookups, by key

	// The roles (doc.go): each holds its collaborators, and small
	// interfaces for what it needs of the others.
	shards *shardReader // segments from their holders' shards (segments.go)
	reader *reader      // a segment for a request (segments.go)
	filler *filler      // fills as coordinator, placement (segments.go, placement.go)
	repair *repairer    // redundancy after membership changes (repair.go)
	purger *purger      // purges and invalidation (purge.go, purgelog.go)
	// status and prefetch make the status page and the prefetcher of
	// each Admin handler (status.go, prefetch.go).
	status   statusConfig
	prefetch prefetchConfig

	signed     *signed   // nil unless Config.Trust is set
	digests    *registry // registry origins (registry.go)
	refreshing sync.Map  // keys refreshed in the background (stale-while-revalidate)
	pending    sync.Map  // keys with a forwarded miss in flight (miss.go)
	vary       varyIndex // how targets vary (vary.go)

	leases  leaseTable // fill leases of the keys coordinated here (lease.go)
	streams streams    // streamed fills known to this edge (streamed.go)

	bg *tasks // background work Shutdown waits for (background.go)

	mu       sync.Mutex
	httpSrv  []clientServer // given to Attach (front.go)
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
// records kept there) but serves nothing until ServePeers, and until a
// server of clients (package front) serves it and is given to Attach.
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
		records: sizedlru.New[string](64<<20, func(r *Record) int64 { return int64(512 + len(r.Key) + headerSize(r.Header)) }),
		mem:     sizedlru.New[erasure.SegmentID](cfg.MemoryCache, (*memSegment).cost),
		bg:      newTasks(cfg.PeerTimeout, 16),
		hot:     newHotObjects(),
	}
	e.m = newMetrics()
	if cfg.RequireSigned && cfg.Trust == nil {
		return nil, errors.New("edge: RequireSigned needs Trust (--trust-key)")
	}
	if err := validRegistryMode(cfg.Registry); err != nil {
		return nil, err
	}
	if cfg.RangedFills || cfg.Trust != nil {
		// Content by digest is only ever fetched by a client's own request,
		// which ranged fills and manifest checks do not make.
		if cfg.Registry == RegistryOn {
			return nil, errors.New("edge: registry mode (--registry on) needs streamed fills: not with --ranged-fills or --trust-key")
		}
		cfg.Registry = RegistryOff
		e.cfg.Registry = RegistryOff
	}
	e.digests = newRegistry(cfg.Registry, cfg.RegistryNames, e.m.reg, e.log, func(ctx context.Context, key string) {
		if rec, ok := e.records.Get(key); ok && !rec.Pass {
			(*streamer)(e).lost(ctx, rec)
		}
	})
	scfg := cfg.Store
	scfg.Logger = cfg.Logger
	scfg.OnCorrupt = func(id erasure.ShardID, err error) {
		e.m.corruptShards.WithLabelValues("store").Inc()
		e.log.Warn("deleted a corrupt shard from the store", "shard", id.String(), "err", err)
	}
	if e.store, err = store.Open(scfg); err != nil {
		return nil, err
	}
	// Records kept on disk wait for a peer's purge log (purgelog.go).
	e.purges = purgelog.New(scfg.Dir)
	heldRecords := storedRecords(e.store)

	// Each origin client's transport is wrapped to count requests and bytes
	// (and share the OriginLimit); its reverse proxy for other methods
	// shares it.
	limit := throttle.New(cfg.OriginLimit)
	wrap := func(rt http.RoundTripper) http.RoundTripper {
		return throttle.Transport(&countingTransport{next: rt, reqs: e.m.originReqs, bytes: e.m.originBytes, duration: e.m.originDuration}, limit)
	}
	if e.sites, err = newSites(cfg, wrap, e.newProxy); err != nil {
		return nil, fmt.Errorf("edge: %w", err)
	}
	// The hosts content fills are redirected to (registry.go): counted
	// and limited as origin traffic.
	// Each connection is dialled for its own hop, to an address no more
	// private than that hop's origin (digest.NoDeeperDial): none is
	// reused by a hop it was not checked for.
	e.digests.other = wrap(&http.Transport{
		DialContext: (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second,
			ControlContext: digest.NoDeeperDial(lookupNetIP)}).DialContext,
		ForceAttemptHTTP2:     true,
		DisableKeepAlives:     true,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: e.originTimeout(),
		DisableCompression:    true,
	})
	e.digests.segSize = cfg.Layout.SegmentSize
	e.digests.records = e.records.Get

	// The swarm reports membership changes to repair as it is made.
	membersChanged := newSignal()
	ncfg := cfg.Swarm
	ncfg.OnMembersChange = membersChanged.notify
	ncfg.Store = e.store
	ncfg.Layout = cfg.Layout
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
	e.m.watch(e.mem, e.store, e.node)

	// The roles (doc.go), each given what it uses: leaves, and the roles
	// it needs as small interfaces of their own.
	params := cfg.Layout.Params
	e.shards = &shardReader{
		node: e.node, store: e.store, coder: coder, params: params,
		hedge: latency.NewHedgeTimer(cfg.HedgeDelay), xfer: latency.NewTransferClock(cfg.PeerTimeout),
		bg: e.bg, m: e.m, log: e.log, tracer: e.tracer,
	}
	e.repair = newRepairer(repairConfig{
		node: e.node, store: e.store, mem: e.mem, coder: coder, params: params, reads: e.shards,
		m: e.m, log: e.log, wake: membersChanged, delay: cfg.RepairDelay, peerTimeout: cfg.PeerTimeout,
	})
	e.filler = &filler{
		node: e.node, store: e.store, coder: coder, mem: e.mem, sites: e.sites, params: params,
		xfer: e.shards.xfer, pushSem: make(chan struct{}, 64),
		shards: e.shards, records: e, repair: e.repair, bg: e.bg, stop: e.bg.ctx.Done(), streams: &e.streams,
		holdersFirst: !cfg.RangedFills, m: e.m, log: e.log, tracer: e.tracer,
	}
	if cfg.Trust != nil {
		e.signed = newSigned(signedConfig{
			trust: cfg.Trust, require: cfg.RequireSigned, sites: e.sites, mem: e.mem,
			refetch: e.filler, reg: e.m.reg, log: e.log,
		})
	}
	e.reader = &reader{
		node: e.node, mem: e.mem, shards: e.shards, filler: e.filler, repair: e.repair, signed: e.signed,
		placedFills: !cfg.DirectFills, fillProbe: cfg.FillProbe, streams: &e.streams,
		m: e.m, log: e.log, tracer: e.tracer,
	}
	e.reader.digests = e.digests.check
	e.digests.segments = e.reader.segmentAnySource
	e.purger = &purger{
		node: e.node, entries: e.purges, held: e.records, store: e.store, sites: e.sites,
		records: e, bg: e.bg, signing: e.signed != nil, now: cfg.Now,
		placeBody: func(rec *Record, body io.ReadCloser) io.ReadCloser {
			return &segmentTee{e: e, rec: rec, body: body, buf: make([]byte, coder.EncodedLen(int(rec.Size))), p: &pendingMiss{done: make(chan struct{})}}
		},
		layout: cfg.Layout, maxHeuristicFreshness: cfg.MaxHeuristicFreshness, peerTimeout: cfg.PeerTimeout,
		log: e.log,
	}
	e.status = statusConfig{
		metrics: e.m, hot: e.hot, node: e.node, mem: e.mem, store: e.store,
		layout: cfg.Layout, memoryLimit: cfg.MemoryCache,
		ready: readiness{draining: &e.draining, serving: &e.serving, peersUp: &e.peersUp}, bg: e.bg,
	}
	e.prefetch = prefetchConfig{node: e.node, sites: e.sites, records: e, segments: e.reader, bg: e.bg, log: e.log}
	if !expectsPeers(cfg.Swarm) {
		e.purger.admitRecords(heldRecords)
		heldRecords = nil
	}
	e.bg.goBackground(func(context.Context) { e.store.Run(e.bg.ctx) })
	e.bg.goBackground(func(context.Context) { e.repair.run(e.bg.ctx) })
	e.bg.goTracked(0, func(ctx context.Context) { e.purger.runPurgeSync(ctx, heldRecords) })
	e.bg.goBackground(func(context.Context) { e.repair.replace(e.bg.ctx) })
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

// Node returns the edge's swarm member.
func (e *Edge) Node() *swarm.Node { return e.node }

// ServePeers serves the peer protocol on pc until Shutdown; see swarm.Node.Serve.
func (e *Edge) ServePeers(pc net.PacketConn) error {
	e.peersUp.Store(true)
	defer e.peersUp.Store(false)
	return e.node.Serve(pc)
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
	e.bg.stop()
	e.bg.wait(ctx)
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
	e.bg.stop()
	err := e.node.Close()
	e.store.Close()
	return err
}
