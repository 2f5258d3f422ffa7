package erasure

import (
	"errors"
	"math"
	"testing"
)

func TestParseParams(t *testing.T) {
	good := []struct {
		in   string
		want Params
	}{
		{"4+2", Params{K: 4, M: 2}},
		{"10+4", Params{K: 10, M: 4}},
		{"1+0", Params{K: 1, M: 0}},
		{" 6+3\n", Params{K: 6, M: 3}},
		{"64+0", Params{K: 64, M: 0}},
		{"1+63", Params{K: 1, M: 63}},
	}
	for _, tt := range good {
		got, err := ParseParams(tt.in)
		if err != nil {
			t.Errorf("ParseParams(%q): %v", tt.in, err)
			continue
		}
		if got != tt.want {
			t.Errorf("ParseParams(%q) = %v, want %v", tt.in, got, tt.want)
		}
		if s := got.String(); s != tt.want.String() {
			t.Errorf("ParseParams(%q).String() = %q, want %q", tt.in, s, tt.want.String())
		}
	}

	bad := []string{
		"", "4", "+", "0+2", "4+-1", "-1+2", "40+30", "65+0", "a+b", "4+b", "a+2",
		"4 + 2", "4+2+1",
		// K+M overflows int into range unless K and M are bounded first.
		"9223372036854775807+1",
		"1+9223372036854775807",
	}
	for _, in := range bad {
		if p, err := ParseParams(in); !errors.Is(err, ErrParams) {
			t.Errorf("ParseParams(%q) = %v, %v; want ErrParams", in, p, err)
		}
	}
}

func TestParamsValidate(t *testing.T) {
	tests := []struct {
		p  Params
		ok bool
	}{
		{Params{K: 4, M: 2}, true},
		{Params{K: 1, M: 0}, true},
		{Params{K: 64, M: 0}, true},
		{Params{K: 32, M: 32}, true},
		{Params{}, false},
		{Params{K: 0, M: 2}, false},
		{Params{K: 4, M: -1}, false},
		{Params{K: 33, M: 32}, false},
		{Params{K: 65, M: 0}, false},
		{Params{K: math.MaxInt, M: 1}, false},
		{Params{K: 1, M: math.MaxInt}, false},
		{Params{K: math.MaxInt, M: math.MaxInt}, false},
		{Params{K: 100, M: -90}, false},
	}
	for _, tt := range tests {
		err := tt.p.Validate()
		if tt.ok && err != nil {
			t.Errorf("%#v.Validate() = %v, want nil", tt.p, err)
		}
		if !tt.ok && !errors.Is(err, ErrParams) {
			t.Errorf("%#v.Validate() = %v, want ErrParams", tt.p, err)
		}
	}
	if got := (Params{K: 10, M: 4}).Total(); got != 14 {
		t.Errorf("Total() = %d, want 14", got)
	}
}

func TestLayoutDefaults(t *testing.T) {
	tests := []struct {
		in, want Layout
	}{
		{Layout{}, Layout{SegmentSize: DefaultSegmentSize, Params: DefaultParams}},
		{Layout{SegmentSize: 1 << 20}, Layout{SegmentSize: 1 << 20, Params: DefaultParams}},
		{Layout{Params: Params{K: 10, M: 4}}, Layout{SegmentSize: DefaultSegmentSize, Params: Params{K: 10, M: 4}}},
		// Only the all-zero Params is defaulted; a half-set one stays invalid.
		{Layout{Params: Params{M: 2}}, Layout{SegmentSize: DefaultSegmentSize, Params: Params{M: 2}}},
	}
	for _, tt := range tests {
		if got := tt.in.WithDefaults(); got != tt.want {
			t.Errorf("%+v.WithDefaults() = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

func TestLayoutValidate(t *testing.T) {
	tests := []struct {
		l  Layout
		ok bool
	}{
		{Layout{}.WithDefaults(), true},
		{Layout{SegmentSize: MinSegmentSize, Params: DefaultParams}, true},
		{Layout{SegmentSize: MaxSegmentSize, Params: DefaultParams}, true},
		{Layout{}, false},
		{Layout{SegmentSize: MinSegmentSize - 1, Params: DefaultParams}, false},
		{Layout{SegmentSize: MaxSegmentSize + 1, Params: DefaultParams}, false},
		{Layout{SegmentSize: -1, Params: DefaultParams}, false},
		{Layout{SegmentSize: DefaultSegmentSize, Params: Params{K: 0, M: 2}}, false},
		{Layout{SegmentSize: DefaultSegmentSize, Params: Params{K: 60, M: 5}}, false},
	}
	for _, tt := range tests {
		err := tt.l.Validate()
		if (err == nil) != tt.ok {
			t.Errorf("%+v.Validate() = %v, want ok=%v", tt.l, err, tt.ok)
		}
	}
}

func TestSegments(t *testing.T) {
	const ss = 1 << 20
	l := Layout{SegmentSize: ss, Params: DefaultParams}
	tests := []struct {
		name string
		size int64
		want int64
	}{
		{"empty", 0, 0},
		{"negative", -5, 0},
		{"one byte", 1, 1},
		{"one short of a segment", ss - 1, 1},
		{"exactly one segment", ss, 1},
		{"one byte over", ss + 1, 2},
		{"many", 100*ss + 7, 101},
		{"exactly many", 100 * ss, 100},
		{"max int64", math.MaxInt64, math.MaxInt64/ss + 1},
	}
	for _, tt := range tests {
		if got := l.Segments(tt.size); got != tt.want {
			t.Errorf("%s: Segments(%d) = %d, want %d", tt.name, tt.size, got, tt.want)
		}
	}

	// A zero SegmentSize means the default; a negative one cuts nothing
	// rather than panicking.
	if got, want := (Layout{}).Segments(DefaultSegmentSize+1), int64(2); got != want {
		t.Errorf("Layout{}.Segments(DefaultSegmentSize+1) = %d, want %d", got, want)
	}
	if got := (Layout{SegmentSize: -1}).Segments(10); got != 0 {
		t.Errorf("negative SegmentSize: Segments(10) = %d, want 0", got)
	}
}

func TestSegment(t *testing.T) {
	const ss = 1 << 20
	l := Layout{SegmentSize: ss, Params: DefaultParams}
	tests := []struct {
		name        string
		i, size     int64
		off, n      int64
		outOfBounds bool
	}{
		{name: "empty object", i: 0, size: 0},
		{name: "one byte", i: 0, size: 1, off: 0, n: 1},
		{name: "one byte, index 1", i: 1, size: 1},
		{name: "exactly one segment", i: 0, size: ss, off: 0, n: ss},
		{name: "exactly one segment, index 1", i: 1, size: ss},
		{name: "one byte over, first", i: 0, size: ss + 1, off: 0, n: ss},
		{name: "one byte over, last", i: 1, size: ss + 1, off: ss, n: 1},
		{name: "one byte over, index 2", i: 2, size: ss + 1},
		{name: "many, middle", i: 50, size: 100*ss + 7, off: 50 * ss, n: ss},
		{name: "many, last", i: 100, size: 100*ss + 7, off: 100 * ss, n: 7},
		{name: "many, past end", i: 101, size: 100*ss + 7},
		{name: "negative index", i: -1, size: 100 * ss},
		// i*SegmentSize wraps to 0 here; the index must still be out of range.
		{name: "wrapping index", i: 1 << 44, size: 100 * ss},
		{name: "max index", i: math.MaxInt64, size: math.MaxInt64},
	}
	for _, tt := range tests {
		off, n := l.Segment(tt.i, tt.size)
		if off != tt.off || n != tt.n {
			t.Errorf("%s: Segment(%d, %d) = %d, %d; want %d, %d", tt.name, tt.i, tt.size, off, n, tt.off, tt.n)
		}
	}
}

// TestSegmentsCover checks that the segments tile the object exactly: no
// gap, no overlap, every one but the last full.
func TestSegmentsCover(t *testing.T) {
	l := Layout{SegmentSize: MinSegmentSize}
	for _, size := range []int64{1, MinSegmentSize - 1, MinSegmentSize, MinSegmentSize + 1, 3*MinSegmentSize + 17, 10 * MinSegmentSize} {
		nseg := l.Segments(size)
		var next int64
		for i := range nseg {
			off, n := l.Segment(i, size)
			if off != next || n < 1 || n > MinSegmentSize || (i < nseg-1 && n != MinSegmentSize) {
				t.Fatalf("size %d: Segment(%d) = %d, %d after offset %d", size, i, off, n, next)
			}
			next = off + n
		}
		if next != size {
			t.Errorf("size %d: segments cover %d bytes", size, next)
		}
		if _, n := l.Segment(nseg, size); n != 0 {
			t.Errorf("size %d: Segment(%d) past the last has n = %d", size, nseg, n)
		}
	}
}

func TestNewObjectID(t *testing.T) {
	base := Layout{SegmentSize: DefaultSegmentSize, Params: DefaultParams}
	id := NewObjectID("example.com/a", `"v1"`, 1000, base)
	if again := NewObjectID("example.com/a", `"v1"`, 1000, base); again != id {
		t.Errorf("NewObjectID not stable: %v then %v", id, again)
	}
	// Zero fields mean their defaults, so the zero Layout names the same
	// object as the explicit defaults.
	if z := NewObjectID("example.com/a", `"v1"`, 1000, Layout{}); z != id {
		t.Errorf("NewObjectID(Layout{}) = %v, want %v (the defaults)", z, id)
	}

	variants := []struct {
		name           string
		key, validator string
		size           int64
		l              Layout
	}{
		{"key", "example.com/b", `"v1"`, 1000, base},
		{"validator", "example.com/a", `"v2"`, 1000, base},
		{"empty validator", "example.com/a", "", 1000, base},
		{"size", "example.com/a", `"v1"`, 1001, base},
		{"segment size", "example.com/a", `"v1"`, 1000, Layout{SegmentSize: 2 * DefaultSegmentSize, Params: DefaultParams}},
		{"k", "example.com/a", `"v1"`, 1000, Layout{SegmentSize: DefaultSegmentSize, Params: Params{K: 5, M: 2}}},
		{"m", "example.com/a", `"v1"`, 1000, Layout{SegmentSize: DefaultSegmentSize, Params: Params{K: 4, M: 3}}},
		// Length prefixes keep key and validator from running together.
		{"key/validator boundary", "example.com/a\"", `v1"`, 1000, base},
	}
	seen := map[ObjectID]string{id: "base"}
	for _, v := range variants {
		got := NewObjectID(v.key, v.validator, v.size, v.l)
		if prev, ok := seen[got]; ok {
			t.Errorf("%s: NewObjectID = %v, same as %s", v.name, got, prev)
		}
		seen[got] = v.name
	}
}

func TestIDStrings(t *testing.T) {
	var id ObjectID
	id[0], id[7], id[8] = 0xab, 0xcd, 0xef
	if got, want := id.String(), "ab000000000000cd"; got != want {
		t.Errorf("ObjectID.String() = %q, want %q", got, want)
	}
	sh := ShardID{Segment: SegmentID{Object: id, Index: 3}, Index: 5}
	if got, want := sh.String(), "ab000000000000cd/3/5"; got != want {
		t.Errorf("ShardID.String() = %q, want %q", got, want)
	}
}
