package bench

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shoalcdn/shoal/internal/netns"
)

func TestBounds(t *testing.T) {
	// 8 sites, 100 MB (8e8 bits), origin 100 Mbit/s, sites 100 up, 1000 down.
	b := bounds(100e6, 8, 2, 100e6, 100e6, 1e9)
	for _, tc := range []struct {
		name      string
		got, want float64
	}{
		{"Kumar–Ross: the origin's uplink", b.KumarRoss, 8},     // max(8, 0.8, 8·8/9=7.1)
		{"per site: N·F/u_s", b.PerSite, 64},                    //
		{"direct: every client from the origin", b.Direct, 128}, // 16 clients
	} {
		if diff := tc.got - tc.want; diff > 1e-9 || diff < -1e-9 {
			t.Errorf("%s: %v s, want %v s", tc.name, tc.got, tc.want)
		}
	}
	// With a fast origin the swarm's total upload binds: N·F/(u_s+Σu_i).
	if got, want := bounds(100e6, 8, 1, 1e9, 100e6, 1e9).KumarRoss, 8*8e8/(1e9+8*100e6); got != want {
		t.Errorf("upload-bound: %v, want %v", got, want)
	}
	if b.of(SystemShoal) != b.KumarRoss || b.of(SystemNginx) != b.PerSite || b.of(SystemDirect) != b.Direct {
		t.Errorf("bound of a system: %+v", b)
	}
}

// TestNetnsEndToEnd runs the flash crowd on the emulated network (root,
// ip and tc): every system must be as slow as the links make it (no
// faster than its lower bound: the shaping works), every byte right, and
// the namespaces gone afterwards.
func TestNetnsEndToEnd(t *testing.T) {
	if err := NetnsUsable(0); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	rep := runScenario(t, Config{Scenario: ScenarioFlash, NetNS: true, FleetSizes: []int{3}, Size: 8 << 20, Seed: 9,
		OriginUplink: 80e6, EdgeUplink: 80e6, EdgeDownlink: 400e6})
	run := rep.Runs[0]
	if rep.Network == nil || run.Bounds == nil || run.Bounds.KumarRoss <= 0 {
		t.Fatalf("network %+v, bounds %+v", rep.Network, run.Bounds)
	}
	for _, s := range run.Systems {
		if s.Skipped != "" {
			continue
		}
		if b := run.Bounds.of(s.System); s.FleetSeconds < 0.9*b {
			t.Errorf("%s: done in %.2f s, under its lower bound %.2f s: the links are not shaped", s.System, s.FleetSeconds, b)
		}
		wantRatio := map[string]float64{SystemShoal: 1, SystemPerSite: 3, SystemDirect: 3, SystemNginx: 3}[s.System]
		if s.OriginRatio < 0.99*wantRatio || s.OriginRatio > 1.1*wantRatio {
			t.Errorf("%s: origin ratio %.2f, want %.0f", s.System, s.OriginRatio, wantRatio)
		}
	}
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatal(err)
	}
	if prefix := fmt.Sprintf("shb%d-", os.Getpid()); strings.Contains(string(out), prefix) {
		t.Errorf("namespaces left behind:\n%s", out)
	}
}

// TestPeerRTT builds a two-site emulated network with a 40 ms round trip
// between sites and measures it with UDP echoes from site 0 to site 1,
// and the hub's (unshaped, undelayed) round trip to a site as a control.
func TestPeerRTT(t *testing.T) {
	const rtt = 40 * time.Millisecond
	if err := NetnsUsable(rtt); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	cfg, err := Config{Binary: "x", NetNS: true, PeerRTT: rtt, FleetSizes: []int{2}}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	e, err := newNetEnv(context.Background(), cfg, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer e.close()
	var echo net.PacketConn
	if err := netns.Do(e.sites[1], func() error {
		var err error
		echo, err = net.ListenPacket("udp", siteIP(1)+":0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := echo.ReadFrom(buf)
			if err != nil {
				return
			}
			echo.WriteTo(buf[:n], from)
		}
	}()
	measure := func(ns string) time.Duration {
		t.Helper()
		var c net.Conn
		if err := netns.Do(ns, func() error {
			var err error
			c, err = net.Dial("udp", echo.LocalAddr().String())
			return err
		}); err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		best := time.Hour
		buf := make([]byte, 2048)
		for i := range 10 {
			start := time.Now()
			if _, err := c.Write([]byte(fmt.Sprintf("ping %d", i))); err != nil {
				t.Fatal(err)
			}
			c.SetReadDeadline(time.Now().Add(2 * time.Second))
			if _, err := c.Read(buf); err != nil {
				t.Fatalf("echo %d from %s: %v", i, ns, err)
			}
			best = min(best, time.Since(start))
		}
		return best
	}
	if got := measure(e.sites[0]); got < rtt*9/10 {
		t.Errorf("round trip between sites %v, want at least %v", got, rtt*9/10)
	} else {
		t.Logf("round trip between sites: %v (configured %v)", got, rtt)
	}
	if got := measure(e.hub); got >= rtt/2 {
		t.Errorf("round trip from the hub (not delayed) %v, want well under %v", got, rtt/2)
	}
	for _, q := range e.delay {
		if q.Early() != 0 {
			t.Errorf("%d packets let through early", q.Early())
		}
	}
}

// What each site of the crowd sent: the namespaces beyond its size (made
// for the run's largest fleet) are left out, and so are the bytes before.
func TestWireDelta(t *testing.T) {
	before := []int64{100, 200, 300, 400}
	after := []int64{150, 1200, 300, 9400}
	total, sites := wireDelta(before, after, 3)
	if total != 1050 || !slices.Equal(sites, []int64{50, 1000, 0}) {
		t.Errorf("wireDelta = %d, %v; want 1050, [50 1000 0]", total, sites)
	}
	if total, sites := wireDelta(nil, after, 8); total != 11050 || len(sites) != 4 {
		t.Errorf("wireDelta without a reading before = %d, %v", total, sites)
	}
}
