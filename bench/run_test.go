package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	shoalOnce sync.Once
	shoalBin  string
	shoalErr  error
	shoalDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if shoalDir != "" {
		os.RemoveAll(shoalDir)
	}
	os.Exit(code)
}

// buildShoal builds the shoal binary once per test process: the harness
// runs its `origin` and `edge` subcommands, and os.Executable() in a test
// is the test binary.
func buildShoal(t *testing.T) string {
	t.Helper()
	shoalOnce.Do(func() {
		goTool, err := exec.LookPath("go") // go test puts its own GOROOT/bin first
		if err != nil {
			goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
		}
		if shoalDir, shoalErr = os.MkdirTemp("", "shoal-bench-test-"); shoalErr != nil {
			return
		}
		shoalBin = filepath.Join(shoalDir, "shoal")
		if out, err := exec.Command(goTool, "build", "-o", shoalBin, "github.com/shoalcdn/shoal/cmd/shoal").CombinedOutput(); err != nil {
			shoalErr = fmt.Errorf("building shoal: %v\n%s", err, out)
		}
	})
	if shoalErr != nil {
		t.Fatal(shoalErr)
	}
	return shoalBin
}

// TestFlashEndToEnd runs the flash scenario through the real binary with 3
// edges, 2 clients each and a 4 MiB release, with every system, and checks
// the figures that do not depend on the machine's speed.
func TestFlashEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the shoal binary and nginx; skipped with -short")
	}
	const sites, clients, size = 3, 2, 4 << 20
	var progress bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := Run(ctx, Config{
		Binary:     buildShoal(t),
		FleetSizes: []int{sites},
		Size:       size,
		Clients:    clients,
		Seed:       7,
		EdgeFlags:  []string{"--segment-size", "1MiB", "--scrub-rate", "0"},
		TempDir:    t.TempDir(),
		Timeout:    time.Minute,
		Progress:   &progress,
	})
	t.Logf("progress:\n%s", progress.String())
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Runs) != 1 || len(rep.Runs[0].Systems) != 4 {
		t.Fatalf("runs: %+v", rep.Runs)
	}
	wantRatio := map[string][2]float64{
		SystemShoal:   {0.99, 1.10},                                     // the fleet fetches each byte once
		SystemPerSite: {0.99 * sites, 1.10 * sites},                     // once per site
		SystemDirect:  {0.99 * sites * clients, 1.01 * sites * clients}, // once per client
		SystemNginx:   {0.99 * sites, 1.10 * sites},                     // once per site, thanks to proxy_cache_lock
	}
	for _, s := range rep.Runs[0].Systems {
		if s.Skipped != "" {
			if s.System != SystemNginx || os.Getenv("CI") == "true" {
				t.Errorf("%s skipped: %s (CI installs nginx)", s.System, s.Skipped)
			}
			t.Logf("%s skipped: %s", s.System, s.Skipped)
			continue
		}
		if r := wantRatio[s.System]; s.OriginRatio < r[0] || s.OriginRatio > r[1] {
			t.Errorf("%s: origin egress ratio %.3f, want %.2f..%.2f", s.System, s.OriginRatio, r[0], r[1])
		}
		if len(s.Clients) != sites*clients {
			t.Errorf("%s: %d client results, want %d", s.System, len(s.Clients), sites*clients)
		}
		for _, c := range s.Clients {
			if c.Bytes != size || c.TTFB <= 0 || c.Seconds < c.TTFB {
				t.Errorf("%s: client %+v", s.System, c)
			}
		}
		if s.DeliveredBytes != sites*clients*size {
			t.Errorf("%s: delivered %d, want %d", s.System, s.DeliveredBytes, sites*clients*size)
		}
		if s.FleetSeconds <= 0 || s.FleetSeconds != s.Download.Max || s.TTFB.N != sites*clients {
			t.Errorf("%s: fleet %.3f s, download %+v, TTFB %+v", s.System, s.FleetSeconds, s.Download, s.TTFB)
		}
		// nginx's and the origin's sendfile may cost less than a clock tick
		// for so small a release; the edges decode and hash.
		edges := s.System == SystemShoal || s.System == SystemPerSite
		if s.TierCPUSeconds < 0 || s.TierCPUSeconds == 0 && edges || math.IsInf(s.CPUSecondsPerGB, 0) {
			t.Errorf("%s: tier CPU %.3f s, %.2f s/GB", s.System, s.TierCPUSeconds, s.CPUSecondsPerGB)
		}
		wantRSS := sites
		if s.System == SystemDirect {
			wantRSS = 1 // the origin's
		}
		if len(s.PeakRSS) != wantRSS || s.PeakRSS[0] < 1<<20 {
			t.Errorf("%s: peak RSS %v, want %d figures", s.System, s.PeakRSS, wantRSS)
		}
		if edges {
			var served int64
			for _, v := range s.ServedBySource {
				served += v
			}
			if served != s.DeliveredBytes {
				t.Errorf("%s: edges served %d by source, clients got %d", s.System, served, s.DeliveredBytes)
			}
			if s.EdgeOriginBytes != s.OriginBytes {
				t.Errorf("%s: edges say %d bytes from the origin, the proxy counted %d", s.System, s.EdgeOriginBytes, s.OriginBytes)
			}
		}
		if s.System == SystemPerSite && s.ShardRequests != 0 {
			t.Errorf("per-site: %d shard requests to peers, want none", s.ShardRequests)
		}
	}
	if !strings.Contains(progress.String(), "all bodies verified") {
		t.Errorf("progress says nothing of verification:\n%s", progress.String())
	}

	out := filepath.Join(t.TempDir(), "out")
	if _, err := WriteFiles(out, rep); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(out, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(b, &back); err != nil || back.Release.SHA256 != rep.Release.SHA256 {
		t.Errorf("results.json: %v, release %+v", err, back.Release)
	}
	md, err := os.ReadFile(filepath.Join(out, "report.md"))
	if err != nil || !bytes.Contains(md, []byte("| shoal |")) {
		t.Errorf("report.md: %v\n%s", err, md)
	}
	if _, err := os.Stat(filepath.Join(out, "latency-cdf-3.svg")); err != nil {
		t.Error(err)
	}
}
