package main

import (
	"io"
	"strings"
	"testing"

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
