package edge

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/shoalcdn/shoal/erasure"
	"github.com/shoalcdn/shoal/internal/httpcache"
	"github.com/shoalcdn/shoal/swarm"
)

// Fill leases (streamed fills, the default). A miss is one origin GET for the
// whole fleet: the edge that took it asks the object's coordinator for a
// lease on the key (swarm.StatLease), and the coordinator answers with a
// usable record, with the lease (the asker fetches the object, streamed.go),
// or with the member filling it and the record its response header made,
// so that the asker reads the segments from that member as they are cut.
// An ask that arrives before the holder sent its record waits for it, at
// most until the lease's deadline. A lease ends when its holder sends the
// final record or gives up, or when its deadline (renewed by the holder
// while it streams) passes or its holder is taken for dead: the next asker
// gets it. The coordinator keeps the record only once the fill is done, so
// that nothing reads a half-filled object through the segments'
// coordinators.

// The kinds of a StatLease payload and of its answer (swarm/lease.go).
const (
	leaseAsk    = swarm.LeaseAsk
	leaseHeader = swarm.LeaseHeader
	leaseDone   = swarm.LeaseDone
	leaseAbort  = swarm.LeaseAbort
	leaseAgain  = swarm.LeaseAgain
	leaseFresh  = swarm.LeaseFresh
	leaseRenew  = swarm.LeaseRenew
	leaseStale  = swarm.LeaseStale
	leaseVary   = swarm.LeaseVary
	leaseKnown  = swarm.LeaseKnown

	leaseUsable  = swarm.LeaseUsable
	leaseGranted = swarm.LeaseGranted
	leaseFilling = swarm.LeaseFilling
	leaseVaries  = swarm.LeaseVaries
)

// leaseMsg is a StatLease payload with its record decoded: ask carries
// key, header and done rec, abort key; member is the asker or the holder.
type leaseMsg struct {
	kind   byte
	member string
	key    string
	rec    *Record
	gone   string // leaseAgain: the holder the asker could not reach
	vary   string // leaseVary: the response's Vary
}

// append appends m's encoding (after the mode byte) to b.
func (m *leaseMsg) append(b []byte) []byte {
	w := swarm.LeaseMsg{Kind: m.kind, Member: m.member, Key: m.key, Gone: m.gone, Vary: m.vary}
	if m.rec != nil {
		w.Record = m.rec.Append(nil)
	}
	return w.Append(b)
}

// errLease reports a lease message whose record does not fit it (the
// framing's errors are swarm.ErrLease).
var errLease = errors.New("edge: malformed lease message")

// parseLeaseMsg decodes a StatLease payload and its record.
func parseLeaseMsg(b []byte) (*leaseMsg, error) {
	w, err := swarm.ParseLeaseMsg(b)
	if err != nil {
		return nil, err
	}
	m := &leaseMsg{kind: w.Kind, member: w.Member, key: w.Key, gone: w.Gone, vary: w.Vary}
	if w.Record == nil {
		return m, nil
	}
	r, err := parseRecord(w.Record)
	if err != nil {
		return nil, err
	}
	if m.kind != leaseDone && r.Pass {
		return nil, fmt.Errorf("%w: a pass record in a header", errLease)
	}
	m.rec, m.key = r, r.Key
	return m, nil
}

// leaseAnswer is the answer to a lease ask, with its record decoded.
type leaseAnswer struct {
	kind       byte
	fromOrigin bool   // leaseUsable: the coordinator asked the origin for it
	holder     string // leaseFilling
	vary       string // leaseVaries
	rec        *Record
}

func (a *leaseAnswer) append(b []byte) []byte {
	w := swarm.LeaseAnswer{Kind: a.kind, FromOrigin: a.fromOrigin, Holder: a.holder, Vary: a.vary}
	if a.rec != nil {
		w.Record = a.rec.Append(nil)
	}
	return w.Append(b)
}

func parseLeaseAnswer(b []byte) (*leaseAnswer, error) {
	w, err := swarm.ParseLeaseAnswer(b)
	if err != nil {
		return nil, err
	}
	a := &leaseAnswer{kind: w.Kind, fromOrigin: w.FromOrigin, holder: w.Holder, vary: w.Vary}
	if w.Record == nil {
		return a, nil
	}
	r, err := parseRecord(w.Record)
	if err != nil {
		return nil, err
	}
	if a.kind != leaseUsable && r.Pass {
		return nil, fmt.Errorf("%w: a pass record being filled or revalidated", errLease)
	}
	a.rec = r
	return a, nil
}

// fillLease is a coordinator's lease on one key.
type fillLease struct {
	holder   string
	deadline time.Time // wall clock
	rec      *Record   // from the holder's header message, nil before
	// changed is closed and replaced at every change. The holder sends
	// done only once the shards of its segments are at their holders:
	// until then askers read the object through it.
	changed chan struct{}
}

// leaseTable holds the leases of the keys this edge coordinates.
type leaseTable struct {
	mu sync.Mutex
	m  map[string]*fillLease
}

// filling returns the holder and record of a live lease on key this edge
// coordinates, if its holder sent the record.
func (lt *leaseTable) filling(key string) (string, *Record) {
	lt.mu.Lock()
	defer lt.mu.Unlock()
	if l := lt.m[key]; l != nil && l.rec != nil && time.Now().Before(l.deadline) {
		return l.holder, l.rec
	}
	return "", nil
}

// leaseTTL is how long a lease lives without word from its holder: the
// origin's time to answer, renewed every third of it while the holder
// streams.
func (s *streamer) leaseTTL() time.Duration { return (*Edge)(s).originTimeout() }

// leasePoll is how often a waiting ask looks again at whether the holder
// is still alive.
const leasePoll = 250 * time.Millisecond

// answerLease answers asker's ask for key as the key's coordinator.
func (s *streamer) answerLease(ctx context.Context, asker, key, gone string, known bool) (*leaseAnswer, error) {
	e := (*Edge)(s)
	lt := &e.leases
	if gone != "" && gone != e.node.Self() && !s.reachable(ctx, gone) {
		lt.mu.Lock()
		if l := lt.m[key]; l != nil && l.holder == gone {
			delete(lt.m, key)
			close(l.changed)
		}
		lt.mu.Unlock()
	}
	for {
		now := time.Now()
		lt.mu.Lock()
		if lt.m == nil {
			lt.m = map[string]*fillLease{}
		}
		l := lt.m[key]
		var last *Record // of a lease that moved on: to revalidate
		if l != nil && (now.After(l.deadline) || l.holder == asker || !e.node.Alive(l.holder) || l.rec != nil && (!l.rec.Fresh(e.cfg.Now()) || outdated(e.purges, l.rec))) {
			// Expired, or the holder is gone or asks again (it lost the
			// fill it had), or its response may not be reused without
			// the origin (max-age=0, no-cache...: RFC 9111 §4.2), or was
			// purged: the lease moves on.
			delete(lt.m, key)
			close(l.changed)
			if l.rec != nil && !outdated(e.purges, l.rec) {
				last = l.rec
			}
			l = nil
		}
		if l != nil && l.rec != nil {
			lt.mu.Unlock()
			return &leaseAnswer{kind: leaseFilling, holder: l.holder, rec: l.rec}, nil
		}
		if l == nil {
			rec, ok := e.records.Get(key)
			if ok && outdated(e.purges, rec) {
				e.forgetRecord(rec) // a copy that arrived after its purge
				rec, ok = nil, false
			}
			if ok && rec.Fresh(e.cfg.Now()) {
				lt.mu.Unlock()
				return &leaseAnswer{kind: leaseUsable, rec: rec}, nil
			}
			if fields, varies := e.vary.get().Get(key); varies && !known && httpcache.TargetOf(key) == key {
				// The asker's request may select another variant than the
				// key's own: it asks again for the one it selects.
				lt.mu.Unlock()
				return &leaseAnswer{kind: leaseVaries, vary: strings.Join(fields, ", ")}, nil
			}
			lt.m[key] = &fillLease{holder: asker, deadline: now.Add(s.leaseTTL()), changed: make(chan struct{})}
			lt.mu.Unlock()
			a := &leaseAnswer{kind: leaseGranted}
			switch {
			case ok && !rec.Pass:
				a.rec = rec // to revalidate, or to serve if the origin fails
			case last != nil:
				a.rec = last
			}
			return a, nil
		}
		ch, wait := l.changed, min(l.deadline.Sub(now), leasePoll)
		lt.mu.Unlock()
		t := time.NewTimer(wait)
		select {
		case <-ch:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		}
		t.Stop()
	}
}

// applyLease applies a holder's header, done or abort message.
func (s *streamer) applyLease(m *leaseMsg) error {
	e := (*Edge)(s)
	lt := &e.leases
	lt.mu.Lock()
	defer lt.mu.Unlock()
	if lt.m == nil {
		lt.m = map[string]*fillLease{}
	}
	l := lt.m[m.key]
	if m.kind == leaseVary {
		// The holder fills the variant under its own key: the target's
		// lease ends, and its askers learn how it varies.
		e.learnVary(m.key, http.Header{"Vary": {m.vary}})
		if l != nil && l.holder == m.member {
			delete(lt.m, m.key)
			close(l.changed)
		}
		return nil
	}
	if m.kind == leaseStale {
		// The next asker fetches the object again, as a new version.
		if l != nil && l.rec != nil && l.rec.Same(m.rec) {
			delete(lt.m, m.key)
			close(l.changed)
		}
		if old, ok := e.records.Get(m.key); ok && old.Same(m.rec) {
			e.forgetRecord(old)
		}
		return nil
	}
	if l != nil && l.holder != m.member && time.Now().Before(l.deadline) && e.node.Alive(l.holder) {
		return fmt.Errorf("edge: lease on %.80q is held by %s, not %s", m.key, l.holder, m.member)
	}
	switch m.kind {
	case leaseRenew:
		if l == nil || l.holder != m.member {
			l = &fillLease{holder: m.member, changed: make(chan struct{})}
			lt.m[m.key] = l
		}
		l.deadline = time.Now().Add(s.leaseTTL())
		return nil
	case leaseHeader:
		if outdated(e.purges, m.rec) {
			return nil
		}
		if l == nil || l.holder != m.member {
			// The lease expired meanwhile (or this member became the
			// coordinator): the holder still streams, so it is its own.
			l = &fillLease{holder: m.member, changed: make(chan struct{})}
			lt.m[m.key] = l
		}
		l.deadline = time.Now().Add(s.leaseTTL())
		if l.rec == nil {
			l.rec = m.rec
			close(l.changed)
			l.changed = make(chan struct{})
		}
		return nil
	case leaseDone, leaseAbort, leaseFresh:
		if l != nil {
			delete(lt.m, m.key)
			close(l.changed)
		}
		if m.kind != leaseAbort && !outdated(e.purges, m.rec) {
			if old, ok := e.records.Get(m.key); !ok || !old.Fetched.After(m.rec.Fetched) {
				e.keepRecord(m.rec)
			}
		}
		return nil
	}
	return fmt.Errorf("%w: kind %d", errLease, m.kind)
}

// statLease answers a peer's StatLease.
func (s *streamer) statLease(ctx context.Context, payload []byte) ([]byte, error) {
	e := (*Edge)(s)
	m, err := parseLeaseMsg(payload)
	if err != nil {
		return nil, err
	}
	if _, _, err := e.sites.split(m.key); err != nil {
		return nil, err
	}
	if m.kind != leaseAsk && m.kind != leaseAgain && m.kind != leaseKnown {
		return nil, s.applyLease(m)
	}
	a, err := s.answerLease(ctx, m.member, m.key, m.gone, m.kind == leaseKnown)
	if err != nil {
		return nil, err
	}
	return a.append(nil), nil
}

// askLease asks key's coordinator (the first reachable member of the
// key's ranking, this edge at the latest) for a lease, and returns its
// answer and the coordinator. An error means the fleet cannot lease: a
// member that predates leases, or a coordinator failing.
//
// gone, when not empty, is the holder the coordinator named before, which
// this edge could not reach.
func (s *streamer) askLease(ctx context.Context, key, gone string) (*leaseAnswer, string, error) {
	e := (*Edge)(s)
	self := e.node.Self()
	m := &leaseMsg{kind: leaseAsk, member: self, key: key}
	_, known := e.vary.get().Get(key)
	switch {
	case gone != "":
		m.kind, m.gone = leaseAgain, gone
	case known:
		m.kind = leaseKnown
	}
	payload := m.append(swarm.AppendStat(nil, swarm.StatLease))
	if len(payload) > swarm.MaxKey || len(self) > swarm.MaxLeaseMember || len(gone) > swarm.MaxLeaseMember {
		return nil, "", fmt.Errorf("edge: lease of %.80q: key too long", key)
	}
	var a *leaseAnswer
	var purged bool
	peer, err := e.askCoordinator(ctx, key, payload, func(peer string, b []byte) bool {
		ans, perr := parseLeaseAnswer(b)
		if perr == nil && ans.rec != nil && ans.rec.Key != key {
			perr = fmt.Errorf("%w: record of another key", errLease)
		}
		if perr != nil {
			e.log.WarnContext(ctx, "peer sent a bad lease answer", "peer", peer, "key", key, "err", perr)
			return false
		}
		a, purged = ans, ans.rec != nil && outdated(e.purges, ans.rec)
		return true
	})
	switch {
	case err != nil && peer == "":
		return nil, "", err
	case err != nil:
		return nil, peer, fmt.Errorf("edge: lease of %.80q at %s: %w", key, peer, err)
	case purged:
		return nil, peer, fmt.Errorf("edge: lease of %.80q: %s sent a purged record", key, peer)
	case peer != "":
		return a, peer, nil
	}
	a, err = s.answerLease(ctx, self, key, gone, known)
	return a, self, err
}

// reachable reports whether peer answers a probe within PeerTimeout: a
// GetShard of the zero shard ID, which a live member answers "not found"
// from its index.
func (s *streamer) reachable(ctx context.Context, peer string) bool {
	e := (*Edge)(s)
	pctx, cancel := context.WithTimeout(ctx, e.cfg.PeerTimeout)
	defer cancel()
	_, _, err := e.node.GetShard(pctx, peer, erasure.ShardID{})
	var re *swarm.RemoteError
	return err == nil || errors.Is(err, swarm.ErrNotFound) || errors.As(err, &re)
}

// tellLease sends a holder's message to the coordinator that granted the
// lease (applied here when it is this edge).
func (s *streamer) tellLease(ctx context.Context, coord string, m *leaseMsg) error {
	e := (*Edge)(s)
	if coord == e.node.Self() {
		return s.applyLease(m)
	}
	payload := m.append(swarm.AppendStat(nil, swarm.StatLease))
	if len(payload) > swarm.MaxKey {
		return fmt.Errorf("edge: lease message for %.80q too large", m.key)
	}
	_, err := e.node.Stat(ctx, coord, payload)
	return err
}
