package edge

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/shoalcdn/shoal/erasure"
	"github.com/shoalcdn/shoal/swarm"
)

// Store holds this edge's shards, bounded in bytes, evicting by recency
// and frequency (2Q). Every shard is verified against its descriptor when
// it is read; one that fails is deleted and counted, never served.
//
// With a directory, shards live on disk, one file each, and survive
// restarts: a write goes to a temporary file that is synced, renamed into
// place and its directory synced, so a crash never leaves a partial file
// under a final name; on open the index is rebuilt from the file names and
// leftovers of interrupted writes are removed. When the disk is full or
// read-only the store stops storing, says so (Health), and probes until it
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
	cfg StoreConfig
	log *slog.Logger

	mu    sync.Mutex
	index *sized2Q[erasure.ShardID, *storeEntry]
	// stripes order a shard's file operations: a write holds its stripe
	// from the rename until the index lists it, and an unlink (eviction,
	// corruption) happens under it only if the index does not list the
	// shard, so an unlink never removes a file that was just written.
	stripes [64]sync.Mutex
	// lock holds the directory's LOCK file, flocked: one process a store.
	lock *os.File

	// writable is false while the disk refuses writes; reason says why.
	writable atomic.Bool
	reasonMu sync.Mutex
	reason   string

	stats storeCounters
}

// StoreConfig configures a Store.
type StoreConfig struct {
	// Dir is the directory of the store. Empty keeps shards in memory.
	Dir string
	// Limit bounds the bytes of shards kept. Zero means 1 GiB in memory,
	// and on disk a quarter of the file system's free space (counting what
	// the store already holds), at least 1 GiB, or nine tenths of that if less.
	Limit int64
	// ScrubRate bounds the background scrub, in bytes read per second.
	// Zero means 4 MiB/s; negative turns the scrub off.
	ScrubRate int64
	// ProbeInterval is how often a store that stopped writing tries again.
	// Zero means 5s.
	ProbeInterval time.Duration
	// Logger receives structured logs. Nil means slog.Default().
	Logger *slog.Logger
	// OnCorrupt, if set, is called for every shard that fails verification.
	OnCorrupt func(erasure.ShardID, error)
}

type storeEntry struct {
	id   erasure.ShardID
	size int64
	// d and data hold the shard in memory mode; on disk they are nil.
	d    *erasure.Descriptor
	data []byte
}

type storeCounters struct {
	writes, writeErrors, skipped, evictions, corrupt atomic.Int64
	scrubbedBytes, scrubbedShards, scrubPasses       atomic.Int64
}

// StoreStats is a snapshot of a store's figures.
type StoreStats struct {
	Bytes, Limit               int64
	Shards                     int
	Writes, WriteErrors        int64
	Skipped                    int64 // writes not attempted while the disk refused them
	Evictions, Corrupt         int64
	ScrubbedBytes, ScrubPasses int64
	ScrubbedShards             int64
	Writable                   bool
	Reason                     string // why the store is not writable
}

// ErrStoreUnavailable: the store is not storing (disk full, read-only,
// failing); the caller goes on without it.
var ErrStoreUnavailable = errors.New("edge: shard store is not accepting writes")

var _ swarm.ShardStore = (*Store)(nil)

const (
	shardMagic  = "SHS1"
	shardHeader = 4 + 37 + 2
	shardsDir   = "shards"
	tmpDir      = "tmp"
)

// OpenStore opens (or creates) the store cfg describes. On disk, it removes
// the leftovers of interrupted writes and rebuilds the index from the
// shard files, most recently written last, evicting down to the limit.
func OpenStore(cfg StoreConfig) (*Store, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.ScrubRate == 0 {
		cfg.ScrubRate = 4 << 20
	}
	if cfg.ProbeInterval == 0 {
		cfg.ProbeInterval = 5 * time.Second
	}
	s := &Store{cfg: cfg, log: cfg.Logger.With("component", "store")}
	s.writable.Store(true)
	if cfg.Dir == "" {
		if s.cfg.Limit == 0 {
			s.cfg.Limit = 1 << 30
		}
		s.index = newSized2Q[erasure.ShardID](s.cfg.Limit, entrySize)
		return s, nil
	}
	for _, d := range []string{cfg.Dir, filepath.Join(cfg.Dir, shardsDir), filepath.Join(cfg.Dir, tmpDir)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("edge: store: %w", err)
		}
	}
	lock, err := os.OpenFile(filepath.Join(cfg.Dir, "LOCK"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("edge: store: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		return nil, fmt.Errorf("edge: store: %s is in use by another process (%w): give each edge its own --data-dir", cfg.Dir, err)
	}
	s.lock = lock
	opened := false
	defer func() {
		if !opened {
			s.Close()
		}
	}()
	start := time.Now()
	if err := os.RemoveAll(filepath.Join(cfg.Dir, tmpDir)); err != nil {
		return nil, fmt.Errorf("edge: store: removing interrupted writes: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(cfg.Dir, tmpDir), 0o755); err != nil {
		return nil, fmt.Errorf("edge: store: %w", err)
	}
	found, used, err := s.scan()
	if err != nil {
		return nil, err
	}
	if s.cfg.Limit == 0 {
		s.cfg.Limit = defaultDiskLimit(cfg.Dir, used)
	}
	s.index = newSized2Q[erasure.ShardID](s.cfg.Limit, entrySize)
	// Oldest first, so that the most recently written end up the most
	// recently used.
	slices.SortFunc(found, func(a, b scanned) int { return a.mtime.Compare(b.mtime) })
	var evicted []*storeEntry
	for _, f := range found {
		evicted = append(evicted, s.index.Add(f.e.id, f.e)...)
	}
	s.remove(evicted)
	opened = true
	s.log.Info("shard store opened", "dir", cfg.Dir, "shards", s.index.Len(), "bytes", s.index.Bytes(),
		"limit", s.cfg.Limit, "evicted", len(evicted), "took", time.Since(start).Round(time.Millisecond).String())
	return s, nil
}

func entrySize(e *storeEntry) int64 { return e.size }

type scanned struct {
	e     *storeEntry
	mtime time.Time
}

// scan lists the shard files. Names that are not shard files are removed:
// only the store writes here.
func (s *Store) scan() ([]scanned, int64, error) {
	root := filepath.Join(s.cfg.Dir, shardsDir)
	dirs, err := os.ReadDir(root)
	if err != nil {
		return nil, 0, fmt.Errorf("edge: store: %w", err)
	}
	var out []scanned
	var used int64
	for _, d := range dirs {
		if !d.IsDir() {
			continue
		}
		files, err := os.ReadDir(filepath.Join(root, d.Name()))
		if err != nil {
			return nil, 0, fmt.Errorf("edge: store: %w", err)
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
			out = append(out, scanned{&storeEntry{id: id, size: size}, info.ModTime()})
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

func shardName(id erasure.ShardID) string {
	return hex.EncodeToString(id.Segment.Object[:]) + "-" + strconv.FormatUint(uint64(id.Segment.Index), 10) + "-" + strconv.Itoa(int(id.Index))
}

func parseShardName(name string) (erasure.ShardID, bool) {
	var id erasure.ShardID
	obj, rest, ok1 := strings.Cut(name, "-")
	seg, shard, ok2 := strings.Cut(rest, "-")
	if !ok1 || !ok2 || len(obj) != 2*erasure.HashSize {
		return id, false
	}
	if _, err := hex.Decode(id.Segment.Object[:], []byte(obj)); err != nil {
		return id, false
	}
	si, err1 := strconv.ParseUint(seg, 10, 32)
	sh, err2 := strconv.ParseUint(shard, 10, 8)
	if err1 != nil || err2 != nil || shardName(erasure.ShardID{Segment: erasure.SegmentID{Object: id.Segment.Object, Index: uint32(si)}, Index: uint8(sh)}) != name {
		return id, false
	}
	id.Segment.Index, id.Index = uint32(si), uint8(sh)
	return id, true
}

func (s *Store) stripe(id erasure.ShardID) *sync.Mutex {
	h := uint(id.Segment.Object[0]) ^ uint(id.Segment.Object[1])<<8 ^ uint(id.Segment.Index)*31 ^ uint(id.Index)*7
	return &s.stripes[h%uint(len(s.stripes))]
}

func (s *Store) path(id erasure.ShardID) string {
	name := shardName(id)
	return filepath.Join(s.cfg.Dir, shardsDir, name[:2], name)
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
	d, data := e.d, e.data
	if s.cfg.Dir != "" {
		b, err := os.ReadFile(s.path(id))
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
	return d, data, true
}

// Has reports whether the index lists id, without reading it.
func (s *Store) Has(id erasure.ShardID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.index.Peek(id)
	return ok
}

func decodeShardFile(id erasure.ShardID, b []byte) (*erasure.Descriptor, []byte, error) {
	if len(b) < shardHeader || string(b[:4]) != shardMagic {
		return nil, nil, errors.New("edge: store: not a shard file")
	}
	var fid [37]byte
	copy(fid[:], b[4:41])
	if !bytes.Equal(fid[:], shardIDBytes(id)) {
		return nil, nil, errors.New("edge: store: shard file holds another shard")
	}
	n := int(binary.BigEndian.Uint16(b[41:43]))
	if len(b) < shardHeader+n+erasure.HashSize {
		return nil, nil, errors.New("edge: store: truncated shard file")
	}
	desc := b[shardHeader : shardHeader+n]
	if erasure.Sum(desc) != erasure.Hash(b[shardHeader+n:shardHeader+n+erasure.HashSize]) {
		return nil, nil, errors.New("edge: store: descriptor does not match its hash")
	}
	d, err := erasure.ParseDescriptor(desc)
	if err != nil {
		return nil, nil, fmt.Errorf("edge: store: %w", err)
	}
	data := b[shardHeader+n+erasure.HashSize:]
	if len(data) != d.ShardLen {
		return nil, nil, &erasure.IntegrityError{Shard: int(id.Index), Reason: "length"}
	}
	return d, data, nil
}

func shardIDBytes(id erasure.ShardID) []byte {
	b := make([]byte, 0, 37)
	b = append(b, id.Segment.Object[:]...)
	b = binary.BigEndian.AppendUint32(b, id.Segment.Index)
	return append(b, id.Index)
}

// PutShard stores a shard that has been verified against d. When the disk
// refuses writes it returns ErrStoreUnavailable at once.
func (s *Store) PutShard(id erasure.ShardID, d *erasure.Descriptor, data []byte) error {
	if len(data) != d.ShardLen {
		return &erasure.IntegrityError{Shard: int(id.Index), Reason: "length"}
	}
	if s.cfg.Dir == "" {
		s.add(&storeEntry{id: id, size: int64(len(data)) + 256, d: d, data: data})
		s.stats.writes.Add(1)
		return nil
	}
	if !s.writable.Load() {
		s.stats.skipped.Add(1)
		return ErrStoreUnavailable
	}
	mu := s.stripe(id)
	mu.Lock()
	size, err := s.writeFile(id, d, data)
	var evicted []*storeEntry
	if size > 0 {
		// The file is in place (even if a later step failed): list it.
		s.stats.writes.Add(1)
		evicted = s.addLocked(&storeEntry{id: id, size: size})
	}
	mu.Unlock()
	s.remove(evicted)
	if err != nil {
		s.stats.writeErrors.Add(1)
		s.refuse(err)
		return fmt.Errorf("edge: storing shard %v: %w", id, err)
	}
	return nil
}

func (s *Store) add(e *storeEntry) {
	s.remove(s.addLocked(e))
}

func (s *Store) addLocked(e *storeEntry) []*storeEntry {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.index.Add(e.id, e)
}

// remove deletes evicted entries' files, unless a write has listed the
// shard again meanwhile.
func (s *Store) remove(evicted []*storeEntry) {
	s.stats.evictions.Add(int64(len(evicted)))
	if s.cfg.Dir == "" {
		return
	}
	for _, e := range evicted {
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

// writeFile writes the shard's file and returns its size.
func (s *Store) writeFile(id erasure.ShardID, d *erasure.Descriptor, data []byte) (int64, error) {
	hdr := make([]byte, 0, shardHeader+d.EncodedLen()+erasure.HashSize)
	hdr = append(hdr, shardMagic...)
	hdr = append(hdr, shardIDBytes(id)...)
	hdr = binary.BigEndian.AppendUint16(hdr, uint16(d.EncodedLen()))
	hdr = d.Append(hdr)
	dh := erasure.Sum(hdr[shardHeader:])
	hdr = append(hdr, dh[:]...)
	size := diskSize(int64(len(hdr) + len(data)))
	switch err := s.writeAtomic(s.path(id), hdr, data); {
	case errors.Is(err, errDirSync):
		return size, err // renamed into place, only its directory entry may not be durable
	case err != nil:
		return 0, err
	}
	return size, nil
}

// diskSize rounds a file's length up to whole 4 KiB blocks, what it takes
// on disk, so that many small shards do not overrun the budget.
func diskSize(n int64) int64 { return (n + 4095) &^ 4095 }

var errDirSync = errors.New("edge: store: syncing the directory failed")

// writeAtomic writes parts to final crash-safely: a temporary file in the
// store's tmp directory, fsync, rename, fsync of final's directory. A crash
// at any point leaves either the old file or the new one under final, and
// at worst a temporary file that the next OpenStore removes.
func (s *Store) writeAtomic(final string, parts ...[]byte) error {
	var rnd [8]byte
	rand.Read(rnd[:])
	tmp := filepath.Join(s.cfg.Dir, tmpDir, hex.EncodeToString(rnd[:])+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if errors.Is(err, fs.ErrNotExist) {
		// Someone removed tmp/: make it again rather than fail forever.
		if err = os.MkdirAll(filepath.Dir(tmp), 0o755); err == nil {
			f, err = os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		}
	}
	if err != nil {
		return err
	}
	renamed := false
	defer func() {
		if !renamed {
			f.Close()
			os.Remove(tmp)
		}
	}()
	for _, p := range parts {
		if _, err := f.Write(p); err != nil {
			return err
		}
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	dir := filepath.Dir(final)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := os.Rename(tmp, final); err != nil {
		return err
	}
	renamed = true
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("%w: %w", errDirSync, err)
	}
	return nil
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// refuse stops writes after a write failed for a reason that will fail the
// next ones too (no space, read-only, I/O errors), until a probe succeeds.
func (s *Store) refuse(err error) {
	if !refuses(err) {
		s.log.Warn("a store write failed", "err", err)
		return
	}
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		s.shrinkAfterFull()
	}
	if !s.writable.CompareAndSwap(true, false) {
		return
	}
	s.reasonMu.Lock()
	s.reason = storeErrReason(err)
	s.reasonMu.Unlock()
	s.log.Error("shard store stopped storing; serving goes on from peers and the origin", "reason", s.reason, "err", err)
}

// refuses reports whether err will fail the next writes too: a full,
// read-only or failing disk. Anything else fails one write.
func refuses(err error) bool {
	for _, e := range []error{syscall.ENOSPC, syscall.EDQUOT, syscall.EROFS, syscall.EIO, syscall.EFBIG} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// restoreLimit raises a budget that a full disk lowered back towards the
// configured one, as far as the free space now allows, leaving a tenth of
// it (at least 16 MiB) for everything else.
func (s *Store) restoreLimit() {
	var st syscall.Statfs_t
	if err := syscall.Statfs(s.cfg.Dir, &st); err != nil {
		return
	}
	free := int64(st.Bavail) * int64(st.Bsize)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.index.limit = max(s.index.limit, min(s.cfg.Limit, s.index.Bytes()+free-max(free/10, 16<<20)))
}

// shrinkAfterFull lowers the budget below what the store holds when the
// disk filled up before the budget did (others write there too, or the
// budget was too generous), and evicts to it, so that space comes back and
// the store can write again.
func (s *Store) shrinkAfterFull() {
	s.mu.Lock()
	held := s.index.Bytes()
	newLimit := held - max(held/10, 4096)
	if newLimit < 0 {
		newLimit = 0
	}
	if newLimit >= s.index.limit {
		s.mu.Unlock()
		return
	}
	s.index.limit = newLimit
	evicted := s.index.shrink(newLimit)
	s.mu.Unlock()
	s.log.Warn("disk full below the store's budget: lowered the budget", "limit", newLimit)
	s.remove(evicted)
}

func storeErrReason(err error) string {
	switch {
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return "disk full"
	case errors.Is(err, syscall.EROFS):
		return "read-only file system"
	case errors.Is(err, syscall.EFBIG):
		return "file size limit"
	case errors.Is(err, fs.ErrPermission):
		return "permission denied"
	}
	return "write error: " + err.Error()
}

// Run runs the store's background work until ctx is done: it probes a
// store that stopped writing, and scrubs shards at ScrubRate.
func (s *Store) Run(ctx context.Context) {
	if s.cfg.Dir == "" {
		return
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { s.probeLoop(ctx) })
	if s.cfg.ScrubRate > 0 {
		wg.Go(func() { s.scrubLoop(ctx) })
	}
}

func (s *Store) probeLoop(ctx context.Context) {
	t := time.NewTicker(s.cfg.ProbeInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if s.writable.Load() {
			continue
		}
		if err := s.probe(); err != nil {
			s.log.Debug("shard store still cannot write", "err", err)
			continue
		}
		s.restoreLimit()
		s.writable.Store(true)
		s.log.Info("shard store storing again", "limit", s.Stats().Limit)
	}
}

// probe writes, syncs and removes a small file where shards are written,
// after checking there is room for a few shards.
func (s *Store) probe() error {
	var st syscall.Statfs_t
	if err := syscall.Statfs(s.cfg.Dir, &st); err == nil {
		free, size := int64(st.Bavail)*int64(st.Bsize), int64(st.Blocks)*int64(st.Bsize)
		if free < min(16<<20, size/20) {
			return syscall.ENOSPC
		}
	}
	if err := os.MkdirAll(filepath.Join(s.cfg.Dir, tmpDir), 0o755); err != nil {
		return err
	}
	p := filepath.Join(s.cfg.Dir, tmpDir, "probe.tmp")
	defer os.Remove(p)
	f, err := os.Create(p)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.Write(make([]byte, 64<<10)); err != nil {
		return err
	}
	return f.Sync()
}

// scrubLoop reads and verifies every shard in turn, at most ScrubRate bytes
// a second, forever; Shard deletes what fails.
func (s *Store) scrubLoop(ctx context.Context) {
	for {
		s.mu.Lock()
		ids := s.index.Keys()
		s.mu.Unlock()
		for _, id := range ids {
			s.mu.Lock()
			e, ok := s.index.Peek(id)
			s.mu.Unlock()
			if !ok {
				continue
			}
			s.verifyOne(id, e)
			s.stats.scrubbedShards.Add(1)
			s.stats.scrubbedBytes.Add(e.size)
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Duration(float64(e.size) / float64(s.cfg.ScrubRate) * float64(time.Second))):
			}
		}
		s.stats.scrubPasses.Add(1)
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second): // an empty store does not spin
		}
	}
}

// verifyOne checks one shard file without counting it as a use.
func (s *Store) verifyOne(id erasure.ShardID, e *storeEntry) {
	b, err := os.ReadFile(s.path(id))
	if errors.Is(err, fs.ErrNotExist) {
		s.forget(id, e)
		return
	}
	if err != nil {
		s.corrupt(id, e, err)
		return
	}
	d, data, err := decodeShardFile(id, b)
	if err == nil {
		err = d.VerifyShard(int(id.Index), data)
	}
	if err != nil {
		s.corrupt(id, e, err)
	}
}

// forget drops id from the index if it still names e.
func (s *Store) forget(id erasure.ShardID, e *storeEntry) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur, ok := s.index.Peek(id); !ok || cur != e {
		return false
	}
	s.index.Remove(id)
	return true
}

func (s *Store) corrupt(id erasure.ShardID, e *storeEntry, err error) {
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
func (s *Store) Stats() StoreStats {
	s.mu.Lock()
	st := StoreStats{Bytes: s.index.Bytes(), Shards: s.index.Len(), Limit: s.index.limit}
	s.mu.Unlock()
	st.Writes, st.WriteErrors, st.Skipped = s.stats.writes.Load(), s.stats.writeErrors.Load(), s.stats.skipped.Load()
	st.Evictions, st.Corrupt = s.stats.evictions.Load(), s.stats.corrupt.Load()
	st.ScrubbedBytes, st.ScrubbedShards, st.ScrubPasses = s.stats.scrubbedBytes.Load(), s.stats.scrubbedShards.Load(), s.stats.scrubPasses.Load()
	st.Writable = s.writable.Load()
	if !st.Writable {
		s.reasonMu.Lock()
		st.Reason = s.reason
		s.reasonMu.Unlock()
	}
	return st
}

// Object records are kept beside the shards, one file each under
// records/<two hex digits>/<hash of the key>, written like shards, so that
// a restarted edge knows its objects without asking a peer or the origin.
const (
	recordsDir = "records"
	// maxRecordFiles bounds the records kept on disk; the oldest go first.
	maxRecordFiles = 200_000
	// recordKeep is how long past its freshness a record is kept: a stale
	// record is still worth a cheap revalidation.
	recordKeep = 24 * time.Hour
)

func (s *Store) recordPath(key string) string {
	h := erasure.Sum([]byte(key))
	name := hex.EncodeToString(h[:16])
	return filepath.Join(s.cfg.Dir, recordsDir, name[:2], name)
}

// PutRecord keeps r on disk. It does nothing in memory mode, for pass
// records, or while the disk refuses writes.
func (s *Store) PutRecord(r *Record) error {
	if s.cfg.Dir == "" || r.Pass {
		return nil
	}
	if !s.writable.Load() {
		s.stats.skipped.Add(1)
		return nil
	}
	p := s.recordPath(r.Key)
	mu := &s.stripes[erasure.Sum([]byte(r.Key))[0]%byte(len(s.stripes))]
	mu.Lock()
	if b, err := os.ReadFile(p); err == nil {
		if old, err := parseRecord(b); err == nil && old.Fetched.After(r.Fetched) {
			mu.Unlock()
			return nil // a newer word on this object is already kept
		}
	}
	err := s.writeAtomic(p, r.Append(nil))
	mu.Unlock() // before refuse, which may evict (and take stripes)
	if err != nil && !errors.Is(err, errDirSync) {
		s.stats.writeErrors.Add(1)
		s.refuse(err)
		return fmt.Errorf("edge: storing the record of %s: %w", r.Key, err)
	}
	return nil
}

// ForgetRecord deletes the record kept for key, if any.
func (s *Store) ForgetRecord(key string) {
	if s.cfg.Dir == "" {
		return
	}
	if err := os.Remove(s.recordPath(key)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		s.log.Warn("removing a record failed", "key", key, "err", err)
	}
}

// Records returns the records kept on disk, newest last. It deletes files
// that do not decode, records expired for more than recordKeep, and the
// oldest beyond maxRecordFiles.
func (s *Store) Records() []*Record {
	if s.cfg.Dir == "" {
		return nil
	}
	root := filepath.Join(s.cfg.Dir, recordsDir)
	var out []*Record
	paths := map[*Record]string{}
	now := time.Now()
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil
		}
		r, err := parseRecord(b)
		if err != nil || r.Pass || s.recordPath(r.Key) != p || now.Sub(r.Expires) > recordKeep {
			os.Remove(p)
			return nil
		}
		out = append(out, r)
		paths[r] = p
		return nil
	})
	slices.SortFunc(out, func(a, b *Record) int { return a.Fetched.Compare(b.Fetched) })
	if extra := len(out) - maxRecordFiles; extra > 0 {
		for _, r := range out[:extra] {
			os.Remove(paths[r])
		}
		out = out[extra:]
	}
	return out
}
