package bench

import (
	"math"
	"slices"
	"testing"
)

func TestPercentile(t *testing.T) {
	ten := []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	for _, tc := range []struct {
		name   string
		sorted []float64
		p      float64
		want   float64
	}{
		{"one value", []float64{7}, 50, 7},
		{"one value p99", []float64{7}, 99, 7},
		{"two values median", []float64{1, 2}, 50, 1.5},
		{"min", ten, 0, 1},
		{"max", ten, 100, 10},
		{"median of ten", ten, 50, 5.5},
		{"p90 of ten", ten, 90, 9.1},  // rank 8.1
		{"p99 of ten", ten, 99, 9.91}, // rank 8.91
		{"p25 of four", []float64{10, 20, 30, 40}, 25, 17.5},
		{"clamped below", ten, -5, 1},
		{"clamped above", ten, 150, 10},
		{"equal values", []float64{3, 3, 3}, 90, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Percentile(tc.sorted, tc.p); math.Abs(got-tc.want) > 1e-9 {
				t.Errorf("Percentile(%v, %v) = %v, want %v", tc.sorted, tc.p, got, tc.want)
			}
		})
	}
	if got := Percentile(nil, 50); !math.IsNaN(got) {
		t.Errorf("Percentile of nothing = %v, want NaN", got)
	}
}

func TestSummarize(t *testing.T) {
	xs := []float64{10, 1, 9, 2, 8, 3, 7, 4, 6, 5}
	orig := slices.Clone(xs)
	s := Summarize(xs)
	want := Summary{N: 10, Min: 1, Mean: 5.5, P50: 5.5, P90: 9.1, P99: 9.91, Max: 10}
	if !summaryNear(s, want) {
		t.Errorf("Summarize = %+v, want %+v", s, want)
	}
	if !slices.Equal(xs, orig) {
		t.Errorf("Summarize reordered its input: %v", xs)
	}
	if got := Summarize(nil); got != (Summary{}) {
		t.Errorf("Summarize(nil) = %+v, want the zero Summary", got)
	}
}

func summaryNear(a, b Summary) bool {
	eq := func(x, y float64) bool { return math.Abs(x-y) < 1e-9 }
	return a.N == b.N && eq(a.Min, b.Min) && eq(a.Mean, b.Mean) && eq(a.P50, b.P50) &&
		eq(a.P90, b.P90) && eq(a.P99, b.P99) && eq(a.Max, b.Max)
}

func TestCDF(t *testing.T) {
	x, y := CDF([]float64{3, 1, 2, 2})
	if want := []float64{1, 2, 2, 3}; !slices.Equal(x, want) {
		t.Errorf("x = %v, want %v", x, want)
	}
	if want := []float64{0.25, 0.5, 0.75, 1}; !slices.Equal(y, want) {
		t.Errorf("y = %v, want %v", y, want)
	}
	x, y = CDF(nil)
	if len(x) != 0 || len(y) != 0 {
		t.Errorf("CDF(nil) = %v, %v, want empty", x, y)
	}
}
