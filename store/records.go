package store

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/shoalcdn/shoal/erasure"
)

// Object records are kept beside the shards, one file each under
// records/<two hex digits>/<hash of the key>, written like shards, so that
// a restarted edge knows its objects without asking a peer or the origin.
// A file holds the record's bytes as the caller gave them, nothing else:
// their encoding, which of two records is newer and how long one is worth
// keeping are the caller's (edge/store.go).
const (
	recordsDir = "records"
	// maxRecordFiles bounds the records kept on disk; the oldest go first.
	maxRecordFiles = 200_000
)

// RecordInfo is what the store needs to know of a record it keeps as
// bytes: its key, which names its file, and when it was fetched, which
// orders records (the oldest are dropped first).
type RecordInfo struct {
	Key     string
	Fetched time.Time
}

// StoredRecord is a record kept on disk: what it is, and its bytes.
type StoredRecord struct {
	RecordInfo
	Bytes []byte
}

func (s *Store) recordPath(key string) string {
	h := erasure.Sum([]byte(key))
	name := hex.EncodeToString(h[:16])
	return filepath.Join(s.cfg.Dir, recordsDir, name[:2], name)
}

// PutRecord keeps b as the record of key, crash-safely, unless the record
// already kept for key is newer: isNewer, if not nil, is given that
// record's bytes and says so. It does nothing in memory mode or while the
// disk refuses writes.
func (s *Store) PutRecord(key string, b []byte, isNewer func(old []byte) bool) error {
	if s.cfg.Dir == "" {
		return nil
	}
	if !s.writable.Load() {
		s.stats.skipped.Add(1)
		return nil
	}
	p := s.recordPath(key)
	mu := &s.stripes[erasure.Sum([]byte(key))[0]%byte(len(s.stripes))]
	mu.Lock()
	if isNewer != nil {
		if old, err := os.ReadFile(p); err == nil && isNewer(old) {
			mu.Unlock()
			return nil // a newer word on this object is already kept
		}
	}
	err := s.writeAtomic(p, b)
	mu.Unlock() // before refuse, which may evict (and take stripes)
	if err != nil && !errors.Is(err, errDirSync) {
		s.stats.writeErrors.Add(1)
		s.refuse(err)
		return fmt.Errorf("store: storing the record of %s: %w", key, err)
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

// Records returns the records kept on disk, the most recently fetched
// last. inspect is given each file's bytes and says which record they
// hold; a file it refuses (ok false: the bytes do not decode, or the
// record is no longer worth keeping) is deleted, and so is one not under
// its key's name, and the oldest beyond maxRecordFiles.
func (s *Store) Records(inspect func(b []byte) (info RecordInfo, ok bool)) []StoredRecord {
	if s.cfg.Dir == "" {
		return nil
	}
	root := filepath.Join(s.cfg.Dir, recordsDir)
	type found struct {
		StoredRecord
		path string
	}
	var out []found
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil
		}
		info, ok := inspect(b)
		if !ok || s.recordPath(info.Key) != p {
			os.Remove(p)
			return nil
		}
		out = append(out, found{StoredRecord{info, b}, p})
		return nil
	})
	slices.SortFunc(out, func(a, b found) int { return a.Fetched.Compare(b.Fetched) })
	if extra := len(out) - s.maxRecords; extra > 0 {
		for _, f := range out[:extra] {
			os.Remove(f.path)
		}
		out = out[extra:]
	}
	recs := make([]StoredRecord, len(out))
	for i, f := range out {
		recs[i] = f.StoredRecord
	}
	return recs
}
