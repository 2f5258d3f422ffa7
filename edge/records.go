package edge

import (
	"context"

	"errors"
	"fmt"
	"time"

	"github.com/shoalcdn/shoal/internal/httpcache"
	"github.com/shoalcdn/shoal/internal/purgelog"
	"github.com/shoalcdn/shoal/swarm"
)

// Object records: one lookup per fleet. An edge asks the object's
// coordinator (the top-ranked member for the key); the coordinator answers
// from its records or asks the origin with one HEAD, coalesced, and
// replicates the result to the next ranks so that the loss of one node does
// not send the fleet back to the origin.
//
// The Stat questions (swarm.StatMode) and their payloads: swarm/protocol.go.
const (
	// recordReplicas is how many members beyond the coordinator keep a copy.
	recordReplicas = 2
	// coordinatorTries bounds how far down the ranking a lookup walks
	// before the edge asks the origin itself.
	coordinatorTries = 3
)

// record returns the record for key and whether the origin had to be
// asked for it: the fresh one, or a stale one where the origin allows it
// (stale-while-revalidate, then refreshed in the background;
// stale-if-error or Config.ServeStaleOnError when the lookup fails). When
// stale is not nil, a fetch found that version changed at the origin: a
// record of the same version is not taken from anywhere, and the
// coordinator asks the origin again (once for the fleet).
func (e *Edge) record(ctx context.Context, key string, stale *Record) (*Record, bool, error) {
	local, ok := e.records.Get(key)
	if ok && usable(local, stale, e.cfg.Now()) {
		// A forwarded miss that made this record may still be streaming
		// the one segment it stores (miss.go): its bytes are in memory
		// once it ends, where reading now would fetch them again.
		if _, pending := e.pending.Load(key); pending {
			wctx, cancel := context.WithTimeout(ctx, pendingWait)
			e.waitPending(wctx, key)
			cancel()
		}
		return local, false, nil
	}
	now := e.cfg.Now()
	if ok && stale == nil && e.whileRevalidating(local, now) {
		if e.cfg.RangedFills || e.signed != nil { // else streamedMiss started a streamed revalidation
			e.refreshInBackground(key, func(ctx context.Context) { e.lookup(ctx, key, nil) })
		}
		return local, false, nil
	}
	r, fromOrigin, err := e.lookup(ctx, key, stale)
	if err != nil && ok && stale == nil && e.onError(local, now) {
		e.log.InfoContext(ctx, "origin failing, serving a stale object", "key", key, "err", err)
		return local, false, nil
	}
	return r, fromOrigin, err
}

// lookup asks the object's coordinator for the record of key, walking
// down the ranking past unreachable members; the origin when this edge
// is the first reachable one.
func (e *Edge) lookup(ctx context.Context, key string, stale *Record) (*Record, bool, error) {
	payload := append(swarm.AppendStat(nil, swarm.StatResolve), key...)
	if stale != nil {
		s := *stale
		s.Header = nil // the version is what matters, and it keeps the payload small
		payload = s.Append(swarm.AppendStat(nil, swarm.StatRefresh))
	}
	var rec *Record
	var fromOrigin bool
	peer, err := e.askCoordinator(ctx, key, payload, func(peer string, b []byte) bool {
		var r *Record
		perr := errRecord
		if len(b) > 1 {
			r, perr = parseRecord(b[1:])
		}
		if perr != nil || r.Key != key {
			e.log.WarnContext(ctx, "peer sent a bad record", "peer", peer, "key", key, "err", perr)
			return false
		}
		if outdated(e.purges, r) {
			// The peer missed a purge of it: it learns of it at its
			// next purge log sync (purgelog.go).
			e.log.InfoContext(ctx, "peer sent a purged record", "peer", peer, "key", key)
			return false
		}
		r.revalidated = b[0]&2 != 0
		rec, fromOrigin = r, b[0]&1 != 0
		return true
	})
	switch {
	case err != nil && peer == "":
		return nil, false, err
	case err != nil:
		// The coordinator is up and could not get the record: the origin
		// is failing. Asking it again from here would only add load.
		return nil, false, fmt.Errorf("edge: record for %s from %s: %w", key, peer, err)
	case peer == "":
		return e.resolve(ctx, key, stale)
	}
	e.keepRecord(rec)
	return rec, fromOrigin, nil
}

// askCoordinator sends payload, a Stat, to key's coordinator: the first
// member of key's ranking before this edge that is alive and answers, at
// most coordinatorTries of them. answer takes a reply and reports whether
// it was usable (else the next member is asked). It returns the member
// whose reply was taken, or "" when none was: this edge is the
// coordinator then. An error ends the walk: the context's (peer ""), or a
// member's answer that it failed (that member), which the next would only
// repeat.
func (e *Edge) askCoordinator(ctx context.Context, key string, payload []byte, answer func(peer string, b []byte) bool) (string, error) {
	self := e.node.Self()
	tried := 0
	for _, peer := range e.node.RankAll([]byte(key)) {
		if peer == self || tried == coordinatorTries {
			break
		}
		if !e.node.Alive(peer) {
			continue
		}
		tried++
		b, err := e.node.Stat(ctx, peer, payload)
		if err == nil {
			if answer(peer, b) {
				return peer, nil
			}
			continue
		}
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		var re *swarm.RemoteError
		if errors.As(err, &re) {
			return peer, err
		}
		e.log.DebugContext(ctx, "coordinator unreachable, trying the next", "peer", peer, "key", key, "err", err)
	}
	return "", nil
}

// usable reports whether r can answer a lookup: fresh, and not the
// version a caller found gone.
func usable(r *Record, stale *Record, now time.Time) bool {
	return r.Fresh(now) && (stale == nil || !r.Same(stale))
}

// resolve answers as the acting coordinator for key: from the local
// record if usable (or stale where the origin allows it, as in record),
// else from the origin, one lookup per key at a time.
func (e *Edge) resolve(ctx context.Context, key string, stale *Record) (*Record, bool, error) {
	e.waitPending(ctx, key) // a forwarded miss of key makes the record
	local, ok := e.records.Get(key)
	if ok && usable(local, stale, e.cfg.Now()) {
		return local, false, nil
	}
	now := e.cfg.Now()
	if ok && stale == nil && e.whileRevalidating(local, now) {
		// Keyed apart from record's refresh, which may be the caller.
		e.refreshInBackground("origin "+key, func(ctx context.Context) { e.resolveAtOrigin(ctx, key, nil) })
		return local, false, nil
	}
	r, err := e.resolveAtOrigin(ctx, key, stale)
	if err != nil {
		if ok && stale == nil && e.onError(local, now) {
			e.log.InfoContext(ctx, "origin failing, serving a stale object", "key", key, "err", err)
			return local, false, nil
		}
		return nil, false, err
	}
	return r, true, nil
}

// resolveAtOrigin asks the origin for key's record, once at a time per
// key on this edge: a conditional HEAD when a stale record of the key is
// held (a 304 refreshes it), a plain HEAD otherwise.
func (e *Edge) resolveAtOrigin(ctx context.Context, key string, stale *Record) (*Record, error) {
	flight := key
	if stale != nil {
		flight = "refresh " + key
	}
	ch := e.stats.DoChan(flight, func() (any, error) {
		old, ok := e.records.Get(key)
		if ok && usable(old, stale, e.cfg.Now()) {
			return old, nil
		}
		if !ok || old.Pass || stale != nil {
			old = nil
		}
		// Detached from the first caller, so one client hanging up does not
		// fail the others waiting on the same lookup.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		r, err := e.headOrigin(ctx, key, old)
		if err != nil {
			return nil, err
		}
		e.keepRecord(r)
		e.replicate(r)
		return r, nil
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return nil, res.Err
		}
		return res.Val.(*Record), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// keepRecord remembers r, in memory at once and on disk in the background
// (a bounded number of disk writes at a time, tasks.diskWrite; beyond that the disk copy
// waits for the next lookup of the object).
func (e *Edge) keepRecord(r *Record) {
	e.records.Add(r.Key, r)
	if r.Pass {
		return
	}
	e.bg.diskWrite(false, func() {
		if err := putRecord(e.store, r); err != nil {
			e.log.Debug("record not kept on disk", "key", r.Key, "err", err)
		}
	})
}

// forgetRecord drops the record of r's key if it still names r's version.
func (e *Edge) forgetRecord(r *Record) {
	if cur, ok := e.records.Get(r.Key); ok && cur.Same(r) {
		e.records.Remove(r.Key)
		e.store.ForgetRecord(r.Key)
	}
}

// replicate pushes r to the members ranked just below this one for its key.
func (e *Edge) replicate(r *Record) {
	payload := r.Append(swarm.AppendStat(nil, swarm.StatReplicate))
	if len(payload) > swarm.MaxKey {
		return
	}
	self := e.node.Self()
	sent := 0
	for _, peer := range e.node.RankAll([]byte(r.Key)) {
		if sent == recordReplicas {
			break
		}
		if peer == self || !e.node.Alive(peer) {
			continue
		}
		sent++
		e.bg.goBackground(func(ctx context.Context) {
			if _, err := e.node.Stat(ctx, peer, payload); err != nil {
				e.log.Debug("record replication failed", "peer", peer, "key", r.Key, "err", err)
			}
		})
	}
}

// peerHandler answers Stat and Fill for peers.
type peerHandler Edge

var _ swarm.Handler = (*peerHandler)(nil)

func (h *peerHandler) Stat(ctx context.Context, payload []byte) ([]byte, error) {
	e := (*Edge)(h)
	mode, payload, err := swarm.SplitStat(payload)
	if err != nil {
		return nil, err
	}
	switch mode {
	case swarm.StatResolve, swarm.StatRefresh:
		key, stale := string(payload), (*Record)(nil)
		if mode == swarm.StatRefresh {
			if stale, err = parseRecord(payload); err != nil {
				return nil, err
			}
			key = stale.Key
		}
		if _, _, err := e.sites.split(key); err != nil {
			return nil, err // a fleet whose edges front different sites
		}
		if httpcache.TargetOf(key) != key && !e.fleetVariant(key) {
			return nil, fmt.Errorf("edge: the fleet does not fetch the variant %.80q", key)
		}
		r, fromOrigin, err := e.resolve(ctx, key, stale)
		if err != nil {
			return nil, err
		}
		var flags byte
		if fromOrigin {
			flags |= 1
		}
		if fromOrigin && r.revalidated {
			flags |= 2
		}
		return r.Append([]byte{flags}), nil
	case swarm.StatReplicate:
		r, err := parseRecord(payload)
		if err != nil {
			return nil, err
		}
		if _, _, err := e.sites.split(r.Key); err != nil {
			return nil, err
		}
		if outdated(e.purges, r) {
			return nil, nil // from a member that missed a purge (purgelog.go)
		}
		if old, ok := e.records.Get(r.Key); !ok || !old.Fetched.After(r.Fetched) {
			e.keepRecord(r)
		}
		return nil, nil
	case swarm.StatWarm:
		return e.reader.warm(ctx, payload)
	case swarm.StatPurge, swarm.StatPurgePrefix:
		e.purger.applyPurge(purgeEntry{Pattern: string(payload), Prefix: mode == swarm.StatPurgePrefix, At: e.cfg.Now()})
		return nil, nil
	case swarm.StatPurgeStamped:
		en, err := purgelog.ParseStamped(payload)
		if err != nil {
			return nil, err
		}
		e.purger.applyPurge(en)
		return nil, nil
	case swarm.StatPurgeLog:
		return e.purger.answerPurgeLog(payload)
	case swarm.StatLease:
		return (*streamer)(e).statLease(ctx, payload)
	case swarm.StatPlace:
		return e.filler.take(ctx, payload)
	default:
		return nil, fmt.Errorf("edge: stat mode %v not answered", mode)
	}
}

func (h *peerHandler) Fill(ctx context.Context, payload []byte) (*swarm.Segment, error) {
	return (*Edge)(h).filler.serveFill(ctx, payload)
}
