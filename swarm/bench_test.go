package swarm

import (
	"context"
	"sync"
	"testing"

	"github.com/shoalcdn/shoal/erasure"
)

// BenchmarkGetShard fetches a 1 MiB shard (a 4 MiB segment coded 4+2)
// across loopback QUIC, verification included, one at a time and four in
// flight at once.
func BenchmarkGetShard(b *testing.B) {
	nodes := startNodes(b, 2, nil, nil)
	client, holder := nodes[0], nodes[1]
	shards, d := encodeSegment(b, erasure.Params{K: 4, M: 2}, 4<<20, 15)
	if d.ShardLen != 1<<20 {
		b.Fatalf("got shards of %d bytes, want 1 MiB", d.ShardLen)
	}
	ids := make([]erasure.ShardID, len(shards))
	for i := range shards {
		ids[i] = testShardID(0, uint8(i))
		holder.store.PutShard(ids[i], d, shards[i])
	}
	ctx := context.Background()
	// Warm up: dial, and let the flow-control windows grow.
	for _, id := range ids {
		if _, _, err := client.GetShard(ctx, holder.addr, id); err != nil {
			b.Fatal(err)
		}
	}

	b.Run("serial", func(b *testing.B) {
		b.SetBytes(1 << 20)
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := client.GetShard(ctx, holder.addr, ids[0]); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel4", func(b *testing.B) {
		const inFlight = 4
		b.SetBytes(inFlight << 20)
		b.ReportAllocs()
		errs := make([]error, inFlight)
		for b.Loop() {
			var wg sync.WaitGroup
			for j := range inFlight {
				wg.Go(func() {
					_, _, errs[j] = client.GetShard(ctx, holder.addr, ids[j])
				})
			}
			wg.Wait()
			for _, err := range errs {
				if err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}
