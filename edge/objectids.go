package edge

import (
	"sync/atomic"

	"github.com/shoalcdn/shoal/erasure"
)

// objectIDs remembers the object IDs of recently served records. An ID is
// a cryptographic hash of the record's key, validator, size and layout
// (erasure.NewObjectID), and every segment read needs it to look the
// segment up in the memory tier: for a small hot object, hashing it again
// on every request was a noticeable share of the edge's own time. The
// cache is a pure memo: an entry answers only a record with the same four
// inputs, so a stale or colliding entry is a miss, never a wrong ID.
type objectIDs struct {
	slots [256]atomic.Pointer[objectIDEntry]
}

type objectIDEntry struct {
	key, validator string
	size           int64
	layout         erasure.Layout
	id             erasure.ObjectID
}

// of returns r.ID().
func (c *objectIDs) of(r *Record) erasure.ObjectID {
	slot := &c.slots[fnv32(r.Key)%uint32(len(c.slots))]
	if e := slot.Load(); e != nil && e.key == r.Key && e.validator == r.Validator && e.size == r.Size && e.layout == r.Layout {
		return e.id
	}
	id := r.ID()
	slot.Store(&objectIDEntry{key: r.Key, validator: r.Validator, size: r.Size, layout: r.Layout, id: id})
	return id
}

// fnv32 is FNV-1a: a slot index, not a security boundary (a collision
// costs a hash, not a wrong answer).
func fnv32(s string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= 16777619
	}
	return h
}
