package swarm

import (
	"encoding/binary"
	"slices"

	"github.com/shoalcdn/shoal/erasure"
	"lukechampine.com/blake3"
)

// Rank orders members by their rendezvous weight for key, highest first.
// Every node computes the same order from the same member set, with no
// coordination; when a member joins or leaves, only the keys for which it
// ranks high move.
func Rank(members []string, key []byte) []string {
	type scored struct {
		m string
		w uint64
	}
	s := make([]scored, len(members))
	buf := make([]byte, 0, 64+len(key))
	for i, m := range members {
		buf = append(buf[:0], m...)
		buf = append(buf, 0)
		buf = append(buf, key...)
		h := blake3.Sum256(buf)
		s[i] = scored{m, binary.BigEndian.Uint64(h[:8])}
	}
	slices.SortFunc(s, func(a, b scored) int {
		if a.w != b.w {
			if a.w > b.w {
				return -1
			}
			return 1
		}
		if a.m < b.m {
			return -1
		}
		if a.m > b.m {
			return 1
		}
		return 0
	})
	out := make([]string, len(s))
	for i := range s {
		out[i] = s[i].m
	}
	return out
}

// SegmentKey is the placement key of a segment.
func SegmentKey(id erasure.SegmentID) []byte {
	b := make([]byte, 0, erasure.HashSize+4)
	b = append(b, id.Object[:]...)
	return binary.BigEndian.AppendUint32(b, id.Index)
}

// Holders returns, for each of a segment's total shards, the member that
// holds it: shard i goes to the member of rank i, wrapping when there are
// fewer members than shards. Holders()[0] is the segment's coordinator.
func Holders(members []string, seg erasure.SegmentID, total int) []string {
	ranked := Rank(members, SegmentKey(seg))
	if len(ranked) == 0 {
		return nil
	}
	out := make([]string, total)
	for i := range out {
		out[i] = ranked[i%len(ranked)]
	}
	return out
}
