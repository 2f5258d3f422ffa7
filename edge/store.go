package edge

import (
	"github.com/shoalcdn/shoal/erasure"
	"github.com/shoalcdn/shoal/swarm"
)

// Store holds this edge's shards, bounded in bytes, evicting the least
// recently used. Every shard is verified against its descriptor when it is
// read; one that fails is dropped and counted, never served.
//
// This version keeps shards in memory; they do not survive a restart.
type Store struct {
	lru       *sizedLRU[erasure.ShardID, storedShard]
	onCorrupt func(erasure.ShardID, error)
}

type storedShard struct {
	d    *erasure.Descriptor
	data []byte
}

var _ swarm.ShardStore = (*Store)(nil)

// NewStore returns a store of at most limit bytes of shards. onCorrupt, if
// not nil, is called for every shard that fails verification.
func NewStore(limit int64, onCorrupt func(erasure.ShardID, error)) *Store {
	return &Store{
		lru:       newSizedLRU[erasure.ShardID](limit, func(s storedShard) int64 { return int64(len(s.data)) + 256 }),
		onCorrupt: onCorrupt,
	}
}

// Shard returns a verified shard and its descriptor.
func (s *Store) Shard(id erasure.ShardID) (*erasure.Descriptor, []byte, bool) {
	sh, ok := s.lru.Get(id)
	if !ok {
		return nil, nil, false
	}
	if err := sh.d.VerifyShard(int(id.Index), sh.data); err != nil {
		s.lru.Remove(id)
		if s.onCorrupt != nil {
			s.onCorrupt(id, err)
		}
		return nil, nil, false
	}
	return sh.d, sh.data, true
}

// PutShard stores a shard. The caller has verified it against d.
func (s *Store) PutShard(id erasure.ShardID, d *erasure.Descriptor, data []byte) error {
	s.lru.Add(id, storedShard{d: d, data: data})
	return nil
}

// Stats returns the bytes and number of shards held.
func (s *Store) Stats() (bytes int64, shards int) {
	b, n, _ := s.lru.Stats()
	return b, n
}
