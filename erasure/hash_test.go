package erasure

import (
	"math/rand/v2"
	"testing"

	"lukechampine.com/blake3"
)

// hashLengths straddle every boundary of the BLAKE3 tree: blocks (64),
// chunks (1 KiB), the 16-chunk SIMD buffer and the subtrees above it.
var hashLengths = []int{
	0, 1, 63, 64, 65, 1023, 1024, 1025, 2048, 2049,
	bufferSize - 1, bufferSize, bufferSize + 1, 2*bufferSize - 1, 2 * bufferSize, 2*bufferSize + 1,
	3*bufferSize + 17, 4 * bufferSize, 5*bufferSize + 1024, 7*bufferSize + 1,
	1<<20 - 1, 1 << 20, 1<<20 + 1, 1<<20 + 3*bufferSize + 5, 4 << 20, 4<<20 + 1, 4<<20/3 + 1,
}

func TestSumMatchesBLAKE3(t *testing.T) {
	data := testSegment(4<<20+bufferSize, 9)
	for _, n := range hashLengths {
		want := Hash(blake3.Sum256(data[:n]))
		if got := Sum(data[:n]); got != want {
			t.Errorf("Sum of %d bytes: got %s, want %s", n, got, want)
		}
	}
}

func TestHasherWriteInPieces(t *testing.T) {
	data := testSegment(1<<20+3*bufferSize+5, 10)
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range hashLengths {
		if n > len(data) {
			continue
		}
		want := Hash(blake3.Sum256(data[:n]))
		// Pieces of random sizes, some of whole SIMD buffers, as a stream
		// reader delivers them.
		for trial := range 4 {
			var h Hasher
			for off := 0; off < n; {
				var c int
				switch trial {
				case 0:
					c = 1 + rng.IntN(3000)
				case 1:
					c = bufferSize * (1 + rng.IntN(3))
				case 2:
					c = 1 + rng.IntN(2*bufferSize)
				default:
					c = n // one Write
				}
				c = min(c, n-off)
				h.Write(data[off : off+c])
				off += c
				if off < n && rng.IntN(4) == 0 {
					h.Sum() // a peek must not change the state
				}
			}
			if got := h.Sum(); got != want {
				t.Errorf("%d bytes in pieces (trial %d): got %s, want %s", n, trial, got, want)
			}
			h.Reset()
			h.Write(data[:n])
			if got := h.Sum(); got != want {
				t.Errorf("%d bytes after Reset: got %s, want %s", n, got, want)
			}
		}
	}
}

func FuzzHasher(f *testing.F) {
	f.Add([]byte("abc"), uint16(1))
	f.Add(testSegment(3*bufferSize+7, 1), uint16(bufferSize))
	f.Fuzz(func(t *testing.T, data []byte, piece uint16) {
		want := Hash(blake3.Sum256(data))
		if got := Sum(data); got != want {
			t.Fatalf("Sum: got %s, want %s", got, want)
		}
		var h Hasher
		step := int(piece) + 1
		for off := 0; off < len(data); off += step {
			h.Write(data[off:min(off+step, len(data))])
		}
		if got := h.Sum(); got != want {
			t.Fatalf("pieces of %d: got %s, want %s", step, got, want)
		}
	})
}
