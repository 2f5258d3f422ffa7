package erasure

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Descriptor describes one coded segment: enough to verify every shard on its
// own and the rebuilt segment as a whole.
//
// Wire encoding (big-endian), 44 + 32·(k+m) bytes:
//
//	offset  size      field
//	0       1         version, 1
//	1       1         k, data shards (1..MaxShards)
//	2       1         m, parity shards (k+m <= MaxShards)
//	3       1         hash algorithm, 1 = BLAKE3-256
//	4       4         segment length in bytes (1..MaxSegmentSize)
//	8       4         shard length in bytes, = ceil(segment length / k)
//	12      32        hash of the segment
//	44      32·(k+m)  hash of shard 0, 1, ... k+m-1
type Descriptor struct {
	// Length is the segment's length in bytes.
	Length int
	// Params are k and m.
	Params Params
	// ShardLen is the length of every shard, data and parity alike.
	ShardLen int
	// Segment is the hash of the segment's bytes.
	Segment Hash
	// Shards holds the hash of each shard, K+M of them.
	Shards []Hash
}

const (
	descriptorVersion = 1
	hashBLAKE3        = 1
	descriptorHeader  = 12 + HashSize
)

// ErrDescriptor reports a descriptor that does not decode or is inconsistent.
var ErrDescriptor = errors.New("erasure: malformed descriptor")

// IntegrityError reports data that does not match its descriptor.
type IntegrityError struct {
	// Shard is the index of the shard that failed, or -1 for the segment.
	Shard int
	// Reason says what did not match: "hash" or "length", or "index" when
	// Shard is not a shard of the descriptor.
	Reason string
	// Want and Got are the expected and actual hashes when Reason is "hash".
	Want, Got Hash
}

func (e *IntegrityError) Error() string {
	if e.Reason == "index" {
		// Checked first: Shard may be -1 here, which is not the segment.
		return fmt.Sprintf("erasure: shard index %d out of range", e.Shard)
	}
	what := "segment"
	if e.Shard >= 0 {
		what = fmt.Sprintf("shard %d", e.Shard)
	}
	if e.Reason == "hash" {
		return fmt.Sprintf("erasure: %s hash mismatch: want %s, got %s", what, e.Want, e.Got)
	}
	return fmt.Sprintf("erasure: %s %s mismatch", what, e.Reason)
}

// EncodedLen returns the length of d's encoding.
func (d *Descriptor) EncodedLen() int { return descriptorHeader + HashSize*len(d.Shards) }

// Append appends d's encoding to b.
func (d *Descriptor) Append(b []byte) []byte {
	b = append(b, descriptorVersion, byte(d.Params.K), byte(d.Params.M), hashBLAKE3)
	b = binary.BigEndian.AppendUint32(b, uint32(d.Length))
	b = binary.BigEndian.AppendUint32(b, uint32(d.ShardLen))
	b = append(b, d.Segment[:]...)
	for i := range d.Shards {
		b = append(b, d.Shards[i][:]...)
	}
	return b
}

// Validate checks that d is internally consistent.
func (d *Descriptor) Validate() error {
	if err := d.Params.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrDescriptor, err)
	}
	if d.Length < 1 || d.Length > MaxSegmentSize {
		return fmt.Errorf("%w: segment length %d", ErrDescriptor, d.Length)
	}
	if d.ShardLen != shardLen(d.Length, d.Params.K) {
		return fmt.Errorf("%w: shard length %d for segment length %d and k=%d", ErrDescriptor, d.ShardLen, d.Length, d.Params.K)
	}
	if len(d.Shards) != d.Params.Total() {
		return fmt.Errorf("%w: %d shard hashes for %d shards", ErrDescriptor, len(d.Shards), d.Params.Total())
	}
	return nil
}

// ParseDescriptor decodes a descriptor that fills b exactly. It never trusts
// a length field: every count is checked against the limits and against
// len(b) before it is used.
func ParseDescriptor(b []byte) (*Descriptor, error) {
	if len(b) < descriptorHeader {
		return nil, fmt.Errorf("%w: %d bytes, want at least %d", ErrDescriptor, len(b), descriptorHeader)
	}
	if b[0] != descriptorVersion {
		return nil, fmt.Errorf("%w: version %d", ErrDescriptor, b[0])
	}
	if b[3] != hashBLAKE3 {
		return nil, fmt.Errorf("%w: hash algorithm %d", ErrDescriptor, b[3])
	}
	d := &Descriptor{
		Params:   Params{K: int(b[1]), M: int(b[2])},
		Length:   int(binary.BigEndian.Uint32(b[4:])),
		ShardLen: int(binary.BigEndian.Uint32(b[8:])),
	}
	if err := d.Params.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDescriptor, err)
	}
	n := d.Params.Total()
	if len(b) != descriptorHeader+n*HashSize {
		return nil, fmt.Errorf("%w: %d bytes for %d shards", ErrDescriptor, len(b), n)
	}
	copy(d.Segment[:], b[12:])
	d.Shards = make([]Hash, n)
	for i := range d.Shards {
		copy(d.Shards[i][:], b[descriptorHeader+i*HashSize:])
	}
	if err := d.Validate(); err != nil {
		return nil, err
	}
	return d, nil
}

// Equal reports whether d and o describe the same coded segment.
func (d *Descriptor) Equal(o *Descriptor) bool {
	if d.Length != o.Length || d.Params != o.Params || d.ShardLen != o.ShardLen || d.Segment != o.Segment || len(d.Shards) != len(o.Shards) {
		return false
	}
	for i := range d.Shards {
		if d.Shards[i] != o.Shards[i] {
			return false
		}
	}
	return true
}

// VerifyShard checks shard i's bytes against d. It returns an
// *IntegrityError naming the shard when they do not match.
func (d *Descriptor) VerifyShard(i int, data []byte) error {
	if err := d.checkShard(i, len(data)); err != nil {
		return err
	}
	return d.CheckShardSum(i, len(data), Sum(data))
}

// CheckShardSum is VerifyShard for a shard of n bytes whose hash the
// caller computed as it arrived (with a Hasher), rather than in a second
// pass over the bytes.
func (d *Descriptor) CheckShardSum(i, n int, sum Hash) error {
	if err := d.checkShard(i, n); err != nil {
		return err
	}
	if !equalHash(sum, d.Shards[i]) {
		return &IntegrityError{Shard: i, Reason: "hash", Want: d.Shards[i], Got: sum}
	}
	return nil
}

func (d *Descriptor) checkShard(i, n int) error {
	if i < 0 || i >= len(d.Shards) {
		return &IntegrityError{Shard: i, Reason: "index"}
	}
	if n != d.ShardLen {
		return &IntegrityError{Shard: i, Reason: "length"}
	}
	return nil
}

// VerifySegment checks a whole segment's bytes against d.
func (d *Descriptor) VerifySegment(seg []byte) error {
	if len(seg) != d.Length {
		return &IntegrityError{Shard: -1, Reason: "length"}
	}
	return d.CheckSegmentSum(len(seg), Sum(seg))
}

// CheckSegmentSum is VerifySegment for a segment of n bytes whose hash the
// caller computed as it arrived.
func (d *Descriptor) CheckSegmentSum(n int, sum Hash) error {
	if n != d.Length {
		return &IntegrityError{Shard: -1, Reason: "length"}
	}
	if sum != d.Segment {
		return &IntegrityError{Shard: -1, Reason: "hash", Want: d.Segment, Got: sum}
	}
	return nil
}

func shardLen(length, k int) int { return (length + k - 1) / k }
