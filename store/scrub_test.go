package store

import (
	"bytes"
	"os"
	"testing"
	"time"

	"github.com/shoalcdn/shoal/erasure"
)

// TestStoreScrubYieldsWhileBusy: the scrub slows down while shards are
// being read or stored, and is back at its rate once the store is quiet.
func TestStoreScrubYieldsWhileBusy(t *testing.T) {
	s, _ := openTestStore(t, Config{Dir: t.TempDir(), Limit: 1 << 30, ScrubRate: -1})
	now := time.Now()
	if s.busy(now) {
		t.Error("a store never used is busy")
	}
	shards, d, seg := testShards(t, 64<<10, 8)
	s.PutShard(erasure.ShardID{Segment: seg}, d, shards[0])
	if !s.busy(time.Now()) {
		t.Error("a store that just stored a shard is not busy")
	}
	if s.busy(time.Now().Add(scrubBusyFor + time.Millisecond)) {
		t.Error("a store still busy after scrubBusyFor without use")
	}
}

func TestReadFileInto(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ size, bufCap int }{{0, 0}, {10, 0}, {10, 11}, {10, 10}, {4096, 100}, {5000, 8192}} {
		p := dir + "/f"
		want := bytes.Repeat([]byte{7}, tc.size)
		if err := os.WriteFile(p, want, 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := readFileInto(p, make([]byte, 3, tc.bufCap+3))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("size %d, buffer %d: got %d bytes, %v; want %d bytes", tc.size, tc.bufCap, len(got), err, tc.size)
		}
	}
	if _, err := readFileInto(dir+"/none", nil); !os.IsNotExist(err) {
		t.Errorf("missing file: got %v, want not exist", err)
	}
}
