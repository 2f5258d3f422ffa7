package erasure

import (
	"crypto/subtle"
	"sync"

	"lukechampine.com/blake3/guts"
)

// Hasher computes BLAKE3-256 incrementally, on the calling goroutine: the
// same hash as lukechampine.com/blake3's Sum256, built from that package's
// SIMD compression functions (guts), without its fan-out.
//
// lukechampine.com/blake3 hashes anything above 16 KiB by starting one
// goroutine per 16 KiB (64 for a 1 MiB shard), each of which also grows its
// stack for the SIMD buffers. On an edge whose cores are already busy moving
// QUIC packets the fan-out buys no speed, and the goroutines, stack copies
// and allocations cost about a quarter of the hashing itself
// (BenchmarkHash). Hashing on the caller also lets a reader hash a shard as
// it arrives, while the bytes are still in cache (see Hasher.Write).
//
// The zero value is ready to use. A Hasher is not safe for concurrent use.
type Hasher struct {
	// stack holds the chaining values of the finished complete subtrees,
	// at most one per height (in chunks, log2); chunks says which.
	stack  [64][8]uint32
	chunks uint64 // chunks compressed into stack, a multiple of guts.MaxSIMD
	buf    [bufferSize]byte
	buflen int
}

// bufferSize is what one SIMD pass compresses: 16 chunks of 1 KiB.
const bufferSize = guts.MaxSIMD * guts.ChunkSize

// bufferHeight is the height of the subtree of one full buffer.
const bufferHeight = 4 // log2(guts.MaxSIMD)

// Write adds p to the hash. It never fails. Bytes are compressed straight
// from p, without a copy, in whole 16 KiB blocks when nothing is buffered,
// so a caller that writes in multiples of 16 KiB copies only the tail.
func (h *Hasher) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		if h.buflen == 0 && len(p) > bufferSize {
			// A whole block with more to come: it is not the root, so it
			// can be compressed now, from p itself.
			h.compress((*[bufferSize]byte)(p[:bufferSize]))
			p = p[bufferSize:]
			continue
		}
		if h.buflen == bufferSize {
			// Full, and p has more: the buffered block is not the last.
			h.compress(&h.buf)
			h.buflen = 0
			continue
		}
		c := copy(h.buf[h.buflen:], p)
		h.buflen += c
		p = p[c:]
	}
	return n, nil
}

// compress adds a full block that is known not to end the input.
func (h *Hasher) compress(b *[bufferSize]byte) {
	cv := guts.ChainingValue(guts.CompressBuffer(b, bufferSize, &guts.IV, h.chunks, 0))
	// Merge with the subtrees of the same height, as far as they go.
	i := bufferHeight
	for h.chunks&(1<<i) != 0 {
		cv = guts.ChainingValue(guts.ParentNode(h.stack[i], cv, &guts.IV, 0))
		i++
	}
	h.stack[i] = cv
	h.chunks += 1 << bufferHeight
}

// Sum returns the hash of everything written so far. It does not change
// the Hasher's state.
func (h *Hasher) Sum() Hash {
	// The buffer holds the last 0..16 KiB: its own subtree, the rightmost,
	// which the finished subtrees on the stack take in from the smallest up.
	n := guts.CompressBuffer(&h.buf, h.buflen, &guts.IV, h.chunks, 0)
	for i := bufferHeight; i < 64; i++ {
		if h.chunks&(1<<i) != 0 {
			n = guts.ParentNode(h.stack[i], guts.ChainingValue(n), &guts.IV, 0)
		}
	}
	n.Flags |= guts.FlagRoot
	words := guts.CompressNode(n)
	out := guts.WordsToBytes(words)
	var s Hash
	copy(s[:], out[:HashSize])
	return s
}

// Reset makes h ready for a new input.
func (h *Hasher) Reset() {
	h.chunks, h.buflen = 0, 0
}

// hashers keeps Hashers (18 KiB each) off the heap and off the stacks of
// the goroutines that verify.
var hashers = sync.Pool{New: func() any { return new(Hasher) }}

// Sum returns the BLAKE3-256 hash of b, computed on the calling goroutine.
func Sum(b []byte) Hash {
	h := hashers.Get().(*Hasher)
	h.Reset()
	h.Write(b)
	s := h.Sum()
	hashers.Put(h)
	return s
}

// equalHash compares two hashes in constant time.
func equalHash(a, b Hash) bool { return subtle.ConstantTimeCompare(a[:], b[:]) == 1 }
