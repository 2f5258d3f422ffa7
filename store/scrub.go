package store

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"time"

	"github.com/shoalcdn/shoal/erasure"
)

// scrubLoop reads and verifies every shard in turn, at most ScrubRate bytes
// a second, forever; what fails is deleted and counted, as a read would.
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
func (s *Store) verifyOne(id erasure.ShardID, e *entry) {
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
