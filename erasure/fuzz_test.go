package erasure

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzParseDescriptor checks that ParseDescriptor never panics and that
// whatever it accepts is valid and re-encodes to exactly the input, so a
// descriptor has one encoding and nothing in it is ignored.
func FuzzParseDescriptor(f *testing.F) {
	for _, tt := range []struct {
		p Params
		n int
	}{
		{Params{K: 4, M: 2}, 4 << 10},
		{Params{K: 4, M: 2}, 1},
		{Params{K: 1, M: 0}, 17},
		{Params{K: 10, M: 4}, 100003},
		{Params{K: 3, M: 3}, 5},
	} {
		c, err := NewCoder(tt.p)
		if err != nil {
			f.Fatal(err)
		}
		_, d, err := c.Encode(testSegment(tt.n, 9))
		if err != nil {
			f.Fatal(err)
		}
		b := d.Append(nil)
		f.Add(b)
		f.Add(b[:len(b)-1])
		f.Add(append(bytes.Clone(b), 0))
	}
	f.Add([]byte{})
	f.Add([]byte{1, 1, 0, 1})
	f.Add(bytes.Repeat([]byte{0xff}, 44+32*64))
	f.Add(append([]byte{1, 64, 0, 1, 0, 0, 0, 64, 0, 0, 0, 1}, make([]byte, 32*65)...))

	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := ParseDescriptor(b)
		if err != nil {
			if d != nil {
				t.Fatalf("ParseDescriptor returned %+v with error %v", d, err)
			}
			if !errors.Is(err, ErrDescriptor) {
				t.Fatalf("ParseDescriptor error %v is not ErrDescriptor", err)
			}
			return
		}
		if err := d.Validate(); err != nil {
			t.Fatalf("ParseDescriptor accepted an invalid descriptor: %v", err)
		}
		if d.EncodedLen() != len(b) {
			t.Fatalf("EncodedLen() = %d, input has %d bytes", d.EncodedLen(), len(b))
		}
		if got := d.Append(nil); !bytes.Equal(got, b) {
			t.Fatalf("Append(ParseDescriptor(b)) != b\n got %x\nwant %x", got, b)
		}
	})
}

// FuzzParseParams checks that ParseParams never panics, accepts only
// codable parameters, and that String reads back to the same value.
func FuzzParseParams(f *testing.F) {
	for _, s := range []string{"4+2", "10+4", "1+0", "64+0", "", "4", "0+2", "4+-1", "40+30", "a+b", "+4+2", "4++2", " 6+3 "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParseParams(s)
		if err != nil {
			if !errors.Is(err, ErrParams) {
				t.Fatalf("ParseParams(%q) error %v is not ErrParams", s, err)
			}
			return
		}
		if p.K < 1 || p.M < 0 || p.K > MaxShards || p.M > MaxShards || p.K+p.M > MaxShards {
			t.Fatalf("ParseParams(%q) = %#v, out of range", s, p)
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("ParseParams(%q) = %v, which does not validate: %v", s, p, err)
		}
		q, err := ParseParams(p.String())
		if err != nil || q != p {
			t.Fatalf("ParseParams(%q) = %v, %v; want %v", p.String(), q, err, p)
		}
	})
}
