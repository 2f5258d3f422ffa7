package store

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// A disk that refuses writes (full, read-only, failing) stops the store's
// writes until a probe succeeds; reads go on.

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
	s.reason = errReason(err)
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
	// Never lower than it is, so this evicts nothing; were it to, the
	// files would go as evictions' do.
	evicted := s.index.SetLimit(max(s.index.Limit(), min(s.cfg.Limit, s.index.Bytes()+free-max(free/10, 16<<20))))
	s.mu.Unlock()
	s.remove(evicted)
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
	if newLimit >= s.index.Limit() {
		s.mu.Unlock()
		return
	}
	evicted := s.index.SetLimit(newLimit)
	s.mu.Unlock()
	s.log.Warn("disk full below the store's budget: lowered the budget", "limit", newLimit)
	s.remove(evicted)
}

func errReason(err error) string {
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
