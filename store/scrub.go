package store

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"time"

	"github.com/shoalcdn/shoal/erasure"
)

// A scrub that reads and hashes at its full rate through a flash crowd
// takes CPU (a read and a BLAKE3 pass per shard) from the peers it is
// serving, for files that were mostly just written and verified. So while
// the store is busy (a shard read or stored within scrubBusyFor) it goes
// at a scrubBusySlowdown-th of ScrubRate: it never stops, so a store that
// is always busy is still scrubbed, only more slowly.
const (
	scrubBusyFor      = time.Second
	scrubBusySlowdown = 16
)

// scrubLoop reads and verifies every shard in turn, at most ScrubRate bytes
// a second (less while the store is busy), forever; what fails is deleted
// and counted, as a read would.
func (s *Store) scrubLoop(ctx context.Context) {
	var buf []byte // reused: a fresh buffer a shard would fault its pages in every time
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
			buf = s.verifyOne(id, e, buf)
			s.stats.scrubbedShards.Add(1)
			s.stats.scrubbedBytes.Add(e.size)
			wait := time.Duration(float64(e.size) / float64(s.cfg.ScrubRate) * float64(time.Second))
			if s.busy(time.Now()) {
				wait *= scrubBusySlowdown
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
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

// busy reports whether a shard was read or stored within scrubBusyFor.
func (s *Store) busy(now time.Time) bool {
	return now.UnixNano()-s.lastUse.Load() < int64(scrubBusyFor)
}

// verifyOne checks one shard file without counting it as a use, reading
// it into buf, and returns buf for the next.
func (s *Store) verifyOne(id erasure.ShardID, e *entry, buf []byte) []byte {
	b, err := readFileInto(s.path(id), buf)
	if errors.Is(err, fs.ErrNotExist) {
		s.forget(id, e)
		return b
	}
	if err != nil {
		s.corrupt(id, e, err)
		return b
	}
	d, data, err := decodeShardFile(id, b)
	if err == nil {
		err = d.VerifyShard(int(id.Index), data)
	}
	if err != nil {
		s.corrupt(id, e, err)
	}
	return b
}

// readFileInto is os.ReadFile into buf, grown if the file is larger. It
// returns the file's bytes, which share buf's array when they fit.
func readFileInto(path string, buf []byte) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return buf[:0], err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return buf[:0], err
	}
	// One byte more than the size, to see EOF in the same read, as
	// os.ReadFile does; a file that grew meanwhile is read whole anyway.
	if n := int(st.Size()) + 1; cap(buf) < n {
		buf = make([]byte, 0, n)
	}
	buf = buf[:0]
	for {
		n, err := f.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
	}
}
