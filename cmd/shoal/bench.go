package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/shoalcdn/shoal/bench"
)

// runBench runs a bench scenario against the baselines with this very
// binary as the origin and the edges, prints the table, and writes the
// report and plots.
func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	envUsage(fs)
	var (
		scenario  = fs.String("scenario", bench.ScenarioFlash, "workload: flash (every client fetches the same new release at once)")
		edges     = fs.Int("edges", bench.DefaultEdges, "number of sites (edges; one nginx each for the nginx baseline)")
		fleet     = fs.String("fleet-sizes", "", "comma-separated site counts to sweep, e.g. 4,8,16 (instead of --edges)")
		clients   = fs.Int("clients", 1, "clients per site")
		seed      = fs.Uint64("seed", 1, "seed of the release's bytes")
		out       = fs.String("out", "bench-out", "directory for results.json, report.md and the SVG plots")
		systems   = fs.String("systems", strings.Join(bench.AllSystems(), ","), "systems to compare, in order")
		nginx     = fs.String("nginx", "nginx", "nginx binary of the nginx baseline; the baseline is skipped if it is not found")
		edgeFlags = fs.String("edge-flags", "", `extra flags for every edge, e.g. "--segment-size 8MiB"`)
		keep      = fs.Bool("keep", false, "keep the run's temporary directory (release, data directories, logs)")
		timeout   = fs.Duration("timeout", bench.DefaultTimeout, "limit of one system's crowd")
		size      = int64(bench.DefaultSize)
		slice     = int64(bench.DefaultNginxSlice)
	)
	fs.Var(sizeFlag{&size}, "size", "size of the release")
	fs.Var(sizeFlag{&slice}, "nginx-slice", "slice size of the nginx baseline (slice module); 0 caches whole objects")
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	cfg := bench.Config{
		Scenario:   *scenario,
		FleetSizes: []int{*edges},
		Size:       size,
		Clients:    *clients,
		Seed:       *seed,
		Systems:    splitList(*systems),
		Nginx:      *nginx,
		NginxSlice: slice,
		EdgeFlags:  strings.Fields(*edgeFlags),
		KeepTemp:   *keep,
		Timeout:    *timeout,
		Progress:   stderr,
	}
	if slice == 0 {
		cfg.NginxSlice = -1 // Config reads zero as the default
	}
	if *fleet != "" {
		cfg.FleetSizes = nil
		for _, s := range splitList(*fleet) {
			n, err := strconv.Atoi(s)
			if err != nil {
				return fmt.Errorf("--fleet-sizes %q: %w", *fleet, err)
			}
			cfg.FleetSizes = append(cfg.FleetSizes, n)
		}
	}
	if size <= 0 {
		return errors.New("--size must be positive")
	}
	bin, err := os.Executable()
	if err != nil {
		return fmt.Errorf("finding this binary to run its origin and edges: %w", err)
	}
	cfg.Binary = bin
	rep, err := bench.Run(ctx, cfg)
	if err != nil {
		return err
	}
	paths, err := bench.WriteFiles(*out, rep)
	if err != nil {
		return err
	}
	fmt.Fprint(stdout, rep.Markdown())
	fmt.Fprintf(stderr, "wrote %s\n", strings.Join(paths, ", "))
	return nil
}
