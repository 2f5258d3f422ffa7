package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// The soak scenario is sustained load on one Shoal fleet: every client
// makes the mix's requests (Zipf popularity, a share of ranges) one after
// the other until Config.Duration has passed, each body checked like any
// other (SHA-256, ranges byte by byte). Every Config.KillEvery the harness
// SIGKILLs one edge (sites 1..N-1 in turn; site 0 is never touched) and,
// after a short pause, starts it again with the very same command line,
// so that it comes back with its data directory and rejoins the fleet. A
// client whose site is down fails over to the next, with a Range for the
// rest.
//
// Meanwhile the harness samples every edge's goroutines, resident memory
// and open files (go_goroutines, process_resident_memory_bytes,
// process_open_fds from its /metrics; /proc for the last two when the
// edge does not export them). Each life of an edge (from the start of the
// load, or from its restart, until it is killed or the load ends) is
// checked on its own: its last sample against its first sample taken at
// least its warm-up after the life began, within the bounds below. A life
// from the start of the load has the run's warm-up; a restarted edge's
// life has a shorter one (soakTimes), fitted to how long a life lasts
// between kills, so that restarted edges are checked too, not only the
// edges never killed. A
// wrong byte ends the run with an error; a failed request or an exceeded
// bound fails it (SoakResult.Passed false).

// The soak's bounds: a life's last sample may have at most
// factor × warm-up + slack.
const (
	SoakGoroutineFactor = 1.5
	SoakGoroutineSlack  = 50
	SoakRSSFactor       = 1.5
	SoakRSSSlack        = 64 << 20
	SoakFDSlack         = 32
)

// SoakSample is one reading of an edge.
type SoakSample struct {
	// Seconds is when it was taken, from the start of the load.
	Seconds    float64 `json:"t_s"`
	Goroutines int64   `json:"goroutines"`
	RSS        int64   `json:"rss_bytes"`
	FDs        int64   `json:"open_fds"`
}

// SoakLife is one life of an edge: from the start of the load or its
// restart until it was killed or the load ended.
type SoakLife struct {
	Site int `json:"site"`
	// Start and End are from the start of the load, in seconds.
	Start  float64 `json:"start_s"`
	End    float64 `json:"end_s"`
	Killed bool    `json:"killed"`
	// WarmupSeconds is this life's warm-up: the run's for a life from
	// the start of the load, the restart warm-up for a restarted edge.
	WarmupSeconds float64 `json:"warmup_s"`
	// Warm is the first sample taken at least the warm-up after Start,
	// Last the last one; nil if none was.
	Warm *SoakSample `json:"warm,omitempty"`
	Last *SoakSample `json:"last,omitempty"`
	// Checked says whether Last was compared with Warm (a life too short
	// to have both is not); Limit is what Last was allowed.
	Checked bool       `json:"checked"`
	Limit   SoakSample `json:"limit"`
	// Failures name the bounds Last exceeded.
	Failures []string     `json:"failures,omitempty"`
	Samples  []SoakSample `json:"samples"`
}

// SoakKill is one kill and restart.
type SoakKill struct {
	Site int `json:"site"`
	// Killed and Ready are from the start of the load, in seconds: the
	// SIGKILL, and the restarted edge's /readyz answering 200.
	Killed float64 `json:"killed_s"`
	Ready  float64 `json:"ready_s"`
}

// SoakResult holds the soak's figures and checks.
type SoakResult struct {
	Sites          int     `json:"sites"`
	ClientsPerSite int     `json:"clients_per_site"`
	Seconds        float64 `json:"seconds"`
	WarmupSeconds  float64 `json:"warmup_s"`
	// RestartWarmupSeconds is the warm-up of a restarted edge's life.
	RestartWarmupSeconds float64 `json:"restart_warmup_s,omitempty"`
	SampleSeconds        float64 `json:"sample_every_s"`
	KillEvery            float64 `json:"kill_every_s,omitempty"`
	// MissedSamples counts samples skipped because a scrape failed.
	MissedSamples int `json:"missed_samples,omitempty"`
	// Source says where goroutines, memory and files were read:
	// "metrics" (the edges' /metrics), or which came from /proc.
	Source string `json:"source"`
	// Bounds describes the limits, as printed.
	Bounds string `json:"bounds"`

	Requests       int64 `json:"requests"`
	RangedRequests int64 `json:"ranged_requests"`
	Bytes          int64 `json:"bytes"`
	Failovers      int64 `json:"failovers"`
	// WrongResponses counts bodies that were not the origin's bytes (a
	// run with one ends with an error, so a report shows 0).
	WrongResponses int64 `json:"wrong_responses"`
	// FailedRequests counts requests that failed at every site; Errors
	// holds the first few.
	FailedRequests int64    `json:"failed_requests"`
	Errors         []string `json:"errors,omitempty"`
	TTFB           Summary  `json:"ttfb_s"`
	Download       Summary  `json:"download_s"`

	Kills       []SoakKill `json:"kills,omitempty"`
	Lives       []SoakLife `json:"lives"`
	OriginBytes int64      `json:"origin_bytes"`
	// Passed is true when no request failed and every checked life kept
	// within the bounds; Failures says why not.
	Passed   bool     `json:"passed"`
	Failures []string `json:"failures,omitempty"`
}

// soakBounds prints the bounds.
func soakBounds() string {
	return fmt.Sprintf("goroutines ≤ %.1f× warm-up + %d, RSS ≤ %.1f× warm-up + %s, open files ≤ warm-up + %d",
		SoakGoroutineFactor, SoakGoroutineSlack, SoakRSSFactor, sizeString(SoakRSSSlack), SoakFDSlack)
}

// soakTimes are the soak's warm-up, sampling interval and restart pause
// for a load of d on sites edges with a kill every killEvery, and the
// warm-up of a restarted edge's life. Sites 1..sites-1 are killed in turn,
// so a restarted edge lives about killEvery × (sites-1): its warm-up is a
// third of that (the rest of the life is what is checked), at least two
// sampling intervals, at most the run's warm-up. (A 30-minute run on 8
// sites with a kill every 15 s: lives of about 105 s, warm-up 1 min; with
// a kill every minute: lives of about 7 min, warm-up 140 s.)
func soakTimes(d, killEvery time.Duration, sites int) (warmup, restartWarmup, every, pause time.Duration) {
	warmup = min(max(d/5, 2*time.Second), 5*time.Minute)
	every = min(max(d/40, 500*time.Millisecond), 30*time.Second)
	pause = time.Second
	restartWarmup = warmup
	if killEvery > 0 && sites > 1 {
		pause = min(killEvery/4, 2*time.Second)
		life := killEvery * time.Duration(sites-1)
		restartWarmup = min(warmup, max(2*every, life/3))
	}
	return warmup, restartWarmup, every, pause
}

// pickWarm sets the life's warm-up and its warm-up sample: the first
// taken at least warmup after the life began.
func (l *SoakLife) pickWarm(warmup time.Duration) {
	l.WarmupSeconds = warmup.Seconds()
	l.Warm = nil
	for _, s := range l.Samples {
		if s.Seconds-l.Start >= l.WarmupSeconds {
			w := s
			l.Warm = &w
			return
		}
	}
}

// check compares the life's last sample with its warm-up sample.
func (l *SoakLife) check() {
	if l.Warm == nil || l.Last == nil || l.Last.Seconds <= l.Warm.Seconds {
		return
	}
	l.Checked = true
	w := l.Warm
	l.Limit = SoakSample{
		Goroutines: int64(SoakGoroutineFactor*float64(w.Goroutines)) + SoakGoroutineSlack,
		RSS:        int64(SoakRSSFactor*float64(w.RSS)) + SoakRSSSlack,
		FDs:        w.FDs + SoakFDSlack,
	}
	if l.Last.Goroutines > l.Limit.Goroutines {
		l.Failures = append(l.Failures, fmt.Sprintf("goroutines %d > %d", l.Last.Goroutines, l.Limit.Goroutines))
	}
	if l.Last.RSS > l.Limit.RSS {
		l.Failures = append(l.Failures, fmt.Sprintf("RSS %s > %s", sizeString(l.Last.RSS), sizeString(l.Limit.RSS)))
	}
	if l.Last.FDs > l.Limit.FDs {
		l.Failures = append(l.Failures, fmt.Sprintf("open files %d > %d", l.Last.FDs, l.Limit.FDs))
	}
}

// runtimeGauges are what an edge's /metrics says of its runtime; a
// negative value is one it does not export.
type runtimeGauges struct{ goroutines, rss, fds int64 }

// parseRuntimeGauges reads go_goroutines, process_resident_memory_bytes
// and process_open_fds from the Prometheus text exposition format.
func parseRuntimeGauges(r io.Reader) (runtimeGauges, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		return runtimeGauges{}, fmt.Errorf("bench: metrics: %w", err)
	}
	get := func(name string) int64 {
		f := fams[name]
		if f == nil || len(f.GetMetric()) == 0 {
			return -1
		}
		return int64(f.GetMetric()[0].GetGauge().GetValue())
	}
	return runtimeGauges{get("go_goroutines"), get("process_resident_memory_bytes"), get("process_open_fds")}, nil
}

// sampleEdge reads an edge's goroutines, resident memory and open files:
// from its /metrics, and from /proc what it does not export. It returns
// which came from /proc.
func (r *runner) sampleEdge(ctx context.Context, s site) (SoakSample, []string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.admin+"/metrics", nil)
	if err != nil {
		return SoakSample{}, nil, err
	}
	resp, err := r.http.Do(req)
	if err != nil {
		return SoakSample{}, nil, fmt.Errorf("bench: scraping %s: %w", s.admin, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return SoakSample{}, nil, fmt.Errorf("bench: scraping %s: %s", s.admin, resp.Status)
	}
	g, err := parseRuntimeGauges(resp.Body)
	if err != nil {
		return SoakSample{}, nil, err
	}
	if g.goroutines < 0 {
		return SoakSample{}, nil, fmt.Errorf("bench: %s/metrics has no go_goroutines", s.admin)
	}
	var fromProc []string
	pid := strconv.Itoa(s.proc.pid())
	if g.rss < 0 {
		fromProc = append(fromProc, "rss")
		b, err := os.ReadFile(filepath.Join(r.proc.root(), pid, "status"))
		if err != nil {
			return SoakSample{}, nil, err
		}
		if g.rss, err = parseStatusKB(b, "VmRSS"); err != nil {
			return SoakSample{}, nil, err
		}
	}
	if g.fds < 0 {
		fromProc = append(fromProc, "fds")
		ents, err := os.ReadDir(filepath.Join(r.proc.root(), pid, "fd"))
		if err != nil {
			return SoakSample{}, nil, err
		}
		g.fds = int64(len(ents))
	}
	return SoakSample{Goroutines: g.goroutines, RSS: g.rss, FDs: g.fds}, fromProc, nil
}

// soakLoad is the soak's clients' running totals.
type soakLoad struct {
	cnt            counters
	ranged, failed atomic.Int64
	mu             sync.Mutex
	ttfb, dl       []float64
	errs           []string
}

// soak runs the soak scenario on a fleet of n edges.
func (r *runner) soak(ctx context.Context, n int) (_ *SoakResult, err error) {
	cfg := r.cfg
	dir := filepath.Join(r.dir, fmt.Sprintf("%s-%d", SystemShoal, n))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	d, err := r.deploy(ctx, SystemShoal, n, dir)
	if d != nil {
		defer func() {
			d.stop()
			switch {
			case cfg.KeepTemp:
			case err != nil:
				removeBulk(dir)
			default:
				os.RemoveAll(dir)
			}
		}()
	}
	if err != nil {
		return nil, err
	}
	if err := r.warm(ctx, d); err != nil {
		return nil, fmt.Errorf("warm-up: %w", err)
	}
	warmup, restartWarmup, every, pause := soakTimes(cfg.Duration, cfg.KillEvery, n)
	res := &SoakResult{Sites: n, ClientsPerSite: cfg.Clients, Seconds: cfg.Duration.Seconds(), WarmupSeconds: warmup.Seconds(),
		SampleSeconds: every.Seconds(), Source: "metrics", Bounds: soakBounds()}
	if cfg.KillEvery > 0 {
		res.KillEvery = cfg.KillEvery.Seconds()
		res.RestartWarmupSeconds = restartWarmup.Seconds()
	}
	r.progressf("bench soak: %d sites × %s for %v, an edge killed and restarted every %v; warm-up %v (%v after a restart), samples every %v; bounds: %s",
		n, plural(cfg.Clients, "client"), cfg.Duration, cfg.KillEvery, warmup, restartWarmup, every, res.Bounds)

	ctx, cancel := context.WithTimeout(ctx, cfg.Duration+cfg.Timeout)
	defer cancel()
	originBefore, _ := d.proxy.Counts()
	start := time.Now()
	end := start.Add(cfg.Duration)
	urls := make([]string, n)
	for i, s := range d.sites {
		urls[i] = s.url
	}
	rank := seedRand(cfg.Seed, "plan", n).Perm(len(r.cat.objects))
	z := newZipf(len(r.cat.objects), cfg.Zipf)
	var load soakLoad
	var wg sync.WaitGroup
	var integrity error
	var integrityOnce sync.Once
	for si := range n {
		var sites []string
		for k := range n {
			sites = append(sites, urls[(si+k)%n])
		}
		for ci := range cfg.Clients {
			rng := seedRand(cfg.Seed, "soak", si*cfg.Clients+ci)
			c, buf := newClient(r.dial), make([]byte, copyBufferSize)
			wg.Go(func() {
				defer c.CloseIdleConnections()
				for time.Now().Before(end) && ctx.Err() == nil {
					rq := r.cat.mixRequest(rng, z, rank, cfg.RangeShare)
					obj := &r.cat.objects[rq.obj]
					t := time.Now()
					res, err := fetch(ctx, c, sites, rq, obj, t, buf, &load.cnt)
					load.cnt.requests.Add(1)
					var ie *IntegrityError
					switch {
					case errors.As(err, &ie):
						ie.System, ie.Site, ie.Client = SystemShoal, si, ci
						integrityOnce.Do(func() { integrity = err })
						cancel()
						return
					case err != nil:
						if ctx.Err() != nil {
							return
						}
						load.failed.Add(1)
						load.mu.Lock()
						if len(load.errs) < 10 {
							load.errs = append(load.errs, fmt.Sprintf("site %d client %d: %v", si, ci, err))
						}
						load.mu.Unlock()
						time.Sleep(100 * time.Millisecond)
						continue
					}
					if rq.ranged {
						load.ranged.Add(1)
					}
					load.mu.Lock()
					load.ttfb = append(load.ttfb, res.TTFB)
					load.dl = append(load.dl, res.Seconds)
					load.mu.Unlock()
				}
			})
		}
	}

	ctlErr := r.soakControl(ctx, d, res, start, end, warmup, restartWarmup, every, pause, &load)
	if ctlErr != nil {
		cancel()
	}
	wg.Wait()
	if integrity != nil {
		return nil, integrity
	}
	if ctlErr != nil {
		return nil, ctlErr
	}
	if ctx.Err() != nil {
		return nil, fmt.Errorf("bench: soak: %w", ctx.Err())
	}
	originAfter, _ := d.proxy.Counts()
	res.OriginBytes = originAfter - originBefore
	res.Requests = load.cnt.requests.Load()
	res.RangedRequests = load.ranged.Load()
	res.Bytes = load.cnt.bytes.Load()
	res.Failovers = load.cnt.failovers.Load()
	res.FailedRequests = load.failed.Load()
	res.Errors = load.errs
	res.TTFB, res.Download = Summarize(load.ttfb), Summarize(load.dl)
	res.judge()
	verdict := "PASSED"
	if !res.Passed {
		verdict = "FAILED: " + strings.Join(res.Failures, "; ")
	}
	r.progressf("  soak: %d requests (%d ranged), %s in %.0f s, %d kills, %d failovers, %d failed requests, all bodies verified; %s",
		res.Requests, res.RangedRequests, sizeString(res.Bytes), time.Since(start).Seconds(), len(res.Kills), res.Failovers, res.FailedRequests, verdict)
	return res, nil
}

// judge checks every life and sets Passed and Failures.
func (res *SoakResult) judge() {
	res.Failures = nil
	checked := 0
	for i := range res.Lives {
		l := &res.Lives[i]
		l.check()
		if l.Checked {
			checked++
		}
		for _, f := range l.Failures {
			res.Failures = append(res.Failures, fmt.Sprintf("site %d (life from %.0f s): %s", l.Site, l.Start, f))
		}
	}
	if checked == 0 {
		res.Failures = append(res.Failures, "no edge was sampled both after its warm-up and at the end: run longer")
	}
	if res.FailedRequests > 0 {
		res.Failures = append(res.Failures, fmt.Sprintf("%d requests failed at every site", res.FailedRequests))
	}
	if res.WrongResponses > 0 {
		res.Failures = append(res.Failures, fmt.Sprintf("%d wrong responses", res.WrongResponses))
	}
	res.Passed = len(res.Failures) == 0
}

// soakControl samples the edges, kills and restarts them on schedule, and
// returns at end. It alone changes d's sites and processes while the load
// runs (the clients hold their URLs, which a restart keeps).
func (r *runner) soakControl(ctx context.Context, d *deployment, res *SoakResult, start, end time.Time, warmup, restartWarmup, every, pause time.Duration, load *soakLoad) error {
	n := len(d.sites)
	live := make([]int, n) // index into res.Lives of each site's current life
	for i := range n {
		live[i] = len(res.Lives)
		res.Lives = append(res.Lives, SoakLife{Site: i})
	}
	since := func() float64 { return time.Since(start).Seconds() }
	fromProc := map[string]bool{}
	// A scrape that fails on a loaded machine skips a sample; an edge that
	// died on its own fails the run.
	sample := func(i int) error {
		s, fp, err := r.sampleEdge(ctx, d.sites[i])
		if p := d.sites[i].proc; p.exited() {
			return p.failure("exited during the soak without being killed")
		}
		if err != nil {
			res.MissedSamples++
			r.progressf("  soak: site %d: sample skipped: %v", i, err)
			return nil
		}
		for _, f := range fp {
			fromProc[f] = true
		}
		l := &res.Lives[live[i]]
		s.Seconds = since()
		l.Samples = append(l.Samples, s)
		return nil
	}
	defer func() {
		if len(fromProc) > 0 {
			res.Source = "metrics; from /proc: " + strings.Join(slices.Sorted(maps.Keys(fromProc)), ", ")
		}
		for i := range n {
			res.Lives[live[i]].End = min(since(), end.Sub(start).Seconds())
		}
		for i := range res.Lives {
			l := &res.Lives[i]
			if len(l.Samples) > 0 {
				last := l.Samples[len(l.Samples)-1]
				l.Last = &last
			}
			if l.Start > 0 {
				l.pickWarm(restartWarmup)
			} else {
				l.pickWarm(warmup)
			}
		}
	}()
	nextKill, victim := start.Add(r.cfg.KillEvery), 0
	nextProgress := start.Add(progressEvery)
	for {
		now := time.Now()
		if !now.Before(end) {
			for i := range n {
				if err := sample(i); err != nil {
					return err
				}
			}
			return nil
		}
		// Kill only when the next life has time for its warm-up and a
		// sample after it.
		if r.cfg.KillEvery > 0 && !now.Before(nextKill) && end.Sub(now) <= pause+restartWarmup+2*every+time.Second {
			nextKill = end // no more kills
		}
		if r.cfg.KillEvery > 0 && !now.Before(nextKill) && now.Before(end) {
			site := 1 + victim%(n-1)
			victim++
			nextKill = nextKill.Add(r.cfg.KillEvery)
			if err := sample(site); err != nil {
				return err
			}
			if err := r.killRestart(ctx, d, site, pause, start, res); err != nil {
				return err
			}
			res.Lives[live[site]].End, res.Lives[live[site]].Killed = res.Kills[len(res.Kills)-1].Killed, true
			live[site] = len(res.Lives)
			res.Lives = append(res.Lives, SoakLife{Site: site, Start: res.Kills[len(res.Kills)-1].Ready})
			continue
		}
		for i := range n {
			if err := sample(i); err != nil {
				return err
			}
		}
		if !now.Before(nextProgress) {
			nextProgress = nextProgress.Add(progressEvery)
			r.progressf("  soak: … %.0f of %.0f s, %d requests, %s, %d kills, %d failovers",
				since(), end.Sub(start).Seconds(), load.cnt.requests.Load(), sizeString(load.cnt.bytes.Load()), len(res.Kills), load.cnt.failovers.Load())
		}
		wake := min(time.Until(end), every)
		if r.cfg.KillEvery > 0 {
			wake = min(wake, max(time.Until(nextKill), 0))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wake):
		}
	}
}

// killRestart SIGKILLs site's edge, waits pause, starts it again with the
// same command line (flags, addresses, data directory), waits until it is
// ready, and records the kill in res.
func (r *runner) killRestart(ctx context.Context, d *deployment, site int, pause time.Duration, start time.Time, res *SoakResult) error {
	old := d.sites[site].proc
	killGroup(old.pid())
	k := SoakKill{Site: site, Killed: time.Since(start).Seconds()}
	<-old.done
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(pause):
	}
	name := fmt.Sprintf("%s-restart%02d", old.name, len(res.Kills)+1)
	p, err := startProcess(name, filepath.Dir(old.log), old.cmd.Path, old.cmd.Args[1:]...)
	if err != nil {
		return err
	}
	d.sites[site].proc = p
	for i, q := range d.procs {
		if q == old {
			d.procs[i] = p
		}
	}
	admin := d.sites[site].admin
	if err := p.waitUntil(ctx, "readiness after restart", func() bool { return httpOK(r.http, admin+"/readyz") }); err != nil {
		return err
	}
	k.Ready = time.Since(start).Seconds()
	res.Kills = append(res.Kills, k)
	return nil
}

// soakMarkdown writes the soak's tables: the load, then one row per life
// of an edge with its warm-up and last samples, the limits and the verdict.
func (r *Report) soakMarkdown(w func(string, ...any)) {
	s := r.Soak
	w("### %d sites, %s\n\n", s.Sites, plural(s.ClientsPerSite, "client")+" per site")
	restart := ""
	if s.RestartWarmupSeconds > 0 {
		restart = ", " + secString(s.RestartWarmupSeconds) + " from a restart"
	}
	w("- bounds: %s (warm-up %s from the start of the load%s; samples every %s; read from %s)\n",
		s.Bounds, secString(s.WarmupSeconds), restart, secString(s.SampleSeconds), s.Source)
	w("- %d requests (%d ranged), %s delivered, origin %s; %d kills and restarts, %d failovers; %d failed requests, %d wrong responses\n",
		s.Requests, s.RangedRequests, sizeString(s.Bytes), sizeString(s.OriginBytes), len(s.Kills), s.Failovers, s.FailedRequests, s.WrongResponses)
	if s.MissedSamples > 0 {
		w("- %d samples skipped (a scrape failed)\n", s.MissedSamples)
	}
	w("- TTFB p50 / p99: %s / %s; download p50 / p99: %s / %s\n\n",
		secString(s.TTFB.P50), secString(s.TTFB.P99), secString(s.Download.P50), secString(s.Download.P99))
	w("| site | life (s) | end | goroutines warm → last (limit) | RSS warm → last (limit) | open files warm → last (limit) | check |\n")
	w("|---:|---|---|---|---|---|---|\n")
	for _, l := range s.Lives {
		how := "load ended"
		if l.Killed {
			how = "killed"
		}
		if !l.Checked || l.Warm == nil || l.Last == nil {
			w("| %d | %.0f–%.0f | %s | – | – | – | not checked (too short for its warm-up) |\n", l.Site, l.Start, l.End, how)
			continue
		}
		verdict := "ok"
		if len(l.Failures) > 0 {
			verdict = "**FAILED**: " + strings.Join(l.Failures, "; ")
		}
		w("| %d | %.0f–%.0f | %s | %d → %d (%d) | %s → %s (%s) | %d → %d (%d) | %s |\n", l.Site, l.Start, l.End, how,
			l.Warm.Goroutines, l.Last.Goroutines, l.Limit.Goroutines,
			sizeString(l.Warm.RSS), sizeString(l.Last.RSS), sizeString(l.Limit.RSS),
			l.Warm.FDs, l.Last.FDs, l.Limit.FDs, verdict)
	}
	if s.Passed {
		w("\n**Soak passed**: every body byte-identical, no request failed, every checked edge within the bounds.\n\n")
	} else {
		w("\n**Soak FAILED**: %s\n\n", strings.Join(s.Failures, "; "))
	}
	if len(s.Errors) > 0 {
		w("First errors:\n\n")
		for _, e := range s.Errors {
			w("- %s\n", e)
		}
		w("\n")
	}
}
