package erasure

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

// testDescriptor encodes a segment of n bytes with p and returns its shards
// and descriptor.
func testDescriptor(t testing.TB, p Params, n int) ([][]byte, *Descriptor) {
	t.Helper()
	shards, d, err := mustCoder(t, p).Encode(testSegment(n, uint64(n)))
	if err != nil {
		t.Fatalf("Encode: %v", err)
	}
	return shards, d
}

func TestDescriptorRoundTrip(t *testing.T) {
	for _, tt := range []struct {
		p Params
		n int
	}{
		{Params{K: 4, M: 2}, 4 << 10},
		{Params{K: 1, M: 0}, 1},
		{Params{K: 10, M: 4}, 12345},
		{Params{K: 32, M: 32}, 100},
		{Params{K: 64, M: 0}, 64},
	} {
		_, d := testDescriptor(t, tt.p, tt.n)
		prefix := []byte("prefix")
		b := d.Append(bytes.Clone(prefix))
		if !bytes.HasPrefix(b, prefix) {
			t.Fatalf("%v: Append clobbered its argument", tt.p)
		}
		enc := b[len(prefix):]
		if len(enc) != d.EncodedLen() {
			t.Errorf("%v: encoding has %d bytes, EncodedLen() = %d", tt.p, len(enc), d.EncodedLen())
		}
		if want := 44 + 32*tt.p.Total(); d.EncodedLen() != want {
			t.Errorf("%v: EncodedLen() = %d, want %d", tt.p, d.EncodedLen(), want)
		}
		got, err := ParseDescriptor(enc)
		if err != nil {
			t.Fatalf("%v: ParseDescriptor: %v", tt.p, err)
		}
		if !got.Equal(d) || !d.Equal(got) {
			t.Errorf("%v: ParseDescriptor(Append(d)) = %+v, want %+v", tt.p, got, d)
		}
	}
}

func TestDescriptorEqual(t *testing.T) {
	_, d := testDescriptor(t, DefaultParams, 1000)
	for _, tt := range []struct {
		name   string
		mutate func(*Descriptor)
	}{
		{"length", func(d *Descriptor) { d.Length++ }},
		{"params", func(d *Descriptor) { d.Params.M++ }},
		{"shard length", func(d *Descriptor) { d.ShardLen++ }},
		{"segment hash", func(d *Descriptor) { d.Segment[0] ^= 1 }},
		{"shard hash", func(d *Descriptor) { d.Shards[5][31] ^= 1 }},
		{"fewer shards", func(d *Descriptor) { d.Shards = d.Shards[:5] }},
	} {
		o := *d
		o.Shards = append([]Hash(nil), d.Shards...)
		tt.mutate(&o)
		if d.Equal(&o) || o.Equal(d) {
			t.Errorf("%s differs, Equal = true", tt.name)
		}
	}
}

func TestParseDescriptorMalformed(t *testing.T) {
	_, d := testDescriptor(t, DefaultParams, 4000)
	good := d.Append(nil)

	// Truncated at every length, including empty.
	for n := range len(good) {
		if _, err := ParseDescriptor(good[:n]); !errors.Is(err, ErrDescriptor) {
			t.Errorf("truncated to %d bytes: err = %v, want ErrDescriptor", n, err)
		}
	}

	// edit returns a copy of good changed by f.
	edit := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	put32 := func(off int, v uint32) func([]byte) []byte {
		return func(b []byte) []byte { binary.BigEndian.PutUint32(b[off:], v); return b }
	}
	set := func(off int, v byte) func([]byte) []byte {
		return func(b []byte) []byte { b[off] = v; return b }
	}
	tests := []struct {
		name string
		b    []byte
	}{
		{"version 0", edit(set(0, 0))},
		{"version 2", edit(set(0, 2))},
		{"hash algorithm 0", edit(set(3, 0))},
		{"hash algorithm 2", edit(set(3, 2))},
		{"k=0", edit(set(1, 0))},
		// k+m = 65 shards with a body sized to match, so only the limit fails.
		{"k+m > MaxShards", func() []byte {
			b := edit(set(1, 63))
			b[2] = 2
			binary.BigEndian.PutUint32(b[8:], uint32(shardLen(d.Length, 63)))
			return append(b, make([]byte, (65-6)*HashSize)...)
		}()},
		{"k=255 m=255", edit(set(1, 255))},
		{"length 0", edit(put32(4, 0))},
		{"length over MaxSegmentSize", edit(put32(4, MaxSegmentSize+1))},
		{"length 2^32-1", edit(put32(4, 1<<32-1))},
		{"shard length one short", edit(put32(8, uint32(d.ShardLen-1)))},
		{"shard length one over", edit(put32(8, uint32(d.ShardLen+1)))},
		{"shard length 0", edit(put32(8, 0))},
		{"m says more shards than present", edit(set(2, 3))},
		{"m says fewer shards than present", edit(set(2, 1))},
		{"trailing byte", append(bytes.Clone(good), 0)},
		{"trailing hash", append(bytes.Clone(good), make([]byte, HashSize)...)},
		{"garbage", []byte(strings.Repeat("\xff", len(good)))},
	}
	for _, tt := range tests {
		got, err := ParseDescriptor(tt.b)
		if !errors.Is(err, ErrDescriptor) {
			t.Errorf("%s: ParseDescriptor = %+v, %v; want ErrDescriptor", tt.name, got, err)
		}
		if got != nil {
			t.Errorf("%s: ParseDescriptor returned a descriptor with its error", tt.name)
		}
	}
}

func TestDescriptorValidate(t *testing.T) {
	_, d := testDescriptor(t, DefaultParams, 4000)
	if err := d.Validate(); err != nil {
		t.Fatalf("Validate() = %v", err)
	}
	for _, tt := range []struct {
		name   string
		mutate func(*Descriptor)
	}{
		{"params", func(d *Descriptor) { d.Params = Params{K: 0, M: 2} }},
		{"length 0", func(d *Descriptor) { d.Length = 0 }},
		{"negative length", func(d *Descriptor) { d.Length = -1 }},
		{"length over max", func(d *Descriptor) { d.Length = MaxSegmentSize + 1 }},
		{"shard length", func(d *Descriptor) { d.ShardLen++ }},
		{"shard hash count", func(d *Descriptor) { d.Shards = d.Shards[:5] }},
	} {
		o := *d
		tt.mutate(&o)
		if err := o.Validate(); !errors.Is(err, ErrDescriptor) {
			t.Errorf("%s: Validate() = %v, want ErrDescriptor", tt.name, err)
		}
	}
}

func TestVerifyShard(t *testing.T) {
	shards, d := testDescriptor(t, DefaultParams, 4000)
	for i, s := range shards {
		if err := d.VerifyShard(i, s); err != nil {
			t.Errorf("VerifyShard(%d) of a good shard = %v", i, err)
		}
	}

	for i, s := range shards {
		bad := bytes.Clone(s)
		bad[i*7%len(bad)] ^= 0x80
		err := d.VerifyShard(i, bad)
		var ie *IntegrityError
		if !errors.As(err, &ie) {
			t.Fatalf("VerifyShard(%d) of a flipped shard = %v, want *IntegrityError", i, err)
		}
		if ie.Shard != i || ie.Reason != "hash" || ie.Want != d.Shards[i] || ie.Got != Sum(bad) {
			t.Errorf("VerifyShard(%d) of a flipped shard = %+v", i, ie)
		}
		if !strings.Contains(err.Error(), "shard") || !strings.Contains(err.Error(), ie.Want.String()) {
			t.Errorf("error %q does not name the shard and hash", err)
		}
	}

	// A shard that is right for a different index is wrong here.
	var ie *IntegrityError
	if err := d.VerifyShard(1, shards[0]); !errors.As(err, &ie) || ie.Reason != "hash" {
		t.Errorf("VerifyShard(1, shard 0) = %v, want hash mismatch", err)
	}

	for _, tt := range []struct {
		name   string
		i      int
		data   []byte
		reason string
	}{
		{"short", 2, shards[2][:len(shards[2])-1], "length"},
		{"long", 2, append(bytes.Clone(shards[2]), 0), "length"},
		{"nil", 2, nil, "length"},
		{"index -1", -1, shards[0], "index"},
		{"index k+m", 6, shards[0], "index"},
		{"index 1000", 1000, shards[0], "index"},
	} {
		err := d.VerifyShard(tt.i, tt.data)
		var ie *IntegrityError
		if !errors.As(err, &ie) || ie.Shard != tt.i || ie.Reason != tt.reason {
			t.Errorf("%s: VerifyShard(%d) = %v, want %s IntegrityError", tt.name, tt.i, err, tt.reason)
			continue
		}
		if ie.Reason == "index" && strings.Contains(err.Error(), "segment") {
			t.Errorf("%s: error %q speaks of the segment", tt.name, err)
		}
	}
}

func TestVerifySegment(t *testing.T) {
	seg := testSegment(4000, 4000)
	_, d := testDescriptor(t, DefaultParams, 4000)
	if err := d.VerifySegment(seg); err != nil {
		t.Fatalf("VerifySegment of the good segment = %v", err)
	}

	bad := bytes.Clone(seg)
	bad[1234] ^= 1
	err := d.VerifySegment(bad)
	var ie *IntegrityError
	if !errors.As(err, &ie) {
		t.Fatalf("VerifySegment of a flipped segment = %v, want *IntegrityError", err)
	}
	if ie.Shard != -1 || ie.Reason != "hash" || ie.Want != d.Segment || ie.Got != Sum(bad) {
		t.Errorf("VerifySegment of a flipped segment = %+v", ie)
	}
	if !strings.Contains(err.Error(), "segment") {
		t.Errorf("error %q does not name the segment", err)
	}

	for _, b := range [][]byte{seg[:3999], append(bytes.Clone(seg), 0), nil} {
		err := d.VerifySegment(b)
		if !errors.As(err, &ie) || ie.Shard != -1 || ie.Reason != "length" {
			t.Errorf("VerifySegment of %d bytes = %v, want length IntegrityError for the segment", len(b), err)
		}
	}
}

func TestSum(t *testing.T) {
	// BLAKE3-256 of the empty input, from the BLAKE3 test vectors.
	const want = "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
	h := Sum(nil)
	if got := hex.EncodeToString(h[:]); got != want {
		t.Errorf("Sum(nil) = %s, want %s", got, want)
	}
}

// CheckShardSum and CheckSegmentSum take a hash computed as the bytes
// arrived: they must reach the verdicts VerifyShard and VerifySegment reach.
func TestCheckSums(t *testing.T) {
	shards, d := testDescriptor(t, DefaultParams, 40_000)
	for i, s := range shards {
		var h Hasher
		for off := 0; off < len(s); off += 3000 {
			h.Write(s[off:min(off+3000, len(s))])
		}
		if err := d.CheckShardSum(i, len(s), h.Sum()); err != nil {
			t.Errorf("CheckShardSum(%d) of a good shard = %v", i, err)
		}
		var ie *IntegrityError
		if err := d.CheckShardSum((i+1)%len(shards), len(s), h.Sum()); !errors.As(err, &ie) || ie.Reason != "hash" || ie.Got != h.Sum() {
			t.Errorf("CheckShardSum(%d) with shard %d's hash = %v, want a hash mismatch", (i+1)%len(shards), i, err)
		}
		if err := d.CheckShardSum(i, len(s)-1, h.Sum()); !errors.As(err, &ie) || ie.Reason != "length" {
			t.Errorf("CheckShardSum(%d) with a short length = %v, want a length mismatch", i, err)
		}
	}
	var ie *IntegrityError
	if err := d.CheckShardSum(len(shards), d.ShardLen, Hash{}); !errors.As(err, &ie) || ie.Reason != "index" {
		t.Errorf("CheckShardSum(k+m) = %v, want an index error", err)
	}
	seg := testSegment(40_000, 0)
	_, d, err := mustCoder(t, DefaultParams).Encode(seg)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.CheckSegmentSum(len(seg), Sum(seg)); err != nil {
		t.Errorf("CheckSegmentSum of the segment = %v", err)
	}
	seg[100] ^= 1
	if err := d.CheckSegmentSum(len(seg), Sum(seg)); !errors.As(err, &ie) || ie.Shard != -1 || ie.Reason != "hash" {
		t.Errorf("CheckSegmentSum of a flipped segment = %v, want a hash mismatch", err)
	}
	if err := d.CheckSegmentSum(len(seg)+1, d.Segment); !errors.As(err, &ie) || ie.Reason != "length" {
		t.Errorf("CheckSegmentSum with a long length = %v, want a length mismatch", err)
	}
}
