package bench

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// The systems a run compares, in the order they run.
const (
	// SystemShoal is the fleet: N edges with one shared --peers list.
	SystemShoal = "shoal"
	// SystemPerSite is the same N edges, each alone (--peers empty): one
	// cache per site.
	SystemPerSite = "per-site"
	// SystemDirect is the clients straight to the origin.
	SystemDirect = "direct"
	// SystemNginx is one nginx with proxy_cache per site.
	SystemNginx = "nginx"
)

// AllSystems returns every system, in the order a run takes them.
func AllSystems() []string { return []string{SystemShoal, SystemPerSite, SystemDirect, SystemNginx} }

// ScenarioFlash is the flash crowd of a fleet update: every client of every
// site asks for the same new release at the same moment.
const ScenarioFlash = "flash"

// Defaults of Config.
const (
	// DefaultEdges is the fleet size of a run without FleetSizes.
	DefaultEdges = 8
	// DefaultSize is the release's size, a fleet update's: a flash run of
	// all four systems with 8 edges takes about 30 s on two idle cores,
	// and longer while other work shares them.
	DefaultSize = 256 << 20
	// DefaultTimeout bounds one system's crowd.
	DefaultTimeout = 10 * time.Minute
	// DefaultNginxSlice is the nginx baseline's slice size: the edges'
	// default segment size, so both fetch the origin in the same steps.
	DefaultNginxSlice = 4 << 20
)

// Config describes a bench run. Every field but Binary has a usable zero
// value.
type Config struct {
	// Binary is the shoal binary whose `origin` and `edge` subcommands are
	// measured. Required: `shoal bench` passes its own executable, a test
	// one it built.
	Binary string
	// Scenario names the workload. Empty means ScenarioFlash, the only one
	// so far.
	Scenario string
	// FleetSizes are the numbers of sites (edges) to run the scenario with,
	// each a run of its own. Empty means {DefaultEdges}.
	FleetSizes []int
	// Size is the release's size in bytes. Zero means DefaultSize.
	Size int64
	// Clients is the number of clients per site. Zero means 1.
	Clients int
	// Seed fixes the release's bytes, so that runs repeat.
	Seed uint64
	// Systems names the systems to run, a subset of AllSystems, in the order
	// given. Empty means all.
	Systems []string
	// Nginx is the nginx binary. Empty means "nginx" on PATH. When it is not
	// found, the nginx system is reported as skipped.
	Nginx string
	// NginxSlice is the size of the slices (the slice module) in which the
	// nginx baseline fetches and caches the release, when its nginx has the
	// module. Zero means DefaultNginxSlice; negative turns slicing off (the
	// whole object is then one cache entry, and with proxy_cache_lock every
	// client but the first waits for all of it).
	NginxSlice int64
	// EdgeFlags are extra flags for every `shoal edge`, e.g.
	// {"--segment-size", "8MiB"}.
	EdgeFlags []string
	// TempDir is the directory for the run's files (the release,
	// certificates, data directories, logs). Empty means a new directory
	// under os.TempDir(), removed at the end unless KeepTemp.
	TempDir string
	// KeepTemp keeps a temporary directory the harness made.
	KeepTemp bool
	// Timeout bounds one system's crowd. Zero means DefaultTimeout.
	Timeout time.Duration
	// Progress receives a line per phase and system as the run goes. Nil
	// discards them.
	Progress io.Writer
}

// withDefaults returns c with its zero values replaced and checks it.
func (c Config) withDefaults() (Config, error) {
	if c.Binary == "" {
		return c, errors.New("bench: Config.Binary is required (the shoal binary to run)")
	}
	if c.Scenario == "" {
		c.Scenario = ScenarioFlash
	}
	if c.Scenario != ScenarioFlash {
		return c, fmt.Errorf("bench: scenario %q: want %q (cdn, media and faults are still to come)", c.Scenario, ScenarioFlash)
	}
	if len(c.FleetSizes) == 0 {
		c.FleetSizes = []int{DefaultEdges}
	}
	for _, n := range c.FleetSizes {
		if n < 1 || n > 64 {
			return c, fmt.Errorf("bench: fleet size %d: want 1..64", n)
		}
	}
	if c.Size == 0 {
		c.Size = DefaultSize
	}
	if c.Size < 0 {
		return c, fmt.Errorf("bench: size %d: want > 0", c.Size)
	}
	if c.Clients == 0 {
		c.Clients = 1
	}
	if c.Clients < 0 || c.Clients > 256 {
		return c, fmt.Errorf("bench: %d clients per site: want 1..256", c.Clients)
	}
	if len(c.Systems) == 0 {
		c.Systems = AllSystems()
	}
	for _, s := range c.Systems {
		if !slices.Contains(AllSystems(), s) {
			return c, fmt.Errorf("bench: unknown system %q: want one of %s", s, strings.Join(AllSystems(), ", "))
		}
	}
	if c.Nginx == "" {
		c.Nginx = "nginx"
	}
	if c.NginxSlice == 0 {
		c.NginxSlice = DefaultNginxSlice
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
	return c, nil
}
