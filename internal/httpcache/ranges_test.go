package httpcache

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
)

func TestRFC9110Range_Section14_2(t *testing.T) {
	tests := []struct {
		in   string
		size int64
		want []Range
		err  error
	}{
		{"bytes=0-0", 10, []Range{{0, 1}}, nil},
		{"bytes=2-5", 10, []Range{{2, 4}}, nil},
		{"bytes=2-", 10, []Range{{2, 8}}, nil},
		{"bytes=-3", 10, []Range{{7, 3}}, nil},
		{"bytes=-30", 10, []Range{{0, 10}}, nil},
		{"bytes=5-100", 10, []Range{{5, 5}}, nil},
		{"bytes=9-", 10, []Range{{9, 1}}, nil},
		{"BYTES=1-1", 10, []Range{{1, 1}}, nil},
		{"bytes=0-1, 3-4 ,, ", 10, []Range{{0, 2}, {3, 2}}, nil},
		{"bytes=0-1,20-30", 10, []Range{{0, 2}}, nil},
		{"bytes=0-99999999999999999999999", 10, []Range{{0, 10}}, nil},
		{"bytes=-99999999999999999999999", 10, []Range{{0, 10}}, nil},
		{"bytes=10-", 10, nil, ErrRangeUnsatisfiable},
		{"bytes=99999999999999999999999-", 10, nil, ErrRangeUnsatisfiable},
		{"bytes=-0", 10, nil, ErrRangeUnsatisfiable},
		{"bytes=10-20,30-", 10, nil, ErrRangeUnsatisfiable},
		{"bytes=0-", 0, nil, ErrRangeUnsatisfiable},
		{"bytes=-5", 0, nil, ErrRangeUnsatisfiable},
		{"bytes=5-2", 10, nil, ErrRangeSyntax},
		{"bytes=", 10, nil, ErrRangeSyntax},
		{"bytes=,", 10, nil, ErrRangeSyntax},
		{"bytes=-", 10, nil, ErrRangeSyntax},
		{"bytes=1", 10, nil, ErrRangeSyntax},
		{"bytes=a-b", 10, nil, ErrRangeSyntax},
		{"bytes=+1-2", 10, nil, ErrRangeSyntax},
		{"bytes=1-+2", 10, nil, ErrRangeSyntax},
		{"bytes=--1", 10, nil, ErrRangeSyntax},
		{"bytes=1-2-3", 10, nil, ErrRangeSyntax},
		{"bytes = 1-2", 10, nil, ErrRangeSyntax},
		{"bytes=1 -2", 10, nil, ErrRangeSyntax},
		{"items=1-2", 10, nil, ErrRangeSyntax},
		{"", 10, nil, ErrRangeSyntax},
		{"bytes=0-1", -1, nil, ErrRangeSyntax},
		{"bytes=" + strings.Repeat("0-0,", maxRangeSpecs), 10, nil, nil}, // exactly the limit
		{"bytes=" + strings.Repeat("0-0,", maxRangeSpecs+1), 10, nil, ErrRangeSyntax},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseRange(tt.in, tt.size)
			if !errors.Is(err, tt.err) {
				t.Fatalf("err: got %v, want %v", err, tt.err)
			}
			if tt.want == nil {
				return
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestRFC9110ContentRange_Section14_4(t *testing.T) {
	tests := []struct {
		in                    string
		first, last, complete int64
		ok                    bool
	}{
		{"bytes 0-9/10", 0, 9, 10, true},
		{"bytes 5-5/6", 5, 5, 6, true},
		{"Bytes 1-2/*", 1, 2, -1, true},
		{"bytes 0-9/9", 0, 0, 0, false},
		{"bytes 5-4/10", 0, 0, 0, false},
		{"bytes */10", 0, 0, 0, false},
		{"bytes 0-9", 0, 0, 0, false},
		{"bytes 0/10", 0, 0, 0, false},
		{"bytes=0-9/10", 0, 0, 0, false},
		{"bytes -1-9/10", 0, 0, 0, false},
		{"bytes 0-9/1x", 0, 0, 0, false},
		{"", 0, 0, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			first, last, complete, ok := ParseContentRange(tt.in)
			if ok != tt.ok {
				t.Fatalf("ok: got %v, want %v", ok, tt.ok)
			}
			if ok && (first != tt.first || last != tt.last || complete != tt.complete) {
				t.Errorf("got %v-%v/%v, want %v-%v/%v", first, last, complete, tt.first, tt.last, tt.complete)
			}
		})
	}
}

func FuzzParseRange(f *testing.F) {
	seeds := []struct {
		s    string
		size int64
	}{
		{"bytes=0-499", 1000},
		{"bytes=500-", 1000},
		{"bytes=-500", 1000},
		{"bytes=0-0,-1", 1000},
		{"bytes= 0-1 , 5-", 10},
		{"bytes=9223372036854775806-9223372036854775807", math.MaxInt64},
		{"bytes=-9223372036854775807", math.MaxInt64},
		{"bytes=0-", 0},
		{"items=1-2", 10},
	}
	for _, s := range seeds {
		f.Add(s.s, s.size)
	}
	f.Fuzz(func(t *testing.T, s string, size int64) {
		ranges, err := ParseRange(s, size)
		if err != nil {
			if len(ranges) != 0 {
				t.Fatalf("%q/%d: ranges %v with error %v", s, size, ranges, err)
			}
			return
		}
		if len(ranges) == 0 || len(ranges) > maxRangeSpecs {
			t.Fatalf("%q/%d: %d ranges", s, size, len(ranges))
		}
		for _, r := range ranges {
			if r.Start < 0 || r.Length <= 0 || r.Start >= size || r.Length > size-r.Start {
				t.Fatalf("%q/%d: range %v outside [0,%d)", s, size, r, size)
			}
			// Round trip: the range re-parsed as its own spec is itself, and
			// its Content-Range parses back.
			spec := fmt.Sprintf("bytes=%d-%d", r.Start, r.Start+r.Length-1)
			again, err := ParseRange(spec, size)
			if err != nil || len(again) != 1 || again[0] != r {
				t.Fatalf("%q/%d: %s re-parsed as %v, %v", s, size, spec, again, err)
			}
			first, last, complete, ok := ParseContentRange(string(r.AppendContentRange(nil, size)))
			if !ok || first != r.Start || last != r.Start+r.Length-1 || complete != size {
				t.Fatalf("%q/%d: Content-Range of %v parsed as %d-%d/%d, %v", s, size, r, first, last, complete, ok)
			}
		}
	})
}

func FuzzParseContentRange(f *testing.F) {
	for _, s := range []string{"bytes 0-9/10", "bytes 0-0/*", "bytes */10", "bytes 9223372036854775806-9223372036854775806/9223372036854775807"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		first, last, complete, ok := ParseContentRange(s)
		if !ok {
			return
		}
		if first < 0 || last < first || complete < -1 || complete >= 0 && last >= complete {
			t.Fatalf("%q: got %d-%d/%d", s, first, last, complete)
		}
		if complete >= 0 {
			r := Range{Start: first, Length: last - first + 1}
			f2, l2, c2, ok := ParseContentRange(string(r.AppendContentRange(nil, complete)))
			if !ok || f2 != first || l2 != last || c2 != complete {
				t.Fatalf("%q: round trip got %d-%d/%d %v", s, f2, l2, c2, ok)
			}
		}
	})
}

func BenchmarkParseRange(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseRange("bytes=4194304-8388607", 1<<30); err != nil {
			b.Fatal(err)
		}
	}
}

func FuzzPlanRanges(f *testing.F) {
	for _, s := range []string{"bytes=0-9", "bytes=-5", "bytes=5-", "bytes=0-1,5-6,100-200", "bytes=0-,0-,0-", "bytes=9-0"} {
		f.Add(s, int64(1000), 4)
	}
	f.Fuzz(func(t *testing.T, s string, size int64, maxRanges int) {
		if size < 0 || maxRanges < 1 || maxRanges > 64 {
			return
		}
		rs, err := PlanRanges(s, size, maxRanges)
		if err != nil {
			return
		}
		if len(rs) == 0 || len(rs) > maxRanges {
			t.Fatalf("%q: %d ranges (max %d)", s, len(rs), maxRanges)
		}
		var total int64
		for i, r := range rs {
			if r.Start < 0 || r.Length <= 0 || r.Start+r.Length > size {
				t.Fatalf("%q: range %+v outside %d bytes", s, r, size)
			}
			if i > 0 && r.Start <= rs[i-1].Start+rs[i-1].Length+rangeGap {
				t.Fatalf("%q: ranges %+v and %+v not merged", s, rs[i-1], r)
			}
			total += r.Length
		}
		if total > size {
			t.Fatalf("%q: %d bytes asked of %d: amplification", s, total, size)
		}
	})
}
