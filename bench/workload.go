package bench

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"time"
)

// A workload is what the clients of one crowd ask for: the objects the
// origin serves and, per client, the requests it makes one after the
// other. Everything comes from the seed, so that every system of a run,
// and every run with the same seed and flags, gets the same requests.

// Size classes of the CDN mix, and their shares of the catalog.
const (
	mixSmallMax  = 1 << 20  // small objects: 1 KiB up to this (web assets, manifests)
	mixMediumMax = 16 << 20 // medium: up to this (images, packages); large: up to Config.Size
	mixMinSize   = 1 << 10
	// mixMaxRange bounds a ranged request's length in the mix.
	mixMaxRange = 16 << 20
)

var mixShares = [3]float64{0.70, 0.25, 0.05} // small, medium, large

// Media segments are 2–6 MiB, the size of a few seconds of HD video.
const (
	mediaSegMin = 2 << 20
	mediaSegMax = 6 << 20
	// mediaStartAtZero is the share of viewers who start a video at its
	// beginning; the others start somewhere in it.
	mediaStartAtZero = 0.7
)

// plan is the requests of one crowd.
type plan struct {
	// clients holds per client (site-major: site·clients + client) its
	// requests, in order.
	clients [][]request
	// delays holds per client the wait before its first request; nil
	// means every client starts at the crowd's start.
	delays []time.Duration
	// unique is the bytes of the union of every range asked for; total is
	// the bytes of all requests; requests counts them.
	unique, total int64
	requests      int
}

// catalog is the objects of a run and how the crowd's plans are drawn.
type catalog struct {
	objects []object
	bytes   int64 // all objects' sizes
	// videos holds, for media, the object indexes of each video's
	// segments in order.
	videos [][]int
}

// seedRand returns a generator for one purpose of a run (the catalog, the
// plans of a fleet size...), fixed by the run's seed.
func seedRand(seed uint64, purpose string, n int) *rand.Rand {
	var key [32]byte
	copy(key[:], fmt.Sprintf("%s/%d/%d", purpose, seed, n))
	return rand.New(rand.NewChaCha8(key))
}

// logUniform draws from [lo, hi] with a uniform logarithm: as many
// objects between 1 and 2 KiB as between 1 and 2 MiB.
func logUniform(rng *rand.Rand, lo, hi int64) int64 {
	if hi <= lo {
		return lo
	}
	return min(hi, max(lo, int64(math.Exp(math.Log(float64(lo))+rng.Float64()*(math.Log(float64(hi))-math.Log(float64(lo)))))))
}

// zipf draws ranks 0..n-1 with probability proportional to 1/(rank+1)^α,
// for any α ≥ 0 (math/rand's Zipf wants α > 1; a CDN's popularity is
// nearer 0.6–1).
type zipf struct{ cdf []float64 }

func newZipf(n int, alpha float64) zipf {
	z := zipf{cdf: make([]float64, n)}
	var sum float64
	for k := range n {
		sum += math.Pow(float64(k+1), -alpha)
		z.cdf[k] = sum
	}
	for k := range z.cdf {
		z.cdf[k] /= sum
	}
	return z
}

func (z zipf) draw(rng *rand.Rand) int {
	return min(len(z.cdf)-1, sort.SearchFloat64s(z.cdf, rng.Float64()))
}

// makeCatalog writes the scenario's objects under www and returns them.
// For flash and faults it is the release alone.
func makeCatalog(cfg Config, www string) (*catalog, error) {
	cat := &catalog{}
	add := func(path string, size int64, seed uint64) error {
		sum, err := WriteRandomFile(filepath.Join(www, path), size, seed)
		if err != nil {
			return err
		}
		cat.objects = append(cat.objects, object{Path: path, Size: size, SHA256: sum})
		cat.bytes += size
		return nil
	}
	rng := seedRand(cfg.Seed, "catalog", 0)
	switch cfg.Scenario {
	case ScenarioFlash, ScenarioFaults:
		if err := add(fmt.Sprintf("/releases/fleet-update-%d.bin", cfg.Seed), cfg.Size, cfg.Seed); err != nil {
			return nil, err
		}
	case ScenarioMix, ScenarioSoak:
		bounds := [4]int64{mixMinSize, min(mixSmallMax, cfg.Size), min(mixMediumMax, cfg.Size), cfg.Size}
		for i := range cfg.Objects {
			class, u := 0, rng.Float64()
			for class < 2 && u >= mixShares[class] {
				u -= mixShares[class]
				class++
			}
			size := logUniform(rng, bounds[class], bounds[class+1])
			if err := add(fmt.Sprintf("/mix/o%03d.bin", i), size, cfg.Seed<<32+uint64(i)+1<<20); err != nil {
				return nil, err
			}
		}
	case ScenarioMedia:
		for v := range cfg.Objects {
			var segs []int
			for s := range cfg.Segments {
				segs = append(segs, len(cat.objects))
				size := mediaSegMin + rng.Int64N(mediaSegMax-mediaSegMin+1)
				if err := add(fmt.Sprintf("/media/v%02d/seg%03d.ts", v, s), size, cfg.Seed<<32+uint64(v)<<16+uint64(s)+1<<30); err != nil {
					return nil, err
				}
			}
			cat.videos = append(cat.videos, segs)
		}
	default:
		return nil, fmt.Errorf("bench: no catalog for scenario %q", cfg.Scenario)
	}
	return cat, nil
}

// open opens every object's file under www, for checking ranged bodies.
func (cat *catalog) open(www string) error {
	for i := range cat.objects {
		f, err := os.Open(filepath.Join(www, cat.objects[i].Path))
		if err != nil {
			return err
		}
		cat.objects[i].file = f
	}
	return nil
}

func (cat *catalog) close() {
	for i := range cat.objects {
		if f := cat.objects[i].file; f != nil {
			f.Close()
			cat.objects[i].file = nil
		}
	}
}

// plan draws the requests of a crowd with sites sites, the same for
// every system.
func (cat *catalog) plan(cfg Config, sites int) *plan {
	n := sites * cfg.Clients
	p := &plan{clients: make([][]request, n)}
	rng := seedRand(cfg.Seed, "plan", sites)
	switch cfg.Scenario {
	case ScenarioFlash, ScenarioFaults:
		for i := range n {
			p.clients[i] = []request{{obj: 0}}
		}
	case ScenarioMix:
		// Popularity ranks are a shuffle of the catalog, so that size and
		// popularity are independent.
		rank := rng.Perm(len(cat.objects))
		z := newZipf(len(cat.objects), cfg.Zipf)
		for i := range n {
			for range cfg.Requests {
				p.clients[i] = append(p.clients[i], cat.mixRequest(rng, z, rank, cfg.RangeShare))
			}
		}
	case ScenarioMedia:
		z := newZipf(len(cat.videos), cfg.Zipf)
		p.delays = make([]time.Duration, n)
		for i := range n {
			// Viewers arrive over the first second, not all in one
			// instant as a flash crowd does.
			p.delays[i] = time.Duration(rng.Int64N(int64(time.Second)))
			segs := cat.videos[z.draw(rng)]
			at := 0
			if rng.Float64() >= mediaStartAtZero {
				at = rng.IntN(len(segs))
			}
			for range cfg.Requests {
				p.clients[i] = append(p.clients[i], request{obj: segs[at]})
				switch {
				case rng.Float64() < cfg.SeekShare: // a seek, back or forward
					at = rng.IntN(len(segs))
				case at+1 < len(segs):
					at++
				default: // the end of the video: start it again
					at = 0
				}
			}
		}
	}
	type span struct{ lo, hi int64 }
	spans := map[int][]span{}
	for _, reqs := range p.clients {
		for _, rq := range reqs {
			off, n := rq.span(&cat.objects[rq.obj])
			spans[rq.obj] = append(spans[rq.obj], span{off, off + n})
			p.total += n
			p.requests++
		}
	}
	for _, ss := range spans {
		slices.SortFunc(ss, func(a, b span) int { return int(min(max(a.lo-b.lo, -1), 1)) })
		end := int64(-1)
		for _, s := range ss {
			if s.lo > end {
				p.unique += s.hi - s.lo
			} else if s.hi > end {
				p.unique += s.hi - end
			}
			end = max(end, s.hi)
		}
	}
	return p
}

// mixRequest draws one request of the mix (and the soak): an object by
// Zipf popularity over the ranks rank, and with probability rangeShare a
// byte range of it.
func (cat *catalog) mixRequest(rng *rand.Rand, z zipf, rank []int, rangeShare float64) request {
	o := rank[z.draw(rng)]
	rq := request{obj: o}
	if size := cat.objects[o].Size; rng.Float64() < rangeShare && size >= 2*mixMinSize {
		rq.ranged = true
		rq.n = logUniform(rng, mixMinSize, min(size-1, mixMaxRange))
		rq.off = rng.Int64N(size - rq.n + 1)
	}
	return rq
}
