package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/shoalcdn/shoal/edge"
	"github.com/shoalcdn/shoal/erasure"
	"github.com/shoalcdn/shoal/manifest"
	"github.com/shoalcdn/shoal/origin"
	"github.com/shoalcdn/shoal/store"
	"github.com/shoalcdn/shoal/swarm"
)

func runEdge(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return edgeOrCheck(ctx, "edge", args, stdout, stderr)
}

// runCheck is `shoal check`: the flags and environment of `shoal edge`,
// checked (check.go) rather than served.
func runCheck(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return edgeOrCheck(ctx, "check", args, stdout, stderr)
}

// edgeOrCheck parses the flags of an edge (command "edge" or "check") and
// runs the edge, or checks what it would run with.
func edgeOrCheck(ctx context.Context, command string, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet(command, flag.ContinueOnError)
	envUsage(fs)
	var (
		listen      = fs.String("listen", "127.0.0.1:8080", "client HTTP listen address")
		originURL   = fs.String("origin", "", "origin base URL, e.g. http://127.0.0.1:9000, or comma-separated host=URL pairs for several sites (*=URL: any other host) (required)")
		peerListen  = fs.String("peer-listen", "127.0.0.1:7000", "UDP address of the QUIC peer protocol")
		advertise   = fs.String("advertise", "", "this edge's peer address as it appears in --peers (default: --peer-listen)")
		peers       = fs.String("peers", "", "comma-separated peer addresses of the fleet; may include this edge's own")
		tlsDir      = fs.String("tls-dir", "", "directory holding ca.crt, node.crt and node.key, as made by 'shoal certs' (required)")
		adminListen = fs.String("admin-listen", "127.0.0.1:9100", "admin listener (health, readiness, metrics); empty disables")
		adminToken  = fs.String("admin-token", "", "if set, /metrics, /status.json and /admin/* require Authorization: Bearer <token>; if not, /admin/purge and /admin/prefetch answer loopback clients only")
		dataDir     = fs.String("data-dir", "", "directory of the durable shard store; empty keeps shards in memory (lost on restart)")
		shards      = fs.String("shards", "4+2", "Reed-Solomon data+parity shards per segment; the same on every edge")
		logger      = logFlags(fs, "json")
		drain       = fs.Duration("drain-timeout", 30*time.Second, "how long SIGTERM waits for in-flight requests")
		drainDelay  = fs.Duration("drain-delay", 0, "on SIGTERM, how long /readyz reports 503 before the listeners close (time for a load balancer to stop sending)")
		originConc  = fs.Int("origin-concurrency", 32, "requests in flight to the origin at most")
		originTO    = fs.Duration("origin-timeout", 30*time.Second, "timeout of one origin request attempt")
		trustKeys   = fs.String("trust-key", "", "comma-separated public keys (from 'shoal keygen'); if set, every segment is checked against the object's signed manifest before it is served")
		requireSig  = fs.Bool("require-signed", false, "refuse objects without a valid signed manifest (needs --trust-key)")
		maxHeur     = fs.Duration("max-heuristic-freshness", 24*time.Hour, "cap of the freshness guessed from Last-Modified when the origin sends no lifetime")
		placedFills = fs.Bool("placed-fills", true, "ask a segment's coordinator to answer a Fill once the shards are placed, and read them from the holders: spreads a flash crowd's uploads over every holder (--placed-fills=false: the coordinator sends the whole segment)")
		fillProbe   = fs.Duration("fill-probe", 0, "probe a segment's coordinator after this long without an answer to a Fill, and ask the next one after two unanswered probes (0: wait for the QUIC idle timeout; e.g. 500ms)")
		ranged      = fs.Bool("ranged-fills", false, "fill misses the previous versions' way: a HEAD at the object's coordinator and a ranged GET per segment (for comparison; by default a miss is one GET by the edge that took it, collapsed fleet-wide by a fill lease and streamed to the client while it is cut, coded and placed)")
		fwdMisses   = fs.Bool("forward-misses", false, "deprecated, no effect: misses are forwarded as the client sent them by default (with --ranged-fills: an edge alone in its fleet forwards a cold GET miss)")
		registry    = fs.String("registry", "auto", "whether the origin is an OCI registry (Docker, containerd, skopeo pulls): auto asks its /v2/; on; off. A registry's blobs and manifests by digest are kept once by digest whatever the repository or mirror query, read with the origin's permission for each client's credentials, and checked against their digest")
		regNames    = fs.String("registry-names", "", "comma-separated names clients give the registry the origin is, when not its URL's host (e.g. docker.io for https://registry-1.docker.io): containerd's mirror requests (?ns=<registry>) for any other registry get 404, and containerd asks its next host")
		staleOnErr  = fs.Duration("serve-stale-on-error", 0, "how long past freshness an object may be served while the origin fails, unless its response forbids it or sets stale-if-error (0: never)")
		maxRanges   = fs.Int("max-ranges", 16, "ranges per request, after merging, beyond which Range is ignored and the whole object sent")
		readAhead   = fs.Int("read-ahead", 2, "segments a response reads ahead of the one it sends (memory: this many segments per response)")
		debugListen = fs.String("debug-listen", "", "address serving net/http/pprof under /debug/pprof/ on a listener of its own, without the admin token; a port alone (:6060) is loopback; empty (the default) disables")
		readBatch   = fs.Duration("peer-read-batch-wait", swarm.DefaultReadBatchWait, "how long the peer socket's reader waits after a read that did not fill its batch, so that datagrams streaming in are handled together, not one wake-up each (a datagram waits at most this); 0 reads each as it comes")
		strictEnv   = fs.Bool("strict-env", false, "refuse to start when a SHOAL_* environment variable names no flag (a misspelling); without it, such a variable is a warning")
		segSize     = int64(erasure.DefaultSegmentSize)
		memCache    = int64(256 << 20)
		diskCache   = int64(0)
		scrubRate   = int64(4 << 20)
		membership  = addMembershipFlags(fs)
		uploadLimit = int64(0)
		originLimit = int64(0)
	)
	fs.Var(sizeFlag{&uploadLimit}, "peer-upload-limit", "bytes per second of shards sent to peers, e.g. 100MB (token bucket); 0 is unlimited")
	fs.Var(sizeFlag{&originLimit}, "origin-limit", "bytes per second read from the origin, e.g. 50MB (token bucket); 0 is unlimited")
	fs.Var(sizeFlag{&segSize}, "segment-size", "segment size; the same on every edge")
	fs.Var(sizeFlag{&memCache}, "memory-cache", "bytes of decoded segments kept in memory")
	fs.Var(sizeFlag{&diskCache}, "disk-cache", "byte budget of the shard store (default: a quarter of the free space under --data-dir, at least 1GiB or nine tenths of what is free; 1GiB in memory)")
	fs.Var(sizeFlag{&scrubRate}, "scrub-rate", "bytes per second the background scrub reads and verifies; 0 turns it off")
	clients := addFrontFlags(fs) // --tls-listen, --h3-listen, limits: front.go
	var chk checkFlags
	if command == "check" {
		chk.add(fs) // --outside, --remote-warnings: check.go
	}
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	if *readAhead < 1 || *readAhead > 64 {
		return fmt.Errorf("--read-ahead %d: want 1 to 64 segments", *readAhead)
	}
	log, err := logger(stderr)
	if err != nil {
		return err
	}
	var findings checkReport
	if command == "check" {
		findings.w = stdout
	}
	if err := checkEnv(fs, *strictEnv, func(msg string) { log.Warn(msg); findings.warn("environment", msg) }); err != nil {
		return err
	}
	if err := checkConflicts(fs, edgeConflicts); err != nil {
		return err
	}
	originBase, originSites, err := parseOrigins(*originURL)
	if err != nil {
		return err
	}
	creds, err := swarm.LoadCredentials(*tlsDir)
	if err != nil {
		return fmt.Errorf("refusing to start without peer TLS: %w", err)
	}
	params, err := erasure.ParseParams(*shards)
	if err != nil {
		return fmt.Errorf("--shards: %w", err)
	}
	if *dataDir == "" && command == "edge" {
		log.Warn("no --data-dir: shards are kept in memory and lost on restart")
	}
	if *fwdMisses && !*ranged {
		log.Warn("--forward-misses is deprecated and has no effect: a miss is forwarded as the client sent it by default; drop the flag (SHOAL_FORWARD_MISSES)")
	}
	var trust *manifest.Verifier
	if ks := splitList(*trustKeys); len(ks) > 0 {
		if trust, err = manifest.LoadVerifier(ks...); err != nil {
			return fmt.Errorf("--trust-key: %w", err)
		}
	} else if *requireSig {
		return errors.New("--require-signed needs --trust-key")
	}
	if scrubRate == 0 {
		scrubRate = -1 // store.Config reads zero as the default
	}
	self := *advertise
	if self == "" {
		self = *peerListen
	}
	gossip, err := membership.gossipConfig(*peerListen, self, len(splitList(*peers)) > 0)
	if err != nil {
		return err
	}
	zone, err := membership.zoneName()
	if err != nil {
		return err
	}
	if ps := splitList(*peers); len(ps) > 0 && !slices.Contains(ps, self) && !chk.outside {
		// Placement ranks members by these strings: an edge that spells
		// itself differently from its peers would disagree with all of
		// them about who holds what.
		return fmt.Errorf("this edge's peer address %q is not in --peers %q: set --advertise to its entry in the list", self, *peers)
	}
	if command == "check" {
		return findings.run(ctx, checkConfig{
			creds: creds, self: self, peers: splitList(*peers), gossip: gossip,
			layout: erasure.Layout{SegmentSize: segSize, Params: params}, origin: originBase, sites: originSites,
			clientCerts: clients.certs, clientKeys: clients.keys, originTimeout: *originTO, flags: chk,
		})
	}
	tp, stopTracing, err := newTracerProvider(ctx, "shoal-edge", self, log)
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := stopTracing(sctx); err != nil {
			log.Warn("flushing traces", "err", err)
		}
	}()
	e, err := edge.New(edge.Config{
		Origin:  origin.ClientConfig{Base: originBase, MaxConcurrent: *originConc, Timeout: *originTO, Logger: log},
		Origins: originSites,
		Swarm: swarm.Config{
			Self:        self,
			Peers:       splitList(*peers),
			Gossip:      gossip,
			Zone:        zone,
			Credentials: creds,
			UploadLimit: uploadLimit,
			// 0 turns it off here; swarm.Config's zero is the default.
			ReadBatchWait: cmp.Or(*readBatch, -1),
		},
		OriginLimit:    originLimit,
		Layout:         erasure.Layout{SegmentSize: segSize, Params: params},
		MemoryCache:    memCache,
		Trust:          trust,
		RequireSigned:  *requireSig,
		Store:          store.Config{Dir: *dataDir, Limit: diskCache, ScrubRate: scrubRate},
		Logger:         log,
		TracerProvider: tp,

		// HTTP caching (README "HTTP semantics").
		MaxHeuristicFreshness: *maxHeur,
		ServeStaleOnError:     *staleOnErr,
		ForwardMisses:         *fwdMisses,
		RangedFills:           *ranged,
		Registry:              edge.RegistryMode(*registry),
		RegistryNames:         splitList(*regNames),
		DirectFills:           !*placedFills,
		FillProbe:             *fillProbe,
		MaxRanges:             *maxRanges,
		ReadAhead:             *readAhead,
	})
	if err != nil {
		return err
	}
	watchCertificates(ctx, log, e.Registerer(), creds, clients.certs)
	pc, err := net.ListenPacket("udp", *peerListen)
	if err != nil {
		return fmt.Errorf("--peer-listen: %w", err)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		pc.Close()
		return fmt.Errorf("--listen: %w", err)
	}
	var adminLn net.Listener
	if *adminListen != "" {
		if adminLn, err = net.Listen("tcp", *adminListen); err != nil {
			pc.Close()
			ln.Close()
			return fmt.Errorf("--admin-listen: %w", err)
		}
	}
	if *debugListen != "" {
		dbg, err := serveDebug(*debugListen, log)
		if err != nil {
			pc.Close()
			ln.Close()
			if adminLn != nil {
				adminLn.Close()
			}
			return fmt.Errorf("--debug-listen: %w", err)
		}
		defer dbg.Close()
	}
	errc := make(chan error, 5)
	go func() { errc <- e.ServePeers(pc) }()
	closeFront, err := clients.serve(e, ln, log, errc)
	if err != nil {
		e.Close()
		pc.Close()
		ln.Close()
		if adminLn != nil {
			adminLn.Close()
		}
		return err
	}
	defer closeFront()
	var admin *http.Server
	if adminLn != nil {
		admin = &http.Server{Handler: e.Admin(*adminToken), ReadHeaderTimeout: 10 * time.Second}
		go func() { errc <- admin.Serve(adminLn) }()
	}
	log.Info("edge started", "listen", ln.Addr().String(), "peer_listen", pc.LocalAddr().String(), "self", self,
		"members", len(e.Node().Members()), "admin", *adminListen, "origin", *originURL,
		"segment_size", segSize, "shards", params.String(), "version", versionString())

	select {
	case <-ctx.Done():
		log.Info("shutting down: draining in-flight requests", "delay", drainDelay.String(), "timeout", drain.String())
		if *drainDelay > 0 {
			e.Drain()
			time.Sleep(*drainDelay)
		}
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, swarm.ErrServerClosed) {
			e.Close()
			return err
		}
	}
	sctx, cancel := context.WithTimeout(context.Background(), *drain)
	defer cancel()
	err = e.Shutdown(sctx)
	if admin != nil {
		admin.Shutdown(sctx)
	}
	pc.Close()
	if err != nil {
		log.Warn("shutdown did not finish cleanly", "err", err)
	}
	log.Info("edge stopped")
	return nil
}

func splitList(s string) []string {
	var out []string
	for p := range strings.SplitSeq(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
