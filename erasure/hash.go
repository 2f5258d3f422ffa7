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
	chunks uint64 // chunks merged into stack, a multiple of guts.MaxSIMD
	// last is the top node of the latest whole 16 KiB block, not yet
	// merged into stack (when hasLast): it may be the end of the input,
	// and the node that ends the input is compressed as the root.
	last    guts.Node
	hasLast bool
	buf     [bufferSize]byte
	buflen  int
}

// bufferSize is what one SIMD pass compresses: 16 chunks of 1 KiB.
const bufferSize = guts.MaxSIMD * guts.ChunkSize

// bufferHeight is the height of the subtree of one full buffer.
const bufferHeight = 4 // log2(guts.MaxSIMD)

// Write adds p to the hash. It never fails and does not retain p. Whole
// 16 KiB blocks are compressed straight from p when nothing is buffered,
// so a caller that writes in multiples of 16 KiB copies nothing.
func (h *Hasher) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		if h.hasLast {
			// More input: the last block was not the end after all.
			h.push(guts.ChainingValue(h.last))
			h.hasLast = false
		}
		if h.buflen == 0 && len(p) >= bufferSize {
			h.last, h.hasLast = guts.CompressBuffer((*[bufferSize]byte)(p[:bufferSize]), bufferSize, &guts.IV, h.chunks, 0), true
			p = p[bufferSize:]
			continue
		}
		c := copy(h.buf[h.buflen:], p)
		h.buflen += c
		p = p[c:]
		if h.buflen == bufferSize {
			h.last, h.hasLast = guts.CompressBuffer(&h.buf, bufferSize, &guts.IV, h.chunks, 0), true
			h.buflen = 0
		}
	}
	return n, nil
}

// push adds the chaining value of a whole block that is known not to end
// the input, merging it with the subtrees of the same height.
func (h *Hasher) push(cv [8]uint32) {
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
	// The end of the input, a whole block or the 0..16 KiB buffered, is
	// the rightmost subtree, which the finished subtrees on the stack take
	// in from the smallest up.
	n := h.last
	if !h.hasLast {
		n = guts.CompressBuffer(&h.buf, h.buflen, &guts.IV, h.chunks, 0)
	}
	for i := bufferHeight; i < 64; i++ {
		if h.chunks&(1<<i) != 0 {
			n = guts.ParentNode(h.stack[i], guts.ChainingValue(n), &guts.IV, 0)
		}
	}
	n.Flags |= guts.FlagRoot
	out := guts.WordsToBytes(guts.CompressNode(n))
	var s Hash
	copy(s[:], out[:HashSize])
	return s
}

// Reset makes h ready for a new input.
func (h *Hasher) Reset() {
	h.chunks, h.buflen, h.hasLast = 0, 0, false
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
