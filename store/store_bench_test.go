package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/shoalcdn/shoal/erasure"
)

// Benchmarks of the durable shard store against what the disk does without
// it. The figures are in bench/README.md. Data directories are under
// b.TempDir(), on the same file system as the project; reads of files just
// written come from the page cache, which is the hot case of an edge.
//
// Shards are real: a pseudo-random segment coded 4+2. Their IDs vary the
// segment index within an object of storeBenchSegs segments and the object
// beyond that, so files spread over the store's 256 sub-directories as a
// real store's do.

const (
	storeBenchSegment = 4 << 20 // gives 1 MiB shards at 4+2
	storeBenchSegs    = 16      // segments per object: a 64 MiB object
	storeBenchHot     = 256     // shards cycled over by the read benchmarks
	storeBenchOpenN   = 100_000 // shards in the store BenchmarkStoreOpen100k opens
	storeBenchCopy    = 64 << 20
)

var storeBenchParams = erasure.Params{K: 4, M: 2}

// storeBenchCoded codes an n-byte pseudo-random segment 4+2.
func storeBenchCoded(b *testing.B, n int) ([][]byte, *erasure.Descriptor) {
	b.Helper()
	r := rand.New(rand.NewPCG(7, uint64(n)))
	seg := make([]byte, n)
	for i := 0; i < n; i += 8 {
		binary.LittleEndian.PutUint64(seg[i:], r.Uint64())
	}
	c, err := erasure.NewCoder(storeBenchParams)
	if err != nil {
		b.Fatal(err)
	}
	shards, d, err := c.Encode(seg)
	if err != nil {
		b.Fatal(err)
	}
	return shards, d
}

// storeBenchID is the i-th distinct shard ID. Its shard index is
// i mod k+m, so shards[id.Index] is its data under the one descriptor.
func storeBenchID(i int) erasure.ShardID {
	total := storeBenchParams.Total()
	var o [8]byte
	binary.BigEndian.PutUint64(o[:], uint64(i/(total*storeBenchSegs)))
	return erasure.ShardID{
		Segment: erasure.SegmentID{Object: erasure.ObjectID(erasure.Sum(o[:])), Index: uint32(i / total % storeBenchSegs)},
		Index:   uint8(i % total),
	}
}

// storeBenchFiles returns the file the store writes for each shard of d,
// made by the store itself (PutShard into a scratch store), and where in
// each file its shard ID is, so that test files can be made for other IDs
// without restating the file format or paying an fsync per file.
func storeBenchFiles(b *testing.B, shards [][]byte, d *erasure.Descriptor) (files [][]byte, idAt []int) {
	b.Helper()
	s := storeBenchOpen(b, b.TempDir(), 1<<30)
	for i := range shards {
		id := storeBenchID(i)
		if err := s.PutShard(id, d, shards[i]); err != nil {
			b.Fatal(err)
		}
		f, err := os.ReadFile(s.path(id))
		if err != nil {
			b.Fatal(err)
		}
		at := bytes.Index(f, shardIDBytes(id))
		if at < 0 {
			b.Fatal("a shard file does not hold its ID")
		}
		files, idAt = append(files, f), append(idAt, at)
	}
	return files, idAt
}

// storeBenchFile is the store's file for id, given storeBenchFiles' output.
func storeBenchFile(files [][]byte, idAt []int, id erasure.ShardID) []byte {
	f := bytes.Clone(files[id.Index])
	copy(f[idAt[id.Index]:], shardIDBytes(id))
	return f
}

func storeBenchLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func storeBenchOpen(b *testing.B, dir string, limit int64) *Store {
	b.Helper()
	s, err := Open(Config{Dir: dir, Limit: limit, ScrubRate: -1, Logger: storeBenchLogger()})
	if err != nil {
		b.Fatal(err)
	}
	return s
}

// storeBenchHotStore is a disk store holding storeBenchHot 1 MiB shards.
func storeBenchHotStore(b *testing.B) (*Store, []erasure.ShardID, int) {
	b.Helper()
	shards, d := storeBenchCoded(b, storeBenchSegment)
	s := storeBenchOpen(b, b.TempDir(), 1<<30)
	ids := make([]erasure.ShardID, storeBenchHot)
	for i := range ids {
		ids[i] = storeBenchID(i)
		if err := s.PutShard(ids[i], d, shards[ids[i].Index]); err != nil {
			b.Fatal(err)
		}
	}
	return s, ids, d.ShardLen
}

// BenchmarkStorePut stores 1 MiB shards, each under a new ID, crash-safely:
// temporary file, write, fsync, rename, fsync of the directory. The limit
// is well above what a run writes, so nothing is evicted.
func BenchmarkStorePut(b *testing.B) {
	shards, d := storeBenchCoded(b, storeBenchSegment)
	s := storeBenchOpen(b, b.TempDir(), 64<<30)
	b.ReportAllocs()
	b.SetBytes(int64(d.ShardLen))
	i := 0
	for b.Loop() {
		id := storeBenchID(i)
		if err := s.PutShard(id, d, shards[id.Index]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkStoreGet reads and verifies stored 1 MiB shards, cycling over
// 256 of them (256 MiB). They were just written, so they are in the page
// cache: this measures read(2) from memory, decoding and BLAKE3, not the
// disk — the hot case of an edge serving what it holds.
func BenchmarkStoreGet(b *testing.B) {
	s, ids, n := storeBenchHotStore(b)
	b.ReportAllocs()
	b.SetBytes(int64(n))
	i := 0
	for b.Loop() {
		if _, _, ok := s.Shard(ids[i%len(ids)]); !ok {
			b.Fatal("stored shard not found")
		}
		i++
	}
}

// BenchmarkStoreGetCrowd reads 12 stored 1 MiB shards over and over, as
// an edge serves the shards it holds to every peer of a flash crowd (a
// 64 MiB release over 8 sites puts about 12 on each): with the verified
// cache, a read after the first costs no read(2) and no hash; cache=off is
// what every read cost before.
func BenchmarkStoreGetCrowd(b *testing.B) {
	for _, off := range []bool{false, true} {
		b.Run(map[bool]string{false: "cache=on", true: "cache=off"}[off], func(b *testing.B) {
			s, ids, n := storeBenchHotStore(b)
			if off {
				s.verified = nil
			}
			ids = ids[:12]
			b.ReportAllocs()
			b.SetBytes(int64(n))
			i := 0
			for b.Loop() {
				if _, _, ok := s.Shard(ids[i%len(ids)]); !ok {
					b.Fatal("stored shard not found")
				}
				i++
			}
		})
	}
}

// storeBenchRawDir makes dir/tmp and dir/final/00..ff, the store's layout.
func storeBenchRawDir(b *testing.B) string {
	b.Helper()
	dir := b.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o755); err != nil {
		b.Fatal(err)
	}
	for i := range 256 {
		if err := os.MkdirAll(filepath.Join(dir, "final", fmt.Sprintf("%02x", i)), 0o755); err != nil {
			b.Fatal(err)
		}
	}
	return dir
}

// BenchmarkRawWriteFsync does by hand what the store must do for a shard,
// with the same bytes: create a temporary file, write, fsync, close, rename
// into place, fsync the directory.
func BenchmarkRawWriteFsync(b *testing.B) {
	shards, d := storeBenchCoded(b, storeBenchSegment)
	files, _ := storeBenchFiles(b, shards, d)
	dir := storeBenchRawDir(b)
	b.ReportAllocs()
	b.SetBytes(int64(d.ShardLen))
	i := 0
	for b.Loop() {
		id := storeBenchID(i)
		name := shardName(id)
		tmp := filepath.Join(dir, "tmp", name)
		final := filepath.Join(dir, "final", name[:2])
		f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := f.Write(files[id.Index]); err != nil {
			b.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
		if err := f.Close(); err != nil {
			b.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(final, name)); err != nil {
			b.Fatal(err)
		}
		if err := syncDir(final); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkRawWriteNoSync writes the same files with no fsync and no
// rename: create, write, close. It measures copying into the page cache;
// write-back happens later (and throttles writers once enough is dirty).
// The dirty data is flushed after the timed loop so it does not slow the
// benchmarks that follow.
func BenchmarkRawWriteNoSync(b *testing.B) {
	shards, d := storeBenchCoded(b, storeBenchSegment)
	files, _ := storeBenchFiles(b, shards, d)
	dir := storeBenchRawDir(b)
	b.ReportAllocs()
	b.SetBytes(int64(d.ShardLen))
	i := 0
	for b.Loop() {
		id := storeBenchID(i)
		name := shardName(id)
		f, err := os.OpenFile(filepath.Join(dir, "final", name[:2], name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := f.Write(files[id.Index]); err != nil {
			b.Fatal(err)
		}
		if err := f.Close(); err != nil {
			b.Fatal(err)
		}
		i++
	}
	syscall.Sync()
}

// BenchmarkRawRead reads the files BenchmarkStoreGet reads, with
// os.ReadFile and nothing else: the difference is decoding and BLAKE3.
func BenchmarkRawRead(b *testing.B) {
	s, ids, n := storeBenchHotStore(b)
	paths := make([]string, len(ids))
	for i, id := range ids {
		paths[i] = s.path(id)
	}
	b.ReportAllocs()
	b.SetBytes(int64(n))
	i := 0
	for b.Loop() {
		if _, err := os.ReadFile(paths[i%len(paths)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkFileCopy copies a 64 MiB file to a new file on the same disk
// and fsyncs it: a plain file copy. The source is in the page cache. On
// Linux io.Copy between files uses copy_file_range, which on ext4 is an
// in-kernel copy, not a reflink.
func BenchmarkFileCopy(b *testing.B) {
	dir := b.TempDir()
	src := filepath.Join(dir, "src")
	buf := make([]byte, storeBenchCopy)
	r := rand.New(rand.NewPCG(9, 9))
	for i := 0; i < len(buf); i += 8 {
		binary.LittleEndian.PutUint64(buf[i:], r.Uint64())
	}
	if err := os.WriteFile(src, buf, 0o644); err != nil {
		b.Fatal(err)
	}
	syscall.Sync()
	b.ReportAllocs()
	b.SetBytes(storeBenchCopy)
	i := 0
	for b.Loop() {
		in, err := os.Open(src)
		if err != nil {
			b.Fatal(err)
		}
		out, err := os.OpenFile(filepath.Join(dir, fmt.Sprintf("copy-%d", i)), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			b.Fatal(err)
		}
		if n, err := io.Copy(out, in); err != nil || n != storeBenchCopy {
			b.Fatalf("copied %d bytes, want %d: %v", n, storeBenchCopy, err)
		}
		if err := out.Sync(); err != nil {
			b.Fatal(err)
		}
		out.Close()
		in.Close()
		i++
	}
}

// BenchmarkStoreOpen100k times Open on a store of 100,000 shard files:
// removing the temporary directory, listing 256 sub-directories, parsing
// every name, a stat per file, sorting by mtime and building the index.
// The files are ~1 KiB shards of a 4 KiB segment, written once before the
// timed loop without fsync (only names and sizes matter to the rebuild).
// The directories and inodes are then in the kernel's caches: this is a
// warm restart; a cold one adds the disk's metadata reads.
//
// Being a benchmark, it runs only under -bench; -short skips it too.
func BenchmarkStoreOpen100k(b *testing.B) {
	if testing.Short() {
		b.Skip("creates 100,000 files")
	}
	shards, d := storeBenchCoded(b, 4<<10)
	files, idAt := storeBenchFiles(b, shards, d)
	dir := b.TempDir()
	for i := range 256 {
		if err := os.MkdirAll(filepath.Join(dir, shardsDir, fmt.Sprintf("%02x", i)), 0o755); err != nil {
			b.Fatal(err)
		}
	}
	for i := range storeBenchOpenN {
		id := storeBenchID(i)
		name := shardName(id)
		if err := os.WriteFile(filepath.Join(dir, shardsDir, name[:2], name), storeBenchFile(files, idAt, id), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	syscall.Sync()
	// One open before timing: the files are what the store accepts.
	s, err := Open(Config{Dir: dir, Logger: storeBenchLogger()})
	if err != nil {
		b.Fatal(err)
	}
	if got := s.Stats().Shards; got != storeBenchOpenN {
		b.Fatalf("store opened with %d shards, want %d", got, storeBenchOpenN)
	}
	if _, _, ok := s.Shard(storeBenchID(storeBenchOpenN - 1)); !ok {
		b.Fatal("a shard file written for the benchmark does not read back")
	}
	b.ReportAllocs()
	opens := 0
	for b.Loop() {
		if _, err := Open(Config{Dir: dir, Logger: storeBenchLogger()}); err != nil {
			b.Fatal(err)
		}
		opens++
	}
	b.ReportMetric(float64(opens*storeBenchOpenN)/b.Elapsed().Seconds(), "shards/s")
}
