package store

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/shoalcdn/shoal/erasure"
	"github.com/shoalcdn/shoal/internal/sizedlru"
)

// Store holds an edge's shards, bounded in bytes, evicting by recency
// and frequency (2Q). Every shard is verified against its descriptor when
// it is read from its file; one that fails is deleted and counted, never
// served. The last shards read and verified are kept in memory, so that
// serving them again costs no read and no hash (verified.go).
//
// With a directory, shards live on disk, one file each, and survive
// restarts: a write goes to a temporary file that is synced, renamed into
// place and its directory synced, so a crash never leaves a partial file
// under a final name; on open the index is rebuilt from the file names and
// leftovers of interrupted writes are removed. When the disk is full or
// read-only the store stops storing, says so (Writable, Stats), and probes until it
// can write again; reads go on. Without a directory, shards live in memory.
//
// A shard file, all integers big-endian:
//
//	offset  size  field
//	0       4     magic "SHS1"
//	4       37    shard ID: object ID (32), segment index (4), shard index (1)
//	41      2     D, descriptor length
//	43      D     descriptor (erasure.Descriptor encoding)
//	43+D    32    BLAKE3-256 of the descriptor: the shard's own hash is in
//	              the descriptor, so this guards the descriptor itself
//	75+D    n     the shard's bytes, n = the descriptor's shard length
//
// Its name is <object ID hex>-<segment>-<shard> in shards/<first two hex
// digits>/, so the index needs no file's contents to be rebuilt.
type Store struct {
	cfg Config
	log *slog.Logger

	mu    sync.Mutex
	index *sizedlru.TwoQ[erasure.ShardID, *entry]
	// stripes order a shard's file operations: a write holds its stripe
	// from the rename until the index lists it, and an unlink (eviction,
	// corruption) happens under it only if the index does not list the
	// shard, so an unlink never removes a file that was just written.
	// Record writes take them too, by their key's hash.
	stripes [64]sync.Mutex
	// lock holds the directory's LOCK file, flocked: one process a store.
	lock *os.File

	// writable is false while the disk refuses writes; reason says why.
	writable atomic.Bool
	reasonMu sync.Mutex
	reason   string

	// maxRecords bounds the record files kept (maxRecordFiles; lower in
	// tests).
	maxRecords int

	// verified keeps shards read from disk and verified, so that serving
	// them again needs neither a read nor a hash (verified.go); nil in
	// memory mode or when Config.VerifiedCache is negative.
	verified *verifiedCache
	// lastUse is when a shard was last read or stored (Unix nanoseconds):
	// the scrub slows down while the store is busy.
	lastUse atomic.Int64

	stats counters
}

// Config configures a Store.
type Config struct {
	// Dir is the directory of the store. Empty keeps shards in memory.
	Dir string
	// Limit bounds the bytes of shards kept. Zero means 1 GiB in memory,
	// and on disk a quarter of the file system's free space (counting what
	// the store already holds), at least 1 GiB, or nine tenths of that if less.
	Limit int64
	// ScrubRate bounds the background scrub, in bytes read per second.
	// Zero means 4 MiB/s; negative turns the scrub off. While the store
	// serves or stores shards the scrub goes at a sixteenth of it.
	ScrubRate int64
	// VerifiedCache bounds the memory, in bytes, of shards kept after
	// they were read from disk and verified, so that serving one again
	// costs neither a read nor a hash. Zero means 32 MiB; negative turns
	// it off. Memory mode keeps every shard in memory anyway.
	VerifiedCache int64
	// ProbeInterval is how often a store that stopped writing tries again.
	// Zero means 5s.
	ProbeInterval time.Duration
	// Logger receives structured logs. Nil means slog.Default().
	Logger *slog.Logger
	// OnCorrupt, if set, is called for every shard that fails verification.
	OnCorrupt func(erasure.ShardID, error)
}

// entry is what the index keeps of a shard.
type entry struct {
	id   erasure.ShardID
	size int64
	// d and data hold the shard in memory mode; on disk they are nil.
	d    *erasure.Descriptor
	data []byte
}

type counters struct {
	writes, writeErrors, skipped, evictions, corrupt atomic.Int64
	scrubbedBytes, scrubbedShards, scrubPasses       atomic.Int64
}

// Stats is a snapshot of a store's figures.
type Stats struct {
	Bytes, Limit               int64
	Shards                     int
	Writes, WriteErrors        int64
	Skipped                    int64 // writes not attempted while the disk refused them
	Evictions, Corrupt         int64
	ScrubbedBytes, ScrubPasses int64
	ScrubbedShards             int64
	Writable                   bool
	Reason                     string // why the store is not writable

	// VerifiedHits counts shards served from memory, verified when they
	// were read from disk, without reading or hashing them again.
	VerifiedHits int64
}

// ErrUnavailable: the store is not storing (disk full, read-only,
// failing); the caller goes on without it.
var ErrUnavailable = errors.New("store: shard store is not accepting writes")

// Open opens (or creates) the store cfg describes. On disk, it removes
// the leftovers of interrupted writes and rebuilds the index from the
// shard files, most recently written last, evicting down to the limit.
func Open(cfg Config) (*Store, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.ScrubRate == 0 {
		cfg.ScrubRate = 4 << 20
	}
	if cfg.ProbeInterval == 0 {
		cfg.ProbeInterval = 5 * time.Second
	}
	s := &Store{cfg: cfg, log: cfg.Logger.With("component", "store"), maxRecords: maxRecordFiles}
	s.writable.Store(true)
	if cfg.Dir == "" {
		if s.cfg.Limit == 0 {
			s.cfg.Limit = 1 << 30
		}
		s.index = sizedlru.NewTwoQ[erasure.ShardID](s.cfg.Limit, entrySize)
		return s, nil
	}
	for _, d := range []string{cfg.Dir, filepath.Join(cfg.Dir, shardsDir), filepath.Join(cfg.Dir, tmpDir)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
	}
	lock, err := os.OpenFile(filepath.Join(cfg.Dir, "LOCK"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		return nil, fmt.Errorf("store: %s is in use by another process (%w): give each edge its own --data-dir", cfg.Dir, err)
	}
	s.lock = lock
	s.verified = newVerifiedCache(cfg.VerifiedCache)
	opened := false
	defer func() {
		if !opened {
			s.Close()
		}
	}()
	start := time.Now()
	if err := os.RemoveAll(filepath.Join(cfg.Dir, tmpDir)); err != nil {
		return nil, fmt.Errorf("store: removing interrupted writes: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(cfg.Dir, tmpDir), 0o755); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	found, used, err := s.scan()
	if err != nil {
		return nil, err
	}
	if s.cfg.Limit == 0 {
		s.cfg.Limit = defaultDiskLimit(cfg.Dir, used)
	}
	s.index = sizedlru.NewTwoQ[erasure.ShardID](s.cfg.Limit, entrySize)
	// Oldest first, so that the most recently written end up the most
	// recently used.
	slices.SortFunc(found, func(a, b scanned) int { return a.mtime.Compare(b.mtime) })
	var evicted []*entry
	for _, f := range found {
		evicted = append(evicted, s.index.Add(f.e.id, f.e)...)
	}
	s.remove(evicted)
	opened = true
	s.log.Info("shard store opened", "dir", cfg.Dir, "shards", s.index.Len(), "bytes", s.index.Bytes(),
		"limit", s.cfg.Limit, "evicted", len(evicted), "took", time.Since(start).Round(time.Millisecond).String())
	return s, nil
}

func entrySize(e *entry) int64 { return e.size }

type scanned struct {
	e     *entry
	mtime time.Time
}

// scan lists the shard files. Names that are not shard files are removed:
// only the store writes here.
func (s *Store) scan() ([]scanned, int64, error) {
	root := filepath.Join(s.cfg.Dir, shardsDir)
	dirs, err := os.ReadDir(root)
	if err != nil {
		return nil, 0, fmt.Errorf("store: %w", err)
	}
	var out []scanned
	var used int64
	for _, d := range dirs {
		if !d.IsDir() {
			continue
		}
		files, err := os.ReadDir(filepath.Join(root, d.Name()))
		if err != nil {
			return nil, 0, fmt.Errorf("store: %w", err)
		}
		for _, f := range files {
			p := filepath.Join(root, d.Name(), f.Name())
			id, ok := parseShardName(f.Name())
			info, err := f.Info()
			if !ok || err != nil || !info.Mode().IsRegular() || info.Size() < shardHeader+2*erasure.HashSize || s.path(id) != p {
				s.log.Warn("removing a stray file from the shard store", "path", p)
				os.RemoveAll(p)
				continue
			}
			size := diskSize(info.Size())
			out = append(out, scanned{&entry{id: id, size: size}, info.ModTime()})
			used += size
		}
	}
	return out, used, nil
}

// defaultDiskLimit is a quarter of what the store could use: the free space
// plus what it holds already; at least 1 GiB, or nine tenths of that if less.
func defaultDiskLimit(dir string, used int64) int64 {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 1 << 30
	}
	avail := int64(st.Bavail)*int64(st.Bsize) + used
	// Never the whole disk: leave a tenth for everything else.
	return max(avail/4, min(1<<30, avail*9/10))
}

func (s *Store) stripe(id erasure.ShardID) *sync.Mutex {
	h := uint(id.Segment.Object[0]) ^ uint(id.Segment.Object[1])<<8 ^ uint(id.Segment.Index)*31 ^ uint(id.Index)*7
	return &s.stripes[h%uint(len(s.stripes))]
}

// Shard returns a verified shard and its descriptor. A shard that fails
// verification, or whose file is damaged, is deleted and reported through
// OnCorrupt.
func (s *Store) Shard(id erasure.ShardID) (*erasure.Descriptor, []byte, bool) {
	s.mu.Lock()
	e, ok := s.index.Get(id)
	s.mu.Unlock()
	if !ok {
		return nil, nil, false
	}
	s.touch()
	if d, data, ok := s.verified.get(id, e); ok {
		return d, data, true
	}
	d, data := e.d, e.data
	var b []byte
	if s.cfg.Dir != "" {
		var err error
		b, err = os.ReadFile(s.path(id))
		if errors.Is(err, fs.ErrNotExist) {
			s.forget(id, e) // evicted or replaced under us
			return nil, nil, false
		}
		if err != nil {
			// A file that cannot be read (EIO, a bad sector) is as good as
			// corrupt: drop it, count it, and let the segment be rebuilt.
			s.corrupt(id, e, err)
			return nil, nil, false
		}
		if d, data, err = decodeShardFile(id, b); err != nil {
			s.corrupt(id, e, err)
			return nil, nil, false
		}
	}
	if err := d.VerifyShard(int(id.Index), data); err != nil {
		s.corrupt(id, e, err)
		return nil, nil, false
	}
	if b != nil {
		s.verified.keep(id, e, d, data, b)
	}
	return d, data, true
}

// touch notes that the store is in use, for the scrub to yield.
func (s *Store) touch() { s.lastUse.Store(time.Now().UnixNano()) }

// Has reports whether the index lists id, without reading it.
func (s *Store) Has(id erasure.ShardID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.index.Peek(id)
	return ok
}

// IDs lists the shards the index holds, without reading them.
func (s *Store) IDs() []erasure.ShardID {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.index.Keys()
}

// PutShard stores a shard that has been verified against d. When the disk
// refuses writes it returns ErrUnavailable at once.
func (s *Store) PutShard(id erasure.ShardID, d *erasure.Descriptor, data []byte) error {
	if len(data) != d.ShardLen {
		return &erasure.IntegrityError{Shard: int(id.Index), Reason: "length"}
	}
	s.touch()
	if s.cfg.Dir == "" {
		s.add(&entry{id: id, size: int64(len(data)) + 256, d: d, data: data})
		s.stats.writes.Add(1)
		return nil
	}
	if !s.writable.Load() {
		s.stats.skipped.Add(1)
		return ErrUnavailable
	}
	mu := s.stripe(id)
	mu.Lock()
	size, err := s.writeFile(id, d, data)
	var evicted []*entry
	if size > 0 {
		// The file is in place (even if a later step failed): list it.
		s.stats.writes.Add(1)
		evicted = s.addLocked(&entry{id: id, size: size})
	}
	mu.Unlock()
	s.remove(evicted)
	if err != nil {
		s.stats.writeErrors.Add(1)
		s.refuse(err)
		return fmt.Errorf("store: storing shard %v: %w", id, err)
	}
	return nil
}

// Remove deletes the shard id, if the store holds it. It is neither an
// eviction nor a corruption, and is not counted as either.
func (s *Store) Remove(id erasure.ShardID) {
	s.mu.Lock()
	_, ok := s.index.Remove(id)
	s.mu.Unlock()
	if !ok || s.cfg.Dir == "" {
		return
	}
	s.verified.drop(id)
	if err := s.unlink(id); err != nil {
		s.log.Warn("removing a shard failed", "shard", id.String(), "err", err)
	}
}

func (s *Store) add(e *entry) {
	s.remove(s.addLocked(e))
}

func (s *Store) addLocked(e *entry) []*entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.index.Add(e.id, e)
}

// remove deletes evicted entries' files, unless a write has listed the
// shard again meanwhile.
func (s *Store) remove(evicted []*entry) {
	s.stats.evictions.Add(int64(len(evicted)))
	if s.cfg.Dir == "" {
		return
	}
	for _, e := range evicted {
		s.verified.drop(e.id)
		if err := s.unlink(e.id); err != nil {
			s.log.Warn("removing an evicted shard failed", "shard", e.id.String(), "err", err)
		}
	}
}

// unlink removes id's file if the index does not list it.
func (s *Store) unlink(id erasure.ShardID) error {
	mu := s.stripe(id)
	mu.Lock()
	defer mu.Unlock()
	if s.Has(id) {
		return nil
	}
	if err := os.Remove(s.path(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// forget drops id from the index if it still names e.
func (s *Store) forget(id erasure.ShardID, e *entry) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur, ok := s.index.Peek(id); !ok || cur != e {
		return false
	}
	s.index.Remove(id)
	s.verified.drop(id)
	return true
}

func (s *Store) corrupt(id erasure.ShardID, e *entry, err error) {
	if !s.forget(id, e) {
		return // replaced meanwhile: the new file is someone else's to check
	}
	if s.cfg.Dir != "" {
		s.unlink(id)
	}
	s.stats.corrupt.Add(1)
	if s.cfg.OnCorrupt != nil {
		s.cfg.OnCorrupt(id, err)
	}
}

// Close releases the store's directory for another process. Run's
// context must be done first.
func (s *Store) Close() error {
	if s.lock == nil {
		return nil
	}
	err := s.lock.Close() // closing the descriptor drops the flock
	s.lock = nil
	return err
}

// Writable reports whether the store is accepting writes.
func (s *Store) Writable() bool { return s.writable.Load() }

// Stats returns the store's figures.
func (s *Store) Stats() Stats {
	s.mu.Lock()
	st := Stats{Bytes: s.index.Bytes(), Shards: s.index.Len(), Limit: s.index.Limit()}
	s.mu.Unlock()
	st.Writes, st.WriteErrors, st.Skipped = s.stats.writes.Load(), s.stats.writeErrors.Load(), s.stats.skipped.Load()
	st.Evictions, st.Corrupt = s.stats.evictions.Load(), s.stats.corrupt.Load()
	st.ScrubbedBytes, st.ScrubbedShards, st.ScrubPasses = s.stats.scrubbedBytes.Load(), s.stats.scrubbedShards.Load(), s.stats.scrubPasses.Load()
	st.VerifiedHits = s.verified.hitCount()
	st.Writable = s.writable.Load()
	if !st.Writable {
		s.reasonMu.Lock()
		st.Reason = s.reason
		s.reasonMu.Unlock()
	}
	return st
}
