package bench

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// sampleReport is a report of two fleet sizes with every kind of system.
func sampleReport() *Report {
	sys := func(name string, sites int, ratio float64, skipped string) SystemResult {
		if skipped != "" {
			return SystemResult{System: name, Sites: sites, Skipped: skipped}
		}
		r := SystemResult{System: name, Sites: sites, ClientsPerSite: 1, UniqueBytes: 64 << 20,
			OriginBytes: int64(ratio * (64 << 20)), OriginRatio: ratio, FleetSeconds: float64(sites) / 2,
			PeakRSS: []int64{100 << 20, 120 << 20}}
		for i := range sites {
			r.Clients = append(r.Clients, ClientResult{Site: i, TTFB: 0.01 * float64(i+1), Seconds: 0.2 * float64(i+1), Bytes: 64 << 20})
		}
		r.TTFB, r.Download = Summarize([]float64{0.01, 0.02}), Summarize([]float64{0.2, 0.4})
		if name == SystemShoal {
			r.ServedBySource = map[string]int64{"memory": 1 << 20, "peer": 60 << 20, "origin": 3 << 20}
			r.HedgedRequests, r.ShardRequests, r.HedgeRatio = 3, 100, 0.03
		}
		return r
	}
	rep := &Report{Scenario: ScenarioFlash, Started: time.Date(2026, 11, 21, 22, 0, 0, 0, time.UTC), Seconds: 42,
		Machine:      Machine{CPUs: 2, CPUModel: "Xeon", MemTotal: 24 << 30, Kernel: "6.18", GoVersion: "go1.26", LoadBefore: [3]float64{1, 2, 3}},
		ShoalVersion: "shoal (devel)", NginxVersion: "nginx/1.22.1", NginxSlice: 4 << 20,
		Release: Release{Path: "/r.bin", Size: 64 << 20, SHA256: "ab"}, ClientsPerSite: 1, Seed: 1}
	for _, n := range []int{4, 8} {
		rep.Runs = append(rep.Runs, FleetRun{Sites: n, Systems: []SystemResult{
			sys(SystemShoal, n, 1, ""), sys(SystemPerSite, n, float64(n), ""), sys(SystemDirect, n, float64(n), ""),
			sys(SystemNginx, n, 0, "nginx not found"),
		}})
	}
	return rep
}

func TestMarkdown(t *testing.T) {
	md := sampleReport().Markdown()
	for _, want := range []string{
		"## Flash crowd: 64.0 MiB release, 1 client per site, seed 1",
		"### 4 sites", "### 8 sites",
		"| shoal | 64.0 MiB | 1.00× |", "| per-site | 512.0 MiB | 8.00× |",
		"| nginx | skipped: nginx not found |",
		"3.0%", // hedged share of shoal
		"| shoal | 1.0 MiB | 0 B | 60.0 MiB | 3.0 MiB |",
		"### Origin egress ÷ unique bytes",
		"| per-site | 4.00× in 2.00 s | 8.00× in 4.00 s |",
		"| nginx | – | – |",
		"nginx/1.22.1, proxy_cache_lock on, sendfile on, slice 4.0 MiB",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("no %q in\n%s", want, md)
		}
	}
	// Every table row of a table has as many cells as its header.
	var cols int
	for line := range strings.Lines(md) {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "|") {
			cols = 0
			continue
		}
		n := strings.Count(line, "|")
		if cols == 0 {
			cols = n
		} else if n != cols {
			t.Errorf("row with %d bars under a header with %d: %s", n, cols, line)
		}
	}
}

func TestWriteFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "out")
	rep := sampleReport()
	paths, err := WriteFiles(dir, rep)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range paths {
		names = append(names, filepath.Base(p))
	}
	want := []string{"results.json", "report.md", "fleet-time.svg", "latency-cdf-4.svg", "latency-cdf-8.svg", "origin-egress.svg"}
	if !slices.Equal(names, want) {
		t.Errorf("wrote %v, want %v", names, want)
	}
	b, err := os.ReadFile(filepath.Join(dir, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.Markdown() != rep.Markdown() {
		t.Error("the JSON does not carry the whole report: its Markdown differs")
	}
	for _, n := range names {
		if strings.HasSuffix(n, ".svg") {
			b, _ := os.ReadFile(filepath.Join(dir, n))
			doc := decodeSVG(t, b)
			if len(doc.Paths) == 0 {
				t.Errorf("%s: no lines", n)
			}
		}
	}
	egress := rep.Charts()["origin-egress.svg"]
	if len(egress.Series) != 3 {
		t.Errorf("origin egress plot has %d series, want 3 (nginx was skipped)", len(egress.Series))
	}
}

func TestConfigDefaults(t *testing.T) {
	c, err := Config{Binary: "shoal"}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if c.Scenario != ScenarioFlash || !slices.Equal(c.FleetSizes, []int{DefaultEdges}) || c.Size != DefaultSize ||
		c.Clients != 1 || !slices.Equal(c.Systems, DefaultSystems()) || c.NginxSlice != DefaultNginxSlice || c.Timeout != DefaultTimeout {
		t.Errorf("defaults: %+v", c)
	}
	for _, bad := range []Config{
		{},
		{Binary: "shoal", Scenario: "cdn"},
		{Binary: "shoal", FleetSizes: []int{0}},
		{Binary: "shoal", Size: -1},
		{Binary: "shoal", Clients: -1},
		{Binary: "shoal", Systems: []string{"varnish"}},
	} {
		if _, err := bad.withDefaults(); err == nil {
			t.Errorf("%+v: no error", bad)
		}
	}
}
