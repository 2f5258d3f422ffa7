package bench

import (
	"bytes"
	"encoding/xml"
	"io"
	"math"
	"slices"
	"strings"
	"testing"
)

// svgDoc is what the tests read back from a chart.
type svgDoc struct {
	XMLName xml.Name `xml:"svg"`
	Width   int      `xml:"width,attr"`
	Title   string   `xml:"title"`
	Paths   []struct {
		D      string `xml:"d,attr"`
		Stroke string `xml:"stroke,attr"`
		Dash   string `xml:"stroke-dasharray,attr"`
	} `xml:"path"`
	Texts   []string   `xml:"text"`
	Circles []struct{} `xml:"circle"`
}

// decodeSVG checks that b is well-formed XML, token by token, and decodes it.
func decodeSVG(t *testing.T, b []byte) svgDoc {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(b))
	for {
		_, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("not well-formed XML: %v\n%s", err, b)
		}
	}
	var doc svgDoc
	if err := xml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("decoding the SVG: %v", err)
	}
	return doc
}

func TestChartSVG(t *testing.T) {
	x, y := CDF([]float64{0.5, 1.5, 1, 2})
	c := Chart{
		Title:  `Latency <p50 & "p99"> 'tails'`,
		XLabel: "seconds", YLabel: "share",
		YMin: 0, YMax: 1,
		Series: []Series{
			{Name: "shoal <fleet>", X: x, Y: y, Step: true, Markers: true},
			{Name: "direct & co", X: []float64{0.2, 3}, Y: []float64{0, 1}, Dashed: true, Color: "#123456"},
			{Name: "with holes", X: []float64{1, math.NaN(), 2, 3}, Y: []float64{0.1, 0.5, math.Inf(1), 0.9}},
		},
	}
	var b bytes.Buffer
	if err := c.WriteSVG(&b); err != nil {
		t.Fatal(err)
	}
	doc := decodeSVG(t, b.Bytes())
	if doc.Title != c.Title {
		t.Errorf("title = %q, want %q", doc.Title, c.Title)
	}
	if doc.Width != 800 {
		t.Errorf("width = %d, want the default 800", doc.Width)
	}
	if len(doc.Paths) != 3 {
		t.Fatalf("%d paths, want one per series", len(doc.Paths))
	}
	if doc.Paths[1].Stroke != "#123456" || doc.Paths[1].Dash == "" {
		t.Errorf("second series: stroke %q dash %q, want its own colour, dashed", doc.Paths[1].Stroke, doc.Paths[1].Dash)
	}
	// A step CDF of 4 points: a move, a rise, then across and up per point.
	if n := strings.Count(doc.Paths[0].D, "L"); n != 1+2*3 {
		t.Errorf("step path has %d segments, want 7: %s", n, doc.Paths[0].D)
	}
	if n := strings.Count(doc.Paths[2].D, "L"); n != 1 {
		t.Errorf("path with NaN and Inf has %d segments, want 1 (two finite points): %s", n, doc.Paths[2].D)
	}
	if len(doc.Circles) != 4 {
		t.Errorf("%d markers, want 4", len(doc.Circles))
	}
	for _, want := range []string{"shoal <fleet>", "direct & co", "seconds", "share", "0.0", "1.0"} {
		if !slices.Contains(doc.Texts, want) {
			t.Errorf("no text %q among %q", want, doc.Texts)
		}
	}
}

func TestChartSVGEdgeCases(t *testing.T) {
	for _, c := range []Chart{
		{Title: "empty"},
		{Title: "one point", Series: []Series{{Name: "a", X: []float64{4}, Y: []float64{4}}}},
		{Title: "negative", Series: []Series{{Name: "a", X: []float64{-3, 2}, Y: []float64{-1, -0.5}}}},
		{Title: "log", LogX: true, Series: []Series{{Name: "a", X: []float64{0, 0.003, 0.5, 17}, Y: []float64{0, 0.2, 0.5, 1}, Step: true}}},
		{Title: "log, nothing positive", LogX: true, Series: []Series{{Name: "a", X: []float64{0, -1}, Y: []float64{0, 1}}}},
	} {
		var b bytes.Buffer
		if err := c.WriteSVG(&b); err != nil {
			t.Fatalf("%s: %v", c.Title, err)
		}
		if bytes.Contains(b.Bytes(), []byte("NaN")) || bytes.Contains(b.Bytes(), []byte("Inf")) {
			t.Errorf("%s: NaN or Inf in the output:\n%s", c.Title, b.Bytes())
		}
		decodeSVG(t, b.Bytes())
	}
}

func TestAxisTicks(t *testing.T) {
	for _, tc := range []struct {
		name   string
		lo, hi float64
		values []float64
		want   []float64
	}{
		{"from data, from zero", 0, 0, []float64{0.3, 16.7}, []float64{0, 5, 10, 15, 20}},
		{"fixed", 0, 1, nil, []float64{0, 0.2, 0.4, 0.6000000000000001, 0.8, 1}},
		{"negative data", 0, 0, []float64{-3, 2}, []float64{-3, -2, -1, 0, 1, 2}},
		{"no data", 0, 0, nil, []float64{0, 0.2, 0.4, 0.6000000000000001, 0.8, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := axisTicks(tc.lo, tc.hi, tc.values)
			if len(got) != len(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			for i := range got {
				if math.Abs(got[i]-tc.want[i]) > 1e-9 {
					t.Fatalf("got %v, want %v", got, tc.want)
				}
			}
		})
	}
}

func TestLogTicks(t *testing.T) {
	for _, tc := range []struct {
		name   string
		values []float64
		want   []float64
	}{
		{"within two decades", []float64{0.03, 4}, []float64{0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5}},
		{"more than three decades: powers only", []float64{0.002, 17}, []float64{0.001, 0.01, 0.1, 1, 10, 100}},
		{"exact bounds", []float64{1, 10}, []float64{1, 2, 5, 10}},
		{"one value", []float64{3}, []float64{2, 5, 10, 20, 50}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := logTicks(0, 0, tc.values)
			if len(got) != len(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			for i := range got {
				if math.Abs(got[i]-tc.want[i]) > 1e-9*tc.want[i] {
					t.Fatalf("got %v, want %v", got, tc.want)
				}
			}
		})
	}
}

func TestNiceStep(t *testing.T) {
	for raw, want := range map[float64]float64{0.7: 1, 1: 1, 1.2: 2, 3: 5, 7: 10, 0.013: 0.02, 450: 500, 0: 1, -2: 1} {
		if got := niceStep(raw); math.Abs(got-want) > 1e-12 {
			t.Errorf("niceStep(%v) = %v, want %v", raw, got, want)
		}
	}
	if got := tickDecimals([]float64{0, 0.25, 0.5}); got != 2 {
		t.Errorf("tickDecimals = %d, want 2", got)
	}
}
