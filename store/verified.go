package store

import (
	"sync/atomic"

	"github.com/shoalcdn/shoal/erasure"
	"github.com/shoalcdn/shoal/internal/sizedlru"
)

// A shard served to peers is asked for once by every peer that reads its
// segment: in a flash crowd of n sites, n-1 times within seconds. Reading
// its file and hashing it again each time cost a read(2) into a fresh
// buffer (page faults) and a BLAKE3 pass per request, for bytes that had
// just passed the same check. So the store keeps the shards it last read
// and verified, in memory, bounded in bytes, and serves them from there.
//
// What protects what:
//   - bytes on disk are verified every time they are read from their file
//     (the first read after a write, after an eviction from this cache, and
//     every read after a restart, since this cache is memory only), and by
//     the scrub, which always reads the file;
//   - bytes in this cache passed that check when they were read, and live
//     in memory like the edge's decoded segments: they are not hashed again;
//   - whoever receives a shard verifies it against its descriptor anyway
//     (swarm's client hashes every shard as it arrives, and a decoded
//     segment is checked against its own hash), so a bit flipped in memory
//     here would be caught before any byte of it reached a client.
//
// A cached shard counts only for the index entry it was read under: a
// shard replaced (PutShard), dropped or evicted and stored again is a new
// entry, and its bytes are read and verified anew.

// defaultVerifiedCache is the memory the cache takes when Config says
// nothing: room for the shards an edge serves in a crowd (a 64 MiB release
// over 8 sites is about 12 MiB of shards per site).
const defaultVerifiedCache = 32 << 20

// verifiedShard is a shard read from its file and verified.
type verifiedShard struct {
	e    *entry // the index entry it was read under
	d    *erasure.Descriptor
	data []byte
	size int64 // bytes held: the whole buffer the file was read into
}

// verifiedCache holds verified shards by ID, bounded in bytes. A nil
// *verifiedCache holds nothing.
type verifiedCache struct {
	c    *sizedlru.Cache[erasure.ShardID, *verifiedShard]
	hits atomic.Int64
}

// newVerifiedCache returns a cache of limit bytes (zero: the default), or
// nil for a negative limit.
func newVerifiedCache(limit int64) *verifiedCache {
	if limit < 0 {
		return nil
	}
	if limit == 0 {
		limit = defaultVerifiedCache
	}
	return &verifiedCache{c: sizedlru.New[erasure.ShardID](limit, func(v *verifiedShard) int64 { return v.size })}
}

// get returns the verified bytes of id read under e, if the cache holds them.
func (vc *verifiedCache) get(id erasure.ShardID, e *entry) (*erasure.Descriptor, []byte, bool) {
	if vc == nil {
		return nil, nil, false
	}
	v, ok := vc.c.Get(id)
	if !ok || v.e != e {
		return nil, nil, false
	}
	vc.hits.Add(1)
	return v.d, v.data, true
}

// keep caches the shard id of e, read from its file into buf and verified.
func (vc *verifiedCache) keep(id erasure.ShardID, e *entry, d *erasure.Descriptor, data, buf []byte) {
	if vc != nil {
		// Full slice: an append by one reader must not reach the others' bytes.
		vc.c.Add(id, &verifiedShard{e: e, d: d, data: data[:len(data):len(data)], size: int64(cap(buf))})
	}
}

// drop frees the cached bytes of a shard the index no longer lists. Only
// memory is at stake: a stale entry is never served, since it names an
// index entry that is gone.
func (vc *verifiedCache) drop(id erasure.ShardID) {
	if vc != nil {
		vc.c.Remove(id)
	}
}

// hitCount is how many shards the cache has served.
func (vc *verifiedCache) hitCount() int64 {
	if vc == nil {
		return 0
	}
	return vc.hits.Load()
}
