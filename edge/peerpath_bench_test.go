package edge

import (
	"context"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/shoalcdn/shoal/erasure"
)

// The peer path's CPU cost: the figures are in bench/README.md ("Peer
// protocol"). Every process of these benchmarks (edges, origin, client) is
// this one, so cpu-s/GB counts both ends of every transfer.

// BenchmarkPeerPathCPU is BenchmarkServePeers with the CPU it costs: a
// 64 MiB object read through an edge whose memory tier is empty, so every
// segment is rebuilt from shards fetched from its peers over QUIC.
func BenchmarkPeerPathCPU(b *testing.B) {
	c, size := benchCluster(b, 4)
	fetch(b, c.edges[0].url+"/obj", size)
	waitFor(b, func() bool { return storedShards(c) >= 16*6 })
	b.SetBytes(int64(size))
	b.ReportAllocs()
	var cpu time.Duration
	for b.Loop() {
		b.StopTimer()
		clearMemory(c)
		b.StartTimer()
		start := processCPU()
		fetch(b, c.edges[1].url+"/obj", size)
		cpu += processCPU() - start
	}
	reportCPU(b, cpu, int64(b.N)*int64(size))
}

// BenchmarkRebuildFromPeers isolates the rebuild of a 4 MiB segment (4+2)
// from the k data shards on three peers, the way gather does it today
// (GetShard into new buffers, then Decode, which copies them into a new
// segment) and the way swarm and erasure now allow (each data shard read
// by GetShardInto straight into its place in the segment's buffer, then
// DecodeInto, which neither allocates nor copies). Verification is the same
// in both: each shard as it arrives, the holder's store on read, and the
// rebuilt segment.
func BenchmarkRebuildFromPeers(b *testing.B) {
	c, _ := benchCluster(b, 4)
	reader := c.edges[0]
	p := erasure.DefaultParams
	const segments = 8
	type placed struct {
		id      erasure.SegmentID
		d       *erasure.Descriptor
		holders []string
	}
	segs := make([]placed, segments)
	for s := range segs {
		seg := make([]byte, 4<<20)
		for i := range seg {
			seg[i] = byte(i*7 + s)
		}
		shards, d, err := reader.coder.Encode(seg)
		if err != nil {
			b.Fatal(err)
		}
		segs[s] = placed{d: d, holders: make([]string, len(shards))}
		segs[s].id.Object[0], segs[s].id.Index = 0xbe, uint32(s)
		for i, sh := range shards {
			h := c.edges[1+(s+i)%3] // never the reader
			if err := h.store.PutShard(erasure.ShardID{Segment: segs[s].id, Index: uint8(i)}, d, sh); err != nil {
				b.Fatal(err)
			}
			segs[s].holders[i] = h.node.Self()
		}
	}
	ctx := context.Background()
	for _, s := range segs { // dial, grow the windows
		for i, h := range s.holders {
			if _, _, err := reader.node.GetShard(ctx, h, erasure.ShardID{Segment: s.id, Index: uint8(i)}); err != nil {
				b.Fatal(err)
			}
		}
	}
	coder := reader.coder
	run := func(b *testing.B, rebuild func(s placed, buf []byte) ([]byte, error)) {
		b.SetBytes(4 << 20)
		b.ReportAllocs()
		buf := make([]byte, p.K*segs[0].d.ShardLen)
		start := processCPU()
		n := 0
		for b.Loop() {
			s := segs[n%segments]
			n++
			seg, err := rebuild(s, buf)
			if err != nil {
				b.Fatal(err)
			}
			if len(seg) != s.d.Length {
				b.Fatalf("rebuilt %d bytes, want %d", len(seg), s.d.Length)
			}
		}
		reportCPU(b, processCPU()-start, int64(b.N)<<22)
	}
	b.Run("GetShard+Decode", func(b *testing.B) {
		run(b, func(s placed, _ []byte) ([]byte, error) {
			shards := make([][]byte, p.Total())
			errs := make([]error, p.K)
			var wg sync.WaitGroup
			for i := range p.K {
				wg.Go(func() {
					_, shards[i], errs[i] = reader.node.GetShard(ctx, s.holders[i], erasure.ShardID{Segment: s.id, Index: uint8(i)})
				})
			}
			wg.Wait()
			for _, err := range errs {
				if err != nil {
					return nil, err
				}
			}
			return coder.Decode(s.d, shards)
		})
	})
	b.Run("GetShardInto+DecodeInto", func(b *testing.B) {
		run(b, func(s placed, buf []byte) ([]byte, error) {
			sl := s.d.ShardLen
			shards := make([][]byte, p.Total())
			errs := make([]error, p.K)
			var wg sync.WaitGroup
			for i := range p.K {
				shards[i] = buf[i*sl : (i+1)*sl]
				wg.Go(func() {
					_, errs[i] = reader.node.GetShardInto(ctx, s.holders[i], erasure.ShardID{Segment: s.id, Index: uint8(i)}, shards[i])
				})
			}
			wg.Wait()
			for _, err := range errs {
				if err != nil {
					return nil, err
				}
			}
			return coder.DecodeInto(s.d, buf, shards)
		})
	})
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU adds cpu-s/GB: CPU seconds of the whole process per 10⁹ bytes.
func reportCPU(b *testing.B, cpu time.Duration, bytes int64) {
	if bytes > 0 {
		b.ReportMetric(cpu.Seconds()/(float64(bytes)/1e9), "cpu-s/GB")
	}
}
