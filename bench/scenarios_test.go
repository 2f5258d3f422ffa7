package bench

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// runScenario runs cfg through the real binary with every system and
// returns the report, after the checks every scenario shares: each system
// ran (nginx may be skipped outside CI), every client made its requests
// and got every byte it asked for, and the figures are sane.
func runScenario(t *testing.T, cfg Config) *Report {
	t.Helper()
	if testing.Short() {
		t.Skip("runs the shoal binary and nginx; skipped with -short")
	}
	var progress bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cfg.Binary = buildShoal(t)
	cfg.TempDir = t.TempDir()
	cfg.Timeout = 2 * time.Minute
	cfg.Progress = &progress
	cfg.EdgeFlags = []string{"--segment-size", "1MiB", "--scrub-rate", "0"}
	rep, err := Run(ctx, cfg)
	t.Logf("progress:\n%s", progress.String())
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Runs) != 1 || len(rep.Runs[0].Systems) != 4 {
		t.Fatalf("runs: %+v", rep.Runs)
	}
	var delivered int64 = -1
	for _, s := range rep.Runs[0].Systems {
		if s.Skipped != "" {
			if s.System != SystemNginx || os.Getenv("CI") == "true" {
				t.Errorf("%s skipped: %s (CI installs nginx)", s.System, s.Skipped)
			}
			continue
		}
		if len(s.Clients) != s.Requests || s.Requests == 0 {
			t.Errorf("%s: %d results for %d requests", s.System, len(s.Clients), s.Requests)
		}
		var sum int64
		for _, c := range s.Clients {
			sum += c.Bytes
			if c.TTFB <= 0 || c.Seconds < c.TTFB || c.Start < 0 || c.Bytes <= 0 {
				t.Errorf("%s: request %+v", s.System, c)
			}
		}
		if sum != s.DeliveredBytes {
			t.Errorf("%s: requests add up to %d bytes, delivered %d", s.System, sum, s.DeliveredBytes)
		}
		if delivered >= 0 && s.DeliveredBytes != delivered {
			t.Errorf("%s: delivered %d bytes, the first system %d: the same plan must ask the same bytes", s.System, s.DeliveredBytes, delivered)
		}
		delivered = s.DeliveredBytes
		if s.OriginBytes < s.UniqueBytes {
			t.Errorf("%s: origin sent %d bytes, less than the %d unique bytes asked for", s.System, s.OriginBytes, s.UniqueBytes)
		}
		if s.FleetSeconds <= 0 || s.TTFB.N != s.Requests || s.ClientRate.N != s.Sites*s.ClientsPerSite || s.CPUSecondsPerGB < 0 {
			t.Errorf("%s: fleet %.3f s, TTFB %+v, client rate %+v, %.2f CPU s/GB", s.System, s.FleetSeconds, s.TTFB, s.ClientRate, s.CPUSecondsPerGB)
		}
		if want := s.Sites; s.System == SystemDirect && len(s.PeakRSS) != 1 || s.System != SystemDirect && len(s.PeakRSS) != want {
			t.Errorf("%s: peak RSS %v", s.System, s.PeakRSS)
		}
		if s.System == SystemDirect && s.OriginBytes != s.DeliveredBytes {
			t.Errorf("direct: origin sent %d bytes, clients got %d", s.OriginBytes, s.DeliveredBytes)
		}
	}
	if !strings.Contains(progress.String(), "all bodies verified") {
		t.Errorf("progress says nothing of verification:\n%s", progress.String())
	}
	out := filepath.Join(t.TempDir(), "out")
	if _, err := WriteFiles(out, rep); err != nil {
		t.Fatal(err)
	}
	md, err := os.ReadFile(filepath.Join(out, "report.md"))
	if err != nil || !bytes.Contains(md, []byte("| shoal |")) {
		t.Errorf("report.md: %v\n%s", err, md)
	}
	return rep
}

// testSpan is [lo, hi) of an object.
type testSpan struct{ lo, hi int64 }

// asked returns, from a system's requests, what was asked of each object
// (by URL path), ranges rounded out to multiples of round (1: exact).
func asked(t *testing.T, cs []ClientResult, round int64) map[string][]testSpan {
	t.Helper()
	m := map[string][]testSpan{}
	for _, c := range cs {
		lo, hi := int64(0), c.Bytes
		if c.Range != "" {
			var a, b int64
			if _, err := fmt.Sscanf(c.Range, "bytes=%d-%d", &a, &b); err != nil {
				t.Fatalf("range %q: %v", c.Range, err)
			}
			lo, hi = a, b+1
			if hi-lo != c.Bytes {
				t.Errorf("range %q: %d bytes", c.Range, c.Bytes)
			}
		}
		lo, hi = lo/round*round, (hi+round-1)/round*round
		m[c.Path] = append(m[c.Path], testSpan{lo, hi})
	}
	return m
}

// unionBytes is the size of the union of the spans, each object apart;
// size, if it knows the object, clips its spans to its size.
func unionBytes(m map[string][]testSpan, size map[string]int64) int64 {
	var n int64
	for path, ss := range m {
		slices.SortFunc(ss, func(a, b testSpan) int { return int(min(max(a.lo-b.lo, -1), 1)) })
		end := int64(0)
		for _, s := range ss {
			hi := s.hi
			if sz, ok := size[path]; ok {
				hi = min(hi, sz)
			}
			if hi > max(end, s.lo) {
				n += hi - max(end, s.lo)
			}
			end = max(end, hi)
		}
	}
	return n
}

// TestMixEndToEnd runs the CDN mix with tiny sizes and checks its origin
// egress against what the requests asked for, computed here from the
// requests themselves.
func TestMixEndToEnd(t *testing.T) {
	const sites, clients, seg = 3, 2, 1 << 20
	rep := runScenario(t, Config{Scenario: ScenarioMix, FleetSizes: []int{sites}, Size: 4 << 20, Objects: 30, Requests: 8,
		Clients: clients, RangeShare: 0.4, Seed: 11})
	if rep.Workload == nil || rep.Workload.Objects != 30 || rep.Workload.LargestObject != 4<<20 {
		t.Fatalf("workload %+v", rep.Workload)
	}
	for _, s := range rep.Runs[0].Systems {
		if s.Skipped != "" {
			continue
		}
		size := map[string]int64{}
		ranged := 0
		for _, c := range s.Clients {
			if c.Range == "" {
				size[c.Path] = c.Bytes
			} else {
				ranged++
			}
		}
		if ranged == 0 || ranged == len(s.Clients) {
			t.Errorf("%s: %d of %d requests ranged, want some", s.System, ranged, len(s.Clients))
		}
		if u := unionBytes(asked(t, s.Clients, 1), nil); u != s.UniqueBytes {
			t.Errorf("%s: unique bytes %d, the requests' union is %d", s.System, s.UniqueBytes, u)
		}
		if s.System == SystemShoal {
			// The fleet fetches each segment the clients touch once: at
			// most the union rounded out to whole segments.
			if bound := unionBytes(asked(t, s.Clients, seg), size); s.OriginBytes > bound+bound/50 {
				t.Errorf("shoal: origin sent %d bytes, the segments touched are %d", s.OriginBytes, bound)
			}
		}
	}
	shoal, _ := rep.Runs[0].system(SystemShoal)
	perSite, _ := rep.Runs[0].system(SystemPerSite)
	if shoal.OriginBytes > perSite.OriginBytes {
		t.Errorf("the fleet took %d bytes from the origin, lone sites %d", shoal.OriginBytes, perSite.OriginBytes)
	}
}

// TestMediaEndToEnd runs media with tiny sizes. Viewers fetch whole
// segments, so the origin egress is exact: once per segment for the
// fleet, once per segment and site for a cache per site.
func TestMediaEndToEnd(t *testing.T) {
	const sites, clients = 3, 2
	rep := runScenario(t, Config{Scenario: ScenarioMedia, FleetSizes: []int{sites}, Objects: 2, Segments: 4, Requests: 4,
		Clients: clients, SeekShare: 0.3, Seed: 5})
	if rep.Workload == nil || rep.Workload.Videos != 2 || rep.Workload.Segments != 4 {
		t.Fatalf("workload %+v", rep.Workload)
	}
	for _, s := range rep.Runs[0].Systems {
		if s.Skipped != "" {
			continue
		}
		perSite := int64(0)
		for site := range sites {
			var mine []ClientResult
			for _, c := range s.Clients {
				if c.Range != "" || c.Bytes < mediaSegMin || c.Bytes > mediaSegMax || !strings.HasPrefix(c.Path, "/media/v") {
					t.Errorf("%s: request %+v is not a whole segment", s.System, c)
				}
				if c.Site == site {
					mine = append(mine, c)
				}
			}
			perSite += unionBytes(asked(t, mine, 1), nil)
		}
		want := map[string]int64{SystemShoal: s.UniqueBytes, SystemPerSite: perSite, SystemNginx: perSite, SystemDirect: s.DeliveredBytes}[s.System]
		if s.OriginBytes != want {
			t.Errorf("%s: origin sent %d bytes, want %d (unique %d)", s.System, s.OriginBytes, want, s.UniqueBytes)
		}
	}
}

// TestFaultsEndToEnd runs the faults scenario with 4 sites: two killed,
// one slowed. Every client must still get the whole release, byte for
// byte, and the faults must have happened mid-crowd.
func TestFaultsEndToEnd(t *testing.T) {
	const sites, clients, size = 4, 2, 16 << 20
	rep := runScenario(t, Config{Scenario: ScenarioFaults, FleetSizes: []int{sites}, Size: size, Clients: clients, Seed: 3})
	if rep.Faults == nil || rep.Faults.Kill != DefaultKill || rep.Faults.Slow != DefaultSlow {
		t.Fatalf("fault plan %+v", rep.Faults)
	}
	for _, s := range rep.Runs[0].Systems {
		if s.Skipped != "" {
			continue
		}
		if s.DeliveredBytes != sites*clients*size || len(s.Clients) != sites*clients {
			t.Errorf("%s: delivered %d bytes in %d requests, want %d in %d", s.System, s.DeliveredBytes, len(s.Clients), sites*clients*size, sites*clients)
		}
		if s.System == SystemDirect {
			if len(s.Faults) != 0 {
				t.Errorf("direct: faults %+v, want none (no site process)", s.Faults)
			}
			continue
		}
		var got []string
		for _, f := range s.Faults {
			got = append(got, fmt.Sprintf("%s %d", f.Action, f.Site))
			if f.Share <= 0 || f.Share >= 1 || f.Seconds <= 0 || f.Seconds > s.FleetSeconds {
				t.Errorf("%s: fault %+v not mid-crowd (done at %.2f s)", s.System, f, s.FleetSeconds)
			}
		}
		slices.Sort(got)
		if want := []string{"kill 1", "kill 2", "slow 3"}; !slices.Equal(got, want) {
			t.Errorf("%s: faults %v, want %v", s.System, got, want)
		}
		if s.System == SystemShoal && (s.OriginRatio < 0.99 || s.ServedBySource == nil) {
			t.Errorf("shoal: origin ratio %.2f, served %v", s.OriginRatio, s.ServedBySource)
		}
	}
}
