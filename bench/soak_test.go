package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// TestSoakEndToEnd runs the soak for real with tiny sizes: three edges of
// the real binary under load for ten seconds, one killed and restarted
// every three, and checks that the checks ran (lives sampled after their
// warm-up, including a restarted one) and passed, and that the report says
// so in the table and in the JSON.
func TestSoakEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the shoal binary for ten seconds; skipped with -short")
	}
	var progress bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cfg := Config{
		Binary:     buildShoal(t),
		Scenario:   ScenarioSoak,
		FleetSizes: []int{3},
		Size:       512 << 10,
		Objects:    12,
		Clients:    1,
		Seed:       3,
		Duration:   10 * time.Second,
		KillEvery:  3 * time.Second,
		TempDir:    t.TempDir(),
		Timeout:    time.Minute,
		Progress:   &progress,
		EdgeFlags:  []string{"--segment-size", "128KiB", "--scrub-rate", "0"},
	}
	rep, err := Run(ctx, cfg)
	t.Logf("progress:\n%s", progress.String())
	if err != nil {
		t.Fatal(err)
	}
	s := rep.Soak
	if s == nil {
		t.Fatal("no soak result")
	}
	md := rep.Markdown()
	t.Logf("report:\n%s", md)
	if !s.Passed || len(s.Failures) > 0 {
		t.Fatalf("soak failed: %v", s.Failures)
	}
	if s.Requests == 0 || s.Bytes == 0 || s.RangedRequests == 0 || s.WrongResponses != 0 || s.FailedRequests != 0 {
		t.Errorf("load: %d requests (%d ranged), %d bytes, %d wrong, %d failed", s.Requests, s.RangedRequests, s.Bytes, s.WrongResponses, s.FailedRequests)
	}
	if len(s.Kills) == 0 {
		t.Fatalf("no edge was killed in %v with a kill every %v", cfg.Duration, cfg.KillEvery)
	}
	for _, k := range s.Kills {
		if k.Site == 0 || k.Ready <= k.Killed {
			t.Errorf("kill %+v", k)
		}
	}
	checked, restartedChecked := 0, 0
	for _, l := range s.Lives {
		if !l.Checked {
			continue
		}
		checked++
		if l.Start > 0 {
			restartedChecked++
		}
		if l.Warm.Goroutines <= 0 || l.Warm.RSS <= 0 || l.Warm.FDs <= 0 || l.Last.Seconds <= l.Warm.Seconds ||
			l.Limit.Goroutines < l.Warm.Goroutines || l.Limit.FDs != l.Warm.FDs+SoakFDSlack {
			t.Errorf("life %+v", l)
		}
	}
	// Site 0 is never killed, so at least it is checked over the whole run;
	// a restarted edge is checked against its own warm-up.
	if checked < 1 || restartedChecked < 1 {
		t.Errorf("%d lives checked, %d of them after a restart: %+v", checked, restartedChecked, s.Lives)
	}
	if len(s.Lives) != cfg.FleetSizes[0]+len(s.Kills) {
		t.Errorf("%d lives for %d sites and %d kills", len(s.Lives), cfg.FleetSizes[0], len(s.Kills))
	}
	if !strings.Contains(md, "Soak passed") || !strings.Contains(md, soakBounds()) {
		t.Errorf("report lacks the verdict or the bounds:\n%s", md)
	}
	js, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	var back struct {
		Soak struct {
			Passed bool `json:"passed"`
			Lives  []struct {
				Checked bool `json:"checked"`
			} `json:"lives"`
		} `json:"soak"`
	}
	if err := json.Unmarshal(js, &back); err != nil || !back.Soak.Passed || len(back.Soak.Lives) != len(s.Lives) {
		t.Errorf("JSON: %v, %+v", err, back.Soak)
	}
}

func TestSoakLifeCheck(t *testing.T) {
	warm := SoakSample{Seconds: 10, Goroutines: 100, RSS: 100 << 20, FDs: 40}
	tests := []struct {
		name    string
		last    SoakSample
		checked bool
		fail    []string
	}{
		{"flat", SoakSample{Seconds: 60, Goroutines: 110, RSS: 120 << 20, FDs: 45}, true, nil},
		{"at the limits", SoakSample{Seconds: 60, Goroutines: 200, RSS: 150<<20 + SoakRSSSlack, FDs: 72}, true, nil},
		{"goroutine leak", SoakSample{Seconds: 60, Goroutines: 201, RSS: 100 << 20, FDs: 40}, true, []string{"goroutines 201 > 200"}},
		{"memory growth", SoakSample{Seconds: 60, Goroutines: 100, RSS: 150<<20 + SoakRSSSlack + 1, FDs: 40}, true, []string{"RSS"}},
		{"fd leak", SoakSample{Seconds: 60, Goroutines: 100, RSS: 100 << 20, FDs: 73}, true, []string{"open files 73 > 72"}},
		{"last is the warm-up", warm, false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, last := warm, tt.last
			l := SoakLife{Warm: &w, Last: &last}
			l.check()
			if l.Checked != tt.checked || len(l.Failures) != len(tt.fail) {
				t.Fatalf("checked %v, failures %v; want %v, %v", l.Checked, l.Failures, tt.checked, tt.fail)
			}
			for i, f := range tt.fail {
				if !strings.HasPrefix(l.Failures[i], f) {
					t.Errorf("failure %q, want %q…", l.Failures[i], f)
				}
			}
		})
	}
}

func TestSoakJudge(t *testing.T) {
	ok := func() SoakLife {
		return SoakLife{Warm: &SoakSample{Seconds: 1, Goroutines: 10, RSS: 1, FDs: 10}, Last: &SoakSample{Seconds: 2, Goroutines: 10, RSS: 1, FDs: 10}}
	}
	res := SoakResult{Lives: []SoakLife{ok(), {Site: 1}}}
	res.judge()
	if !res.Passed {
		t.Errorf("a checked life within bounds and an unchecked one: %v", res.Failures)
	}
	res = SoakResult{Lives: []SoakLife{{Site: 1}}}
	if res.judge(); res.Passed {
		t.Error("passed with no life checked")
	}
	res = SoakResult{Lives: []SoakLife{ok()}, FailedRequests: 1}
	if res.judge(); res.Passed {
		t.Error("passed with a failed request")
	}
	bad := ok()
	bad.Last.FDs = 100
	res = SoakResult{Lives: []SoakLife{bad}}
	if res.judge(); res.Passed || !strings.Contains(strings.Join(res.Failures, ";"), "open files") {
		t.Errorf("an fd leak: passed %v, %v", res.Passed, res.Failures)
	}
}

func TestParseRuntimeGauges(t *testing.T) {
	in := `# HELP go_goroutines Number of goroutines that currently exist.
# TYPE go_goroutines gauge
go_goroutines 42
# TYPE process_resident_memory_bytes gauge
process_resident_memory_bytes 3.3554432e+07
# TYPE process_open_fds gauge
process_open_fds 17
# TYPE shoal_served_bytes_total counter
shoal_served_bytes_total{source="peer"} 5
`
	g, err := parseRuntimeGauges(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if want := (runtimeGauges{42, 32 << 20, 17}); g != want {
		t.Errorf("got %+v, want %+v", g, want)
	}
	g, err = parseRuntimeGauges(strings.NewReader("# TYPE go_goroutines gauge\ngo_goroutines 3\n"))
	if err != nil || g != (runtimeGauges{3, -1, -1}) {
		t.Errorf("without process metrics: got %+v, %v; want {3 -1 -1}", g, err)
	}
	if _, err := parseRuntimeGauges(strings.NewReader("go_goroutines{ 3\n")); err == nil {
		t.Error("malformed exposition: no error")
	}
}

func TestSoakConfig(t *testing.T) {
	cfg, err := Config{Binary: "x", Scenario: ScenarioSoak, FleetSizes: []int{4}}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Duration != DefaultSoakDuration || cfg.KillEvery != DefaultKillEvery || cfg.Size != DefaultSoakSize ||
		cfg.Objects != DefaultSoakObjects || cfg.Clients != 2 || len(cfg.Systems) != 1 || cfg.Systems[0] != SystemShoal {
		t.Errorf("defaults: %+v", cfg)
	}
	for _, bad := range []Config{
		{Binary: "x", Scenario: ScenarioSoak, FleetSizes: []int{1}},
		{Binary: "x", Scenario: ScenarioSoak, FleetSizes: []int{2, 4}},
		{Binary: "x", Scenario: ScenarioSoak, FleetSizes: []int{2}, Duration: time.Millisecond},
		{Binary: "x", Scenario: ScenarioSoak, FleetSizes: []int{2}, KillEvery: time.Millisecond},
	} {
		if _, err := bad.withDefaults(); err == nil {
			t.Errorf("%+v: no error", bad)
		}
	}
	if _, err := (Config{Binary: "x", Scenario: ScenarioSoak, FleetSizes: []int{1}, KillEvery: -1}).withDefaults(); err != nil {
		t.Errorf("one site without kills: %v", err)
	}
}

// TestSoakTimes: a restarted edge's warm-up is fitted to how long it lives
// between kills, so that its life is checked; the run's warm-up stays for
// the lives from the start of the load.
func TestSoakTimes(t *testing.T) {
	for _, tt := range []struct {
		d, killEvery           time.Duration
		sites                  int
		warmup, restart, every time.Duration
	}{
		// The 30-minute record: kill every 15 s over 7 sites, lives ≈ 105 s.
		{30 * time.Minute, 15 * time.Second, 8, 5 * time.Minute, time.Minute, 30 * time.Second},
		// A kill every minute: lives ≈ 7 min, warm-up a third of that.
		{30 * time.Minute, time.Minute, 8, 5 * time.Minute, 140 * time.Second, 30 * time.Second},
		// Few kills: never more than the run's warm-up.
		{30 * time.Minute, 10 * time.Minute, 8, 5 * time.Minute, 5 * time.Minute, 30 * time.Second},
		// The defaults: 60 s, a kill every 15 s over 7 sites.
		{time.Minute, 15 * time.Second, 8, 12 * time.Second, 12 * time.Second, 1500 * time.Millisecond},
		// TestSoakEndToEnd's: lives ≈ 6 s, at least two samples of warm-up.
		{10 * time.Second, 3 * time.Second, 3, 2 * time.Second, 2 * time.Second, 500 * time.Millisecond},
		{10 * time.Second, time.Second, 3, 2 * time.Second, time.Second, 500 * time.Millisecond},
		// No kills.
		{time.Minute, -1, 8, 12 * time.Second, 12 * time.Second, 1500 * time.Millisecond},
	} {
		warmup, restart, every, _ := soakTimes(tt.d, tt.killEvery, tt.sites)
		if warmup != tt.warmup || restart != tt.restart || every != tt.every {
			t.Errorf("soakTimes(%v, %v, %d) = warm-up %v, restart warm-up %v, every %v; want %v, %v, %v",
				tt.d, tt.killEvery, tt.sites, warmup, restart, every, tt.warmup, tt.restart, tt.every)
		}
		// A restarted life of the expected length has its warm-up sample
		// and at least one sample after it.
		if tt.killEvery > 0 {
			life := tt.killEvery * time.Duration(tt.sites-1)
			if restart+every > life && restart < tt.warmup {
				t.Errorf("soakTimes(%v, %v, %d): restart warm-up %v + a sample %v does not fit a life of %v", tt.d, tt.killEvery, tt.sites, restart, every, life)
			}
		}
	}
}

// TestSoakRestartedLivesChecked: with the 30-minute record's timing (the
// run's warm-up 5 min, a restarted life's 1 min, lives of about 105 s), a
// restarted life is checked against its own warm-up sample, so a leak in
// it fails the run, while a life shorter than its warm-up is reported
// unchecked; before, a restarted life had to outlive the run's 5-minute
// warm-up and none did.
func TestSoakRestartedLivesChecked(t *testing.T) {
	warmup, restart, every, _ := soakTimes(30*time.Minute, 15*time.Second, 8)
	// samples from start to end every 30 s, 50 goroutines each, and
	// leaked more in the last.
	life := func(site int, start, end float64, leaked int64) SoakLife {
		l := SoakLife{Site: site, Start: start, End: end}
		for ts := start + 1; ts <= end; ts += every.Seconds() {
			l.Samples = append(l.Samples, SoakSample{Seconds: ts, Goroutines: 50, RSS: 300 << 20, FDs: 20})
		}
		l.Samples[len(l.Samples)-1].Goroutines += leaked
		l.Last = &l.Samples[len(l.Samples)-1]
		return l
	}
	lives := []SoakLife{
		life(0, 0, 1800, 0),      // never killed
		life(1, 120, 225, 0),     // a restarted life of 105 s, flat
		life(2, 240, 345, 500),   // a restarted life of 105 s leaking goroutines
		life(3, 1750, 1800, 500), // restarted 50 s before the end: too short
	}
	for i := range lives {
		if lives[i].Start > 0 {
			lives[i].pickWarm(restart)
		} else {
			lives[i].pickWarm(warmup)
		}
	}
	res := SoakResult{Lives: lives}
	res.judge()
	l := res.Lives
	if !l[0].Checked || l[0].Warm.Seconds < 300 {
		t.Errorf("the never-killed life: checked %v from %v", l[0].Checked, l[0].Warm)
	}
	if !l[1].Checked || l[1].Warm.Seconds-l[1].Start < 60 || l[1].Last.Seconds <= l[1].Warm.Seconds || len(l[1].Failures) > 0 || l[1].WarmupSeconds != 60 {
		t.Errorf("a flat restarted life: checked %v, warm %+v, last %+v, failures %v", l[1].Checked, l[1].Warm, l[1].Last, l[1].Failures)
	}
	if !l[2].Checked || len(l[2].Failures) != 1 || !strings.HasPrefix(l[2].Failures[0], "goroutines") {
		t.Errorf("a leaking restarted life: checked %v, failures %v", l[2].Checked, l[2].Failures)
	}
	if l[3].Checked || l[3].Warm != nil {
		t.Errorf("a life shorter than its warm-up was checked: %+v", l[3])
	}
	if res.Passed || len(res.Failures) != 1 || !strings.Contains(res.Failures[0], "site 2 (life from 240 s)") {
		t.Errorf("passed %v, failures %v: want the leaking restarted life named", res.Passed, res.Failures)
	}
	// With the run's warm-up for every life, as before, neither restarted
	// life would have been checked.
	for _, i := range []int{1, 2} {
		old := lives[i]
		old.Failures, old.Checked = nil, false
		old.pickWarm(warmup)
		if old.check(); old.Checked {
			t.Errorf("life %d checked with the run's warm-up: the test does not show the change", i)
		}
	}
}
