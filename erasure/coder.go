package erasure

import (
	"errors"
	"fmt"

	"github.com/klauspost/reedsolomon"
)

// ErrTooFewShards reports a rebuild with fewer than k shards.
var ErrTooFewShards = errors.New("erasure: too few shards to rebuild")

// Coder encodes segments into shards and rebuilds them, for one Params.
// It is safe for concurrent use.
type Coder struct {
	params Params
	enc    reedsolomon.Encoder
}

// NewCoder returns a Coder for p. The coder runs on the calling goroutine:
// on a loaded two-core edge, one goroutine per segment beats fanning out.
func NewCoder(p Params) (*Coder, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	c := &Coder{params: p}
	if p.M > 0 {
		enc, err := reedsolomon.New(p.K, p.M, reedsolomon.WithMaxGoroutines(1))
		if err != nil {
			return nil, fmt.Errorf("erasure: %v: %w", p, err)
		}
		c.enc = enc
	}
	return c, nil
}

// Params returns the coder's parameters.
func (c *Coder) Params() Params { return c.params }

// EncodedLen returns how many bytes the k+m shards of an n-byte segment
// take together.
func (c *Coder) EncodedLen(n int) int { return c.params.Total() * shardLen(n, c.params.K) }

// Encode codes seg into k+m shards and describes them. The shards share one
// new allocation; data shards hold a copy of seg's bytes (the last one
// zero-padded), so seg itself is not retained.
func (c *Coder) Encode(seg []byte) ([][]byte, *Descriptor, error) {
	if len(seg) < 1 || len(seg) > MaxSegmentSize {
		return nil, nil, fmt.Errorf("erasure: encode: segment length %d out of range [1, %d]", len(seg), MaxSegmentSize)
	}
	buf := make([]byte, c.EncodedLen(len(seg)))
	copy(buf, seg)
	return c.EncodeInPlace(buf, len(seg))
}

// EncodeInPlace codes the segment buf[:n] into shards that live in buf
// itself, which must hold at least EncodedLen(n) bytes: the data shards are
// the segment's own bytes, so nothing is copied or allocated but the
// descriptor. Bytes from n on are overwritten (padding, then parity).
func (c *Coder) EncodeInPlace(buf []byte, n int) ([][]byte, *Descriptor, error) {
	if n < 1 || n > MaxSegmentSize {
		return nil, nil, fmt.Errorf("erasure: encode: segment length %d out of range [1, %d]", n, MaxSegmentSize)
	}
	if len(buf) < c.EncodedLen(n) {
		return nil, nil, fmt.Errorf("erasure: encode: buffer of %d bytes for a %d-byte segment, want %d", len(buf), n, c.EncodedLen(n))
	}
	k, total := c.params.K, c.params.Total()
	sl := shardLen(n, k)
	clear(buf[n : k*sl])
	shards := make([][]byte, total)
	for i := range shards {
		shards[i] = buf[i*sl : (i+1)*sl : (i+1)*sl]
	}
	if c.enc != nil {
		if err := c.enc.Encode(shards); err != nil {
			return nil, nil, fmt.Errorf("erasure: encode: %w", err)
		}
	}
	d := &Descriptor{Length: n, Params: c.params, ShardLen: sl, Segment: Sum(buf[:n]), Shards: make([]Hash, total)}
	for i, s := range shards {
		d.Shards[i] = Sum(s)
	}
	return shards, d, nil
}

// Decode rebuilds the segment described by d from shards, which has k+m
// entries with nil for a missing shard. Present shards must already have
// been verified with d.VerifyShard; missing data shards are rebuilt in place
// in shards. The rebuilt segment is verified against d before it is
// returned, so a wrong result is an *IntegrityError, never wrong bytes.
func (c *Coder) Decode(d *Descriptor, shards [][]byte) ([]byte, error) {
	dataMissing, err := c.checkDecode(d, shards)
	if err != nil {
		return nil, err
	}
	if dataMissing {
		if err := c.enc.ReconstructData(shards); err != nil {
			return nil, fmt.Errorf("erasure: decode: %w", err)
		}
	}
	seg := make([]byte, d.Length)
	off := 0
	for _, s := range shards[:c.params.K] {
		off += copy(seg[off:], s)
	}
	if err := d.VerifySegment(seg); err != nil {
		return nil, err
	}
	return seg, nil
}

// DecodeInto is Decode into buf, which must hold at least k·ShardLen bytes,
// and returns buf[:d.Length]. It is for a reader that has each data shard
// land in its place in buf as it arrives (shards[i] is
// buf[i·ShardLen:(i+1)·ShardLen], see swarm's Node.GetShardInto): such
// shards are not copied, the others are copied in (they must not overlap
// buf elsewhere), and missing data shards (nil, as for Decode) are rebuilt
// straight into their place, and set to it; a segment costs no allocation
// and, when its data shards arrived, no copy. Present shards must already
// have been verified, and the segment is verified against d, as for Decode.
func (c *Coder) DecodeInto(d *Descriptor, buf []byte, shards [][]byte) ([]byte, error) {
	dataMissing, err := c.checkDecode(d, shards)
	if err != nil {
		return nil, err
	}
	sl := d.ShardLen
	if len(buf) < c.params.K*sl {
		return nil, fmt.Errorf("erasure: decode: buffer of %d bytes, want %d (k shards of %d)", len(buf), c.params.K*sl, sl)
	}
	for i, s := range shards[:c.params.K] {
		place := buf[i*sl : (i+1)*sl : (i+1)*sl]
		switch {
		case s == nil:
			shards[i] = place[:0] // rebuilt there: it has the capacity
		case &s[0] != &place[0]:
			copy(place, s)
			shards[i] = place
		}
	}
	if dataMissing {
		if err := c.enc.ReconstructData(shards); err != nil {
			return nil, fmt.Errorf("erasure: decode: %w", err)
		}
		for i, s := range shards[:c.params.K] {
			if place := buf[i*sl:]; &s[0] != &place[0] {
				copy(place[:sl], s) // not expected: the library allocated
			}
		}
	}
	seg := buf[:d.Length:d.Length]
	if err := d.VerifySegment(seg); err != nil {
		return nil, err
	}
	return seg, nil
}

// checkDecode checks Decode's arguments and reports whether data shards
// are missing (nil).
func (c *Coder) checkDecode(d *Descriptor, shards [][]byte) (dataMissing bool, err error) {
	if d.Params != c.params {
		return false, fmt.Errorf("erasure: decode: descriptor is %v, coder is %v", d.Params, c.params)
	}
	// A descriptor built by hand rather than parsed may be inconsistent; a
	// negative or oversized Length would otherwise panic or over-allocate.
	if err := d.Validate(); err != nil {
		return false, fmt.Errorf("erasure: decode: %w", err)
	}
	if len(shards) != c.params.Total() {
		return false, fmt.Errorf("erasure: decode: %d shard slots, want %d", len(shards), c.params.Total())
	}
	have := 0
	for i, s := range shards {
		switch {
		case s == nil:
			dataMissing = dataMissing || i < c.params.K
		case len(s) != d.ShardLen:
			return false, &IntegrityError{Shard: i, Reason: "length"}
		default:
			have++
		}
	}
	if have < c.params.K {
		return false, fmt.Errorf("%w: have %d, need %d", ErrTooFewShards, have, c.params.K)
	}
	return dataMissing, nil
}
