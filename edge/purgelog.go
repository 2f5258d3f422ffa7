package edge

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/shoalcdn/shoal/internal/purgelog"
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
// The log keeps the newest purgelog.MaxEntries entries, in memory and, with a
// store directory, in the file purges there; a member that missed more
// purges than that while away can keep a copy that an evicted entry named
// until it expires. The Stat questions and their layouts
// (swarm.StatPurgeStamped, swarm.StatPurgeLog): swarm/protocol.go.
const (
	purgeSyncInterval = 10 * time.Second
	purgeStartWait    = 5 * time.Second
)

// purgeEntry and purgeLog are internal/purgelog's: the log, its
// encoding and its file.
type (
	purgeEntry = purgelog.Entry
	purgeLog   = purgelog.Log
)

// outdated reports whether r was fetched before a purge in l that covers
// it.
func outdated(l *purgeLog, r *Record) bool {
	at := l.PurgedAt(r.Key)
	return !at.IsZero() && r.Fetched.Before(at)
}

// stampedPurge is the Stat key of a swarm.StatPurgeStamped.
func stampedPurge(en purgeEntry) []byte {
	return purgelog.AppendStamped(swarm.AppendStat(nil, swarm.StatPurgeStamped), en)
}

// applyPurge logs en and, when it is news, drops what it covers here. It
// returns how many records were dropped.
func (p *purger) applyPurge(en purgeEntry) int {
	if !p.entries.Add(en) {
		return 0
	}
	p.entries.Save()
	return p.purgeLocal(en.Pattern, en.Prefix)
}

// mergePurgeLog applies the entries of a peer's log.
func (p *purger) mergePurgeLog(b []byte) error {
	es, err := purgelog.Parse(b)
	if err != nil {
		return err
	}
	news := false
	for _, en := range es {
		if !p.entries.Add(en) {
			continue
		}
		news = true
		n := p.purgeLocal(en.Pattern, en.Prefix)
		p.log.Info("purge learned from a peer", "pattern", en.Pattern, "prefix", en.Prefix, "at", en.At, "dropped", n)
	}
	if news {
		p.entries.Save()
	}
	return nil
}

// syncPurgeLog asks peer for its log and merges it.
func (p *purger) syncPurgeLog(ctx context.Context, peer string) error {
	payload := binary.BigEndian.AppendUint64(swarm.AppendStat(nil, swarm.StatPurgeLog), p.entries.Digest())
	b, err := p.node.Stat(ctx, peer, payload)
	if err != nil || len(b) == 0 {
		return err
	}
	return p.mergePurgeLog(b)
}

// answerPurgeLog answers a swarm.StatPurgeLog request.
func (p *purger) answerPurgeLog(payload []byte) ([]byte, error) {
	if len(payload) != 8 {
		return nil, fmt.Errorf("%w: log request of %d bytes", purgelog.ErrMalformed, len(payload))
	}
	if binary.BigEndian.Uint64(payload) == p.entries.Digest() {
		return nil, nil
	}
	return p.entries.Encode(), nil
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
		if outdated(p.entries, r) {
			p.store.ForgetRecord(r.Key)
			continue
		}
		if cur, ok := p.held.Get(r.Key); ok && !cur.Fetched.Before(r.Fetched) {
			continue
		}
		p.held.Add(r.Key, r) // stale ones are revalidated when asked for
	}
}
