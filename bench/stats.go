package bench

import (
	"math"
	"slices"
)

// Summary describes a sample: its size, extremes, mean and percentiles.
// Percentiles interpolate linearly between the closest ranks (the method
// of NumPy's default and of R's type 7), so p50 of {1, 2} is 1.5 and p99 of
// a handful of values lies just under the maximum.
type Summary struct {
	N    int     `json:"n"`
	Min  float64 `json:"min"`
	Mean float64 `json:"mean"`
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	Max  float64 `json:"max"`
}

// Summarize returns the Summary of xs, which it does not modify. An empty
// sample gives the zero Summary.
func Summarize(xs []float64) Summary {
	if len(xs) == 0 {
		return Summary{}
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	var sum float64
	for _, x := range s {
		sum += x
	}
	return Summary{
		N:    len(s),
		Min:  s[0],
		Mean: sum / float64(len(s)),
		P50:  Percentile(s, 50),
		P90:  Percentile(s, 90),
		P99:  Percentile(s, 99),
		Max:  s[len(s)-1],
	}
}

// Percentile returns the p-th percentile (0 ≤ p ≤ 100) of sorted, an
// ascending sample, interpolating between the closest ranks: rank
// p/100·(n-1), counted from zero. It returns NaN for an empty sample and
// clamps p to [0, 100].
func Percentile(sorted []float64, p float64) float64 {
	n := len(sorted)
	if n == 0 {
		return math.NaN()
	}
	p = min(max(p, 0), 100)
	r := p / 100 * float64(n-1)
	lo := int(math.Floor(r))
	hi := min(lo+1, n-1)
	f := r - float64(lo)
	return sorted[lo] + f*(sorted[hi]-sorted[lo])
}

// CDF returns the empirical cumulative distribution of xs: the values in
// ascending order, and for each the share of the sample at or below it
// (i+1)/n. Equal values each get their own step, so the last of them
// carries their common height.
func CDF(xs []float64) (x, y []float64) {
	x = slices.Clone(xs)
	slices.Sort(x)
	y = make([]float64, len(x))
	for i := range x {
		y[i] = float64(i+1) / float64(len(x))
	}
	return x, y
}
