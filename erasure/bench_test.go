package erasure

import (
	"crypto/sha256"
	"syscall"
	"testing"
	"time"

	"lukechampine.com/blake3"
)

const benchSegment = 4 << 20

var benchParams = []Params{{K: 4, M: 2}, {K: 10, M: 4}}

func BenchmarkEncode(b *testing.B) {
	seg := testSegment(benchSegment, 1)
	for _, p := range benchParams {
		b.Run(p.String(), func(b *testing.B) {
			c := mustCoder(b, p)
			b.ReportAllocs()
			b.SetBytes(int64(len(seg)))
			for b.Loop() {
				if _, _, err := c.Encode(seg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDecode rebuilds a segment with two data shards missing, so the
// Reed-Solomon reconstruction runs, and with every data shard present, the
// common case, where decode is a copy and a hash.
func BenchmarkDecode(b *testing.B) {
	seg := testSegment(benchSegment, 2)
	for _, p := range benchParams {
		c := mustCoder(b, p)
		shards, d, err := c.Encode(seg)
		if err != nil {
			b.Fatal(err)
		}
		in := make([][]byte, len(shards))
		b.Run(p.String()+"/2-data-missing", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(seg)))
			for b.Loop() {
				// Decode fills the nil slots in place: empty them again. This
				// copies k+m slice headers, nothing next to the decode.
				copy(in, shards)
				in[0], in[1] = nil, nil
				if _, err := c.Decode(d, in); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(p.String()+"/data-present", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(seg)))
			for b.Loop() {
				copy(in, shards)
				if _, err := c.Decode(d, in); err != nil {
					b.Fatal(err)
				}
			}
		})
		// The data shards already in their place in the segment's buffer,
		// as a reader that fetched them with GetShardInto has them.
		b.Run(p.String()+"/data-present-into", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(seg)))
			buf := make([]byte, p.K*d.ShardLen)
			for i := range p.K {
				copy(buf[i*d.ShardLen:], shards[i])
			}
			for b.Loop() {
				for i := range in {
					in[i] = shards[i]
					if i < p.K {
						in[i] = buf[i*d.ShardLen : (i+1)*d.ShardLen]
					}
				}
				if _, err := c.DecodeInto(d, buf, in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkVerifyShard(b *testing.B) {
	// A 4 MiB segment coded 4+2 has 1 MiB shards.
	shards, d, err := mustCoder(b, DefaultParams).Encode(testSegment(benchSegment, 3))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(shards[0])))
	for b.Loop() {
		if err := d.VerifyShard(0, shards[0]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHash compares the descriptor's hash, BLAKE3-256, with SHA-256:
// the choice in doc.go rests on these figures.
func BenchmarkHash(b *testing.B) {
	data := testSegment(benchSegment, 4)
	b.Run("sha256", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			sha256.Sum256(data)
		}
	})
	b.Run("blake3", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(data)))
		cpu := startCPU()
		for b.Loop() {
			blake3.Sum256(data)
		}
		cpu.report(b, int64(b.N)*int64(len(data)))
	})
	// Sum: the same hash on the calling goroutine (hash.go).
	b.Run("blake3-serial", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(data)))
		cpu := startCPU()
		for b.Loop() {
			Sum(data)
		}
		cpu.report(b, int64(b.N)*int64(len(data)))
	})
}

// cpuClock measures the process's CPU time (user and system, every
// goroutine) over a benchmark: on a busy machine the CPU a hash takes
// matters more than how soon it ends.
type cpuClock struct{ start time.Duration }

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func startCPU() cpuClock { return cpuClock{processCPU()} }

// report adds cpu-s/GB: CPU seconds spent per 10⁹ bytes.
func (c cpuClock) report(b *testing.B, bytes int64) {
	if bytes > 0 {
		b.ReportMetric((processCPU()-c.start).Seconds()/(float64(bytes)/1e9), "cpu-s/GB")
	}
}
