package bench

import (
	"math"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestZipf(t *testing.T) {
	const n, draws = 50, 200_000
	for _, alpha := range []float64{0.6, 0.9, 1.2} {
		z := newZipf(n, alpha)
		rng := seedRand(1, "zipf", 0)
		counts := make([]int, n)
		for range draws {
			counts[z.draw(rng)]++
		}
		var norm float64
		for k := range n {
			norm += math.Pow(float64(k+1), -alpha)
		}
		for _, k := range []int{0, 1, 9, 49} {
			want := draws * math.Pow(float64(k+1), -alpha) / norm
			if got := float64(counts[k]); math.Abs(got-want) > 5*math.Sqrt(want)+1 {
				t.Errorf("α %.1f: rank %d drawn %v times, want about %.0f", alpha, k, got, want)
			}
		}
	}
	// α = 0 is uniform; one object is always rank 0.
	if got := newZipf(1, 0.9).draw(seedRand(1, "x", 0)); got != 0 {
		t.Errorf("one object: drew %d", got)
	}
}

func TestLogUniform(t *testing.T) {
	rng := seedRand(2, "lu", 0)
	below := 0
	for range 10_000 {
		v := logUniform(rng, 1<<10, 1<<20)
		if v < 1<<10 || v > 1<<20 {
			t.Fatalf("drew %d outside [1 KiB, 1 MiB]", v)
		}
		if v < 32<<10 { // the geometric middle
			below++
		}
	}
	if below < 4500 || below > 5500 {
		t.Errorf("%d of 10000 below the geometric middle, want about half", below)
	}
	if v := logUniform(rng, 5, 5); v != 5 {
		t.Errorf("empty range: %d", v)
	}
}

// TestPlans checks the plans of each scenario: repeatable from the seed,
// shaped as the scenario says, and their unique bytes the union of what
// they ask for.
func TestPlans(t *testing.T) {
	dir := t.TempDir()
	for _, cfg := range []Config{
		{Binary: "x", Scenario: ScenarioFlash, Size: 1 << 20},
		{Binary: "x", Scenario: ScenarioFaults, Size: 1 << 20, FleetSizes: []int{4}},
		{Binary: "x", Scenario: ScenarioMix, Size: 2 << 20, Objects: 40, Requests: 20},
		{Binary: "x", Scenario: ScenarioMedia, Objects: 3, Segments: 5, Requests: 8, SeekShare: 0.5},
	} {
		t.Run(cfg.Scenario, func(t *testing.T) {
			cfg, err := cfg.withDefaults()
			if err != nil {
				t.Fatal(err)
			}
			cat, err := makeCatalog(cfg, filepath.Join(dir, cfg.Scenario))
			if err != nil {
				t.Fatal(err)
			}
			p := cat.plan(cfg, 3)
			if again := cat.plan(cfg, 3); !reflect.DeepEqual(p, again) {
				t.Error("the same seed drew another plan")
			}
			if len(p.clients) != 3*cfg.Clients {
				t.Fatalf("%d client plans, want %d", len(p.clients), 3*cfg.Clients)
			}
			if p.unique <= 0 || p.unique > p.total || p.unique > cat.bytes {
				t.Errorf("unique %d, total %d, catalog %d", p.unique, p.total, cat.bytes)
			}
			// The union, computed apart (scenarios_test.go's unionBytes).
			spans := map[string][]testSpan{}
			for _, reqs := range p.clients {
				for _, rq := range reqs {
					obj := &cat.objects[rq.obj]
					off, n := rq.span(obj)
					if off < 0 || n <= 0 || off+n > obj.Size {
						t.Fatalf("request %+v outside object of %d bytes", rq, obj.Size)
					}
					spans[obj.Path] = append(spans[obj.Path], testSpan{off, off + n})
				}
			}
			if u := unionBytes(spans, nil); u != p.unique {
				t.Errorf("unique %d, the union of the requests is %d", p.unique, u)
			}
			switch cfg.Scenario {
			case ScenarioFlash, ScenarioFaults:
				if len(cat.objects) != 1 || p.unique != cfg.Size || p.total != int64(len(p.clients))*cfg.Size {
					t.Errorf("%d objects, unique %d, total %d", len(cat.objects), p.unique, p.total)
				}
			case ScenarioMix:
				ranged, sizes := 0, map[string]bool{}
				for _, o := range cat.objects {
					if o.Size < mixMinSize || o.Size > cfg.Size {
						t.Errorf("object %s of %d bytes", o.Path, o.Size)
					}
					switch {
					case o.Size <= mixSmallMax:
						sizes["small"] = true
					default:
						sizes["large"] = true
					}
				}
				for _, reqs := range p.clients {
					if len(reqs) != cfg.Requests {
						t.Errorf("%d requests, want %d", len(reqs), cfg.Requests)
					}
					for _, rq := range reqs {
						if rq.ranged {
							ranged++
						}
					}
				}
				if share := float64(ranged) / float64(p.requests); share < 0.1 || share > 0.3 {
					t.Errorf("%.2f of the requests ranged, want about %.2f", share, cfg.RangeShare)
				}
				if !sizes["small"] || !sizes["large"] {
					t.Errorf("sizes %v: want small and large objects", sizes)
				}
			case ScenarioMedia:
				seeks := 0
				for i, reqs := range p.clients {
					if p.delays[i] < 0 || p.delays[i] >= 1e9 {
						t.Errorf("viewer %d arrives after %v", i, p.delays[i])
					}
					for k, rq := range reqs {
						if rq.ranged || !strings.HasPrefix(cat.objects[rq.obj].Path, "/media/v") {
							t.Fatalf("request %+v", rq)
						}
						if k > 0 && rq.obj != reqs[k-1].obj+1 {
							seeks++ // or the start again at the end of a video
						}
					}
				}
				if seeks == 0 {
					t.Error("no viewer ever sought")
				}
				for _, o := range cat.objects {
					if o.Size < mediaSegMin || o.Size > mediaSegMax {
						t.Errorf("segment %s of %d bytes", o.Path, o.Size)
					}
				}
			}
		})
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Binary: "x", Scenario: "cdn"}, "unknown scenario"},
		{Config{Binary: "x", Scenario: ScenarioFaults, FleetSizes: []int{3}}, "cannot lose 2 and slow 1"},
		{Config{Binary: "x", Scenario: ScenarioMix, RangeShare: 1.5}, "range share"},
		{Config{Binary: "x", Scenario: ScenarioMix, Zipf: -1}, "Zipf"},
		{Config{Binary: "x", Scenario: ScenarioMix, Zipf: math.NaN()}, "Zipf"},
		{Config{Binary: "x", Scenario: ScenarioMix, Size: 100}, "largest object"},
		{Config{Binary: "x", Scenario: ScenarioMedia, Segments: -2}, "segments per video"},
		{Config{Binary: "x", Scenario: ScenarioMedia, SeekShare: 2}, "seek share"},
		{Config{Binary: "x", Clients: 1000}, "clients per site"},
		{Config{Binary: "x", PeerRTT: time.Millisecond}, "only with NetNS"},
		{Config{Binary: "x", NetNS: true, EdgeUplink: -5}, "edge uplink"},
	} {
		if _, err := tc.cfg.withDefaults(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: err = %v, want %q", tc.cfg, err, tc.want)
		}
	}
	cfg, err := Config{Binary: "x", Scenario: ScenarioFaults, FleetSizes: []int{3}, Kill: 1, Slow: -1}.withDefaults()
	if err != nil || cfg.Kill != 1 || cfg.Slow != 0 {
		t.Errorf("one kill, no slow, 3 sites: %+v, %v", cfg, err)
	}
	cfg, err = Config{Binary: "x", Scenario: ScenarioMix}.withDefaults()
	if err != nil || cfg.Size != DefaultMixSize || cfg.Clients != 4 || cfg.Zipf != DefaultZipf || cfg.RangeShare != DefaultRangeShare {
		t.Errorf("mix defaults: %+v, %v", cfg, err)
	}
}

func TestUnionBytes(t *testing.T) {
	m := map[string][]testSpan{
		"/a": {{30, 40}, {0, 10}, {5, 15}, {15, 20}, {32, 35}}, // 20 + 10
		"/b": {{0, 100}, {50, 150}},                            // clipped to 120 below
	}
	if got := unionBytes(m, map[string]int64{"/b": 120}); got != 30+120 {
		t.Errorf("union %d, want 150", got)
	}
}
