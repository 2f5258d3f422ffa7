package bench

import (
	"context"
	"sync"
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
// same faults at the same point of the crowd. Site 0 is never touched;
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
	// faultPoll is how often the injector looks at the crowd's progress.
	faultPoll = 2 * time.Millisecond
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

// inject runs the faults of the crowd whose progress cnt counts, out of
// total bytes, until done is closed, and returns what it did. Every site
// it stopped is continued before it returns.
func (r *runner) inject(ctx context.Context, d *deployment, cnt *counters, total int64, start time.Time, done <-chan struct{}) []FaultEvent {
	var events []FaultEvent
	killAt := faultKillAt(r.cfg.Kill)
	killed, slowing := 0, false
	var slowers sync.WaitGroup
	stopSlow := make(chan struct{})
	defer func() {
		close(stopSlow)
		slowers.Wait()
	}()
	tick := time.NewTicker(faultPoll)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return events
		case <-ctx.Done():
			return events
		case <-tick.C:
		}
		share := float64(cnt.bytes.Load()) / float64(max(total, 1))
		event := func(action string, site int) {
			events = append(events, FaultEvent{Action: action, Site: site, Seconds: time.Since(start).Seconds(), Share: share})
		}
		if !slowing && r.cfg.Slow > 0 && share >= faultSlowAt {
			slowing = true
			for k := range r.cfg.Slow {
				site := 1 + r.cfg.Kill + k
				pid := d.sites[site].proc.pid()
				event("slow", site)
				slowers.Go(func() { stutter(pid, stopSlow) })
			}
		}
		for killed < len(killAt) && share >= killAt[killed] {
			site := 1 + killed
			r.kill(ctx, d, site)
			event("kill", site)
			killed++
		}
	}
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
