package bench

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// The faults scenario is the flash crowd while the fleet loses sites. At
// set shares of the bytes the crowd has to deliver, it SIGKILLs Kill sites
// (their process group: an edge, or an nginx with its workers), and from
// faultSlowAt on it slows Slow other sites by stopping them (SIGSTOP) for
// faultStop and letting them run (SIGCONT) for faultRun, over and over,
// until the crowd is done: a peer that answers, late. Triggers are shares
// of the bytes delivered, not times, so that a slower machine sees the
// same faults at the same point of the crowd. A fault fires in the client
// goroutine whose read passes its step, before that client reads on, so
// every fault happens before the crowd is done. Site 0 is never touched;
// the sites killed are 1..Kill, the sites slowed the next Slow.
//
// A client whose site dies resumes at the next site with a Range for the
// rest (see fetch), and its body is checked whole, so a wrong byte from a
// failing fleet fails the run like any other.

const (
	// faultSlowAt is the share of the crowd's bytes after which the
	// slowed sites start to stutter.
	faultSlowAt = 0.10
	// faultStop and faultRun are a slowed site's bursts: stopped, then
	// running.
	faultStop = 150 * time.Millisecond
	faultRun  = 100 * time.Millisecond
)

// faultKillAt returns the shares of the crowd's bytes at which the kills
// happen, spread over the crowd's first half or so: 1/4 and 1/2 for two.
func faultKillAt(kill int) []float64 {
	at := make([]float64, kill)
	for i := range at {
		at[i] = float64(i+1) / float64(kill+2)
	}
	return at
}

// FaultPlan describes the faults scenario's faults.
type FaultPlan struct {
	// Kill and Slow are how many sites are killed and slowed.
	Kill int `json:"kill"`
	Slow int `json:"slow"`
	// KillAt holds, per kill, the share of the crowd's bytes delivered at
	// which it happens; SlowAt the share after which the slowing starts.
	KillAt []float64 `json:"kill_at"`
	SlowAt float64   `json:"slow_at"`
	// StopMillis and RunMillis are a slowed site's bursts: stopped
	// (SIGSTOP), then running (SIGCONT).
	StopMillis int64 `json:"stop_ms"`
	RunMillis  int64 `json:"run_ms"`
}

// FaultEvent is one fault injected into a crowd.
type FaultEvent struct {
	// Action is "kill" or "slow" (the start of a slowed site's bursts).
	Action string `json:"action"`
	Site   int    `json:"site"`
	// Seconds is when it happened, from the crowd's start; Share is the
	// share of the crowd's bytes delivered by then.
	Seconds float64 `json:"seconds"`
	Share   float64 `json:"share"`
}

// deadSite is what the harness read of a site just before it killed it.
type deadSite struct {
	counters *edgeCounters // nil for nginx, or if the scrape failed
	cpu      float64       // seconds
	rss      int64         // peak, bytes
}

// injector fires the faults of one crowd as its bytes pass each step.
type injector struct {
	r      *runner
	d      *deployment
	ctx    context.Context
	start  time.Time
	total  int64
	steps  []faultStep // in the order of their bytes
	next   atomic.Int32
	mu     sync.Mutex // held while a fault fires
	events []FaultEvent
	// stopSlow ends the slowed sites' bursts.
	stopSlow chan struct{}
	slowers  sync.WaitGroup
}

type faultStep struct {
	at     int64 // bytes delivered
	action string
	site   int
}

// newInjector plans the faults of a crowd of total bytes that started at
// start: the slowed sites are 1+Kill.., the killed ones 1..Kill.
func (r *runner) newInjector(ctx context.Context, d *deployment, total int64, start time.Time) *injector {
	in := &injector{r: r, d: d, ctx: ctx, start: start, total: total, stopSlow: make(chan struct{})}
	for k := range r.cfg.Slow {
		in.steps = append(in.steps, faultStep{int64(faultSlowAt * float64(total)), "slow", 1 + r.cfg.Kill + k})
	}
	for k, at := range faultKillAt(r.cfg.Kill) {
		in.steps = append(in.steps, faultStep{int64(at * float64(total)), "kill", 1 + k})
	}
	slices.SortStableFunc(in.steps, func(a, b faultStep) int { return cmp.Compare(a.at, b.at) })
	return in
}

// onBytes fires every fault whose step n bytes have passed.
func (in *injector) onBytes(n int64) {
	for {
		i := int(in.next.Load())
		if i >= len(in.steps) || n < in.steps[i].at {
			return
		}
		in.mu.Lock()
		if int(in.next.Load()) == i {
			in.fire(in.steps[i], n)
			in.next.Store(int32(i + 1))
		}
		in.mu.Unlock()
	}
}

func (in *injector) fire(s faultStep, n int64) {
	in.events = append(in.events, FaultEvent{Action: s.action, Site: s.site,
		Seconds: time.Since(in.start).Seconds(), Share: float64(n) / float64(max(in.total, 1))})
	switch s.action {
	case "slow":
		pid := in.d.sites[s.site].proc.pid()
		in.slowers.Go(func() { stutter(pid, in.stopSlow) })
	case "kill":
		in.r.kill(in.ctx, in.d, s.site)
	}
}

// finish lets the slowed sites run again and returns what was done.
func (in *injector) finish() []FaultEvent {
	close(in.stopSlow)
	in.slowers.Wait()
	in.mu.Lock()
	defer in.mu.Unlock()
	return slices.Clone(in.events)
}

// kill records what the site used, then kills its process group.
func (r *runner) kill(ctx context.Context, d *deployment, site int) {
	s := d.sites[site]
	ds := deadSite{}
	if s.admin != "" {
		sctx, cancel := context.WithTimeout(ctx, time.Second)
		if c, err := scrapeEdge(sctx, r.http, s.admin); err == nil {
			ds.counters = &c
		}
		cancel()
	}
	pid := s.proc.pid()
	ds.cpu, _ = r.proc.treeCPUSeconds(pid)
	ds.rss = r.proc.treePeakRSS(pid)
	if d.dead == nil {
		d.dead = map[int]deadSite{}
	}
	d.dead[site] = ds
	killGroup(pid)
}

// stutter stops and continues the process group of pid in bursts until
// stop is closed, and leaves it running.
func stutter(pid int, stop <-chan struct{}) {
	defer syscall.Kill(-pid, syscall.SIGCONT)
	for {
		syscall.Kill(-pid, syscall.SIGSTOP)
		select {
		case <-stop:
			return
		case <-time.After(faultStop):
		}
		syscall.Kill(-pid, syscall.SIGCONT)
		select {
		case <-stop:
			return
		case <-time.After(faultRun):
		}
	}
}
