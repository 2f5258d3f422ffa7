package bench

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
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
	dir     string // the run's directory
	tlsDir  string // fleet certificates
	www     string // the origin's directory
	rel     release
	warmup  []string // URL paths of the warm-up objects
	nginx   nginxInfo
	noNginx string // why the nginx system is skipped, if it is
	proc    *procReader
	http    *http.Client // probes and scrapes
}

// Run runs cfg's scenario for every fleet size and system and returns the
// figures. A body that is not the release, a client that fails, or a
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
	switch {
	case err != nil && made && !cfg.KeepTemp:
		os.RemoveAll(r.www) // the release is big and says nothing
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
	rep.Release = Release{Path: r.rel.Path, Size: r.rel.Size, SHA256: r.rel.SHA256}
	r.progressf("bench %s: %s release (sha256 %s…), %s per site, fleet sizes %v, systems %s; files in %s",
		cfg.Scenario, sizeString(r.rel.Size), r.rel.SHA256[:12], plural(cfg.Clients, "client"), cfg.FleetSizes, strings.Join(cfg.Systems, ", "), r.dir)
	if r.noNginx == "" && r.nginx.Path != "" {
		rep.NginxVersion = r.nginx.Version
		if r.nginx.Slice && cfg.NginxSlice > 0 {
			rep.NginxSlice = cfg.NginxSlice
		}
	}
	for _, n := range cfg.FleetSizes {
		run := FleetRun{Sites: n}
		for _, sys := range cfg.Systems {
			res, err := r.system(ctx, sys, n)
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
	if out, err := exec.Command(r.cfg.Binary, "certs", "--dir", r.tlsDir, "--hosts", "127.0.0.1,localhost").CombinedOutput(); err != nil {
		return fmt.Errorf("bench: shoal certs: %w: %s", err, out)
	}
	r.www = filepath.Join(r.dir, "www")
	r.rel = release{Path: fmt.Sprintf("/releases/fleet-update-%d.bin", r.cfg.Seed), Size: r.cfg.Size}
	sum, err := WriteRandomFile(filepath.Join(r.www, r.rel.Path), r.rel.Size, r.cfg.Seed)
	if err != nil {
		return err
	}
	r.rel.SHA256 = sum
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
	return nil
}

// WriteRandomFile writes size bytes from a ChaCha8 stream seeded with seed
// to path and returns their SHA-256 in hex.
func WriteRandomFile(path string, size int64, seed uint64) (string, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", err
	}
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	var key [32]byte
	for i := range 8 {
		key[i] = byte(seed >> (8 * i))
	}
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(rand.NewChaCha8(key), size)); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), f.Close()
}

// system starts one system with n sites, warms it up, runs the crowd,
// measures, and stops it.
func (r *runner) system(ctx context.Context, sys string, n int) (_ SystemResult, err error) {
	res := SystemResult{System: sys, Sites: n, ClientsPerSite: r.cfg.Clients, UniqueBytes: r.rel.Size}
	if sys == SystemNginx && r.noNginx != "" {
		res.Skipped = r.noNginx
		r.progressf("  %-8s %2d sites: skipped: %s", sys, n, r.noNginx)
		return res, nil
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
	clients, err := r.crowd(ctx, d, sys)
	if err != nil {
		for _, p := range d.procs { // a crash explains a failed download
			if p.exited() {
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
	r.progressf("  %-8s %2d sites: up in %.1f s; %d clients done in %.2f s (TTFB p50 %s), origin %.2f×, %s, %.2f CPU s/GB, all bodies verified",
		sys, n, up.Seconds(), len(clients), res.FleetSeconds, secString(res.TTFB.P50), res.OriginRatio, rateString(res.AggregateRate), res.CPUSecondsPerGB)
	return res, nil
}

// snapshot is the counters a crowd's figures are the difference of.
type snapshot struct {
	originBytes, originReqs int64
	edges                   []edgeCounters // per site; empty for nginx and direct
	tierCPU, originCPU      float64
	selfCPU, machineCPU     float64 // this process's, and everything's
	at                      time.Time
	load                    [3]float64
}

func (r *runner) snapshot(ctx context.Context, d *deployment) (snapshot, error) {
	var s snapshot
	s.originBytes, s.originReqs = d.proxy.Counts()
	for _, st := range d.sites {
		if st.admin == "" {
			continue
		}
		c, err := scrapeEdge(ctx, r.http, st.admin)
		if err != nil {
			return s, err
		}
		s.edges = append(s.edges, c)
	}
	s.tierCPU = r.tierCPU(d)
	s.originCPU, _ = r.proc.treeCPUSeconds(d.origin.pid())
	s.selfCPU, _ = r.proc.cpuSeconds(os.Getpid())
	s.machineCPU = r.proc.machineBusy()
	s.at = time.Now()
	s.load = r.proc.loadAvg()
	return s, nil
}

// tierCPU is the serving tier's CPU time so far, in seconds.
func (r *runner) tierCPU(d *deployment) float64 {
	var sum float64
	for _, pid := range d.tierRoots() {
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

// crowd starts every client at the same moment, each fetching the release
// from its site, and returns their results once all are done. Any failure
// ends the crowd and fails the run.
func (r *runner) crowd(ctx context.Context, d *deployment, sys string) ([]ClientResult, error) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	n := len(d.sites) * r.cfg.Clients
	results := make([]ClientResult, n)
	errs := make([]error, n)
	startc := make(chan struct{})
	var start time.Time
	var wg sync.WaitGroup
	for si, s := range d.sites {
		for ci := range r.cfg.Clients {
			i := si*r.cfg.Clients + ci
			c, buf := newClient(), make([]byte, copyBufferSize)
			wg.Go(func() {
				defer c.CloseIdleConnections()
				<-startc
				res, err := fetch(ctx, c, s.url+r.rel.Path, start, r.rel, buf)
				res.Site, res.Client = si, ci
				results[i] = res
				if err != nil {
					var ie *IntegrityError
					if errors.As(err, &ie) {
						ie.System, ie.Site, ie.Client = sys, si, ci
					}
					errs[i] = fmt.Errorf("site %d client %d: %w", si, ci, err)
					cancel() // one failure fails the run: stop the others
				}
			})
		}
	}
	start = time.Now()
	close(startc)
	wg.Wait()
	// Report an integrity failure before the cancellations it caused.
	for _, err := range errs {
		var ie *IntegrityError
		if errors.As(err, &ie) {
			return nil, err
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return results, nil
}

// measure fills res from the crowd's clients and the snapshots around it.
func (r *runner) measure(res *SystemResult, d *deployment, clients []ClientResult, before, after snapshot) {
	res.Clients = clients
	var ttfb, dl, rate []float64
	for _, c := range clients {
		res.DeliveredBytes += c.Bytes
		ttfb = append(ttfb, c.TTFB)
		dl = append(dl, c.Seconds)
		if c.Seconds > 0 {
			rate = append(rate, float64(c.Bytes)/c.Seconds)
		}
		res.FleetSeconds = max(res.FleetSeconds, c.Seconds)
	}
	res.TTFB, res.Download, res.ClientRate = Summarize(ttfb), Summarize(dl), Summarize(rate)
	if res.FleetSeconds > 0 {
		res.AggregateRate = float64(res.DeliveredBytes) / res.FleetSeconds
	}
	res.OriginBytes = after.originBytes - before.originBytes
	res.OriginRequests = after.originReqs - before.originReqs
	res.OriginRatio = float64(res.OriginBytes) / float64(res.UniqueBytes)

	if len(after.edges) > 0 {
		var sum edgeCounters
		for i := range after.edges {
			sum = sum.add(after.edges[i].sub(before.edges[i]))
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
	for _, pid := range d.tierRoots() {
		var rss int64
		for _, p := range append([]int{pid}, r.proc.children(pid)...) {
			v, _ := r.proc.peakRSS(p)
			rss += v
		}
		res.PeakRSS = append(res.PeakRSS, rss)
	}
}
