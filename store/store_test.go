package store

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shoalcdn/shoal/erasure"
)

// testShards codes a pseudo-random segment of n bytes with 4+2 and returns
// its shards, descriptor and segment ID.
func testShards(t testing.TB, n int, seed uint64) ([][]byte, *erasure.Descriptor, erasure.SegmentID) {
	t.Helper()
	c, err := erasure.NewCoder(erasure.Params{K: 4, M: 2})
	if err != nil {
		t.Fatal(err)
	}
	seg := make([]byte, n)
	var s [32]byte
	s[0], s[1] = byte(seed), byte(seed>>8)
	rand.NewChaCha8(s).Read(seg)
	shards, d, err := c.Encode(seg)
	if err != nil {
		t.Fatal(err)
	}
	id := erasure.SegmentID{Object: erasure.ObjectID(erasure.Sum(seg)), Index: uint32(seed)}
	return shards, d, id
}

func quietLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 30s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func openTestStore(t *testing.T, cfg Config) (*Store, *atomic.Int64) {
	t.Helper()
	var corrupt atomic.Int64
	cfg.Logger = quietLogger()
	cfg.OnCorrupt = func(erasure.ShardID, error) { corrupt.Add(1) }
	s, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, &corrupt
}

func TestStoreSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	s, _ := openTestStore(t, Config{Dir: dir, Limit: 1 << 30})
	shards, d, seg := testShards(t, 64<<10+3, 1)
	for i, sh := range shards {
		if err := s.PutShard(erasure.ShardID{Segment: seg, Index: uint8(i)}, d, sh); err != nil {
			t.Fatal(err)
		}
	}
	// An interrupted write and a stray file, as a crash would leave them.
	os.WriteFile(filepath.Join(dir, tmpDir, "0123.tmp"), []byte("half a shard"), 0o644)
	stray := filepath.Join(dir, shardsDir, "ab", "not-a-shard")
	os.MkdirAll(filepath.Dir(stray), 0o755)
	os.WriteFile(stray, []byte("x"), 0o644)

	if _, err := Open(Config{Dir: dir, Logger: quietLogger()}); err == nil {
		t.Fatal("a second store opened the same directory")
	}
	s.Close()
	s2, corrupt := openTestStore(t, Config{Dir: dir, Limit: 1 << 30})
	if got := s2.Stats().Shards; got != len(shards) {
		t.Fatalf("reopened store lists %d shards, want %d", got, len(shards))
	}
	for i, sh := range shards {
		gd, got, ok := s2.Shard(erasure.ShardID{Segment: seg, Index: uint8(i)})
		if !ok || !bytes.Equal(got, sh) || !gd.Equal(d) {
			t.Fatalf("shard %d after reopen: ok %v, equal %v", i, ok, bytes.Equal(got, sh))
		}
	}
	if corrupt.Load() != 0 {
		t.Errorf("%d shards reported corrupt", corrupt.Load())
	}
	if left, _ := os.ReadDir(filepath.Join(dir, tmpDir)); len(left) != 0 {
		t.Errorf("leftover temporary files after open: %v", left)
	}
	if _, err := os.Stat(stray); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stray file kept: %v", err)
	}
}

func TestStoreNeverServesDamagedFiles(t *testing.T) {
	shards, d, seg := testShards(t, 64<<10, 2)
	_, _, other := testShards(t, 64<<10, 3)
	damage := map[string]func(p string, b []byte) []byte{
		"flipped data bit":        func(_ string, b []byte) []byte { b[len(b)-100] ^= 1; return b },
		"flipped descriptor bit":  func(_ string, b []byte) []byte { b[shardHeader+20] ^= 0x80; return b },
		"flipped descriptor hash": func(_ string, b []byte) []byte { b[shardHeader+d.EncodedLen()+3] ^= 1; return b },
		"flipped id bit":          func(_ string, b []byte) []byte { b[10] ^= 1; return b },
		"truncated data":          func(_ string, b []byte) []byte { return b[:len(b)-1] },
		"truncated header":        func(_ string, b []byte) []byte { return b[:shardHeader+5] },
		"extra byte":              func(_ string, b []byte) []byte { return append(b, 0) },
		"empty":                   func(_ string, b []byte) []byte { return nil },
		"bad magic":               func(_ string, b []byte) []byte { b[0] = 'X'; return b },
	}
	for name, f := range damage {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			s, corrupt := openTestStore(t, Config{Dir: dir, Limit: 1 << 30, ScrubRate: -1})
			id := erasure.ShardID{Segment: seg, Index: 1}
			if err := s.PutShard(id, d, shards[1]); err != nil {
				t.Fatal(err)
			}
			p := s.path(id)
			b, _ := os.ReadFile(p)
			os.WriteFile(p, f(p, b), 0o644)
			if _, got, ok := s.Shard(id); ok {
				t.Fatalf("served a damaged shard (%d bytes, equal to the original: %v)", len(got), bytes.Equal(got, shards[1]))
			}
			if corrupt.Load() != 1 {
				t.Errorf("corrupt count %d, want 1", corrupt.Load())
			}
			if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("damaged file not deleted: %v", err)
			}
			if s.Has(id) {
				t.Error("damaged shard still in the index")
			}
		})
	}
	t.Run("another shard's file under this name", func(t *testing.T) {
		s, corrupt := openTestStore(t, Config{Dir: t.TempDir(), Limit: 1 << 30, ScrubRate: -1})
		a, b := erasure.ShardID{Segment: seg, Index: 0}, erasure.ShardID{Segment: other, Index: 0}
		s.PutShard(a, d, shards[0])
		s.PutShard(b, d, shards[0])
		data, _ := os.ReadFile(s.path(b))
		os.WriteFile(s.path(a), data, 0o644)
		if _, _, ok := s.Shard(a); ok {
			t.Fatal("served another shard's file")
		}
		if corrupt.Load() != 1 {
			t.Errorf("corrupt count %d, want 1", corrupt.Load())
		}
	})
}

func TestStoreEvictsToItsBudget(t *testing.T) {
	dir := t.TempDir()
	shards, d, seg := testShards(t, 256<<10, 4)
	size := int64(len(shards[0]) + 400)
	s, _ := openTestStore(t, Config{Dir: dir, Limit: 4 * size, ScrubRate: -1})
	hot := erasure.ShardID{Segment: seg, Index: 0}
	s.PutShard(hot, d, shards[0])
	s.Shard(hot) // read again: frequent
	for i := 1; i < len(shards); i++ {
		s.PutShard(erasure.ShardID{Segment: seg, Index: uint8(i)}, d, shards[i])
		s.Shard(hot)
	}
	// A scan of one-off shards does not flush the one read repeatedly.
	for i := range 20 {
		_, d2, seg2 := testShards(t, 256<<10, uint64(100+i))
		sh2, _, _ := testShards(t, 256<<10, uint64(100+i))
		s.PutShard(erasure.ShardID{Segment: seg2, Index: 0}, d2, sh2[0])
	}
	st := s.Stats()
	if st.Bytes > 4*size {
		t.Errorf("%d bytes held, budget %d", st.Bytes, 4*size)
	}
	if st.Evictions == 0 {
		t.Error("nothing evicted")
	}
	if !s.Has(hot) {
		t.Error("the frequently read shard was evicted by a scan")
	}
	files := 0
	filepath.WalkDir(filepath.Join(dir, shardsDir), func(_ string, e os.DirEntry, _ error) error {
		if e != nil && !e.IsDir() {
			files++
		}
		return nil
	})
	if files != st.Shards {
		t.Errorf("%d files on disk for %d shards in the index: evicted files must go", files, st.Shards)
	}
	// Reopened with a smaller budget, the store evicts down to it.
	s.Close()
	s2, _ := openTestStore(t, Config{Dir: dir, Limit: 2 * size, ScrubRate: -1})
	if got := s2.Stats().Bytes; got > 2*size {
		t.Errorf("reopened with a 2-shard budget: %d bytes held", got)
	}
}

func TestStoreScrubFindsRot(t *testing.T) {
	dir := t.TempDir()
	s, corrupt := openTestStore(t, Config{Dir: dir, Limit: 1 << 30, ScrubRate: 1 << 30})
	shards, d, seg := testShards(t, 64<<10, 5)
	for i, sh := range shards {
		s.PutShard(erasure.ShardID{Segment: seg, Index: uint8(i)}, d, sh)
	}
	p := s.path(erasure.ShardID{Segment: seg, Index: 3})
	b, _ := os.ReadFile(p)
	b[len(b)/2] ^= 4
	os.WriteFile(p, b, 0o644)
	ctx := t.Context()
	go s.Run(ctx)
	waitFor(t, func() bool { return corrupt.Load() == 1 && s.Stats().ScrubPasses > 0 })
	if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("scrub left the rotten file: %v", err)
	}
	if got := s.Stats().Shards; got != len(shards)-1 {
		t.Errorf("%d shards after the scrub, want %d", got, len(shards)-1)
	}
}

func TestStoreFullDisk(t *testing.T) {
	dir := mountTmpfs(t, "2m")
	s, _ := openTestStore(t, Config{Dir: dir, Limit: 1 << 30, ScrubRate: -1, ProbeInterval: 50 * time.Millisecond})
	go s.Run(t.Context())
	shards, d, seg := testShards(t, 1<<20, 6) // 256 KiB shards
	var stored []erasure.ShardID
	var full error
	for i := 0; i < 64 && full == nil; i++ {
		id := erasure.ShardID{Segment: erasure.SegmentID{Object: seg.Object, Index: uint32(i)}, Index: 0}
		if full = s.PutShard(id, d, shards[0]); full == nil {
			stored = append(stored, id)
		}
	}
	if full == nil {
		t.Fatal("a 2 MiB file system took 16 MiB")
	}
	st := s.Stats()
	if st.Writable || !strings.Contains(st.Reason, "disk full") {
		t.Fatalf("after ENOSPC: writable %v, reason %q", st.Writable, st.Reason)
	}
	if err := s.PutShard(erasure.ShardID{Segment: seg, Index: 1}, d, shards[1]); !errors.Is(err, ErrUnavailable) {
		t.Errorf("write while full: %v, want ErrUnavailable", err)
	}
	kept := 0
	for _, id := range stored {
		if !s.Has(id) {
			continue // evicted to make room when the disk filled up
		}
		kept++
		if _, got, ok := s.Shard(id); !ok || !bytes.Equal(got, shards[0]) {
			t.Fatalf("stored shard %v unreadable while the disk is full", id)
		}
	}
	if kept == 0 || st.Limit >= 1<<30 {
		t.Errorf("after ENOSPC: %d of %d shards kept, budget %d: want the budget lowered below what fits, most shards kept", kept, len(stored), st.Limit)
	}
	if left, _ := os.ReadDir(filepath.Join(dir, tmpDir)); len(left) > 1 {
		t.Errorf("failed writes left temporary files: %v", left)
	}
	if out, err := exec.Command("mount", "-o", "remount,size=32m", dir).CombinedOutput(); err != nil {
		t.Fatalf("remount: %v: %s", err, out)
	}
	waitFor(t, s.Writable)
	if err := s.PutShard(erasure.ShardID{Segment: seg, Index: 1}, d, shards[1]); err != nil {
		t.Errorf("write after space came back: %v", err)
	}
}

// mountTmpfs mounts a tmpfs of the given size on a temporary directory.
// It needs root: elsewhere the test is skipped, but not under CI, which
// runs as root.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	skip := func(why string) {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI must be able to mount a tmpfs: %s", why)
		}
		t.Skipf("needs root to mount a small tmpfs for a full disk: %s", why)
	}
	if os.Geteuid() != 0 {
		skip("not root")
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		skip(strings.TrimSpace(string(out)))
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	return dir
}
