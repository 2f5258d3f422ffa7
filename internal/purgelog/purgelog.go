// Package purgelog is the log of the purges an edge knows: for each key
// or prefix, the time of its newest purge, stamped by the edge that took
// it; its binary encoding (exchanged between members and kept in a file),
// and the stamped purge's. The edge (edge/purgelog.go) exchanges logs and
// drops what they cover. Standard library only.
package purgelog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

const (
	// MaxEntries bounds a log: it keeps its newest entries.
	MaxEntries = 1024
	// File is the name of the log's file in a store directory.
	File = "purges"
	// MaxPayload bounds an encoded log (swarm.MaxPayload).
	MaxPayload = 1 << 20
	// MaxPattern bounds a pattern (the edge's longest cache key).
	MaxPattern = 8 << 10
)

// ErrMalformed reports an encoded log or stamped purge that does not
// decode.
var ErrMalformed = errors.New("purgelog: malformed purge log")

// Entry is one purge: of a key (and its variants) or of a prefix.
type Entry struct {
	Pattern string
	Prefix  bool
	At      time.Time
}

// ID names the entry's pattern: one entry per ID in a log.
func (p Entry) ID() string {
	if p.Prefix {
		return "p" + p.Pattern
	}
	return "k" + p.Pattern
}

// Covers reports whether the purge applies to key (a key's variants are
// the key, a newline, then their fields).
func (p Entry) Covers(key string) bool {
	if p.Prefix {
		return strings.HasPrefix(key, p.Pattern)
	}
	return key == p.Pattern || strings.HasPrefix(key, p.Pattern+"\n")
}

// Log is the set of purges a member knows, newest per pattern. It is safe
// for concurrent use.
type Log struct {
	mu      sync.Mutex
	entries map[string]Entry
	path    string // the file kept, or ""
}

// New returns the log kept in dir's file (empty when there is none, or
// when dir is ""; a file that does not decode is ignored).
func New(dir string) *Log {
	l := &Log{entries: map[string]Entry{}}
	if dir != "" {
		l.path = filepath.Join(dir, File)
		if b, err := os.ReadFile(l.path); err == nil {
			if es, err := Parse(b); err == nil {
				for _, en := range es {
					l.entries[en.ID()] = en
				}
			}
		}
	}
	return l
}

// Add merges en and reports whether it was news: no purge of its pattern
// as recent was known. The file is written by Save.
func (l *Log) Add(en Entry) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if old, ok := l.entries[en.ID()]; ok && !old.At.Before(en.At) {
		return false
	}
	l.entries[en.ID()] = en
	if len(l.entries) > MaxEntries {
		oldest := ""
		for id, e := range l.entries {
			if oldest == "" || e.At.Before(l.entries[oldest].At) {
				oldest = id
			}
		}
		delete(l.entries, oldest)
	}
	return true
}

// Save writes the log to its file (atomically: a new file renamed).
func (l *Log) Save() {
	if l.path == "" {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	tmp := l.path + ".tmp"
	if err := os.WriteFile(tmp, l.encodeLocked(), 0o644); err == nil {
		os.Rename(tmp, l.path)
	}
}

// PurgedAt returns the time of the newest purge that covers key, or the
// zero time.
func (l *Log) PurgedAt(key string) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	var at time.Time
	for _, e := range l.entries {
		if e.At.After(at) && e.Covers(key) {
			at = e.At
		}
	}
	return at
}

// sortedLocked returns the entries newest first.
func (l *Log) sortedLocked() []Entry {
	es := make([]Entry, 0, len(l.entries))
	for _, e := range l.entries {
		es = append(es, e)
	}
	slices.SortFunc(es, func(a, b Entry) int {
		if c := b.At.Compare(a.At); c != 0 {
			return c
		}
		return strings.Compare(a.ID(), b.ID())
	})
	return es
}

// Digest summarises the log: equal logs have equal digests (the XOR over
// the entries of the FNV-1a hash of ID | time, swarm.StatPurgeLog).
func (l *Log) Digest() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	var d uint64
	for id, e := range l.entries {
		h := fnv.New64a()
		h.Write([]byte(id))
		binary.Write(h, binary.BigEndian, e.At.UnixNano())
		d ^= h.Sum64()
	}
	return d
}

// Encode returns the log, newest first, within MaxPayload.
func (l *Log) Encode() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.encodeLocked()
}

func (l *Log) encodeLocked() []byte {
	b := []byte{0, 0}
	n := 0
	for _, e := range l.sortedLocked() {
		if len(b)+11+len(e.Pattern) > MaxPayload {
			break
		}
		var flags byte
		if e.Prefix {
			flags = 1
		}
		b = append(b, flags)
		b = binary.BigEndian.AppendUint64(b, uint64(e.At.UnixNano()))
		b = binary.BigEndian.AppendUint16(b, uint16(len(e.Pattern)))
		b = append(b, e.Pattern...)
		n++
	}
	binary.BigEndian.PutUint16(b, uint16(n))
	return b
}

// Parse decodes a log that fills b exactly.
func Parse(b []byte) ([]Entry, error) {
	if len(b) < 2 {
		return nil, ErrMalformed
	}
	n := int(binary.BigEndian.Uint16(b))
	if n > MaxEntries {
		return nil, fmt.Errorf("%w: %d entries", ErrMalformed, n)
	}
	b = b[2:]
	es := make([]Entry, 0, n)
	for range n {
		if len(b) < 11 {
			return nil, fmt.Errorf("%w: truncated", ErrMalformed)
		}
		flags, at, k := b[0], int64(binary.BigEndian.Uint64(b[1:])), int(binary.BigEndian.Uint16(b[9:]))
		b = b[11:]
		if flags&^1 != 0 || k == 0 || k > MaxPattern || k > len(b) || at <= 0 {
			return nil, fmt.Errorf("%w: bad entry", ErrMalformed)
		}
		es = append(es, Entry{Pattern: string(b[:k]), Prefix: flags&1 != 0, At: time.Unix(0, at)})
		b = b[k:]
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrMalformed, len(b))
	}
	return es, nil
}

// AppendStamped appends the payload of a stamped purge of en (flags (1:
// bit 0 prefix) | time (8, unix ns) | pattern) to b.
func AppendStamped(b []byte, en Entry) []byte {
	var flags byte
	if en.Prefix {
		flags = 1
	}
	b = binary.BigEndian.AppendUint64(append(b, flags), uint64(en.At.UnixNano()))
	return append(b, en.Pattern...)
}

// ParseStamped decodes a stamped purge's payload.
func ParseStamped(b []byte) (Entry, error) {
	if len(b) < 10 || b[0]&^1 != 0 {
		return Entry{}, fmt.Errorf("%w: stamped purge of %d bytes", ErrMalformed, len(b))
	}
	at := int64(binary.BigEndian.Uint64(b[1:]))
	if at <= 0 {
		return Entry{}, fmt.Errorf("%w: time %d", ErrMalformed, at)
	}
	return Entry{Pattern: string(b[9:]), Prefix: b[0]&1 != 0, At: time.Unix(0, at)}, nil
}
