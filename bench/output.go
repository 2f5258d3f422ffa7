package bench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
)

// systemColor gives each system one colour in every plot.
func systemColor(name string) string {
	switch name {
	case SystemShoal:
		return palette[0]
	case SystemPerSite:
		return palette[1]
	case SystemDirect:
		return palette[4] // not palette[2], too close to per-site's orange
	case SystemNginx:
		return palette[3]
	case SystemBitTorrent:
		return "#882255" // Tol's wine: none of the palette's is far enough from the others
	}
	return palette[7]
}

// Charts returns the report's plots by file name: per fleet size, the
// latency CDF of every system (full download solid, first byte dashed);
// with several fleet sizes, origin egress and the time until the fleet has
// the release, against the fleet size.
func (r *Report) Charts() map[string]Chart {
	charts := map[string]Chart{}
	yLabel := "share of clients"
	if r.Workload != nil {
		yLabel = "share of requests"
	}
	for _, run := range r.Runs {
		c := Chart{
			Title:  fmt.Sprintf("%s, %d sites × %s: latency CDF", r.label(), run.Sites, plural(r.ClientsPerSite, "client")),
			XLabel: "seconds from each request's start, log scale (solid: last byte, dashed: first byte)",
			YLabel: yLabel,
			YMin:   0, YMax: 1,
			LogX: true,
		}
		for _, s := range run.Systems {
			if s.Skipped != "" {
				continue
			}
			var dl, fb []float64
			for _, cl := range s.Clients {
				dl, fb = append(dl, cl.Seconds), append(fb, cl.TTFB)
			}
			x, y := CDF(dl)
			c.Series = append(c.Series, Series{Name: s.System + " download", X: x, Y: y, Step: true, Markers: len(x) <= 64, Color: systemColor(s.System)})
			x, y = CDF(fb)
			c.Series = append(c.Series, Series{Name: s.System + " first byte", X: x, Y: y, Step: true, Dashed: true, Color: systemColor(s.System)})
		}
		charts[fmt.Sprintf("latency-cdf-%d.svg", run.Sites)] = c
	}
	if len(r.Runs) > 1 {
		egress := Chart{
			Title:  fmt.Sprintf("%s: origin egress vs fleet size", r.label()),
			XLabel: "sites (edges)", YLabel: "origin egress ÷ unique bytes",
		}
		done := Chart{
			Title:  fmt.Sprintf("%s: time until every client is done", r.label()),
			XLabel: "sites (edges)", YLabel: "seconds",
		}
		for _, name := range r.systemNames() {
			e := Series{Name: name, Markers: true, Color: systemColor(name)}
			f := e
			for _, run := range r.Runs {
				if s, ok := run.system(name); ok && s.Skipped == "" {
					e.X, e.Y = append(e.X, float64(run.Sites)), append(e.Y, s.OriginRatio)
					f.X, f.Y = append(f.X, float64(run.Sites)), append(f.Y, s.FleetSeconds)
				}
			}
			if len(e.X) > 0 {
				egress.Series, done.Series = append(egress.Series, e), append(done.Series, f)
			}
		}
		if r.Network != nil {
			kr := Series{Name: "Kumar–Ross bound", Dashed: true, Markers: true, Color: palette[7]}
			ps := Series{Name: "per-site bound", Dashed: true, Markers: true, Color: palette[5]}
			for _, run := range r.Runs {
				if run.Bounds != nil {
					kr.X, kr.Y = append(kr.X, float64(run.Sites)), append(kr.Y, run.Bounds.KumarRoss)
					ps.X, ps.Y = append(ps.X, float64(run.Sites)), append(ps.Y, run.Bounds.PerSite)
				}
			}
			if len(kr.X) > 0 {
				done.Series = append(done.Series, kr, ps)
				done.Title = fmt.Sprintf("%s: distribution time and its bounds", r.label())
			}
		}
		if widenCoinciding(egress.Series) {
			egress.Note = "Lines that coincide are drawn nested, the first widest."
		}
		if widenCoinciding(done.Series) {
			done.Note = "Lines that coincide are drawn nested, the first widest."
		}
		charts["origin-egress.svg"] = egress
		charts["fleet-time.svg"] = done
	}
	return charts
}

// widenCoinciding widens each series by the number of later ones that run
// on top of it (the baselines' origin egress is the same with one client
// per site), so that every line stays visible. It says whether any did.
func widenCoinciding(ss []Series) bool {
	same := func(a, b Series) bool {
		if !slices.Equal(a.X, b.X) || len(a.Y) != len(b.Y) {
			return false
		}
		for i := range a.Y {
			if math.Abs(a.Y[i]-b.Y[i]) > 0.01*max(math.Abs(a.Y[i]), math.Abs(b.Y[i])) {
				return false
			}
		}
		return true
	}
	any := false
	for i := range ss {
		n := 0
		for j := i + 1; j < len(ss); j++ {
			if same(ss[i], ss[j]) {
				n++
			}
		}
		ss[i].Width = 2 + 4.5*float64(n)
		any = any || n > 0
	}
	return any
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// WriteFiles writes the report into dir, which it creates: results.json
// (every figure), report.md (the tables) and the SVG plots. It returns the
// paths it wrote.
func WriteFiles(dir string, r *Report) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var paths []string
	write := func(name string, b []byte) error {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			return err
		}
		paths = append(paths, p)
		return nil
	}
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := write("results.json", append(js, '\n')); err != nil {
		return paths, err
	}
	if err := write("report.md", []byte("# Shoal bench\n\n"+r.Markdown())); err != nil {
		return paths, err
	}
	charts := r.Charts()
	for _, name := range slices.Sorted(maps.Keys(charts)) {
		c := charts[name]
		var b bytes.Buffer
		if err := c.WriteSVG(&b); err != nil {
			return paths, err
		}
		if err := write(name, b.Bytes()); err != nil {
			return paths, err
		}
	}
	return paths, nil
}
