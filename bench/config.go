package bench

import (
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"
)

// The systems a run compares, in the order they run.
const (
	// SystemShoal is the fleet: N edges with one shared --peers list.
	SystemShoal = "shoal"
	// SystemPerSite is the same N edges, each alone (--peers empty): one
	// cache per site.
	SystemPerSite = "per-site"
	// SystemDirect is the clients straight to the origin.
	SystemDirect = "direct"
	// SystemNginx is one nginx with proxy_cache per site.
	SystemNginx = "nginx"
	// SystemBitTorrent is BitTorrent: an aria2c leecher per client at its
	// site, an aria2c seeder at the origin's place, and opentracker (see
	// bittorrent.go). It runs the flash crowd under NetNS only, and only
	// when named: it is not among DefaultSystems.
	SystemBitTorrent = "bittorrent"
)

// AllSystems returns every system, in the order a run takes them.
func AllSystems() []string {
	return []string{SystemShoal, SystemPerSite, SystemDirect, SystemNginx, SystemBitTorrent}
}

// DefaultSystems returns the systems a run compares when Config.Systems
// is empty: all but bittorrent, which has a meaning only for the flash
// crowd on the emulated network, and runs when it is named.
func DefaultSystems() []string {
	return []string{SystemShoal, SystemPerSite, SystemDirect, SystemNginx}
}

// The scenarios.
const (
	// ScenarioFlash is the flash crowd of a fleet update: every client of
	// every site asks for the same new release at the same moment.
	ScenarioFlash = "flash"
	// ScenarioMix is a CDN's mix: many objects from 1 KiB to Config.Size,
	// Zipf-distributed popularity, a share of ranged requests; each client
	// makes Config.Requests requests one after the other.
	ScenarioMix = "mix"
	// ScenarioMedia is video on demand: viewers each play one video (Zipf
	// popularity over Config.Objects videos), fetching its 2–6 MiB
	// segments in order, with seeks.
	ScenarioMedia = "media"
	// ScenarioFaults is the flash crowd while sites fail: Config.Kill
	// sites are killed (SIGKILL) and Config.Slow are slowed (stopped and
	// continued in bursts) mid-crowd; clients whose site dies resume at
	// the next site with a Range, and every byte is still checked.
	ScenarioFaults = "faults"
	// ScenarioSoak is sustained load on a Shoal fleet for Config.Duration:
	// clients make the mix's requests one after the other, while one edge
	// is killed (SIGKILL) every Config.KillEvery and restarted with the
	// same flags and data directory; at the end every edge's goroutines,
	// resident memory and open files are checked against their values
	// after warm-up (see soak.go).
	ScenarioSoak = "soak"
)

// AllScenarios returns every scenario.
func AllScenarios() []string {
	return []string{ScenarioFlash, ScenarioMix, ScenarioMedia, ScenarioFaults, ScenarioSoak}
}

// Defaults of Config.
const (
	// DefaultEdges is the fleet size of a run without FleetSizes.
	DefaultEdges = 8
	// DefaultSize is the release's size, a fleet update's: a flash run of
	// all four systems with 8 edges takes about 30 s on two idle cores,
	// and longer while other work shares them.
	DefaultSize = 256 << 20
	// DefaultTimeout bounds one system's crowd.
	DefaultTimeout = 10 * time.Minute
	// DefaultNginxSlice is the nginx baseline's slice size: the edges'
	// default segment size, so both fetch the origin in the same steps.
	DefaultNginxSlice = 4 << 20
	// DefaultBitTorrentPiece is the BitTorrent baseline's piece size
	// (bench/README.md, "BitTorrent baseline", says how it was chosen).
	DefaultBitTorrentPiece = 256 << 10

	// DefaultMixSize is the mix's largest object.
	DefaultMixSize = 128 << 20
	// DefaultZipf is the exponent α of the mix's and media's popularity.
	DefaultZipf = 0.9
	// DefaultMixObjects and DefaultMixRequests are the mix's catalog size
	// and requests per client.
	DefaultMixObjects  = 200
	DefaultMixRequests = 16
	// DefaultRangeShare is the mix's share of ranged requests.
	DefaultRangeShare = 0.2
	// DefaultVideos, DefaultSegments and DefaultWatch are media's
	// videos, segments per video, and segments each viewer fetches.
	DefaultVideos   = 8
	DefaultSegments = 30
	DefaultWatch    = 12
	// DefaultSeekShare is the chance that a viewer seeks after a segment.
	DefaultSeekShare = 0.15
	// DefaultKill and DefaultSlow are the sites the faults scenario kills
	// and slows.
	DefaultKill = 2
	DefaultSlow = 1

	// DefaultSoakSize and DefaultSoakObjects are the soak's largest object
	// and catalog size: small, so that a long run is many requests, not
	// a few large downloads.
	DefaultSoakSize    = 16 << 20
	DefaultSoakObjects = 100
	// DefaultSoakDuration is how long the soak's load lasts (30 minutes
	// for the record), DefaultKillEvery how often it kills an edge.
	DefaultSoakDuration = time.Minute
	DefaultKillEvery    = 15 * time.Second
)

// DefaultClients returns the clients per site of a scenario when
// Config.Clients is zero: one for a flash crowd (scale it with the fleet),
// four for the mix and media (many users per site).
func DefaultClients(scenario string) int {
	if scenario == ScenarioMix || scenario == ScenarioMedia {
		return 4
	}
	if scenario == ScenarioSoak {
		return 2
	}
	return 1
}

// Config describes a bench run. Every field but Binary has a usable zero
// value.
type Config struct {
	// Binary is the shoal binary whose `origin` and `edge` subcommands are
	// measured. Required: `shoal bench` passes its own executable, a test
	// one it built.
	Binary string
	// Scenario names the workload, one of AllScenarios. Empty means
	// ScenarioFlash.
	Scenario string
	// FleetSizes are the numbers of sites (edges) to run the scenario with,
	// each a run of its own. Empty means {DefaultEdges}.
	FleetSizes []int
	// Size is the release's size in bytes (flash, faults), or the mix's
	// largest object. Zero means DefaultSize, or DefaultMixSize for the
	// mix. Media ignores it (segments are 2–6 MiB).
	Size int64
	// Clients is the number of clients per site. Zero means
	// DefaultClients(Scenario).
	Clients int
	// Seed fixes the objects' bytes and the clients' requests, so that
	// runs repeat.
	Seed uint64

	// Zipf is the exponent α of popularity (mix: objects; media: videos);
	// rank r is asked for in proportion to 1/r^α. Zero means DefaultZipf.
	Zipf float64
	// Objects is the catalog's size: objects for the mix, videos for
	// media. Zero means DefaultMixObjects or DefaultVideos.
	Objects int
	// Requests is the number of requests each client makes one after the
	// other: objects for the mix, segments for media. Zero means
	// DefaultMixRequests or DefaultWatch.
	Requests int
	// RangeShare is the mix's share of ranged requests, 0..1. Zero means
	// DefaultRangeShare; negative means none.
	RangeShare float64
	// Segments is the number of segments of each video (media). Zero
	// means DefaultSegments.
	Segments int
	// SeekShare is media's chance that a viewer seeks (jumps to another
	// segment) after a segment, 0..1. Zero means DefaultSeekShare;
	// negative means never.
	SeekShare float64
	// Kill and Slow are how many sites the faults scenario kills and
	// slows mid-crowd. Zero means DefaultKill and DefaultSlow; negative
	// means none. Kill + Slow must leave a site alive.
	Kill, Slow int
	// Duration is how long the soak's load lasts. Zero means
	// DefaultSoakDuration.
	Duration time.Duration
	// KillEvery is how often the soak kills an edge (and restarts it).
	// Zero means DefaultKillEvery; negative means never.
	KillEvery time.Duration
	// Systems names the systems to run, a subset of AllSystems, in the order
	// given. Empty means DefaultSystems.
	Systems []string
	// Nginx is the nginx binary. Empty means "nginx" on PATH. When it is not
	// found, the nginx system is reported as skipped.
	Nginx string
	// NginxSlice is the size of the slices (the slice module) in which the
	// nginx baseline fetches and caches the release, when its nginx has the
	// module. Zero means DefaultNginxSlice; negative turns slicing off (the
	// whole object is then one cache entry, and with proxy_cache_lock every
	// client but the first waits for all of it).
	NginxSlice int64
	// BitTorrentPiece is the piece size of the BitTorrent baseline's
	// torrent, a power of two from 16 KiB to 16 MiB. Zero means
	// DefaultBitTorrentPiece.
	BitTorrentPiece int64
	// EdgeFlags are extra flags for every `shoal edge`, e.g.
	// {"--segment-size", "8MiB"}.
	EdgeFlags []string
	// TempDir is the directory for the run's files (the release,
	// certificates, data directories, logs). Empty means a new directory
	// under os.TempDir(), removed at the end unless KeepTemp.
	TempDir string
	// KeepTemp keeps a temporary directory the harness made.
	KeepTemp bool
	// Timeout bounds one system's crowd. Zero means DefaultTimeout.
	Timeout time.Duration
	// Progress receives a line per phase and system as the run goes. Nil
	// discards them.
	Progress io.Writer

	// NetNS runs every process in a network namespace of its own, on
	// shaped links (see netns.go), and reports distribution times against
	// their lower bounds. It needs root, ip and tc (Linux).
	NetNS bool
	// OriginUplink, EdgeUplink and EdgeDownlink are the emulated links'
	// rates in bits per second. Zero means DefaultOriginUplink,
	// DefaultEdgeUplink and DefaultEdgeDownlink.
	OriginUplink, EdgeUplink, EdgeDownlink float64
	// PeerRTT is the round-trip time between sites under NetNS: each site
	// holds the packets it receives from other sites for half of it (an
	// iptables NFQUEUE rule and a delayer in the harness; needs iptables).
	// Zero means none.
	PeerRTT time.Duration
}

// withDefaults returns c with its zero values replaced and checks it.
func (c Config) withDefaults() (Config, error) {
	if c.Binary == "" {
		return c, errors.New("bench: Config.Binary is required (the shoal binary to run)")
	}
	if c.Scenario == "" {
		c.Scenario = ScenarioFlash
	}
	if !slices.Contains(AllScenarios(), c.Scenario) {
		return c, fmt.Errorf("bench: unknown scenario %q: want one of %s", c.Scenario, strings.Join(AllScenarios(), ", "))
	}
	if len(c.FleetSizes) == 0 {
		c.FleetSizes = []int{DefaultEdges}
	}
	for _, n := range c.FleetSizes {
		if n < 1 || n > 64 {
			return c, fmt.Errorf("bench: fleet size %d: want 1..64", n)
		}
	}
	if c.PeerRTT < 0 || c.PeerRTT > 10*time.Second || c.PeerRTT > 0 && !c.NetNS {
		return c, fmt.Errorf("bench: peer RTT %v: want 0..10s, and only with NetNS", c.PeerRTT)
	}
	if c.Size == 0 {
		switch {
		case c.Scenario == ScenarioMix:
			c.Size = DefaultMixSize
		case c.Scenario == ScenarioSoak:
			c.Size = DefaultSoakSize
		case c.NetNS:
			c.Size = DefaultNetnsSize
		default:
			c.Size = DefaultSize
		}
	}
	for _, r := range []struct {
		v    *float64
		d    float64
		name string
	}{{&c.OriginUplink, DefaultOriginUplink, "origin uplink"}, {&c.EdgeUplink, DefaultEdgeUplink, "edge uplink"}, {&c.EdgeDownlink, DefaultEdgeDownlink, "edge downlink"}} {
		if *r.v == 0 {
			*r.v = r.d
		}
		if !(*r.v >= 1e3 && *r.v <= 1e12) {
			return c, fmt.Errorf("bench: %s %v bit/s: want 1 kbit/s to 1 Tbit/s", r.name, *r.v)
		}
	}
	if c.Size < 0 {
		return c, fmt.Errorf("bench: size %d: want > 0", c.Size)
	}
	if (c.Scenario == ScenarioMix || c.Scenario == ScenarioSoak) && c.Size < 2*mixMinSize {
		return c, fmt.Errorf("bench: mix: largest object %d bytes: want at least %d", c.Size, 2*mixMinSize)
	}
	if c.Clients == 0 {
		c.Clients = DefaultClients(c.Scenario)
	}
	if err := c.workloadDefaults(); err != nil {
		return c, err
	}
	if c.Clients < 0 || c.Clients > 256 {
		return c, fmt.Errorf("bench: %d clients per site: want 1..256", c.Clients)
	}
	if len(c.Systems) == 0 {
		c.Systems = DefaultSystems()
	}
	if c.Scenario == ScenarioSoak {
		// The soak checks the edges themselves; there is nothing to
		// compare them with.
		c.Systems = []string{SystemShoal}
	}
	for _, s := range c.Systems {
		if !slices.Contains(AllSystems(), s) {
			return c, fmt.Errorf("bench: unknown system %q: want one of %s", s, strings.Join(AllSystems(), ", "))
		}
	}
	if c.Nginx == "" {
		c.Nginx = "nginx"
	}
	if c.NginxSlice == 0 {
		c.NginxSlice = DefaultNginxSlice
	}
	if c.BitTorrentPiece == 0 {
		c.BitTorrentPiece = DefaultBitTorrentPiece
	}
	if p := c.BitTorrentPiece; p < 16<<10 || p > 16<<20 || p&(p-1) != 0 {
		return c, fmt.Errorf("bench: BitTorrent piece size %d: want a power of two from 16 KiB to 16 MiB", p)
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
	return c, nil
}

// workloadDefaults fills and checks the fields of the mix, media and
// faults.
func (c *Config) workloadDefaults() error {
	if c.Zipf == 0 {
		c.Zipf = DefaultZipf
	}
	if c.Zipf < 0 || c.Zipf > 10 || math.IsNaN(c.Zipf) {
		return fmt.Errorf("bench: Zipf exponent %v: want 0..10", c.Zipf)
	}
	def := func(v *int, d, limit int, what string) error {
		if *v == 0 {
			*v = d
		}
		if *v < 1 || *v > limit {
			return fmt.Errorf("bench: %s %d: want 1..%d", what, *v, limit)
		}
		return nil
	}
	share := func(v *float64, d float64, what string) error {
		switch {
		case *v == 0:
			*v = d
		case *v < 0:
			*v = 0
		case *v > 1 || math.IsNaN(*v):
			return fmt.Errorf("bench: %s %v: want 0..1", what, *v)
		}
		return nil
	}
	switch c.Scenario {
	case ScenarioMix:
		return errors.Join(def(&c.Objects, DefaultMixObjects, 100_000, "objects"),
			def(&c.Requests, DefaultMixRequests, 100_000, "requests per client"),
			share(&c.RangeShare, DefaultRangeShare, "range share"))
	case ScenarioMedia:
		return errors.Join(def(&c.Objects, DefaultVideos, 1000, "videos"),
			def(&c.Segments, DefaultSegments, 10_000, "segments per video"),
			def(&c.Requests, DefaultWatch, 100_000, "segments per viewer"),
			share(&c.SeekShare, DefaultSeekShare, "seek share"))
	case ScenarioSoak:
		if c.Duration == 0 {
			c.Duration = DefaultSoakDuration
		}
		if c.KillEvery == 0 {
			c.KillEvery = DefaultKillEvery
		}
		switch {
		case c.Duration < time.Second || c.Duration > 7*24*time.Hour:
			return fmt.Errorf("bench: soak: duration %v: want 1s..168h", c.Duration)
		case len(c.FleetSizes) != 1:
			return fmt.Errorf("bench: soak: %d fleet sizes: want one", len(c.FleetSizes))
		case c.KillEvery > 0 && c.FleetSizes[0] < 2:
			return errors.New("bench: soak: killing edges needs at least 2 sites (site 0 is never killed)")
		case c.KillEvery > 0 && c.KillEvery < time.Second:
			return fmt.Errorf("bench: soak: kill every %v: want at least 1s, or negative for never", c.KillEvery)
		}
		return errors.Join(def(&c.Objects, DefaultSoakObjects, 100_000, "objects"),
			share(&c.RangeShare, DefaultRangeShare, "range share"))
	case ScenarioFaults:
		for _, v := range []struct {
			p *int
			d int
		}{{&c.Kill, DefaultKill}, {&c.Slow, DefaultSlow}} {
			if *v.p == 0 {
				*v.p = v.d
			}
			*v.p = max(*v.p, 0)
		}
		for _, n := range c.FleetSizes {
			if c.Kill+c.Slow >= n {
				return fmt.Errorf("bench: faults: %d sites cannot lose %d and slow %d: want more sites (at least %d)", n, c.Kill, c.Slow, c.Kill+c.Slow+1)
			}
		}
	}
	return nil
}
