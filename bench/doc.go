// Package bench measures a Shoal fleet against the alternatives a user
// would otherwise pick, on one machine, in one run, with one workload: the
// harness behind `shoal bench`.
//
// It starts real processes: `shoal origin` and `shoal edge` from the binary
// under test (Config.Binary; `shoal bench` passes its own executable), and
// nginx when it is installed, all on 127.0.0.1 with free ports, each with its
// own data directory and log file under a temporary directory. Between the
// serving tier and the origin sits a counting reverse proxy in this process,
// so origin egress is measured outside the systems under test rather than
// taken from their own counters. Clients are goroutines in this process;
// every body they receive is checked against the origin's bytes, and one
// wrong byte fails the run.
//
// The systems, each started fresh for every fleet size with the same origin
// content, clients and timing:
//
//   - shoal: N edges with one shared --peers list (the fleet);
//   - per-site: the same N edges, each alone (--peers empty): one cache per
//     site, what the fleet is without its swarm;
//   - direct: the clients straight to the origin (through the counting proxy);
//   - nginx: per site one nginx with proxy_cache in front of the origin,
//     configured as a competent operator would (proxy_cache_lock, sendfile,
//     the slice module when it is built in); skipped with a note when nginx
//     is not on PATH.
//   - bittorrent, when named in Config.Systems (it is not a default): an
//     aria2c leecher per client in its site's namespace, an aria2c seeder
//     with the release in the origin's, opentracker in the hub's; the
//     flash crowd under Config.NetNS only, skipped with a note otherwise
//     or when aria2c, opentracker or mktorrent is missing (bittorrent.go).
//
// The scenarios, each drawn from a fixed seed so that runs repeat (every
// system of a run gets the same requests):
//
//   - flash: the flash crowd of a fleet update: every client of every site
//     asks for the same new release at the same moment;
//   - mix: a CDN's mix: objects of 1 KiB to Config.Size in three size
//     classes, Zipf popularity (α = Config.Zipf), a share of ranged
//     requests; each client makes its requests one after the other;
//   - media: viewers arriving over a second, each playing a video picked by
//     Zipf popularity: 2–6 MiB segments in order, with seeks;
//   - faults: the flash crowd while sites are killed (SIGKILL) and one is
//     slowed (SIGSTOP/SIGCONT bursts) at set shares of the bytes delivered;
//     a client whose site dies resumes at the next site with a Range.
//   - soak: the mix's requests for Config.Duration on one Shoal fleet,
//     while an edge is killed every Config.KillEvery and restarted with
//     the same command line (data directory included); each life of an
//     edge must keep its goroutines, resident memory and open files
//     within bounds of its values after a warm-up (see soak.go).
//
// Whole bodies are checked against their SHA-256, ranges byte by byte
// against the origin's file.
//
// Figures per system: origin egress ÷ unique bytes, bytes served by source
// (scraped from each edge's /metrics), client throughput, time to first
// byte and full-download latency percentiles, the time until the last
// client is done, CPU seconds per GB served (from /proc), peak RSS
// per site, and the hedged share of shard requests. Run returns them as a
// Report; WriteFiles writes it as JSON, Markdown and SVG plots.
//
// With Config.NetNS (root, ip and tc), every process runs in a network
// namespace of its own on a bridge, with shaped links: the origin's uplink
// (tbf), each site's uplink to its peers (htb; its LAN clients are not
// limited) and downlink (tbf), and optionally a round trip between sites
// (Config.PeerRTT: an iptables NFQUEUE rule on each site's INPUT and a
// delayer in the harness that speaks nfnetlink_queue). The harness's
// clients and counting proxy make their sockets in the bridge's namespace
// (setns on a locked thread). Distribution times are then reported
// against their lower bounds: Kumar–Ross's max(F/u_s, F/d_min,
// N·F/(u_s+Σu_i)) for the fleet, N·F/u_s for caches that each fetch from
// the origin.
//
// The harness reads /proc, so it runs on Linux.
//
// Apart from the harness, bench/hot.sh measures hot content: one edge
// serving from its warm memory tier against nginx's proxy_cache and static
// files, with wrk and many keep-alive connections, reporting req/s, MiB/s
// and the server's CPU per request (bench/README.md, "Hot content vs
// nginx"); TestHotScript runs it briefly.
package bench
