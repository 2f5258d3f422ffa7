package store

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shoalcdn/shoal/erasure"
)

// testRecord is a record as the tests spell it: "key|fetched (RFC 3339)".
// The store never looks inside; only inspect and isNewer do.
func testRecord(key string, fetched time.Time) []byte {
	return []byte(key + "|" + fetched.UTC().Format(time.RFC3339Nano))
}

func inspectTestRecord(b []byte) (RecordInfo, bool) {
	key, ts, ok := strings.Cut(string(b), "|")
	t, err := time.Parse(time.RFC3339Nano, ts)
	if !ok || err != nil {
		return RecordInfo{}, false
	}
	return RecordInfo{Key: key, Fetched: t}, true
}

func newerTestRecord(than time.Time) func(old []byte) bool {
	return func(old []byte) bool {
		info, ok := inspectTestRecord(old)
		return ok && info.Fetched.After(than)
	}
}

func TestRecordsKeptAsBytes(t *testing.T) {
	dir := t.TempDir()
	s, _ := openTestStore(t, Config{Dir: dir, Limit: 1 << 30})
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	put := func(key string, fetched time.Time) {
		t.Helper()
		if err := s.PutRecord(key, testRecord(key, fetched), newerTestRecord(fetched)); err != nil {
			t.Fatal(err)
		}
	}
	put("/b", t0.Add(2*time.Second))
	put("/a", t0.Add(3*time.Second))
	put("/c", t0.Add(1*time.Second))
	put("/a", t0) // older than the one kept: not written
	put("/c", t0.Add(4*time.Second))
	put("/gone", t0)
	s.ForgetRecord("/gone")
	s.ForgetRecord("/never-kept")
	// Garbage, and a good record under another key's name.
	garbage := filepath.Join(dir, recordsDir, "zz")
	os.WriteFile(garbage, []byte("garbage"), 0o644)
	misplaced := filepath.Join(dir, recordsDir, "00", "0011")
	os.MkdirAll(filepath.Dir(misplaced), 0o755)
	os.WriteFile(misplaced, testRecord("/d", t0), 0o644)
	s.Close()

	s2, _ := openTestStore(t, Config{Dir: dir, Limit: 1 << 30})
	got := s2.Records(inspectTestRecord)
	var keys []string
	for _, r := range got {
		keys = append(keys, r.Key)
		if want := testRecord(r.Key, r.Fetched); string(r.Bytes) != string(want) {
			t.Errorf("%s: bytes %q, want %q", r.Key, r.Bytes, want)
		}
	}
	if want := "/b /a /c"; strings.Join(keys, " ") != want {
		t.Errorf("records after reopen: %v, want %s (oldest first)", keys, want)
	}
	if got[1].Fetched != t0.Add(3*time.Second) {
		t.Errorf("/a fetched %v: an older record replaced a newer one", got[1].Fetched)
	}
	for _, p := range []string{garbage, misplaced} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s kept: %v", p, err)
		}
	}

	// A record the caller no longer wants is deleted; beyond the cap, the
	// oldest go.
	s2.Records(func(b []byte) (RecordInfo, bool) {
		info, ok := inspectTestRecord(b)
		return info, ok && info.Key != "/b"
	})
	s2.maxRecords = 1
	if got := s2.Records(inspectTestRecord); len(got) != 1 || got[0].Key != "/c" {
		t.Errorf("capped at 1: %v, want only /c", got)
	}
	s2.maxRecords = maxRecordFiles
	if got := s2.Records(inspectTestRecord); len(got) != 1 {
		t.Errorf("after the cap: %d records on disk, want 1", len(got))
	}
}

// The on-disk names of records are a contract with earlier versions: a
// record file written before an upgrade must load after it.
func TestRecordFileName(t *testing.T) {
	dir := t.TempDir()
	s, _ := openTestStore(t, Config{Dir: dir, Limit: 1 << 30})
	key := "/releases/app.tar.gz"
	p := filepath.Join(dir, "records", "f2", "f27ab15b526b70e7e82e8b80d21ef75c")
	if got := s.recordPath(key); got != p {
		t.Fatalf("record path %s, want %s", got, p)
	}
	os.MkdirAll(filepath.Dir(p), 0o755)
	os.WriteFile(p, testRecord(key, time.Unix(1, 0)), 0o644)
	if got := s.Records(inspectTestRecord); len(got) != 1 || got[0].Key != key {
		t.Errorf("a record file written in place did not load: %v", got)
	}
}

func TestRecordsInMemoryMode(t *testing.T) {
	s, _ := openTestStore(t, Config{Limit: 1 << 20})
	if err := s.PutRecord("/a", []byte("x"), nil); err != nil {
		t.Fatal(err)
	}
	if got := s.Records(inspectTestRecord); got != nil {
		t.Errorf("memory mode kept records: %v", got)
	}
}

func TestStoreRemove(t *testing.T) {
	shards, d, seg := testShards(t, 64<<10, 7)
	for _, dir := range []string{"", t.TempDir()} {
		s, corrupt := openTestStore(t, Config{Dir: dir, Limit: 1 << 30, ScrubRate: -1})
		for i, sh := range shards {
			if err := s.PutShard(erasure.ShardID{Segment: seg, Index: uint8(i)}, d, sh); err != nil {
				t.Fatal(err)
			}
		}
		if got := len(s.IDs()); got != len(shards) {
			t.Fatalf("dir %q: %d IDs, want %d", dir, got, len(shards))
		}
		s.Remove(erasure.ShardID{Segment: seg, Index: uint8(2)})
		s.Remove(erasure.ShardID{Segment: seg, Index: uint8(2)}) // not held: nothing to do
		if s.Has(erasure.ShardID{Segment: seg, Index: uint8(2)}) || len(s.IDs()) != len(shards)-1 {
			t.Errorf("dir %q: shard 2 still listed after Remove", dir)
		}
		if _, _, ok := s.Shard(erasure.ShardID{Segment: seg, Index: uint8(2)}); ok {
			t.Errorf("dir %q: removed shard served", dir)
		}
		if dir != "" {
			if _, err := os.Stat(s.path(erasure.ShardID{Segment: seg, Index: uint8(2)})); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("removed shard's file kept: %v", err)
			}
		}
		if st := s.Stats(); st.Evictions != 0 || st.Corrupt != 0 || corrupt.Load() != 0 {
			t.Errorf("dir %q: Remove counted as %d evictions, %d corrupt", dir, st.Evictions, st.Corrupt)
		}
	}
}
