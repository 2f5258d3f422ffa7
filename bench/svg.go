package bench

import (
	"bufio"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// Plots are written as SVG by hand: a line chart is a few dozen elements,
// and this keeps the module free of a plotting library and its fonts and
// image dependencies. The output is self-contained (no scripts, no external
// fonts or styles) and renders in browsers and with rsvg-convert.

// Chart is a line chart with linear axes.
type Chart struct {
	Title, XLabel, YLabel string
	// Note is a line of smaller text under the title. Empty means none.
	Note   string
	Series []Series
	// XMin, XMax, YMin and YMax fix an axis's range; where min equals max,
	// the range comes from the data, from zero unless a value is negative,
	// rounded out to whole ticks.
	XMin, XMax, YMin, YMax float64
	// LogX puts the x axis on a logarithmic scale, with ticks at 1, 2 and 5
	// times powers of ten; points with x ≤ 0 are left out.
	LogX bool
	// Width and Height are in pixels. Zero means 800×460.
	Width, Height int
}

// Series is one line of a chart.
type Series struct {
	Name string
	X, Y []float64
	// Step draws a step function from y = 0, as an empirical CDF is drawn:
	// at each point, across at the previous height, then up.
	Step bool
	// Markers puts a dot on each point.
	Markers bool
	// Dashed draws the line dashed.
	Dashed bool
	// Width is the line's width in pixels. Zero means 2. A wider line
	// drawn before a narrower one that coincides with it stays visible
	// around it.
	Width float64
	// Color is an SVG color. Empty means the palette's colour for the
	// series' position.
	Color string
}

// palette is Okabe and Ito's, distinguishable with colour-blindness.
var palette = [...]string{"#0072B2", "#E69F00", "#D55E00", "#009E73", "#CC79A7", "#56B4E9", "#F0E442", "#000000"}

// layout of the chart area, in pixels from the edges of the picture.
const (
	marginLeft   = 72
	marginRight  = 190 // the legend: "bittorrent first byte" fits
	marginTop    = 42
	marginBottom = 56
)

// WriteSVG writes the chart as an SVG document to w.
func (c Chart) WriteSVG(w io.Writer) error {
	width, height := c.Width, c.Height
	if width == 0 {
		width = 800
	}
	if height == 0 {
		height = 460
	}
	px0, px1 := float64(marginLeft), float64(width-marginRight)
	py0, py1 := float64(height-marginBottom), float64(marginTop) // y grows downwards

	ok := func(x, y float64) bool { return finite(x) && finite(y) && (!c.LogX || x > 0) }
	var xs, ys []float64
	for _, s := range c.Series {
		for i := range min(len(s.X), len(s.Y)) {
			if ok(s.X[i], s.Y[i]) {
				xs, ys = append(xs, s.X[i]), append(ys, s.Y[i])
			}
		}
	}
	var xt []float64
	if c.LogX {
		xt = logTicks(c.XMin, c.XMax, xs)
	} else {
		xt = axisTicks(c.XMin, c.XMax, xs)
	}
	yt := axisTicks(c.YMin, c.YMax, ys)
	xlo, xhi := xt[0], xt[len(xt)-1]
	ylo, yhi := yt[0], yt[len(yt)-1]
	sx := func(x float64) float64 { return px0 + (x-xlo)/(xhi-xlo)*(px1-px0) }
	if c.LogX {
		sx = func(x float64) float64 { return px0 + math.Log(x/xlo)/math.Log(xhi/xlo)*(px1-px0) }
	}
	sy := func(y float64) float64 { return py0 + (y-ylo)/(yhi-ylo)*(py1-py0) }

	b := bufio.NewWriter(w)
	p := func(format string, a ...any) { fmt.Fprintf(b, format, a...) }
	p(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	p(`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="12">`+"\n", width, height, width, height)
	p("<title>%s</title>\n", esc(c.Title))
	p(`<rect width="100%%" height="100%%" fill="white"/>` + "\n")
	p(`<text x="%d" y="22" font-size="15" font-weight="bold">%s</text>`+"\n", marginLeft, esc(c.Title))
	if c.Note != "" {
		p(`<text x="%d" y="36" font-size="11" fill="#555">%s</text>`+"\n", marginLeft, esc(c.Note))
	}

	// Grid and ticks.
	dx, dy := tickDecimals(xt), tickDecimals(yt)
	for _, t := range xt {
		x := sx(t)
		p(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#e4e4e4"/>`+"\n", x, py0, x, py1)
		label := strconv.FormatFloat(t, 'f', dx, 64)
		if c.LogX { // ticks span decades: each with its own decimals
			label = strconv.FormatFloat(t, 'f', -1, 64)
		}
		p(`<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", x, py0+17, label)
	}
	for _, t := range yt {
		y := sy(t)
		p(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#e4e4e4"/>`+"\n", px0, y, px1, y)
		p(`<text x="%.1f" y="%.1f" text-anchor="end">%s</text>`+"\n", px0-6, y+4, strconv.FormatFloat(t, 'f', dy, 64))
	}
	p(`<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="none" stroke="#555"/>`+"\n", px0, py1, px1-px0, py0-py1)
	p(`<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", (px0+px1)/2, height-14, esc(c.XLabel))
	p(`<text transform="translate(18 %.1f) rotate(-90)" text-anchor="middle">%s</text>`+"\n", (py0+py1)/2, esc(c.YLabel))

	// Series and legend.
	for i, s := range c.Series {
		color := s.Color
		if color == "" {
			color = palette[i%len(palette)]
		}
		var d strings.Builder
		prevY := 0.0
		first := true
		for j := range min(len(s.X), len(s.Y)) {
			x, y := s.X[j], s.Y[j]
			if !ok(x, y) {
				continue
			}
			switch {
			case first && s.Step:
				fmt.Fprintf(&d, "M%.1f %.1f L%.1f %.1f", sx(x), sy(max(ylo, min(yhi, prevY))), sx(x), sy(y))
			case first:
				fmt.Fprintf(&d, "M%.1f %.1f", sx(x), sy(y))
			case s.Step:
				fmt.Fprintf(&d, " L%.1f %.1f L%.1f %.1f", sx(x), sy(prevY), sx(x), sy(y))
			default:
				fmt.Fprintf(&d, " L%.1f %.1f", sx(x), sy(y))
			}
			first, prevY = false, y
		}
		dash := ""
		if s.Dashed {
			dash = ` stroke-dasharray="7 4"`
		}
		width := s.Width
		if width <= 0 {
			width = 2
		}
		if d.Len() > 0 {
			p(`<path d="%s" fill="none" stroke="%s" stroke-width="%g"%s stroke-linejoin="round"/>`+"\n", d.String(), color, width, dash)
		}
		if s.Markers {
			for j := range min(len(s.X), len(s.Y)) {
				if ok(s.X[j], s.Y[j]) {
					p(`<circle cx="%.1f" cy="%.1f" r="%g" fill="%s"/>`+"\n", sx(s.X[j]), sy(s.Y[j]), max(3, width/2+1.5), color)
				}
			}
		}
		ly := float64(marginTop + 12 + 22*i)
		lx := px1 + 14
		p(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="%g"%s/>`+"\n", lx, ly, lx+26, ly, color, min(width, 8), dash)
		p(`<text x="%.1f" y="%.1f">%s</text>`+"\n", lx+32, ly+4, esc(s.Name))
	}
	p("</svg>\n")
	return b.Flush()
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

func esc(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s))
	return b.String()
}

// axisTicks returns the ticks of an axis from lo to hi, or when they are
// equal, of a range covering values (from zero unless one is negative):
// about six round steps (1, 2 or 5 times a power of ten), the first and
// last tick enclosing the range.
func axisTicks(lo, hi float64, values []float64) []float64 {
	fixed := lo != hi
	if !fixed {
		lo, hi = 0, 0
		for _, v := range values {
			lo, hi = min(lo, v), max(hi, v)
		}
		if lo == hi {
			hi = lo + 1
		}
	}
	step := niceStep((hi - lo) / 6)
	first, last := math.Floor(lo/step+1e-9), math.Ceil(hi/step-1e-9)
	var ticks []float64
	for k := first; k <= last; k++ {
		ticks = append(ticks, k*step)
	}
	if fixed { // keep the range asked for exactly
		ticks[0], ticks[len(ticks)-1] = lo, hi
	}
	return ticks
}

// logTicks returns the ticks of a logarithmic axis from lo to hi (both
// positive), or when they are not, of a range covering the positive
// values: 1, 2 and 5 times powers of ten, only the powers when the range
// spans more than three decades; the first and last enclosing the range.
func logTicks(lo, hi float64, values []float64) []float64 {
	if !(lo > 0 && hi > lo) {
		lo, hi = math.Inf(1), 0
		for _, v := range values {
			if v > 0 {
				lo, hi = min(lo, v), max(hi, v)
			}
		}
		if hi == 0 {
			lo, hi = 1, 10
		}
		if hi <= lo {
			hi = lo * 10
		}
	}
	mults := []float64{1, 2, 5}
	if hi/lo > 1000 {
		mults = []float64{1}
	}
	var ticks []float64
	for e := math.Floor(math.Log10(lo)); ; e++ {
		pow := math.Pow(10, e)
		for _, m := range mults {
			t := m * pow
			switch {
			case t*(1+1e-9) < lo:
				// below the range: the last one seen opens the axis
				ticks = []float64{t}
				continue
			case len(ticks) > 0 && ticks[len(ticks)-1]*(1+1e-9) >= hi:
				return ticks
			}
			ticks = append(ticks, t)
		}
	}
}

// niceStep rounds a raw step up to 1, 2 or 5 times a power of ten.
func niceStep(raw float64) float64 {
	if raw <= 0 || !finite(raw) {
		return 1
	}
	pow := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*pow >= raw*(1-1e-9) {
			return m * pow
		}
	}
	return 10 * pow
}

// tickDecimals is the number of decimals that shows every tick exactly.
func tickDecimals(ticks []float64) int {
	d := 0
	for _, t := range ticks {
		for d < 6 {
			v := t * math.Pow(10, float64(d))
			if math.Abs(v-math.Round(v)) < 1e-6*math.Max(1, math.Abs(v)) {
				break
			}
			d++
		}
	}
	return d
}
