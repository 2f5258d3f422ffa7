package edge

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/shoalcdn/shoal/swarm"
)

// The purge log: purges reach members that were down or cut off.
//
// A purge is told to the members that are up (purge.go). One that was
// down, or on the other side of a partition, would keep its copy, and
// its records on disk would come back with it after a restart. So every
// member keeps a log of the purges it knows: for each key or prefix, the
// time of its newest purge, stamped by the edge that took it. Members
// exchange logs:
//
//   - at start, before the records kept on disk are used: they are held
//     back until a peer's log has been merged (or no peer answered within
//     purgeStartWait), and those fetched before a purge that covers them
//     are dropped;
//   - every purgeSyncInterval, with one member picked at random, so that a
//     member cut off by a partition catches up within that interval after
//     it heals. The request carries a digest of the asker's log, and a peer
//     whose log has the same digest answers with nothing.
//
// An entry learned from a peer that was not known drops every record it
// covers (whatever their age: a copy fetched after the purge is only
// fetched again). A record that arrives later from a peer that missed the
// purge (a Stat answer, a replica) is refused when it was fetched before
// the purge: that comparison uses two edges' clocks, which must agree
// (NTP) to within the time between a fetch and a purge.
//
// The log keeps the newest maxPurgeLog entries, in memory and, with a
// store directory, in the file purges there; a member that missed more
// purges than that while away can keep a copy that an evicted entry named
// until it expires. The Stat questions and their layouts
// (swarm.StatPurgeStamped, swarm.StatPurgeLog): swarm/protocol.go.
const (
	maxPurgeLog        = 1024
	purgeSyncInterval  = 10 * time.Second
	purgeStartWait     = 5 * time.Second
	purgeLogFile       = "purges"
	maxPurgeLogPayload = 1 << 20 // swarm.MaxPayload
)

// purgeEntry is one purge: of a key (and its variants) or of a prefix.
type purgeEntry struct {
	pattern string
	prefix  bool
	at      time.Time
}

func (p purgeEntry) id() string {
	if p.prefix {
		return "p" + p.pattern
	}
	return "k" + p.pattern
}

// covers reports whether the purge applies to key.
func (p purgeEntry) covers(key string) bool {
	if p.prefix {
		return strings.HasPrefix(key, p.pattern)
	}
	return key == p.pattern || strings.HasPrefix(key, p.pattern+"\n")
}

// purgeLog is the set of purges a member knows, newest per pattern.
type purgeLog struct {
	mu      sync.Mutex
	entries map[string]purgeEntry
	path    string // the file kept, or ""
}

func newPurgeLog(dir string) *purgeLog {
	l := &purgeLog{entries: map[string]purgeEntry{}}
	if dir != "" {
		l.path = filepath.Join(dir, purgeLogFile)
		if b, err := os.ReadFile(l.path); err == nil {
			if es, err := parsePurgeLog(b); err == nil {
				for _, en := range es {
					l.entries[en.id()] = en
				}
			}
		}
	}
	return l
}

// add merges en and reports whether it was news: no purge of its pattern
// as recent was known. The file is written by save.
func (l *purgeLog) add(en purgeEntry) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if old, ok := l.entries[en.id()]; ok && !old.at.Before(en.at) {
		return false
	}
	l.entries[en.id()] = en
	if len(l.entries) > maxPurgeLog {
		oldest := ""
		for id, e := range l.entries {
			if oldest == "" || e.at.Before(l.entries[oldest].at) {
				oldest = id
			}
		}
		delete(l.entries, oldest)
	}
	return true
}

// save writes the log to its file (atomically: a new file renamed).
func (l *purgeLog) save() {
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

// purgedAt returns the time of the newest purge that covers key, or the
// zero time.
func (l *purgeLog) purgedAt(key string) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	var at time.Time
	for _, e := range l.entries {
		if e.at.After(at) && e.covers(key) {
			at = e.at
		}
	}
	return at
}

// outdated reports whether r was fetched before a purge that covers it.
func (l *purgeLog) outdated(r *Record) bool {
	at := l.purgedAt(r.Key)
	return !at.IsZero() && r.Fetched.Before(at)
}

// sortedLocked returns the entries newest first.
func (l *purgeLog) sortedLocked() []purgeEntry {
	es := make([]purgeEntry, 0, len(l.entries))
	for _, e := range l.entries {
		es = append(es, e)
	}
	slices.SortFunc(es, func(a, b purgeEntry) int {
		if c := b.at.Compare(a.at); c != 0 {
			return c
		}
		return strings.Compare(a.id(), b.id())
	})
	return es
}

// digest summarises the log: equal logs have equal digests.
func (l *purgeLog) digest() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	var d uint64
	for id, e := range l.entries {
		h := fnv.New64a()
		h.Write([]byte(id))
		binary.Write(h, binary.BigEndian, e.at.UnixNano())
		d ^= h.Sum64()
	}
	return d
}

func (l *purgeLog) encode() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.encodeLocked()
}

func (l *purgeLog) encodeLocked() []byte {
	b := []byte{0, 0}
	n := 0
	for _, e := range l.sortedLocked() {
		if len(b)+11+len(e.pattern) > maxPurgeLogPayload {
			break
		}
		var flags byte
		if e.prefix {
			flags = 1
		}
		b = append(b, flags)
		b = binary.BigEndian.AppendUint64(b, uint64(e.at.UnixNano()))
		b = binary.BigEndian.AppendUint16(b, uint16(len(e.pattern)))
		b = append(b, e.pattern...)
		n++
	}
	binary.BigEndian.PutUint16(b, uint16(n))
	return b
}

var errPurgeLog = errors.New("edge: malformed purge log")

// parsePurgeLog decodes a log that fills b exactly.
func parsePurgeLog(b []byte) ([]purgeEntry, error) {
	if len(b) < 2 {
		return nil, errPurgeLog
	}
	n := int(binary.BigEndian.Uint16(b))
	if n > maxPurgeLog {
		return nil, fmt.Errorf("%w: %d entries", errPurgeLog, n)
	}
	b = b[2:]
	es := make([]purgeEntry, 0, n)
	for range n {
		if len(b) < 11 {
			return nil, fmt.Errorf("%w: truncated", errPurgeLog)
		}
		flags, at, k := b[0], int64(binary.BigEndian.Uint64(b[1:])), int(binary.BigEndian.Uint16(b[9:]))
		b = b[11:]
		if flags&^1 != 0 || k == 0 || k > maxRecordKey || k > len(b) || at <= 0 {
			return nil, fmt.Errorf("%w: bad entry", errPurgeLog)
		}
		es = append(es, purgeEntry{pattern: string(b[:k]), prefix: flags&1 != 0, at: time.Unix(0, at)})
		b = b[k:]
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", errPurgeLog, len(b))
	}
	return es, nil
}

// stampedPurge is the Stat key of a swarm.StatPurgeStamped.
func stampedPurge(en purgeEntry) []byte {
	mode := append(swarm.AppendStat(nil, swarm.StatPurgeStamped), 0)
	if en.prefix {
		mode[1] = 1
	}
	b := binary.BigEndian.AppendUint64(mode, uint64(en.at.UnixNano()))
	return append(b, en.pattern...)
}

func parseStampedPurge(b []byte) (purgeEntry, error) {
	if len(b) < 10 || b[0]&^1 != 0 {
		return purgeEntry{}, fmt.Errorf("%w: stamped purge of %d bytes", errPurgeLog, len(b))
	}
	at := int64(binary.BigEndian.Uint64(b[1:]))
	if at <= 0 {
		return purgeEntry{}, fmt.Errorf("%w: time %d", errPurgeLog, at)
	}
	return purgeEntry{pattern: string(b[9:]), prefix: b[0]&1 != 0, at: time.Unix(0, at)}, nil
}

// applyPurge logs en and, when it is news, drops what it covers here. It
// returns how many records were dropped.
func (p *purger) applyPurge(en purgeEntry) int {
	if !p.entries.add(en) {
		return 0
	}
	p.entries.save()
	return p.purgeLocal(en.pattern, en.prefix)
}

// mergePurgeLog applies the entries of a peer's log.
func (p *purger) mergePurgeLog(b []byte) error {
	es, err := parsePurgeLog(b)
	if err != nil {
		return err
	}
	news := false
	for _, en := range es {
		if !p.entries.add(en) {
			continue
		}
		news = true
		n := p.purgeLocal(en.pattern, en.prefix)
		p.log.Info("purge learned from a peer", "pattern", en.pattern, "prefix", en.prefix, "at", en.at, "dropped", n)
	}
	if news {
		p.entries.save()
	}
	return nil
}

// syncPurgeLog asks peer for its log and merges it.
func (p *purger) syncPurgeLog(ctx context.Context, peer string) error {
	payload := binary.BigEndian.AppendUint64(swarm.AppendStat(nil, swarm.StatPurgeLog), p.entries.digest())
	b, err := p.node.Stat(ctx, peer, payload)
	if err != nil || len(b) == 0 {
		return err
	}
	return p.mergePurgeLog(b)
}

// answerPurgeLog answers a swarm.StatPurgeLog request.
func (p *purger) answerPurgeLog(payload []byte) ([]byte, error) {
	if len(payload) != 8 {
		return nil, fmt.Errorf("%w: log request of %d bytes", errPurgeLog, len(payload))
	}
	if binary.BigEndian.Uint64(payload) == p.entries.digest() {
		return nil, nil
	}
	return p.entries.encode(), nil
}

// expectsPeers reports whether this edge is configured to have peers
// (static ones or gossip seeds), who may know purges it missed.
func expectsPeers(sc swarm.Config) bool {
	return len(sc.Peers) > 1 || sc.Gossip != nil && len(sc.Gossip.Join) > 0
}

// otherMembers returns the members but this edge.
func (p *purger) otherMembers() []string {
	self := p.node.Self()
	return slices.DeleteFunc(p.node.Members(), func(m string) bool { return m == self })
}

// runPurgeSync admits the records kept on disk once a peer's log is
// merged (see above), then syncs with a random member every
// purgeSyncInterval until ctx ends.
func (p *purger) runPurgeSync(ctx context.Context, held []*Record) {
	start := time.Now()
	for len(held) > 0 && ctx.Err() == nil {
		others := p.otherMembers()
		synced := false
		for _, m := range others {
			sctx, cancel := context.WithTimeout(ctx, time.Second)
			err := p.syncPurgeLog(sctx, m)
			cancel()
			if err == nil {
				synced = true
				break
			}
		}
		if synced || time.Since(start) > purgeStartWait {
			if !synced {
				p.log.Warn("no peer's purge log could be had; using the records kept on disk as they are", "records", len(held))
			}
			break
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
	p.admitRecords(held)
	t := time.NewTicker(purgeSyncInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		others := p.otherMembers()
		if len(others) == 0 {
			continue
		}
		m := others[rand.IntN(len(others))]
		sctx, cancel := context.WithTimeout(ctx, p.peerTimeout)
		if err := p.syncPurgeLog(sctx, m); err != nil {
			p.log.Debug("purge log sync failed", "peer", m, "err", err)
		}
		cancel()
	}
}

// admitRecords adds the records kept on disk that no known purge
// outdates and that nothing newer replaced meanwhile; the others are
// deleted from the disk.
func (p *purger) admitRecords(held []*Record) {
	for _, r := range held {
		if p.entries.outdated(r) {
			p.store.ForgetRecord(r.Key)
			continue
		}
		if cur, ok := p.held.Get(r.Key); ok && !cur.Fetched.Before(r.Fetched) {
			continue
		}
		p.held.Add(r.Key, r) // stale ones are revalidated when asked for
	}
}
