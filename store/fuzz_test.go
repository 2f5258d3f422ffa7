package store

import (
	"strings"
	"testing"

	"github.com/shoalcdn/shoal/erasure"
)

// FuzzParseShardName: the store's file names decode only from the one
// spelling shardName gives them, so a stray file is never taken for a shard.
func FuzzParseShardName(f *testing.F) {
	var id erasure.ShardID
	for i := range id.Segment.Object {
		id.Segment.Object[i] = byte(i * 7)
	}
	id.Segment.Index, id.Index = 12, 5
	f.Add(shardName(id))
	f.Add(shardName(erasure.ShardID{}))
	f.Add("00-1-2")
	f.Add(strings.Repeat("0", 64) + "-01-2")
	f.Fuzz(func(t *testing.T, name string) {
		got, ok := parseShardName(name)
		if ok && shardName(got) != name {
			t.Fatalf("parseShardName(%q) = %v, which is named %q", name, got, shardName(got))
		}
	})
}
