package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"

	"github.com/shoalcdn/shoal/bench"
)

// runBench runs a bench scenario against the baselines with this very
// binary as the origin and the edges, prints the table, and writes the
// report and plots.
func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, out, err := benchConfig(args, stderr)
	if err != nil {
		return err
	}
	bin, err := os.Executable()
	if err != nil {
		return fmt.Errorf("finding this binary to run its origin and edges: %w", err)
	}
	cfg.Binary = bin
	rep, err := bench.Run(ctx, cfg)
	if err != nil {
		return err
	}
	paths, err := bench.WriteFiles(out, rep)
	if err != nil {
		return err
	}
	fmt.Fprint(stdout, rep.Markdown())
	fmt.Fprintf(stderr, "wrote %s\n", strings.Join(paths, ", "))
	if rep.Soak != nil && !rep.Soak.Passed {
		return fmt.Errorf("soak failed: %s", strings.Join(rep.Soak.Failures, "; "))
	}
	return nil
}

// benchConfig parses the bench flags into a Config (without its Binary)
// and the output directory.
func benchConfig(args []string, stderr io.Writer) (bench.Config, string, error) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	envUsage(fs)
	var (
		scenario = fs.String("scenario", bench.ScenarioFlash, "workload: flash (every client fetches the same new release at once), "+
			"mix (a CDN's mix: Zipf popularity over objects of 1 KiB to --size, some ranged), "+
			"media (viewers fetching 2–6 MiB video segments in order, with seeks), "+
			"faults (flash while sites are killed and one is slowed), "+
			"soak (the mix for --duration while an edge is killed and restarted every --kill-every; checks goroutines, memory and open files stay flat)")
		edges     = fs.Int("edges", bench.DefaultEdges, "number of sites (edges; one nginx each for the nginx baseline)")
		fleet     = fs.String("fleet-sizes", "", "comma-separated site counts to sweep, e.g. 4,8,16 (instead of --edges)")
		clients   = fs.Int("clients-per-site", 0, "clients per site (0: 1 for flash and faults, 4 for mix and media, 2 for soak)")
		alias     = fs.Int("clients", 0, "the same as --clients-per-site")
		seed      = fs.Uint64("seed", 1, "seed of the objects' bytes and the clients' requests")
		zipf      = fs.Float64("zipf", bench.DefaultZipf, "exponent α of the Zipf popularity (mix, media)")
		objects   = fs.Int("objects", 0, fmt.Sprintf("objects of the mix (0: %d), videos of media (0: %d)", bench.DefaultMixObjects, bench.DefaultVideos))
		requests  = fs.Int("requests", 0, fmt.Sprintf("requests per client: objects in the mix (0: %d), segments per viewer in media (0: %d)", bench.DefaultMixRequests, bench.DefaultWatch))
		ranges    = fs.Float64("range-share", bench.DefaultRangeShare, "share of the mix's requests that ask for a byte range, 0..1")
		segments  = fs.Int("segments", bench.DefaultSegments, "segments per video (media)")
		seeks     = fs.Float64("seek-share", bench.DefaultSeekShare, "chance that a viewer seeks after a segment, 0..1 (media)")
		kill      = fs.Int("kill", bench.DefaultKill, "sites killed mid-crowd (faults)")
		slow      = fs.Int("slow", bench.DefaultSlow, "sites slowed mid-crowd by SIGSTOP/SIGCONT bursts (faults)")
		duration  = fs.Duration("duration", bench.DefaultSoakDuration, "how long the soak's load lasts (30m for the record)")
		killEvery = fs.Duration("kill-every", bench.DefaultKillEvery, "how often the soak kills an edge (SIGKILL) and restarts it; 0 for never")
		out       = fs.String("out", "bench-out", "directory for results.json, report.md and the SVG plots")
		systems   = fs.String("systems", strings.Join(bench.DefaultSystems(), ","), "systems to compare, in order: "+strings.Join(bench.AllSystems(), ", ")+
			" (bittorrent, when named: aria2c leechers at the sites, an aria2c seeder at the origin, opentracker; flash crowd under --netns only; needs aria2c, opentracker and mktorrent)")
		nginx     = fs.String("nginx", "nginx", "nginx binary of the nginx baseline; the baseline is skipped if it is not found")
		edgeFlags = fs.String("edge-flags", "", `extra flags for every edge, e.g. "--segment-size 8MiB"`)
		keep      = fs.Bool("keep", false, "keep the run's temporary directory (objects, data directories, logs)")
		timeout   = fs.Duration("timeout", bench.DefaultTimeout, "limit of one system's crowd")
		netns     = fs.Bool("netns", false, "run every process in a network namespace of its own on shaped links (root, ip and tc), and report distribution times against their lower bounds")
		upS       = fs.String("origin-uplink", "200mbit", "the origin's uplink under --netns (tc rate: 100mbit, 1gbit, 500kbit)")
		upI       = fs.String("edge-uplink", "100mbit", "each site's uplink to its peers under --netns")
		downI     = fs.String("edge-downlink", "1gbit", "each site's downlink under --netns")
		peerRTT   = fs.Duration("peer-rtt", 0, "round trip between sites under --netns, e.g. 20ms (iptables NFQUEUE; needs iptables); 0 for none")
		size      = int64(0)
		slice     = int64(bench.DefaultNginxSlice)
		btPiece   = int64(bench.DefaultBitTorrentPiece)
	)
	fs.Var(sizeFlag{&size}, "size", "size of the release (flash, faults; default 256MiB, 64MiB under --netns), or the mix's largest object (default 128MiB; soak 16MiB)")
	fs.Var(sizeFlag{&slice}, "nginx-slice", "slice size of the nginx baseline (slice module); 0 caches whole objects")
	fs.Var(sizeFlag{&btPiece}, "bt-piece", "piece size of the bittorrent baseline's torrent, a power of two from 16KiB to 16MiB")
	if err := parseFlags(fs, args, stderr); err != nil {
		return bench.Config{}, "", err
	}
	if *clients == 0 {
		*clients = *alias
	}
	// Config reads zero as "the default" and a negative share or count as
	// "none"; on the command line 0 means none.
	none := func(v float64) float64 {
		if v == 0 {
			return -1
		}
		return v
	}
	noneInt := func(v int) int {
		if v == 0 {
			return -1
		}
		return v
	}
	cfg := bench.Config{
		Scenario:   *scenario,
		FleetSizes: []int{*edges},
		Size:       size,
		Clients:    *clients,
		Seed:       *seed,
		Zipf:       *zipf,
		Objects:    *objects,
		Requests:   *requests,
		RangeShare: none(*ranges),
		Segments:   *segments,
		SeekShare:  none(*seeks),
		Kill:       noneInt(*kill),
		Slow:       noneInt(*slow),
		Systems:    splitList(*systems),
		Nginx:      *nginx,
		NginxSlice: slice,
		EdgeFlags:  strings.Fields(*edgeFlags),
		KeepTemp:   *keep,
		Timeout:    *timeout,
		Progress:   stderr,
		NetNS:      *netns,
		PeerRTT:    *peerRTT,
		Duration:   *duration,
		KillEvery:  *killEvery,
	}
	if *killEvery == 0 {
		cfg.KillEvery = -1 // Config reads zero as the default
	}
	cfg.BitTorrentPiece = btPiece
	if *duration <= 0 || *killEvery < 0 {
		return cfg, "", errors.New("--duration must be positive and --kill-every not negative")
	}
	for _, r := range []struct {
		flag, v string
		dst     *float64
	}{{"--origin-uplink", *upS, &cfg.OriginUplink}, {"--edge-uplink", *upI, &cfg.EdgeUplink}, {"--edge-downlink", *downI, &cfg.EdgeDownlink}} {
		bps, err := parseRate(r.v)
		if err != nil {
			return cfg, "", fmt.Errorf("%s: %w", r.flag, err)
		}
		*r.dst = bps
	}
	if slice == 0 {
		cfg.NginxSlice = -1 // Config reads zero as the default
	}
	if *zipf < 0 || *ranges < 0 || *seeks < 0 || *kill < 0 || *slow < 0 || *clients < 0 || *objects < 0 || *requests < 0 || *segments < 0 {
		return cfg, "", errors.New("--zipf, --range-share, --seek-share, --kill, --slow, --clients-per-site, --objects, --requests and --segments cannot be negative")
	}
	if *zipf == 0 {
		cfg.Zipf = 1e-9 // uniform popularity; Config reads zero as the default
	}
	if *fleet != "" {
		cfg.FleetSizes = nil
		for _, s := range splitList(*fleet) {
			n, err := strconv.Atoi(s)
			if err != nil {
				return cfg, "", fmt.Errorf("--fleet-sizes %q: %w", *fleet, err)
			}
			cfg.FleetSizes = append(cfg.FleetSizes, n)
		}
	}
	if size < 0 {
		return cfg, "", errors.New("--size must be positive")
	}
	return cfg, *out, nil
}

// parseRate reads a rate in bits per second as tc writes it: 100mbit,
// 1gbit, 500kbit, 1.5Gbit/s, or a plain number of bits per second.
func parseRate(s string) (float64, error) {
	t := strings.TrimSuffix(strings.ToLower(strings.TrimSpace(s)), "/s")
	t = strings.TrimSuffix(t, "bit")
	t = strings.TrimSuffix(t, "bps")
	mult := 1.0
	for _, u := range []struct {
		suffix string
		mult   float64
	}{{"k", 1e3}, {"m", 1e6}, {"g", 1e9}, {"t", 1e12}} {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || v <= 0 || math.IsInf(v, 0) || math.IsNaN(v) {
		return 0, fmt.Errorf("rate %q: want e.g. 100mbit, 1gbit, 500kbit", s)
	}
	return v * mult, nil
}
