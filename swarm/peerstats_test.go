package swarm

import (
	"context"
	"errors"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/shoalcdn/shoal/erasure"
)

func TestCorruptPeerIsAvoidedAndCounted(t *testing.T) {
	nodes := startNodes(t, 3, nil, nil)
	a, bad, good := nodes[0], nodes[1], nodes[2]
	shards, d := encodeSegment(t, erasure.Params{K: 4, M: 2}, 200_000, 9)
	id := testShardID(3, 1)
	bad.store.PutShard(id, d, shards[1])
	good.store.PutShard(id, d, shards[1])
	bad.store.setCorrupt(true)

	if !a.Alive(bad.addr) {
		t.Fatal("a fresh peer is not alive")
	}
	_, _, err := a.GetShard(testContext(t), bad.addr, id)
	var ie *erasure.IntegrityError
	if !errors.As(err, &ie) {
		t.Fatalf("got %v, want an *erasure.IntegrityError", err)
	}
	if a.Alive(bad.addr) {
		t.Error("a peer that sent a corrupt shard is still asked")
	}
	if !a.Alive(good.addr) {
		t.Error("an honest peer is avoided")
	}
	if cb, cg := a.Cost(bad.addr, 50_000), a.Cost(good.addr, 50_000); cb <= cg {
		t.Errorf("cost of the corrupt peer %v, of the honest one %v: want the corrupt one dearer", cb, cg)
	}
	if _, data, err := a.GetShard(testContext(t), good.addr, id); err != nil || len(data) != d.ShardLen {
		t.Fatalf("from the honest peer: %d bytes, %v", len(data), err)
	}
	var sawBad, sawGood bool
	for _, p := range a.Peers() {
		switch p.Addr {
		case bad.addr:
			sawBad = true
			if p.CorruptShards != 1 || p.AvoidedUntil.Before(time.Now()) || p.Failures < 0.9 {
				t.Errorf("corrupt peer: %d corrupt, avoided until %v, failures %.2f; want 1, in the future, about 1", p.CorruptShards, p.AvoidedUntil, p.Failures)
			}
		case good.addr:
			sawGood = true
			if p.CorruptShards != 0 || !p.AvoidedUntil.IsZero() || p.PayloadReceived != uint64(d.ShardLen) {
				t.Errorf("honest peer: %d corrupt, avoided until %v, %d bytes received; want 0, never, %d", p.CorruptShards, p.AvoidedUntil, p.PayloadReceived, d.ShardLen)
			}
			if p.Throughput <= 0 {
				t.Errorf("honest peer: no throughput measured after a %d-byte shard", d.ShardLen)
			}
		}
	}
	if !sawBad || !sawGood {
		t.Errorf("Peers misses a member: bad %v, good %v", sawBad, sawGood)
	}
	// The server counted what it sent.
	for _, p := range good.Peers() {
		if p.Addr == a.addr && p.PayloadSent != uint64(d.ShardLen) {
			t.Errorf("serving peer counted %d bytes sent to the reader, want %d", p.PayloadSent, d.ShardLen)
		}
	}
}

// An upload limit paces what a node sends: with a bucket far smaller than
// the shard and a short deadline, the answer cannot complete; without the
// limit, the same request does. No wall-clock speed is asserted.
func TestUploadLimitPacesShardAnswers(t *testing.T) {
	nodes := startNodes(t, 2, nil, func(i int, cfg *Config) {
		if i == 1 {
			cfg.UploadLimit = 1 // 1 byte/s after a 64 KiB burst
		}
	})
	a, slow := nodes[0], nodes[1]
	shards, d := encodeSegment(t, erasure.Params{K: 4, M: 2}, 1_000_000, 10) // 250 kB shards
	id := testShardID(4, 0)
	slow.store.PutShard(id, d, shards[0])
	a.store.PutShard(id, d, shards[0])

	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	if _, _, err := a.GetShard(ctx, slow.addr, id); err == nil {
		t.Error("a 250 kB shard came through a 1 B/s upload limit")
	}
	ctx2, cancel2 := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel2()
	if _, data, err := slow.GetShard(ctx2, a.addr, id); err != nil || len(data) != d.ShardLen {
		t.Errorf("unlimited peer: %d bytes, %v", len(data), err)
	}
}

func TestPeerSpansCarryTheZone(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	nodes := startNodes(t, 2, nil, func(i int, cfg *Config) {
		cfg.Zone = "zone-z"
		cfg.TracerProvider = tp
	})
	a, b := nodes[0], nodes[1]
	_, _, err := a.GetShard(testContext(t), b.addr, testShardID(5, 0))
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("got %v, want ErrNotFound", err)
	}
	var found bool
	for _, s := range rec.Ended() {
		if s.Name() != "swarm."+OpGetShard.String() {
			continue
		}
		for _, kv := range s.Attributes() {
			if string(kv.Key) == "shoal.peer.zone" {
				found = true
				if kv.Value.AsString() != "zone-z" {
					t.Errorf("shoal.peer.zone = %q, want zone-z", kv.Value.AsString())
				}
			}
		}
	}
	if !found {
		t.Error("no client span with shoal.peer.zone")
	}
}

// A peer this node is already fetching shards from costs more for the
// next, by its requests in flight, so that the readers of several segments
// spread over the holders: with its throughput known and unknown.
func TestCostCountsRequestsInFlight(t *testing.T) {
	nodes := startNodes(t, 3, nil, nil)
	a, b, c := nodes[0], nodes[1], nodes[2]
	const size = 1 << 20
	before := a.Cost(b.addr, size)
	done := a.health.asking(b.addr)
	if busy := a.Cost(b.addr, size); busy < before+inflightCost {
		t.Errorf("cost with a request in flight %v, without %v: want at least %v more", busy, before, inflightCost)
	}
	done()
	if after := a.Cost(b.addr, size); after >= before+inflightCost {
		t.Errorf("cost after the request ended %v, before it %v", after, before)
	}

	// A measured peer: each request in flight adds a transfer at its rate.
	shards, d := encodeSegment(t, erasure.Params{K: 4, M: 2}, 400_000, 5)
	id := testShardID(4, 0)
	c.store.PutShard(id, d, shards[0])
	if _, _, err := a.GetShard(testContext(t), c.addr, id); err != nil {
		t.Fatal(err)
	}
	rate, _, _ := a.health.measured(c.addr, time.Now())
	if rate <= 0 {
		t.Fatal("no throughput measured after a shard")
	}
	idle := a.Cost(c.addr, size)
	done1, done2 := a.health.asking(c.addr), a.health.asking(c.addr)
	transfer := time.Duration(float64(size) / rate * float64(time.Second))
	if busy := a.Cost(c.addr, size); busy-idle < 2*transfer-time.Millisecond {
		t.Errorf("two requests in flight add %v to the cost, want two transfers of %v at %.0f B/s", busy-idle, transfer, rate)
	}
	done1()
	done2()
}
