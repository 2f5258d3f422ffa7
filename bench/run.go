package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/shoalcdn/shoal/internal/samplefile"
)

const (
	// warmupObjects and warmupSize describe the small objects every site
	// fetches before the crowd, so that the fleet has met (QUIC connections
	// between edges, keep-alive connections to the origin) as a fleet in
	// service has. They are not counted.
	warmupObjects = 8
	warmupSize    = 256 << 10
	// settleLimit bounds the wait for the serving tier to be quiet after a
	// crowd, before its CPU time is read.
	settleLimit = 5 * time.Second
)

// runner is one Run: its configuration, its files and what it found.
type runner struct {
	cfg     Config
	dir     string   // the run's directory
	tlsDir  string   // fleet certificates
	www     string   // the origin's directory
	cat     *catalog // the objects the origin serves
	warmup  []string // URL paths of the warm-up objects
	nginx   nginxInfo
	noNginx string // why the nginx system is skipped, if it is
	bt      btTools
	noBT    string // why the bittorrent system is skipped, if it is
	proc    *procReader
	http    *http.Client // probes and scrapes
	// net is the emulated network under Config.NetNS, nil otherwise; dial
	// connects from the harness's place in it (nil: loopback, the default
	// dialer).
	net  *netEnv
	dial func(context.Context, string, string) (net.Conn, error)
}

// Run runs cfg's scenario for every fleet size and system and returns the
// figures. A body that is not the object asked for, a client that fails, or a
// process that does not start fails the run; when the harness made the
// temporary directory, it is then kept, and the error names it, so that
// the processes' logs can be read.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	r := &runner{cfg: cfg, proc: &procReader{}, http: &http.Client{Timeout: 10 * time.Second}}
	made := false
	if r.dir = cfg.TempDir; r.dir == "" {
		if r.dir, err = os.MkdirTemp("", "shoal-bench-"); err != nil {
			return nil, err
		}
		made = true
	}
	rep, err := r.run(ctx)
	if r.cat != nil {
		r.cat.close()
	}
	switch {
	case err != nil && made && !cfg.KeepTemp:
		os.RemoveAll(r.www) // the objects are big and say nothing
		return nil, fmt.Errorf("%w\n(the processes' logs are kept in %s)", err, r.dir)
	case made && !cfg.KeepTemp:
		os.RemoveAll(r.dir)
	}
	return rep, err
}

func (r *runner) run(ctx context.Context) (*Report, error) {
	cfg := r.cfg
	rep := &Report{
		Scenario:       cfg.Scenario,
		Started:        time.Now(),
		Machine:        machineInfo(r.proc),
		EdgeFlags:      cfg.EdgeFlags,
		ClientsPerSite: cfg.Clients,
		Seed:           cfg.Seed,
	}
	out, err := exec.Command(cfg.Binary, "version").Output()
	if err != nil {
		return nil, fmt.Errorf("bench: %s version: %w", cfg.Binary, err)
	}
	rep.ShoalVersion = strings.TrimSpace(string(out))
	if err := r.setup(); err != nil {
		return nil, err
	}
	if cfg.NetNS {
		if r.net, err = newNetEnv(ctx, cfg, slices.Max(cfg.FleetSizes)); err != nil {
			return nil, err
		}
		defer r.net.close()
		r.dial = r.net.dial
		r.http = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: r.dial}}
		rep.Network = &Network{OriginUplink: cfg.OriginUplink, EdgeUplink: cfg.EdgeUplink, EdgeDownlink: cfg.EdgeDownlink, PeerRTTSeconds: cfg.PeerRTT.Seconds()}
		r.progressf("bench: emulated network: origin uplink %s, site uplinks %s, site downlinks %s (tbf/htb in network namespaces %s*)",
			bitString(cfg.OriginUplink), bitString(cfg.EdgeUplink), bitString(cfg.EdgeDownlink), strings.TrimSuffix(r.net.hub, "hub"))
	}
	what := ""
	if cfg.Scenario == ScenarioFlash || cfg.Scenario == ScenarioFaults {
		rel := r.cat.objects[0]
		rep.Release = Release{Path: rel.Path, Size: rel.Size, SHA256: rel.SHA256}
		what = fmt.Sprintf("%s release (sha256 %s…)", sizeString(rel.Size), rel.SHA256[:12])
	} else {
		rep.Workload = &Workload{Objects: len(r.cat.objects), CatalogBytes: r.cat.bytes, Zipf: cfg.Zipf, Requests: cfg.Requests}
		switch cfg.Scenario {
		case ScenarioMix, ScenarioSoak:
			rep.Workload.LargestObject, rep.Workload.RangeShare = cfg.Size, cfg.RangeShare
		case ScenarioMedia:
			rep.Workload.Videos, rep.Workload.Segments, rep.Workload.SeekShare = cfg.Objects, cfg.Segments, cfg.SeekShare
		}
		what = fmt.Sprintf("%d objects, %s in all, Zipf α %.2f, %d requests per client", len(r.cat.objects), sizeString(r.cat.bytes), cfg.Zipf, cfg.Requests)
		if cfg.Scenario == ScenarioSoak {
			what = fmt.Sprintf("%d objects, %s in all, Zipf α %.2f, requests until %v have passed", len(r.cat.objects), sizeString(r.cat.bytes), cfg.Zipf, cfg.Duration)
		}
	}
	if cfg.Scenario == ScenarioFaults {
		rep.Faults = &FaultPlan{Kill: cfg.Kill, Slow: cfg.Slow, KillAt: faultKillAt(cfg.Kill), SlowAt: faultSlowAt,
			StopMillis: faultStop.Milliseconds(), RunMillis: faultRun.Milliseconds()}
	}
	r.progressf("bench %s: %s, %s per site, fleet sizes %v, systems %s; files in %s",
		cfg.Scenario, what, plural(cfg.Clients, "client"), cfg.FleetSizes, strings.Join(cfg.Systems, ", "), r.dir)
	if r.noBT == "" && r.bt.Aria2c != "" {
		rep.BitTorrent = &BitTorrentInfo{Aria2: r.bt.Version, PieceSize: cfg.BitTorrentPiece}
	}
	if r.noNginx == "" && r.nginx.Path != "" {
		rep.NginxVersion = r.nginx.Version
		if r.nginx.Slice && cfg.NginxSlice > 0 {
			rep.NginxSlice = cfg.NginxSlice
		}
	}
	if cfg.Scenario == ScenarioSoak {
		if rep.Soak, err = r.soak(ctx, cfg.FleetSizes[0]); err != nil {
			return nil, fmt.Errorf("bench: soak with %d sites: %w", cfg.FleetSizes[0], err)
		}
		rep.Workload.Requests = 0 // each client makes requests until the time is up
	}
	for _, n := range cfg.FleetSizes {
		if cfg.Scenario == ScenarioSoak {
			break
		}
		run := FleetRun{Sites: n}
		pl := r.cat.plan(cfg, n)
		if cfg.NetNS && len(r.cat.objects) == 1 {
			b := bounds(r.cat.objects[0].Size, n, cfg.Clients, cfg.OriginUplink, cfg.EdgeUplink, cfg.EdgeDownlink)
			run.Bounds = &b
		}
		if len(cfg.FleetSizes) > 1 || cfg.Scenario != ScenarioFlash && cfg.Scenario != ScenarioFaults {
			r.progressf(" %d sites: %d requests, %s to deliver, %s unique", n, pl.requests, sizeString(pl.total), sizeString(pl.unique))
		}
		for _, sys := range cfg.Systems {
			res, err := r.system(ctx, sys, n, pl)
			if err != nil {
				return nil, fmt.Errorf("bench: %s with %d sites: %w", sys, n, err)
			}
			run.Systems = append(run.Systems, res)
		}
		rep.Runs = append(rep.Runs, run)
	}
	rep.Machine.LoadAfter = r.proc.loadAvg()
	rep.Seconds = time.Since(rep.Started).Seconds()
	return rep, nil
}

func (r *runner) progressf(format string, a ...any) {
	fmt.Fprintf(r.cfg.Progress, format+"\n", a...)
}

// setup makes the certificates, the origin's content and finds nginx.
func (r *runner) setup() error {
	// The fleet's certificates come from the binary under test, like
	// everything else the bench uses of it: its command line and HTTP.
	r.tlsDir = filepath.Join(r.dir, "tls")
	hosts := "127.0.0.1,localhost"
	if r.cfg.NetNS {
		hosts += "," + originIP()
		for i := range slices.Max(r.cfg.FleetSizes) {
			hosts += "," + siteIP(i)
		}
	}
	if out, err := exec.Command(r.cfg.Binary, "certs", "--dir", r.tlsDir, "--hosts", hosts).CombinedOutput(); err != nil {
		return fmt.Errorf("bench: shoal certs: %w: %s", err, out)
	}
	r.www = filepath.Join(r.dir, "www")
	cat, err := makeCatalog(r.cfg, r.www)
	if err != nil {
		return err
	}
	r.cat = cat
	if err := cat.open(r.www); err != nil {
		return err
	}
	for i := range warmupObjects {
		p := fmt.Sprintf("/warmup/w%02d.bin", i)
		if _, err := WriteRandomFile(filepath.Join(r.www, p), warmupSize, r.cfg.Seed+1000+uint64(i)); err != nil {
			return err
		}
		r.warmup = append(r.warmup, p)
	}
	if slices.Contains(r.cfg.Systems, SystemNginx) {
		info, err := findNginx(r.cfg.Nginx)
		switch {
		case errors.Is(err, exec.ErrNotFound):
			r.noNginx = fmt.Sprintf("%s not found (apt-get install -y nginx)", r.cfg.Nginx)
		case err != nil:
			r.noNginx = err.Error()
		default:
			r.nginx = info
		}
	}
	if slices.Contains(r.cfg.Systems, SystemBitTorrent) {
		r.noBT = r.bitTorrentSkip()
	}
	return nil
}

// bitTorrentSkip says why the bittorrent system cannot run, or "".
func (r *runner) bitTorrentSkip() string {
	switch {
	case r.cfg.Scenario != ScenarioFlash:
		return "runs the flash crowd only (one release, one leecher per client)"
	case !r.cfg.NetNS:
		return "needs --netns: on loopback no link carries the seeder's upload apart from everyone's traffic, and with no link to share its time says nothing about distribution"
	}
	t, err := findBitTorrent()
	if err != nil {
		return err.Error()
	}
	r.bt = t
	return ""
}

// system starts one system with n sites, warms it up, runs the crowd of
// plan pl, measures, and stops it.
func (r *runner) system(ctx context.Context, sys string, n int, pl *plan) (_ SystemResult, err error) {
	res := SystemResult{System: sys, Sites: n, ClientsPerSite: r.cfg.Clients, UniqueBytes: pl.unique, Requests: pl.requests}
	if sys == SystemNginx && r.noNginx != "" {
		res.Skipped = r.noNginx
		r.progressf("  %-10s %2d sites: skipped: %s", sys, n, r.noNginx)
		return res, nil
	}
	if sys == SystemBitTorrent {
		if r.noBT != "" {
			res.Skipped = r.noBT
			r.progressf("  %-10s %2d sites: skipped: %s", sys, n, r.noBT)
			return res, nil
		}
		return r.bittorrent(ctx, n, pl)
	}
	dir := filepath.Join(r.dir, fmt.Sprintf("%s-%d", sys, n))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return res, err
	}
	t0 := time.Now()
	d, err := r.deploy(ctx, sys, n, dir)
	if d != nil {
		defer func() {
			d.stop()
			switch {
			case r.cfg.KeepTemp:
			case err != nil: // keep the logs and configurations to read
				removeBulk(dir)
			default:
				os.RemoveAll(dir)
			}
		}()
	}
	if err != nil {
		return res, err
	}
	if err := r.warm(ctx, d); err != nil {
		return res, fmt.Errorf("warm-up: %w", err)
	}
	up := time.Since(t0)

	r.settle(ctx, d)
	before, err := r.snapshot(ctx, d)
	if err != nil {
		return res, err
	}
	res.Load = before.load
	clients, faults, err := r.crowd(ctx, d, sys, pl)
	res.Faults = faults
	if err != nil {
		for i, p := range d.procs { // a crash explains a failed download
			if _, killed := d.dead[i-1]; p.exited() && !killed {
				err = errors.Join(err, p.failure("exited during the crowd"))
			}
		}
		return res, err
	}
	res.SettleSeconds = r.settle(ctx, d).Seconds()
	after, err := r.snapshot(ctx, d)
	if err != nil {
		return res, err
	}
	r.measure(&res, d, clients, before, after)
	extra := ""
	if len(faults) > 0 {
		extra = fmt.Sprintf(", %d faults, %d failovers", len(faults), res.Failovers)
	}
	r.progressf("  %-10s %2d sites: up in %.1f s; %d clients, %d requests done in %.2f s (TTFB p50 %s), origin %.2f× unique, %s, %.2f CPU s/GB%s, all bodies verified",
		sys, n, up.Seconds(), n*r.cfg.Clients, len(clients), res.FleetSeconds, secString(res.TTFB.P50), res.OriginRatio, rateString(res.AggregateRate), res.CPUSecondsPerGB, extra)
	return res, nil
}

// snapshot is the counters a crowd's figures are the difference of.
type snapshot struct {
	originBytes, originReqs int64
	originWire              int64                // under NetNS: bytes on the links (see netEnv.wireBytes)
	peerWire                []int64              // by site
	edges                   map[int]edgeCounters // by site; empty for nginx and direct
	tierCPU, originCPU      float64
	selfCPU, machineCPU     float64 // this process's, and everything's
	at                      time.Time
	load                    [3]float64
}

func (r *runner) snapshot(ctx context.Context, d *deployment) (snapshot, error) {
	s := snapshot{edges: map[int]edgeCounters{}}
	s.originBytes, s.originReqs = d.proxy.Counts()
	if r.net != nil {
		s.originWire, s.peerWire = r.net.wireBytes()
	}
	for i, st := range d.sites {
		if st.admin == "" {
			continue
		}
		if ds, ok := d.dead[i]; ok { // its last scrape, taken just before it was killed
			if ds.counters != nil {
				s.edges[i] = *ds.counters
			}
			continue
		}
		c, err := scrapeEdge(ctx, r.http, st.admin)
		if err != nil {
			return s, err
		}
		s.edges[i] = c
	}
	s.tierCPU = r.tierCPU(d)
	s.originCPU, _ = r.proc.treeCPUSeconds(d.origin.pid())
	s.selfCPU, _ = r.proc.cpuSeconds(os.Getpid())
	s.machineCPU = r.proc.machineBusy()
	s.at = time.Now()
	s.load = r.proc.loadAvg()
	return s, nil
}

// tierCPU is the serving tier's CPU time so far, in seconds; a site killed
// by the faults scenario counts with what it had used when it was killed.
func (r *runner) tierCPU(d *deployment) float64 {
	var sum float64
	for i, pid := range d.tierRoots() {
		if ds, ok := d.dead[i]; ok {
			sum += ds.cpu
			continue
		}
		v, _ := r.proc.treeCPUSeconds(pid)
		sum += v
	}
	return sum
}

// settle waits until the serving tier has used less than a tenth of a
// core over a quarter second (background shard pushes, cache writes and
// the like are done), at most settleLimit, and returns how long it waited.
func (r *runner) settle(ctx context.Context, d *deployment) time.Duration {
	const tick = 250 * time.Millisecond
	start := time.Now()
	prev := r.tierCPU(d)
	for time.Since(start) < settleLimit {
		select {
		case <-ctx.Done():
			return time.Since(start)
		case <-time.After(tick):
		}
		cur := r.tierCPU(d)
		if cur-prev < 0.1*tick.Seconds() {
			break
		}
		prev = cur
	}
	return time.Since(start)
}

// progressEvery is how often a crowd reports its progress on the terminal.
const progressEvery = 5 * time.Second

// crowd starts every client at the same moment (or after its delay in the
// plan), each making its requests in turn at its site, and returns their
// results once all are done, and the faults it caused, if the scenario
// has any. Any failure ends the crowd and fails the run.
func (r *runner) crowd(ctx context.Context, d *deployment, sys string, pl *plan) ([]ClientResult, []FaultEvent, error) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	n := len(d.sites) * r.cfg.Clients
	results := make([][]ClientResult, n)
	errs := make([]error, n)
	startc := make(chan struct{})
	var cnt counters
	var start time.Time
	var wg sync.WaitGroup
	for si := range d.sites {
		// Where a client goes: its own site, and in the faults scenario,
		// when that fails, the next ones.
		sites := []string{d.sites[si].url}
		if r.cfg.Scenario == ScenarioFaults {
			for k := 1; k < len(d.sites); k++ {
				sites = append(sites, d.sites[(si+k)%len(d.sites)].url)
			}
		}
		for ci := range r.cfg.Clients {
			i := si*r.cfg.Clients + ci
			c, buf := newClient(r.dial), make([]byte, copyBufferSize)
			wg.Go(func() {
				defer c.CloseIdleConnections()
				<-startc
				t := start
				if pl.delays != nil && pl.delays[i] > 0 {
					select {
					case <-time.After(pl.delays[i]):
					case <-ctx.Done():
					}
					t = time.Now()
				}
				for k, rq := range pl.clients[i] {
					if k > 0 {
						t = time.Now()
					}
					obj := &r.cat.objects[rq.obj]
					res, err := fetch(ctx, c, sites, rq, obj, t, buf, &cnt)
					res.Site, res.Client, res.Start = si, ci, t.Sub(start).Seconds()
					if len(r.cat.objects) > 1 {
						res.Path = obj.Path
					}
					results[i] = append(results[i], res)
					cnt.requests.Add(1)
					if err != nil {
						var ie *IntegrityError
						if errors.As(err, &ie) {
							ie.System, ie.Site, ie.Client = sys, si, ci
						}
						errs[i] = fmt.Errorf("site %d client %d: %w", si, ci, err)
						cancel() // one failure fails the run: stop the others
						return
					}
				}
			})
		}
	}
	start = time.Now()
	done := make(chan struct{})
	var aux sync.WaitGroup
	var inj *injector
	if r.cfg.Scenario == ScenarioFaults && d.sites[0].proc != nil {
		inj = r.newInjector(ctx, d, pl.total, start)
		cnt.onBytes = inj.onBytes // before the clients start: close(startc) publishes it
	}
	aux.Go(func() {
		tick := time.NewTicker(progressEvery)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				r.progressf("  %-10s %2d sites: … %s of %s, %d of %d requests, %.0f s",
					sys, len(d.sites), sizeString(cnt.bytes.Load()), sizeString(pl.total), cnt.requests.Load(), pl.requests, time.Since(start).Seconds())
			}
		}
	})
	close(startc)
	wg.Wait()
	close(done)
	aux.Wait()
	var faults []FaultEvent
	if inj != nil {
		faults = inj.finish()
	}
	// Report an integrity failure before the cancellations it caused.
	for _, err := range errs {
		var ie *IntegrityError
		if errors.As(err, &ie) {
			return nil, faults, err
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, faults, err
	}
	var all []ClientResult
	for _, rs := range results {
		all = append(all, rs...)
	}
	return all, faults, nil
}

// measure fills res from the crowd's requests and the snapshots around it.
func (r *runner) measure(res *SystemResult, d *deployment, clients []ClientResult, before, after snapshot) {
	measureClients(res, clients)
	res.OriginBytes = after.originBytes - before.originBytes
	res.OriginRequests = after.originReqs - before.originReqs
	if res.UniqueBytes > 0 {
		res.OriginRatio = float64(res.OriginBytes) / float64(res.UniqueBytes)
	}
	res.OriginWireBytes = after.originWire - before.originWire
	res.PeerWireBytes, res.PeerWireBySite = wireDelta(before.peerWire, after.peerWire, res.Sites)
	r.measureTier(res, d, before, after)
}

// measureClients fills res's delivery and latency figures from the
// clients' requests.
func measureClients(res *SystemResult, clients []ClientResult) {
	res.Clients = clients
	var ttfb, dl, rate []float64
	type span struct {
		bytes      int64
		start, end float64
	}
	per := map[[2]int]*span{} // by site and client
	for _, c := range clients {
		res.DeliveredBytes += c.Bytes
		res.Failovers += int64(c.Failovers)
		ttfb = append(ttfb, c.TTFB)
		dl = append(dl, c.Seconds)
		end := c.Start + c.Seconds
		res.FleetSeconds = max(res.FleetSeconds, end)
		k := [2]int{c.Site, c.Client}
		if s := per[k]; s == nil {
			per[k] = &span{c.Bytes, c.Start, end}
		} else {
			s.bytes, s.start, s.end = s.bytes+c.Bytes, min(s.start, c.Start), max(s.end, end)
		}
	}
	for _, s := range per {
		if s.end > s.start {
			rate = append(rate, float64(s.bytes)/(s.end-s.start))
		}
	}
	res.TTFB, res.Download, res.ClientRate = Summarize(ttfb), Summarize(dl), Summarize(rate)
	if res.FleetSeconds > 0 {
		res.AggregateRate = float64(res.DeliveredBytes) / res.FleetSeconds
	}
}

// measureTier fills res's figures of the serving tier: the edges'
// counters, CPU time and memory.
func (r *runner) measureTier(res *SystemResult, d *deployment, before, after snapshot) {
	if len(after.edges) > 0 {
		var sum edgeCounters
		for i, a := range after.edges {
			if b, ok := before.edges[i]; ok {
				sum = sum.add(a.sub(b))
			}
		}
		res.ServedBySource = map[string]int64{}
		for k, v := range sum.Served {
			res.ServedBySource[k] = int64(v)
		}
		res.EdgeOriginBytes = int64(sum.OriginBytes)
		res.HedgedRequests, res.ShardRequests = int64(sum.Hedged), int64(sum.GetShard)
		if sum.GetShard > 0 {
			res.HedgeRatio = sum.Hedged / sum.GetShard
		}
	}

	res.TierCPUSeconds = after.tierCPU - before.tierCPU
	res.OriginCPUSeconds = after.originCPU - before.originCPU
	res.HarnessCPUSeconds = after.selfCPU - before.selfCPU
	if wall := after.at.Sub(before.at).Seconds(); wall > 0 {
		ours := res.TierCPUSeconds + res.HarnessCPUSeconds
		if d.sites[0].proc != nil { // the origin is not the tier
			ours += res.OriginCPUSeconds
		}
		res.OtherCPU = max(0, (after.machineCPU-before.machineCPU-ours)/wall)
	}
	if res.DeliveredBytes > 0 {
		res.CPUSecondsPerGB = res.TierCPUSeconds / (float64(res.DeliveredBytes) / 1e9)
	}
	for i, pid := range d.tierRoots() {
		if ds, ok := d.dead[i]; ok {
			res.PeakRSS = append(res.PeakRSS, ds.rss)
			continue
		}
		res.PeakRSS = append(res.PeakRSS, r.proc.treePeakRSS(pid))
	}
}

// WriteRandomFile writes size bytes from a ChaCha8 stream seeded with seed
// to path and returns their SHA-256 in hex (samplefile.WriteFile).
func WriteRandomFile(path string, size int64, seed uint64) (string, error) {
	return samplefile.WriteFile(path, size, seed)
}
