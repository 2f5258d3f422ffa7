package store

import (
	"bytes"
	"os"
	"testing"

	"github.com/shoalcdn/shoal/erasure"
)

// TestStoreVerifiedCache: a shard read and verified once is served again
// from memory, not from its file (a file damaged afterwards is not read);
// a reopened store, a replaced shard and a store without the cache read
// and verify the file again, and never serve the damage.
func TestStoreVerifiedCache(t *testing.T) {
	shards, d, seg := testShards(t, 64<<10, 7)
	id := erasure.ShardID{Segment: seg, Index: 2}
	damage := func(t *testing.T, s *Store) {
		t.Helper()
		p := s.path(id)
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		b[len(b)-10] ^= 1
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	put := func(t *testing.T, s *Store) {
		t.Helper()
		if err := s.PutShard(id, d, shards[id.Index]); err != nil {
			t.Fatal(err)
		}
	}
	get := func(t *testing.T, s *Store) bool {
		t.Helper()
		gd, got, ok := s.Shard(id)
		if ok && (gd != d && !bytes.Equal(gd.Append(nil), d.Append(nil)) || !bytes.Equal(got, shards[id.Index])) {
			t.Fatal("served bytes that are not the shard's")
		}
		return ok
	}

	t.Run("served from memory", func(t *testing.T) {
		dir := t.TempDir()
		s, corrupt := openTestStore(t, Config{Dir: dir, Limit: 1 << 30, ScrubRate: -1})
		put(t, s)
		if !get(t, s) {
			t.Fatal("stored shard not served")
		}
		damage(t, s) // the cached bytes are the verified ones
		if !get(t, s) {
			t.Fatal("cached shard not served")
		}
		if got := s.Stats().VerifiedHits; got != 1 {
			t.Errorf("VerifiedHits %d, want 1", got)
		}
		if corrupt.Load() != 0 {
			t.Errorf("corrupt count %d, want 0: the file was not read", corrupt.Load())
		}
		s.Close()
		// A restart forgets the cache: the damaged file is read, caught, dropped.
		s2, corrupt2 := openTestStore(t, Config{Dir: dir, Limit: 1 << 30, ScrubRate: -1})
		if get(t, s2) {
			t.Fatal("a reopened store served a damaged file")
		}
		if corrupt2.Load() != 1 {
			t.Errorf("corrupt count %d after reopening, want 1", corrupt2.Load())
		}
	})
	t.Run("replaced shard is read again", func(t *testing.T) {
		s, corrupt := openTestStore(t, Config{Dir: t.TempDir(), Limit: 1 << 30, ScrubRate: -1})
		put(t, s)
		get(t, s)
		put(t, s) // a new index entry: the cached bytes no longer count
		damage(t, s)
		if get(t, s) {
			t.Fatal("served a damaged file after the shard was stored again")
		}
		if corrupt.Load() != 1 {
			t.Errorf("corrupt count %d, want 1", corrupt.Load())
		}
	})
	t.Run("removed shard is gone", func(t *testing.T) {
		s, _ := openTestStore(t, Config{Dir: t.TempDir(), Limit: 1 << 30, ScrubRate: -1})
		put(t, s)
		get(t, s)
		s.Remove(id)
		if get(t, s) {
			t.Fatal("served a removed shard from memory")
		}
	})
	t.Run("cache off", func(t *testing.T) {
		s, corrupt := openTestStore(t, Config{Dir: t.TempDir(), Limit: 1 << 30, ScrubRate: -1, VerifiedCache: -1})
		put(t, s)
		get(t, s)
		damage(t, s)
		if get(t, s) {
			t.Fatal("served a damaged file with the cache off")
		}
		if corrupt.Load() != 1 || s.Stats().VerifiedHits != 0 {
			t.Errorf("corrupt count %d, verified hits %d, want 1 and 0", corrupt.Load(), s.Stats().VerifiedHits)
		}
	})
}
