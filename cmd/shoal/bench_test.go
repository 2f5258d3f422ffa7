package main

import (
	"io"
	"strings"
	"testing"
	"time"

	"github.com/shoalcdn/shoal/bench"
)

func TestBenchFlags(t *testing.T) {
	cfg, out, err := benchConfig(strings.Fields("--scenario mix --zipf 1.1 --objects 50 --requests 7 --range-share 0 --clients-per-site 3 --size 8MiB --fleet-sizes 4,8 --out o"), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Scenario != bench.ScenarioMix || cfg.Zipf != 1.1 || cfg.Objects != 50 || cfg.Requests != 7 || cfg.RangeShare >= 0 ||
		cfg.Clients != 3 || cfg.Size != 8<<20 || len(cfg.FleetSizes) != 2 || out != "o" {
		t.Errorf("config %+v, out %q", cfg, out)
	}
	cfg, _, err = benchConfig(strings.Fields("--scenario faults --kill 1 --slow 0 --clients 2"), io.Discard)
	if err != nil || cfg.Kill != 1 || cfg.Slow >= 0 || cfg.Clients != 2 || cfg.Size != 0 {
		t.Errorf("faults: %+v, %v", cfg, err)
	}
	t.Setenv("SHOAL_CLIENTS_PER_SITE", "5")
	if cfg, _, err = benchConfig(nil, io.Discard); err != nil || cfg.Clients != 5 {
		t.Errorf("SHOAL_CLIENTS_PER_SITE=5: clients %d, %v", cfg.Clients, err)
	}
	for _, args := range []string{"--zipf -1", "--seek-share -0.5", "--kill -1", "--fleet-sizes 4,x", "--size -3", "--requests -1"} {
		if _, _, err := benchConfig(strings.Fields(args), io.Discard); err == nil {
			t.Errorf("%s: no error", args)
		}
	}
}

func TestParseRate(t *testing.T) {
	for in, want := range map[string]float64{"100mbit": 100e6, "1gbit": 1e9, "500kbit": 500e3, "1.5Gbit/s": 1.5e9, "2000000": 2e6, "10Mbps": 10e6} {
		if got, err := parseRate(in); err != nil || got != want {
			t.Errorf("parseRate(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "fast", "-3mbit", "0", "NaNmbit", "1e400gbit"} {
		if _, err := parseRate(bad); err == nil {
			t.Errorf("parseRate(%q): no error", bad)
		}
	}
	cfg, _, err := benchConfig(strings.Fields("--netns --origin-uplink 50mbit --edge-uplink 20mbit --edge-downlink 1gbit --peer-rtt 30ms"), io.Discard)
	if err != nil || !cfg.NetNS || cfg.OriginUplink != 50e6 || cfg.EdgeUplink != 20e6 || cfg.EdgeDownlink != 1e9 || cfg.PeerRTT != 30*time.Millisecond {
		t.Errorf("netns flags: %+v, %v", cfg, err)
	}
	if _, _, err := benchConfig(strings.Fields("--edge-uplink lots"), io.Discard); err == nil {
		t.Error("--edge-uplink lots: no error")
	}
}

func TestBenchSoakFlags(t *testing.T) {
	cfg, _, err := benchConfig(strings.Fields("--scenario soak --duration 30m --kill-every 20s --edges 4"), io.Discard)
	if err != nil || cfg.Scenario != bench.ScenarioSoak || cfg.Duration != 30*time.Minute || cfg.KillEvery != 20*time.Second || cfg.FleetSizes[0] != 4 {
		t.Errorf("soak: %+v, %v", cfg, err)
	}
	cfg, _, err = benchConfig(strings.Fields("--scenario soak"), io.Discard)
	if err != nil || cfg.Duration != bench.DefaultSoakDuration || cfg.KillEvery != bench.DefaultKillEvery {
		t.Errorf("soak defaults: duration %v, kill every %v, %v", cfg.Duration, cfg.KillEvery, err)
	}
	if cfg, _, err = benchConfig(strings.Fields("--scenario soak --kill-every 0"), io.Discard); err != nil || cfg.KillEvery >= 0 {
		t.Errorf("--kill-every 0: %v, %v; want never (negative)", cfg.KillEvery, err)
	}
	t.Setenv("SHOAL_DURATION", "90s")
	if cfg, _, err = benchConfig(strings.Fields("--scenario soak"), io.Discard); err != nil || cfg.Duration != 90*time.Second {
		t.Errorf("SHOAL_DURATION=90s: %v, %v", cfg.Duration, err)
	}
	for _, args := range []string{"--scenario soak --duration 0s", "--scenario soak --duration -1s", "--scenario soak --kill-every -1s"} {
		if _, _, err := benchConfig(strings.Fields(args), io.Discard); err == nil {
			t.Errorf("%s: no error", args)
		}
	}
}
