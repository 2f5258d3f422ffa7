package erasure

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
)

// testSegment returns n reproducible pseudo-random bytes.
func testSegment(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, uint64(n)))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func mustCoder(t testing.TB, p Params) *Coder {
	t.Helper()
	c, err := NewCoder(p)
	if err != nil {
		t.Fatalf("NewCoder(%v): %v", p, err)
	}
	return c
}

func TestNewCoder(t *testing.T) {
	for _, p := range []Params{{}, {K: 0, M: 2}, {K: 4, M: -1}, {K: 40, M: 30}} {
		if _, err := NewCoder(p); !errors.Is(err, ErrParams) {
			t.Errorf("NewCoder(%v) = %v, want ErrParams", p, err)
		}
	}
	c := mustCoder(t, Params{K: 6, M: 3})
	if got := c.Params(); got != (Params{K: 6, M: 3}) {
		t.Errorf("Params() = %v, want 6+3", got)
	}
}

func TestRoundTrip(t *testing.T) {
	params := []Params{{K: 4, M: 2}, {K: 1, M: 1}, {K: 10, M: 4}, {K: 3, M: 0}, {K: 6, M: 3}}
	for _, p := range params {
		c := mustCoder(t, p)
		lengths := []int{1, p.K, p.K + 1, 4 << 20, 4<<20 - 1, 1000003, 7777, 65537}
		if p.K > 1 {
			lengths = append(lengths, p.K-1)
		}
		for _, n := range lengths {
			seg := testSegment(n, uint64(p.K*100+p.M))
			shards, d, err := c.Encode(seg)
			if err != nil {
				t.Fatalf("%v len %d: Encode: %v", p, n, err)
			}
			checkEncoded(t, p, seg, shards, d)

			// All shards present.
			got, err := c.Decode(d, shards)
			if err != nil {
				t.Fatalf("%v len %d: Decode: %v", p, n, err)
			}
			if !bytes.Equal(got, seg) {
				t.Fatalf("%v len %d: Decode returned different bytes", p, n)
			}

			// The first m shards lost, so up to m data shards are rebuilt.
			if p.M > 0 {
				lost := make([][]byte, len(shards))
				copy(lost, shards)
				for i := range p.M {
					lost[i] = nil
				}
				got, err := c.Decode(d, lost)
				if err != nil {
					t.Fatalf("%v len %d: Decode with %d lost: %v", p, n, p.M, err)
				}
				if !bytes.Equal(got, seg) {
					t.Fatalf("%v len %d: Decode with %d lost returned different bytes", p, n, p.M)
				}
			}
		}
	}
}

// checkEncoded checks Encode's output: k+m shards of equal length, the data
// shards holding seg's bytes zero-padded (systematic), and a descriptor that
// validates and matches every shard.
func checkEncoded(t *testing.T, p Params, seg []byte, shards [][]byte, d *Descriptor) {
	t.Helper()
	if len(shards) != p.Total() {
		t.Fatalf("%v len %d: %d shards, want %d", p, len(seg), len(shards), p.Total())
	}
	if err := d.Validate(); err != nil {
		t.Fatalf("%v len %d: descriptor: %v", p, len(seg), err)
	}
	if d.Length != len(seg) || d.Params != p || d.Segment != Sum(seg) {
		t.Fatalf("%v len %d: descriptor %+v does not describe the segment", p, len(seg), d)
	}
	sl := (len(seg) + p.K - 1) / p.K
	if d.ShardLen != sl {
		t.Fatalf("%v len %d: ShardLen %d, want %d", p, len(seg), d.ShardLen, sl)
	}
	padded := make([]byte, sl*p.K)
	copy(padded, seg)
	for i, s := range shards {
		if len(s) != sl {
			t.Fatalf("%v len %d: shard %d has %d bytes, want %d", p, len(seg), i, len(s), sl)
		}
		if i < p.K && !bytes.Equal(s, padded[i*sl:(i+1)*sl]) {
			t.Fatalf("%v len %d: data shard %d is not the segment's bytes", p, len(seg), i)
		}
		if err := d.VerifyShard(i, s); err != nil {
			t.Fatalf("%v len %d: VerifyShard(%d): %v", p, len(seg), i, err)
		}
	}
	if err := d.VerifySegment(seg); err != nil {
		t.Fatalf("%v len %d: VerifySegment: %v", p, len(seg), err)
	}
}

// TestEncodeDoesNotRetain checks that the shards do not alias seg.
func TestEncodeDoesNotRetain(t *testing.T) {
	c := mustCoder(t, DefaultParams)
	seg := testSegment(1000, 1)
	shards, d, err := c.Encode(seg)
	if err != nil {
		t.Fatal(err)
	}
	for i := range seg {
		seg[i] ^= 0xff
	}
	for i, s := range shards {
		if err := d.VerifyShard(i, s); err != nil {
			t.Fatalf("shard %d changed with the input: %v", i, err)
		}
	}
}

// TestRebuildEverySubset rebuilds a 4+2 segment from each of the C(6,4) = 15
// sets of exactly four shards.
func TestRebuildEverySubset(t *testing.T) {
	p := Params{K: 4, M: 2}
	c := mustCoder(t, p)
	seg := testSegment(10007, 2)
	shards, d, err := c.Encode(seg)
	if err != nil {
		t.Fatal(err)
	}
	subsets := 0
	for mask := range 1 << p.Total() {
		if popcount(mask) != p.K {
			continue
		}
		subsets++
		in := make([][]byte, p.Total())
		for i := range in {
			if mask&(1<<i) != 0 {
				// A copy, so that one subset's rebuild cannot leak into the next.
				in[i] = bytes.Clone(shards[i])
			}
		}
		got, err := c.Decode(d, in)
		if err != nil {
			t.Errorf("shards %06b: Decode: %v", mask, err)
			continue
		}
		if !bytes.Equal(got, seg) {
			t.Errorf("shards %06b: Decode returned different bytes", mask)
		}
		// The data slots are filled in place with verified shards.
		for i := range p.K {
			if err := d.VerifyShard(i, in[i]); err != nil {
				t.Errorf("shards %06b: rebuilt shard %d: %v", mask, i, err)
			}
		}
	}
	if subsets != 15 {
		t.Fatalf("tried %d subsets, want 15", subsets)
	}
}

func popcount(x int) int {
	n := 0
	for ; x != 0; x &= x - 1 {
		n++
	}
	return n
}

func TestDecodeTooFewShards(t *testing.T) {
	for _, p := range []Params{{K: 4, M: 2}, {K: 3, M: 0}, {K: 1, M: 1}} {
		c := mustCoder(t, p)
		shards, d, err := c.Encode(testSegment(5000, 3))
		if err != nil {
			t.Fatal(err)
		}
		// Keep k-1 shards, dropping from the front so data is missing.
		in := make([][]byte, len(shards))
		copy(in, shards)
		for i := range p.M + 1 {
			in[i] = nil
		}
		if _, err := c.Decode(d, in); !errors.Is(err, ErrTooFewShards) {
			t.Errorf("%v with %d shards: Decode = %v, want ErrTooFewShards", p, p.K-1, err)
		}
		if _, err := c.Decode(d, make([][]byte, len(shards))); !errors.Is(err, ErrTooFewShards) {
			t.Errorf("%v with no shards: Decode = %v, want ErrTooFewShards", p, err)
		}
	}
}

// TestDecodeCorruptShard flips one bit in each present shard in turn, without
// verifying it first, and checks that Decode reports an *IntegrityError and
// never returns wrong bytes.
func TestDecodeCorruptShard(t *testing.T) {
	p := Params{K: 4, M: 2}
	c := mustCoder(t, p)
	seg := testSegment(40000, 4)
	shards, d, err := c.Encode(seg)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		missing []int
	}{
		{"all present", nil},
		{"one data missing", []int{1}},
		{"two data missing", []int{0, 3}},
		{"parity missing", []int{4, 5}},
	}
	for _, tt := range cases {
		for bad := range p.Total() {
			in := make([][]byte, p.Total())
			for i := range in {
				in[i] = bytes.Clone(shards[i])
			}
			for _, i := range tt.missing {
				in[i] = nil
			}
			if in[bad] == nil {
				continue
			}
			// Parity that is not needed for the rebuild is never read, so a
			// flip there cannot change the result; it must still not err
			// wrongly or return wrong bytes.
			in[bad][len(in[bad])/2] ^= 0x10
			got, err := c.Decode(d, in)
			var ie *IntegrityError
			switch {
			case err == nil:
				if !bytes.Equal(got, seg) {
					t.Errorf("%s, shard %d flipped: Decode returned wrong bytes and no error", tt.name, bad)
				}
				if readByDecode(p, tt.missing, bad) {
					t.Errorf("%s, shard %d flipped: Decode = nil, want *IntegrityError", tt.name, bad)
				}
			case errors.As(err, &ie):
				if got != nil {
					t.Errorf("%s, shard %d flipped: Decode returned bytes with %v", tt.name, bad, err)
				}
				if ie.Shard != -1 || ie.Reason != "hash" {
					t.Errorf("%s, shard %d flipped: %+v, want segment hash mismatch", tt.name, bad, ie)
				}
			default:
				t.Errorf("%s, shard %d flipped: Decode = %v, want *IntegrityError", tt.name, bad, err)
			}
		}
	}
}

// readByDecode reports whether Decode reads shard i when shards in missing
// are absent: every data shard, and parity only to fill missing data, the
// lowest-numbered present ones first.
func readByDecode(p Params, missing []int, i int) bool {
	if i < p.K {
		return true
	}
	dataMissing := 0
	for _, j := range missing {
		if j < p.K {
			dataMissing++
		}
	}
	used := 0
	for j := p.K; j < p.Total() && used < dataMissing; j++ {
		if !containsInt(missing, j) {
			if j == i {
				return true
			}
			used++
		}
	}
	return false
}

func containsInt(s []int, x int) bool {
	for _, v := range s {
		if v == x {
			return true
		}
	}
	return false
}

func TestDecodeWrongLength(t *testing.T) {
	p := Params{K: 4, M: 2}
	c := mustCoder(t, p)
	shards, d, err := c.Encode(testSegment(4001, 5))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name  string
		shard int
		data  []byte
	}{
		{"short data", 2, shards[2][:len(shards[2])-1]},
		{"long parity", 5, append(bytes.Clone(shards[5]), 0)},
		{"empty", 0, []byte{}},
	} {
		in := make([][]byte, len(shards))
		copy(in, shards)
		in[tt.shard] = tt.data
		_, err := c.Decode(d, in)
		var ie *IntegrityError
		if !errors.As(err, &ie) || ie.Shard != tt.shard || ie.Reason != "length" {
			t.Errorf("%s: Decode = %v, want length IntegrityError for shard %d", tt.name, err, tt.shard)
		}
	}
}

func TestDecodeBadArguments(t *testing.T) {
	c := mustCoder(t, Params{K: 4, M: 2})
	shards, d, err := c.Encode(testSegment(4000, 6))
	if err != nil {
		t.Fatal(err)
	}

	other := mustCoder(t, Params{K: 3, M: 3})
	if _, err := other.Decode(d, shards); err == nil {
		t.Error("Decode with a 3+3 coder of a 4+2 descriptor: nil error")
	}
	if _, err := c.Decode(d, shards[:5]); err == nil {
		t.Error("Decode with 5 slots for 4+2: nil error")
	}

	// Descriptors built by hand, not parsed, must fail cleanly, not panic.
	for _, tt := range []struct {
		name   string
		mutate func(*Descriptor)
	}{
		{"negative length", func(d *Descriptor) { d.Length = -1 }},
		{"huge length", func(d *Descriptor) { d.Length = 1 << 40 }},
		{"zero shard length", func(d *Descriptor) { d.ShardLen = 0 }},
		{"missing shard hashes", func(d *Descriptor) { d.Shards = d.Shards[:2] }},
	} {
		bad := *d
		tt.mutate(&bad)
		if _, err := c.Decode(&bad, shards); !errors.Is(err, ErrDescriptor) {
			t.Errorf("%s: Decode = %v, want ErrDescriptor", tt.name, err)
		}
	}
}

func TestEncodeRejects(t *testing.T) {
	c := mustCoder(t, DefaultParams)
	if _, _, err := c.Encode(nil); err == nil {
		t.Error("Encode(nil): nil error")
	}
	if _, _, err := c.Encode([]byte{}); err == nil {
		t.Error("Encode(empty): nil error")
	}
	// Over the limit is refused before anything is allocated for it.
	if _, _, err := c.Encode(make([]byte, MaxSegmentSize+1)); err == nil {
		t.Error("Encode(MaxSegmentSize+1 bytes): nil error")
	}
}

func TestEncodeInPlace(t *testing.T) {
	c, err := NewCoder(Params{K: 4, M: 2})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{1, 3, 4, 5, 1 << 20, 1<<20 + 3} {
		seg := make([]byte, n)
		for i := range seg {
			seg[i] = byte(i*7 + 1)
		}
		want, wantD, err := c.Encode(seg)
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, c.EncodedLen(n))
		for i := range buf {
			buf[i] = 0xAA // garbage past n must not leak into the padding
		}
		copy(buf, seg)
		got, gotD, err := c.EncodeInPlace(buf, n)
		if err != nil {
			t.Fatal(err)
		}
		if !gotD.Equal(wantD) {
			t.Fatalf("n=%d: descriptor differs from Encode's", n)
		}
		for i := range got {
			if !bytes.Equal(got[i], want[i]) {
				t.Fatalf("n=%d: shard %d differs from Encode's", n, i)
			}
		}
		if &got[0][0] != &buf[0] {
			t.Errorf("n=%d: shards do not live in the buffer", n)
		}
		if _, _, err := c.EncodeInPlace(buf[:c.EncodedLen(n)-1], n); err == nil {
			t.Errorf("n=%d: a short buffer was accepted", n)
		}
	}
}

func TestDecodeInto(t *testing.T) {
	p := Params{K: 4, M: 2}
	c := mustCoder(t, p)
	seg := testSegment(100_003, 12)
	shards, d, err := c.Encode(seg)
	if err != nil {
		t.Fatal(err)
	}
	sl := d.ShardLen
	for _, tt := range []struct {
		name      string
		missing   []int // nil
		elsewhere []int // present, but not in their place in buf
	}{
		{"all data in place", nil, nil},
		{"data 0 and 3 missing", []int{0, 3}, nil},
		{"data 1 elsewhere", nil, []int{1}},
		{"data 2 missing, 0 elsewhere", []int{2}, []int{0}},
		{"parity missing", []int{4, 5}, nil},
	} {
		buf := make([]byte, p.K*sl+7)
		in := make([][]byte, p.Total())
		for i, s := range shards {
			switch {
			case slices.Contains(tt.missing, i):
			case i >= p.K || slices.Contains(tt.elsewhere, i):
				in[i] = bytes.Clone(s)
			default:
				in[i] = buf[i*sl : (i+1)*sl]
				copy(in[i], s)
			}
		}
		got, err := c.DecodeInto(d, buf, in)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if !bytes.Equal(got, seg) {
			t.Fatalf("%s: wrong segment", tt.name)
		}
		if &got[0] != &buf[0] || cap(got) != len(seg) {
			t.Errorf("%s: the segment is not buf[:Length]", tt.name)
		}
		for i := range p.K {
			if &in[i][0] != &buf[i*sl] || !bytes.Equal(in[i], shards[i]) {
				t.Errorf("%s: data shard %d is not in its place after the decode", tt.name, i)
			}
		}
	}

	in := make([][]byte, p.Total())
	copy(in, shards)
	if _, err := c.DecodeInto(d, make([]byte, p.K*sl-1), in); err == nil {
		t.Error("a buffer one byte short: got no error")
	}
	// A present shard that was never verified and is wrong: the segment
	// check catches it, and no wrong segment comes back.
	buf := make([]byte, p.K*sl)
	copy(in, shards)
	in[1] = bytes.Clone(shards[1])
	in[1][5] ^= 1
	var ie *IntegrityError
	if got, err := c.DecodeInto(d, buf, in); !errors.As(err, &ie) || ie.Shard != -1 || got != nil {
		t.Errorf("a bad shard: got %d bytes, %v, want a segment IntegrityError", len(got), err)
	}
	in = make([][]byte, p.Total())
	in[0], in[1], in[4] = shards[0], shards[1], shards[4]
	if _, err := c.DecodeInto(d, buf, in); !errors.Is(err, ErrTooFewShards) {
		t.Errorf("three shards: got %v, want ErrTooFewShards", err)
	}
}
