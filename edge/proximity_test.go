package edge

import (
	"bytes"
	"net"
	"sync"
	"testing"

	"github.com/shoalcdn/shoal/erasure"
	"github.com/shoalcdn/shoal/swarm"
)

// lyingStore keeps what it is given and serves it with one bit flipped,
// under the right descriptor: a peer gone bad.
type lyingStore struct {
	mu     sync.Mutex
	shards map[erasure.ShardID]lyingShard
}

type lyingShard struct {
	d    *erasure.Descriptor
	data []byte
}

func (s *lyingStore) Shard(id erasure.ShardID) (*erasure.Descriptor, []byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sh, ok := s.shards[id]
	if !ok {
		return nil, nil, false
	}
	b := bytes.Clone(sh.data)
	b[len(b)/3] ^= 0x10
	return sh.d, b, true
}

func (s *lyingStore) PutShard(id erasure.ShardID, d *erasure.Descriptor, data []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.shards[id] = lyingShard{d, bytes.Clone(data)}
	return nil
}

func (s *lyingStore) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.shards)
}

func TestPeerServingCorruptShardsIsAvoided(t *testing.T) {
	creds, err := testCreds()
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	bad := pc.LocalAddr().String()
	store := &lyingStore{shards: map[erasure.ShardID]lyingShard{}}
	liar, err := swarm.New(swarm.Config{Self: bad, Credentials: creds, Store: store, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	go liar.Serve(pc)
	defer liar.Close()
	<-liar.Ready()

	o := newTestOrigin(t, "public, max-age=3600")
	c := newCluster(t, o, 5, func(cfg *Config) { cfg.Swarm.Peers = append(cfg.Swarm.Peers, bad) })
	const size = 2<<20 + 55
	want := o.put(t, "/liar.bin", size, 31)
	_, body := c.get(0, "/liar.bin")
	sameBytes(t, "first read", body, want)
	waitFor(t, func() bool { return store.len() > 0 })

	originBytes := o.bytes.Load()
	clearMemory(c)
	for i := 1; i < 5; i++ {
		_, body = c.get(i, "/liar.bin")
		sameBytes(t, "read past a lying peer", body, want)
	}
	first := make([]float64, 5)
	var counted float64
	for i := 1; i < 5; i++ {
		e := c.edges[i]
		first[i] = counterValueLabel(t, e.Edge, "shoal_peer_corrupt_shards_total", "peer", bad)
		counted += first[i]
		if first[i] > 0 && e.Node().Alive(bad) {
			t.Errorf("edge %d counted %v corrupt shards from %s and still asks it", i, first[i], bad)
		}
	}
	if counted == 0 {
		t.Fatalf("the lying peer holds %d shards, yet no reader counted a corrupt one", store.len())
	}
	if got := o.bytes.Load() - originBytes; got != 0 {
		t.Errorf("reads past the lying peer cost %d origin bytes, want 0", got)
	}

	// Once caught, it is not asked again while avoided.
	clearMemory(c)
	for i := 1; i < 5; i++ {
		_, body = c.get(i, "/liar.bin")
		sameBytes(t, "second round", body, want)
		if first[i] == 0 {
			continue
		}
		if n := counterValueLabel(t, c.edges[i].Edge, "shoal_peer_corrupt_shards_total", "peer", bad); n != first[i] {
			t.Errorf("edge %d: corrupt shards from the liar went from %v to %v: it asked it again", i, first[i], n)
		}
	}
}
