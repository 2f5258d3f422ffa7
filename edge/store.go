package edge

import (
	"time"

	"github.com/shoalcdn/shoal/store"
	"github.com/shoalcdn/shoal/swarm"
)

// The shard store (package store) keeps object records as opaque bytes
// beside the shards; this is the edge's side of it, which knows what a
// record is and which of two is newer.

var _ swarm.ShardStore = (*store.Store)(nil)

// recordKeep is how long past its freshness a record is kept on disk: a
// stale record is still worth a cheap revalidation.
const recordKeep = 24 * time.Hour

// putRecord keeps r on disk, unless the store keeps a newer word on its
// object already. Pass records are not kept.
func putRecord(s *store.Store, r *Record) error {
	if r.Pass {
		return nil
	}
	return s.PutRecord(r.Key, r.Append(nil), func(old []byte) bool {
		o, err := parseRecord(old)
		return err == nil && o.Fetched.After(r.Fetched)
	})
}

// storedRecords returns the records kept on disk, newest last. Files that
// do not decode, pass records and records expired for more than
// recordKeep are deleted.
func storedRecords(s *store.Store) []*Record {
	now := time.Now()
	held := s.Records(func(b []byte) (store.RecordInfo, bool) {
		r, err := parseRecord(b)
		if err != nil || r.Pass || now.Sub(r.Expires) > recordKeep {
			return store.RecordInfo{}, false
		}
		return store.RecordInfo{Key: r.Key, Fetched: r.Fetched}, true
	})
	out := make([]*Record, 0, len(held))
	for _, h := range held {
		// Decoded once already, by the store's inspection: this cannot fail.
		if r, err := parseRecord(h.Bytes); err == nil {
			out = append(out, r)
		}
	}
	return out
}
