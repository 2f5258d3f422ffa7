package edge

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/shoalcdn/shoal/erasure"
	"github.com/shoalcdn/shoal/internal/digest"
	"github.com/shoalcdn/shoal/internal/httpcache"
	"github.com/shoalcdn/shoal/origin"
	"github.com/shoalcdn/shoal/swarm"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// Streamed fills (the default; Config.RangedFills turns them off): a miss
// is one origin GET, sent by the edge that took the client's request once
// the object's coordinator granted it the key's fill lease (lease.go). The
// request is the client's own (its end-to-end fields, through the miss
// proxy, miss.go) without Range: the fill is of the whole object, and the
// client's range is answered from it. The client's conditionals go as
// sent on a cold miss (a 304 or 412 is relayed, and ends the lease); when
// the fleet holds a stale copy, the fleet's own validators replace them
// (a 304 refreshes it). The response header makes the record; a response
// that may not be stored is relayed and leaves a short pass record; a
// storable one of another status, or a variant, is stored from its body
// by the forwarded-miss rules (missResponse). A stored 200 streams to the
// client (a plain GET: the origin's bytes as they arrive; otherwise from
// the segments) while it is cut into segments, each coded, kept in memory
// and placed as it completes (streamBody), so that memory stays at a few
// segments whatever the object's size. Other requests for the object, on
// this edge or on others (the coordinator names this edge as the filler),
// read each segment from this edge's stream once it is cut; after the
// fill, from the holders as usual.
//
// Any storable 200 streams. One without a validator, or of unknown
// length (chunked), gets a version of the fleet's own (streamVersion):
// its one response is its only source, so a segment of it the fleet lost
// is never fetched by range, which could mix versions, but by fetching
// the object again (a new version). An object of unknown length is cut as
// it arrives; its record is made at its end, when its length is known:
// until then the edge's other clients, and the other edges' (their lease
// asks wait), wait for it, while the client whose GET it is gets the
// origin's bytes as they come.

// streamer is the Edge in its role of streamed fills and their leases
// (this file and lease.go): a view of the Edge, as peerHandler is, that
// keeps these methods out of Edge's own set.
type streamer Edge

// streamKeep is how many of its latest segments a stream holds for the
// readers that follow it, whatever the memory tier evicts. An older
// segment is held too until k of its shards reached their holders: before
// that the stream is the only place to read it from, and a reader that
// missed it would have it fetched again from the origin. streamHold bounds
// them all: the stream reads the origin no faster than its shards leave.
const (
	streamKeep = 4
	streamHold = 4 * streamKeep
)

// remoteFillTTL is how long an edge reads an object's segments from the
// member that filled it, after the coordinator named it.
const remoteFillTTL = 2 * time.Minute

// errStreamEvicted: a segment the stream cut before is no longer held by
// it; it is read from the memory tier or its holders.
var errStreamEvicted = errors.New("edge: segment no longer held by its stream")

// streamFill is an object this edge is filling from one origin response.
type streamFill struct {
	key     string
	coord   string // the coordinator that granted the lease
	id      erasure.ObjectID
	unknown bool // of unknown length: rec is complete only when done

	rec *Record // the final one once done; read it with record()

	mu       sync.Mutex
	cut      uint32 // segments cut so far
	recent   map[uint32]*memSegment
	placed   []*placement // of every segment cut, for the replicas
	err      error        // why the stream failed
	done     bool
	changed  chan struct{} // closed and replaced at every change
	ended    chan struct{} // closed when done
	handoffs *handoffs     // of its segments to their coordinators (placeStreamed)
}

func newStreamFill(key, coord string, rec *Record) *streamFill {
	return &streamFill{key: key, coord: coord, rec: rec, id: rec.ID(), unknown: rec.Size < 0, recent: map[uint32]*memSegment{},
		changed: make(chan struct{}), ended: make(chan struct{}), handoffs: newHandoffs()}
}

// record returns the stream's record: with its length once the stream of
// an object of unknown length is done.
func (s *streamFill) record() *Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rec
}

// add records segment idx as cut.
func (s *streamFill) add(idx uint32, ms *memSegment) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.recent[idx] = ms
	s.placed = append(s.placed, ms.placed.Load())
	s.cut = idx + 1
	s.prune()
	close(s.changed)
	s.changed = make(chan struct{})
}

// prune drops the segments older than the latest streamKeep that the
// fleet can read without the stream. s.mu is held.
func (s *streamFill) prune() {
	for i, ms := range s.recent {
		if i+streamKeep < s.cut && readable(ms.placed.Load()) {
			delete(s.recent, i)
		}
	}
}

// readable reports whether a segment placed by p can be read from its
// holders: k shards are there, or the placement is over (its failed shards
// are the repairer's).
func readable(p *placement) bool {
	if p == nil {
		return true
	}
	select {
	case <-p.enough:
		return true
	case <-p.done:
		return true
	default:
		return false
	}
}

// room waits, at most wait, until the stream holds fewer than streamHold
// segments: the oldest one's shards reached their holders.
func (s *streamFill) room(wait time.Duration) {
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		s.prune()
		var oldest *placement
		if len(s.recent) >= streamHold {
			first := s.cut
			for i := range s.recent {
				first = min(first, i)
			}
			oldest = s.recent[first].placed.Load()
		}
		s.mu.Unlock()
		if oldest == nil {
			return
		}
		select {
		case <-oldest.enough:
		case <-oldest.done:
		case <-deadline.C:
			return
		}
	}
}

// failed returns why the stream failed, if it did.
func (s *streamFill) failed() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// finish ends the stream, failed with err if not nil. It reports whether
// this call ended it.
func (s *streamFill) finish(err error) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		return false
	}
	s.done, s.err = true, err
	close(s.changed)
	close(s.ended)
	return true
}

// segment waits for segment idx to be cut and returns it.
func (s *streamFill) segment(ctx context.Context, idx uint32) (*memSegment, error) {
	for {
		s.mu.Lock()
		cut, err, ch := s.cut, s.err, s.changed
		ms := s.recent[idx]
		s.mu.Unlock()
		switch {
		case ms != nil:
			return ms, nil
		case idx < cut:
			return nil, errStreamEvicted
		case err != nil:
			return nil, fmt.Errorf("edge: fill of %s: %w", s.key, err)
		case ch == nil:
			return nil, errStreamEvicted
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		s.mu.Lock()
		over := s.done && s.err == nil && idx >= s.cut
		s.mu.Unlock()
		if over {
			return nil, fmt.Errorf("edge: segment %d beyond the end of %s", idx, s.key)
		}
	}
}

// streams is the registry of streamed fills an edge knows: its own, by
// key and by object, the members filling objects it reads, and the lease
// asks in flight on this edge (gates), so that its clients of one key
// ask once.
type streams struct {
	mu     sync.Mutex
	byKey  map[string]*streamFill
	byID   map[erasure.ObjectID]*streamFill
	remote map[erasure.ObjectID]remoteFill
	gates  map[string]chan struct{}
}

type remoteFill struct {
	holder string
	until  time.Time
}

func (st *streams) init() {
	if st.byKey == nil {
		st.byKey = map[string]*streamFill{}
		st.byID = map[erasure.ObjectID]*streamFill{}
		st.remote = map[erasure.ObjectID]remoteFill{}
		st.gates = map[string]chan struct{}{}
	}
}

// gate returns the gate of key's lease ask on this edge and whether the
// caller is first (and then asks, and releases it).
func (st *streams) gate(key string) (chan struct{}, bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.init()
	if g, ok := st.gates[key]; ok {
		return g, false
	}
	g := make(chan struct{})
	st.gates[key] = g
	return g, true
}

func (st *streams) release(key string, g chan struct{}) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.gates[key] == g {
		delete(st.gates, key)
		close(g)
	}
}

func (st *streams) start(s *streamFill) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.init()
	st.byKey[s.key] = s
	st.byID[s.id] = s
}

func (st *streams) end(s *streamFill) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.byKey[s.key] == s {
		delete(st.byKey, s.key)
	}
	if st.byID[s.id] == s {
		delete(st.byID, s.id)
	}
}

func (st *streams) local(key string) *streamFill {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.byKey[key]
}

// localFill returns this edge's stream of object id, if any.
func (st *streams) localFill(id erasure.ObjectID) *streamFill {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.byID[id]
}

// addRemote notes that holder is filling object id.
func (st *streams) addRemote(id erasure.ObjectID, holder string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.init()
	now := time.Now()
	for k, r := range st.remote {
		if now.After(r.until) {
			delete(st.remote, k)
		}
	}
	st.remote[id] = remoteFill{holder: holder, until: now.Add(remoteFillTTL)}
}

func (st *streams) forgetFiller(id erasure.ObjectID) {
	st.mu.Lock()
	defer st.mu.Unlock()
	delete(st.remote, id)
}

// filling returns this edge's stream of object id, or else the member
// filling it, if known.
func (st *streams) filling(id erasure.ObjectID) (*streamFill, string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if s := st.byID[id]; s != nil {
		return s, ""
	}
	if r, ok := st.remote[id]; ok && time.Now().Before(r.until) {
		return nil, r.holder
	}
	return nil, ""
}

// streamedMiss serves r, a GET of key, by a streamed fill when this edge
// holds no usable record of key and the coordinator grants it the lease,
// and reports whether it did. Otherwise the caller serves r as usual,
// from the record streamedMiss may have kept (one the coordinator had, or
// one of a fill in progress, whose segments then come from the filler).
func (s *streamer) streamedMiss(w http.ResponseWriter, r *http.Request, key string) bool {
	e := (*Edge)(s)
	if e.cfg.RangedFills || e.signed != nil || r.Method != http.MethodGet {
		// With --trust-key every byte must pass the segment path's
		// manifest check, which a streamed body would skip.
		return false
	}
	ctx := r.Context()
	if rec, ok := e.records.Get(key); ok && !rec.Fresh(e.cfg.Now()) && ctx.Value(refreshKey{}) == nil && e.whileRevalidating(rec, e.cfg.Now()) {
		// Served stale (RFC 5861 §3) while a streamed fill revalidates it
		// in the background, once per edge at a time.
		s.refreshStreamed(r, key)
		if httpcache.Selects(rec.Key, rec.Header, r.Header) && e.serveRecord(ctx, w, r, rec, false) == nil {
			return true
		}
		clear(w.Header())
		return false
	}
	self := e.node.Self()
	gone := "" // a filler this edge could not reach
	if holder, rec := e.leases.filling(key); rec != nil && holder != self {
		// This edge is the coordinator and keeps the record of a fill
		// that just ended: its segments still come from the filler.
		e.streams.addRemote(rec.ID(), holder)
	}
	// Three lease asks at most (a holder found gone, this edge's own
	// stream started meanwhile); waits for this edge's other clients'
	// asks and streams are not asks.
	for asks := 0; asks < 3; {
		if ctx.Err() != nil {
			return true // the client went away
		}
		if vk := e.requestKey(key, r.Header); vk != key {
			// The target varies (learned meanwhile): r's variant.
			if e.fleetVariant(vk) {
				return s.streamedMiss(w, r, vk)
			}
			return false
		}
		if rec, ok := e.records.Get(key); ok && rec.Fresh(e.cfg.Now()) {
			if s.otherVariant(r, key, rec) {
				continue // r's own variant, at the top
			}
			return false
		}
		if sf := e.streams.local(key); sf != nil && sf.unknown {
			select { // its record is made at its end
			case <-sf.ended:
			case <-ctx.Done():
				return true
			}
			continue
		}
		// A stream of this edge whose record is no longer here (purged,
		// expired) is not asked: the lease says what becomes of the key.
		g, first := e.streams.gate(key)
		if !first {
			select {
			case <-g:
			case <-ctx.Done():
				return false
			}
			continue
		}
		a, coord, err := s.askLease(ctx, key, gone)
		asks++
		switch {
		case err != nil:
			e.streams.release(key, g)
			e.log.DebugContext(ctx, "no fill lease, taking the path without leases", "key", key, "err", err)
			return false
		case a.kind == leaseGranted:
			stale := a.rec
			if old, ok := e.records.Get(key); ok && !old.Pass {
				stale = old
			}
			s.fillStreamed(w, r, key, coord, g, stale)
			return true
		case a.kind == leaseVaries:
			// Learned here now: r asks for the variant it selects.
			e.streams.release(key, g)
			e.learnVary(key, http.Header{"Vary": {a.vary}})
			if vk := e.requestKey(key, r.Header); vk != key && e.fleetVariant(vk) {
				return s.streamedMiss(w, r, vk)
			}
			if e.requestKey(key, r.Header) == key {
				continue // the key's own variant: asked for as one that knows
			}
			return false // a variant the fleet does not fetch (vary.go)
		case a.kind == leaseFilling:
			// Served from the record without keeping it: should the
			// fill fail, no edge but the coordinator's next asker
			// decides what becomes of the key.
			e.streams.release(key, g)
			if a.holder == self {
				continue // this edge's own stream, started meanwhile
			}
			if s.otherVariant(r, key, a.rec) {
				continue // r's own variant, at the top
			}
			if sentCredentials(r) && !httpcache.ReusableWithAuthorization(a.rec.Header) {
				return false // forwarded (RFC 9111 §3.5, http.go)
			}
			if gone == "" && !s.reachable(ctx, a.holder) {
				// Before the response starts: this edge may hold the
				// first segments (it placed them as their coordinator)
				// and would answer with them, then cut the body at the
				// first it must read from a filler that died.
				gone = a.holder
				continue
			}
			e.streams.addRemote(a.rec.ID(), a.holder)
			err := e.serveRecord(ctx, w, r, a.rec, false)
			var re *swarm.RemoteError
			if err != nil && gone == "" && ctx.Err() == nil && !errors.As(err, &re) {
				// Nothing was sent, and the filler is unreachable: ask
				// again, naming it, so that the lease moves on now.
				gone = a.holder
				continue
			}
			if err != nil {
				e.log.WarnContext(ctx, "could not read an object being filled", "key", key, "filler", a.holder, "err", err)
				clear(w.Header())
				httpError(w, originStatus(err), "could not read object")
			}
			return true
		}
		// A usable record: whoever filled it is done with it.
		e.streams.forgetFiller(a.rec.ID())
		e.keepRecord(a.rec)
		e.streams.release(key, g)
		if s.otherVariant(r, key, a.rec) {
			continue // r's own variant, at the top
		}
		return false
	}
	return false
}

// refill serves r after a segment of rec, a version of the fleet's own,
// was found lost (lost): r is served by a new streamed fill (or the fill
// another client started meanwhile). It reports whether it served r.
func (s *streamer) refill(w http.ResponseWriter, r *http.Request, key string, rec *Record) bool {
	s.lost(r.Context(), rec)
	return s.streamedMiss(w, r, key)
}

// lost forgets rec, a version of the fleet's own of which a segment was
// lost, here and at the object's coordinator, so that the next request
// fetches the object again.
func (s *streamer) lost(ctx context.Context, rec *Record) {
	e := (*Edge)(s)
	e.forgetRecord(rec)
	msg := &leaseMsg{kind: leaseStale, member: e.node.Self(), key: rec.Key, rec: rec}
	for _, peer := range e.node.RankAll([]byte(rec.Key)) {
		if !e.node.Alive(peer) && peer != e.node.Self() {
			continue
		}
		tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), e.cfg.PeerTimeout)
		err := s.tellLease(tctx, peer, msg)
		cancel()
		if err == nil {
			return
		}
	}
}

// otherVariant reports whether rec, the record of target key, is of
// another variant than the one r selects, and if so learns how the target
// varies from it, so that r's own variant's key is known.
func (s *streamer) otherVariant(r *http.Request, key string, rec *Record) bool {
	e := (*Edge)(s)
	if rec.Pass || httpcache.TargetOf(key) != key || httpcache.Selects(rec.Key, rec.Header, r.Header) {
		return false
	}
	e.learnVary(key, rec.Header)
	return e.requestKey(key, r.Header) != key
}

// coordinator returns the member that coordinates key: the first of its
// ranking that is alive (this edge at the latest).
func (s *streamer) coordinator(key string) string {
	e := (*Edge)(s)
	self := e.node.Self()
	for _, peer := range e.node.RankAll([]byte(key)) {
		if peer == self || e.node.Alive(peer) {
			return peer
		}
	}
	return self
}

// refreshKey marks the context of a background revalidation's request.
type refreshKey struct{}

// refreshStreamed revalidates key in the background with a streamed fill
// of r's copy (its end-to-end fields, no conditionals or Range of its own).
func (s *streamer) refreshStreamed(r *http.Request, key string) {
	e := (*Edge)(s)
	bg := r.Clone(context.WithValue(context.WithoutCancel(r.Context()), refreshKey{}, true))
	for _, f := range []string{"Range", "If-Range", "If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since"} {
		bg.Header.Del(f)
	}
	e.refreshInBackground(key, func(ctx context.Context) {
		s.streamedMiss(&nullClient{h: http.Header{}}, bg.WithContext(context.WithValue(ctx, refreshKey{}, true)), key)
	})
}

// nullClient is the client of a background revalidation.
type nullClient struct{ h http.Header }

func (d *nullClient) Header() http.Header         { return d.h }
func (d *nullClient) Write(b []byte) (int, error) { return len(b), nil }
func (d *nullClient) WriteHeader(int)             {}
func (d *nullClient) Flush()                      {}

// errNotStreamed: a streamed fill's response is not streamed but
// handled as a forwarded miss's (missResponse).
var errNotStreamed = errors.New("edge: response handled as a forwarded miss")

// streamState is a streamed fill's part of the miss proxy's state.
type streamState struct {
	coord   string
	gate    chan struct{}
	client  *http.Request           // as the client sent it
	cancel  context.CancelCauseFunc // the origin request's
	direct  bool                    // the client's GET is the fill's: relay the body as it comes
	started bool                    // the response made a stream, which owns cancel and the lease
	ended   bool                    // the lease was ended
	kept    *Record                 // of the lease's key, kept by missResponse from a response not streamed
}

// fillStreamed holds key's lease: it forwards r to the origin as the
// fill's request and serves r from the response. With stale, the request
// is conditional on its validators (RFC 9111 §4.3.1): a 304 refreshes it.
func (s *streamer) fillStreamed(w http.ResponseWriter, r *http.Request, key, coord string, gate chan struct{}, stale *Record) {
	e := (*Edge)(s)
	defer e.streams.release(key, gate)
	// Detached from the client: the fill goes on for the other readers
	// when this one leaves. The header must come within the origin
	// timeout; the body then within it of every read (streamBody).
	ctx, cancel := context.WithCancelCause(context.WithoutCancel(r.Context()))
	timer := time.AfterFunc(e.originTimeout(), func() { cancel(errHeaderTimeout) })
	defer timer.Stop()
	// The fill's span lasts as long as its body (streamBody ends it).
	ctx, span := e.tracer.Start(ctx, "origin.fetch", traceAttrs(attribute.String("shoal.object", key)))
	ss := &streamState{coord: coord, gate: gate, client: r, cancel: cancel,
		direct: r.Header.Get("Range") == "" && !httpcache.HasConditionals(r.Header)}
	st := &missState{key: key, p: &pendingMiss{done: make(chan struct{})}, authz: sentCredentials(r), headers: timer, reqHeader: r.Header, stream: ss}
	out := r.Clone(context.WithValue(ctx, missKey{}, st))
	out.Header.Del("Range")
	out.Header.Del("If-Range")
	if stale != nil {
		for _, f := range []string{"If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since"} {
			out.Header.Del(f)
		}
		// The fleet's own conditionals: the origin evaluates
		// If-None-Match first.
		if stale.ETag != "" {
			out.Header.Set("If-None-Match", stale.ETag)
		}
		if stale.LastModified != "" {
			out.Header.Set("If-Modified-Since", stale.LastModified)
		}
		// Without validators it is still what serves when the origin
		// fails (stale-if-error, RFC 5861 §4).
		st.old, st.revalidating = stale, stale.ETag != "" || stale.LastModified != ""
	}
	e.missProxy(e.siteOf(r)).ServeHTTP(&countingWriter{ResponseWriter: w, n: e.m.servedBytes.WithLabelValues(srcOrigin)}, out)
	if !ss.started {
		span.End()
		cancel(nil)
		switch {
		case ss.ended:
		case ss.kept != nil:
			// Its body has passed: a stored one is in this edge's memory.
			s.endLease(coord, &leaseMsg{kind: leaseDone, member: e.node.Self(), key: key, rec: ss.kept})
		default:
			s.endLease(coord, &leaseMsg{kind: leaseAbort, member: e.node.Self(), key: key})
		}
	}
}

// headMiss forwards a HEAD for which this edge holds no usable record to
// the origin as a HEAD, and reports whether it did: nothing is stored
// from it, so that the object's record is made by the GET that fills it.
func (s *streamer) headMiss(w http.ResponseWriter, r *http.Request, key string) bool {
	e := (*Edge)(s)
	if e.cfg.RangedFills || e.signed != nil || r.Method != http.MethodHead {
		return false
	}
	if rec, ok := e.records.Get(key); ok && rec.Fresh(e.cfg.Now()) {
		return false
	}
	e.forward(w, r, "shoal; fwd=miss")
	return true
}

// endLease sends a lease's last message in the background (tellSurely).
func (s *streamer) endLease(coord string, m *leaseMsg) {
	e := (*Edge)(s)
	e.bg.goTracked(leaseTries*(e.cfg.PeerTimeout+time.Second), func(ctx context.Context) {
		s.tellSurely(ctx, coord, m)
	})
}

// tellSurely sends m to coord, and again, up to leaseTries times in all,
// when it does not arrive (each try within the peer timeout), while the
// coordinator is alive; its answer, even a refusal, is final. A message
// lost to a slow or congested link costs the fleet: the lease outlives
// the fill, and the next asker revalidates or fetches an object the fleet
// holds. A failure is logged.
func (s *streamer) tellSurely(ctx context.Context, coord string, m *leaseMsg) {
	e := (*Edge)(s)
	var err error
	for try := range leaseTries {
		if try > 0 {
			select {
			case <-time.After(time.Duration(try) * 200 * time.Millisecond):
			case <-ctx.Done():
				return
			}
			if !e.node.Alive(coord) {
				break
			}
		}
		tctx, cancel := context.WithTimeout(ctx, e.cfg.PeerTimeout)
		err = s.tellLease(tctx, coord, m)
		cancel()
		var re *swarm.RemoteError
		if err == nil || errors.As(err, &re) || ctx.Err() != nil {
			break
		}
	}
	if err != nil {
		e.log.Debug("lease message not delivered", "coordinator", coord, "key", m.key, "kind", m.kind, "err", err)
	}
}

// leaseTries is how many times endLease sends a message.
const leaseTries = 3

// tellNow sends m to coord within the peer timeout, and waits for it;
// a failure is logged (the fill goes on).
func (s *streamer) tellNow(ctx context.Context, coord string, m *leaseMsg) {
	e := (*Edge)(s)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), e.cfg.PeerTimeout)
	defer cancel()
	if err := s.tellLease(ctx, coord, m); err != nil {
		e.log.Debug("lease message not delivered", "coordinator", coord, "key", m.key, "err", err)
	}
}

// streamResponse is the miss proxy's response hook for a streamed fill:
// the response either streams (stored) or is relayed (a pass record).
func (s *streamer) streamResponse(resp *http.Response, st *missState) (status string, err error) {
	e := (*Edge)(s)
	ss := st.stream
	now := e.cfg.Now()
	key := st.key
	pass := func(why string) (string, error) {
		p := &Record{Key: key, Pass: true, Fetched: now, Expires: now.Add(passTTL)}
		e.keepRecord(p)
		ss.ended = true
		s.endLease(ss.coord, &leaseMsg{kind: leaseDone, member: e.node.Self(), key: key, rec: p})
		e.log.Debug("streamed fill relayed, not stored", "key", key, "why", why)
		return "shoal; fwd=uri-miss", nil
	}
	switch {
	case resp.StatusCode == http.StatusNotModified && st.revalidating:
		// The stale object is still good: its record, with the new
		// fields, is kept, replicated, and serves the client.
		rec := newRecord(key, http.StatusOK, httpcache.UpdateHeaders(st.old.Header, resp.Header), st.old.Size, st.old.Validator, st.old.Layout, now, e.cfg.MaxHeuristicFreshness)
		if rec.Pass {
			return pass("not storable after a 304")
		}
		rec.revalidated = true
		e.keepRecord(rec)
		ss.ended = true
		s.endLease(ss.coord, &leaseMsg{kind: leaseFresh, member: e.node.Self(), key: key, rec: rec})
		e.replicate(rec)
		return "", &serveFromFleet{rec: rec}
	case resp.StatusCode >= 500 && st.old != nil && e.onError(st.old, now):
		e.log.Info("origin failing, serving a stale object", "key", key, "status", resp.StatusCode)
		ss.ended = true
		s.endLease(ss.coord, &leaseMsg{kind: leaseAbort, member: e.node.Self(), key: key})
		return "", &serveFromFleet{rec: st.old, stale: true}
	case resp.StatusCode != http.StatusOK, st.authz && !httpcache.ReusableWithAuthorization(resp.Header):
		// Stored from its body when it may be and is of one segment
		// (missResponse), like a forwarded miss; fillStreamed ends the
		// lease with what was kept.
		return "", errNotStreamed
	}
	target, variant := httpcache.TargetOf(key), false
	byDigest, recHeader := digestKey(key), resp.Header
	if byDigest {
		// A digest names the bytes, whatever the request's fields: its
		// Vary is not learned (nor its fill's Accept-Encoding other than
		// identity), and its record keeps only fields about the content.
		recHeader = digest.ContentFields(resp.Header)
	} else if vk := httpcache.VariantKey(target, e.learnVary(target, resp.Header), st.reqHeader); vk != key {
		// A variant: the target's coordinator learns how it varies (its
		// askers then ask for their variants' keys), and this one is
		// filled under its own key, streamed when the fleet can fetch it,
		// else stored from its body like a forwarded miss's.
		//
		// Both coordinators hear of it before the client's response
		// starts (a round trip each, for a variant's first miss only):
		// a request that follows the response must find the target's
		// Vary and the variant's lease, not start a fill of its own.
		ss.ended = true
		s.tellNow(resp.Request.Context(), ss.coord, &leaseMsg{kind: leaseVary, member: e.node.Self(), key: key, vary: strings.Join(resp.Header.Values("Vary"), ", ")})
		if key != target || !e.fleetVariant(vk) || len(vk) > swarm.MaxKey-2 {
			return "", errNotStreamed
		}
		key, st.key = vk, vk
		ss.coord, ss.ended = s.coordinator(vk), false
		variant = true
	}
	info := &origin.Info{Header: resp.Header, ETag: resp.Header.Get("ETag"), Size: resp.ContentLength}
	if lm, err := http.ParseTime(resp.Header.Get("Last-Modified")); err == nil {
		info.LastModified = lm
	}
	size, version := resp.ContentLength, info.Validator()
	if size < 0 || version == "" || byDigest {
		// The fleet's own (see Record.Validator); a registry's content by
		// digest too: its key is no target of the origin's, and a lost
		// segment is fetched again by a client's request (registry.go).
		version = streamVersion(now)
	}
	rec := newRecord(key, resp.StatusCode, recHeader, max(size, 0), version, e.cfg.Layout, now, e.cfg.MaxHeuristicFreshness)
	if rec.Pass {
		return pass("not storable")
	}
	if byDigest {
		rec.Expires = now.Add(registryImmutable) // a digest's content cannot change
	}
	if size < 0 {
		rec.Size = -1 // known at the end
	}
	sf := newStreamFill(key, ss.coord, rec)
	e.streams.start(sf)
	if !sf.unknown {
		e.keepRecord(rec)
		e.streams.release(key, ss.gate) // this edge's other clients read the stream
	}
	ss.started = true
	if variant && !sf.unknown {
		// The variant's lease was not asked for: the header takes it.
		s.tellNow(resp.Request.Context(), sf.coord, &leaseMsg{kind: leaseHeader, member: e.node.Self(), key: key, rec: rec})
	}
	s.talkLease(sf)
	body := &streamBody{e: e, sf: sf, body: resp.Body, cancel: ss.cancel, ctx: resp.Request.Context()}
	if byDigest {
		body.check = digest.KeyVerifier(key)
	}
	body.idle = time.AfterFunc(e.originTimeout(), func() { ss.cancel(errStreamIdle) })
	if rec.Size == 0 {
		body.end(nil)
	}
	if !ss.direct && sf.unknown {
		// Ranges and preconditions are answered from the segments, which
		// serve once the object's length is known: at its end.
		resp.Body = http.NoBody
		body.drain()
		if err := sf.failed(); err != nil {
			return "", err
		}
		return "", &serveFromFleet{rec: sf.record()}
	}
	if !ss.direct {
		// Ranges and preconditions are answered from the segments: the
		// body is cut in the background while the client is served.
		resp.Body = http.NoBody
		if !e.bg.goTracked(0, func(context.Context) { body.drain() }) {
			body.end(errors.New("edge: shutting down"))
			body.body.Close()
		}
		return "", &serveFromFleet{rec: rec}
	}
	resp.Body = body
	if sf.unknown {
		resp.Header.Del("Content-Length")
	}
	resp.Header.Set("Age", strconv.FormatInt(rec.Age, 10))
	resp.Header.Set("Accept-Ranges", "bytes")
	return "shoal; fwd=miss; stored; fwd-status=200; ttl=" + strconv.FormatInt(int64(rec.Expires.Sub(now)/time.Second), 10) + "; detail=origin", nil
}

// talkLease tells the coordinator of sf's lease the record, renews the
// lease while sf streams, and ends it with the final record (replicated
// to the next ranks too) or an abort.
func (s *streamer) talkLease(sf *streamFill) {
	e := (*Edge)(s)
	self := e.node.Self()
	// Bounded by the stream's end, the placements' timeouts and the
	// edge's shutdown, not by the peer timeout: it lasts as long as the
	// stream does.
	e.bg.goTracked(0, func(ctx context.Context) {
		tell := func(m *leaseMsg) {
			sctx, cancel := context.WithTimeout(ctx, e.cfg.PeerTimeout)
			defer cancel()
			if err := s.tellLease(sctx, sf.coord, m); err != nil {
				e.log.Debug("lease message not delivered", "coordinator", sf.coord, "key", sf.key, "kind", m.kind, "err", err)
			}
		}
		// An object of unknown length has no record yet: the lease is
		// only renewed, and its askers wait for the end.
		header := &leaseMsg{kind: leaseRenew, member: self, key: sf.key}
		if !sf.unknown {
			header = &leaseMsg{kind: leaseHeader, member: self, key: sf.key, rec: sf.rec}
		}
		tell(header)
		t := time.NewTicker(s.leaseTTL() / 3)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				tell(header)
				continue
			case <-sf.ended:
			case <-ctx.Done():
			}
			break
		}
		sf.mu.Lock()
		failed := sf.err != nil || !sf.done
		sf.mu.Unlock()
		if failed {
			e.streams.end(sf)
			s.tellSurely(ctx, sf.coord, &leaseMsg{kind: leaseAbort, member: self, key: sf.key})
			return
		}
		rec := sf.record()
		if sf.unknown {
			// Its record, now complete: askers read the stream's segments.
			header = &leaseMsg{kind: leaseHeader, member: self, key: sf.key, rec: rec}
			tell(header)
		}
		// Until its shards are at their holders (or given up on), the
		// object is read from this edge, which holds its segments: the
		// lease stays, renewed, and the record goes to the coordinator and
		// the replicas after, so that nothing reads a segment its holders
		// do not have yet, and a segment is never fetched again by range.
		// Each placement gets the origin timeout, from when the one
		// before it ended: they complete in order, at the pace of this
		// edge's uplink, however large the object.
		wait := time.NewTimer(e.originTimeout())
		defer wait.Stop()
	placements:
		for i, p := range sf.placed {
			wait.Reset(e.originTimeout())
			for again := 0; p != nil; {
				select {
				case <-p.done:
				case <-t.C:
					tell(header)
					continue
				case <-wait.C:
					break placements
				case <-ctx.Done():
					break placements
				}
				if readable(p) || again == 2 {
					break
				}
				// Too few of its shards reached their holders (slow
				// links, a holder down): placed again from this edge's
				// copy, rather than fetched again by a reader.
				again++
				if p = s.placeAgain(sf, uint32(i)); p == nil {
					break
				}
			}
		}
		e.streams.end(sf)
		s.tellSurely(ctx, sf.coord, &leaseMsg{kind: leaseDone, member: self, key: sf.key, rec: rec})
		e.replicate(rec)
	})
}

// placeAgain places segment idx of sf's object again from the stream's
// copy, and returns the new placement (nil when the copy is gone).
func (s *streamer) placeAgain(sf *streamFill, idx uint32) *placement {
	e := (*Edge)(s)
	sf.mu.Lock()
	ms := sf.recent[idx]
	sf.mu.Unlock()
	if ms == nil {
		return nil
	}
	shards, d, err := e.coder.Encode(ms.data)
	if err != nil || !d.Equal(ms.d) {
		return nil
	}
	p := e.filler.place(erasure.SegmentID{Object: sf.id, Index: idx}, ms.d, shards)
	ms.placed.Store(p)
	return p
}

// errStreamIdle: the origin sent nothing for the origin timeout.
var errStreamIdle = errors.New("edge: origin stream stalled")

// streamBody is a streamed fill's origin body: what is read through it
// is cut into segments, each coded, kept in memory and placed as it
// completes. A client that reads it gets the origin's bytes as they come;
// when it stops early (Close), the rest is read in the background, so
// that the fill completes for the others.
type streamBody struct {
	e      *Edge
	sf     *streamFill
	body   io.ReadCloser
	cancel context.CancelCauseFunc
	idle   *time.Timer
	ctx    context.Context // the fill's, with its origin.fetch span

	buf   []byte
	n     int // bytes of segment idx in buf
	idx   uint32
	total int64
	once  sync.Once
	over  bool

	// check, for content by digest, hashes the body against its digest;
	// hashes are its segments' (registry.go pins them when it matches).
	check  *digest.Verifier
	hashes []erasure.Hash
}

func (s *streamBody) Read(b []byte) (int, error) {
	if s.over {
		return 0, io.EOF
	}
	n, err := s.body.Read(b)
	if n > 0 {
		s.idle.Reset(s.e.originTimeout())
		if ferr := s.feed(b[:n]); ferr != nil {
			s.end(ferr)
			return 0, ferr
		}
	}
	switch {
	case err == io.EOF:
		s.end(nil)
	case err != nil:
		s.end(err)
	}
	return n, err
}

// feed appends p to the segments being cut.
func (s *streamBody) feed(p []byte) error {
	rec := s.sf.rec // not yet complete when of unknown length
	if !s.sf.unknown && s.total+int64(len(p)) > rec.Size {
		return fmt.Errorf("edge: origin sent more than the %d bytes of %s", rec.Size, rec.Key)
	}
	s.total += int64(len(p))
	if s.check != nil {
		s.check.Write(p)
	}
	for len(p) > 0 {
		n := rec.Layout.WithDefaults().SegmentSize
		if !s.sf.unknown {
			_, n = rec.Layout.Segment(int64(s.idx), rec.Size)
		}
		if s.buf == nil {
			s.buf = make([]byte, s.e.coder.EncodedLen(int(n)))
		}
		c := copy(s.buf[s.n:n], p)
		s.n += c
		p = p[c:]
		if int64(s.n) == n {
			if err := s.cutSegment(int(n)); err != nil {
				return err
			}
		}
	}
	return nil
}

// cutSegment codes the full segment in buf, keeps it in memory and in
// the stream, and places its shards.
func (s *streamBody) cutSegment(n int) error {
	e := s.e
	id := erasure.SegmentID{Object: s.sf.id, Index: s.idx}
	_, span := e.tracer.Start(s.ctx, "erasure.encode", traceAttrs(attribute.Int64("shoal.bytes", int64(n))))
	shards, d, err := e.coder.EncodeInPlace(s.buf, n)
	span.End()
	if err != nil {
		return fmt.Errorf("edge: coding segment %d of %s: %w", s.idx, s.sf.key, err)
	}
	ms := &memSegment{d: d, data: s.buf[:n:n], held: len(s.buf)}
	if s.check != nil {
		s.hashes = append(s.hashes, d.Segment)
	}
	e.mem.Add(id, ms)
	e.m.fills.WithLabelValues(srcOrigin).Inc()
	if s.sf.unknown {
		ms.placed.Store(e.filler.place(id, d, shards)) // no record to name it by yet
	} else {
		ms.placed.Store(e.filler.placeStreamed(s.sf.rec, id, d, shards, s.sf.handoffs))
	}
	s.sf.room(e.originTimeout())
	s.sf.add(s.idx, ms)
	s.idx++
	s.buf, s.n = nil, 0
	return nil
}

// end ends the fill once: done when the whole body was cut, failed
// otherwise (the record is then forgotten).
func (s *streamBody) end(err error) {
	s.once.Do(func() {
		s.over = true
		s.idle.Stop()
		e := s.e
		sf := s.sf
		switch {
		case err == nil && sf.unknown:
			err = s.complete()
		case err == nil && s.total != sf.rec.Size:
			err = fmt.Errorf("edge: origin sent %d of the %d bytes of %s: %w", s.total, sf.rec.Size, sf.key, io.ErrUnexpectedEOF)
		}
		if err == nil && s.check != nil {
			// Content by digest (registry.go): the origin's bytes are
			// what the digest names, or the fill fails.
			if err = e.digests.filled(sf.record(), s.check, s.hashes); err != nil {
				e.forgetRecord(sf.record())
			}
		}
		if err != nil {
			e.log.Warn("streamed fill failed", "key", sf.key, "err", err)
			if !sf.unknown {
				e.forgetRecord(sf.rec)
			}
		}
		if span := trace.SpanFromContext(s.ctx); span.IsRecording() {
			span.SetAttributes(attribute.Int64("shoal.bytes", s.total))
			if err != nil {
				span.SetStatus(codes.Error, err.Error())
			}
			span.End()
		}
		s.sf.finish(err)
		if err != nil {
			// A stream that completed stays registered until its
			// segments are readable from their holders (talkLease).
			e.streams.end(s.sf)
		}
		s.cancel(nil)
	})
}

// complete ends the stream of an object of unknown length: its last
// segment is cut, and its record, now with its length, kept.
func (s *streamBody) complete() error {
	if s.n > 0 {
		if err := s.cutSegment(s.n); err != nil {
			return err
		}
	}
	rec := *s.sf.rec
	rec.Size = s.total
	s.sf.mu.Lock()
	s.sf.rec = &rec
	s.sf.mu.Unlock()
	s.e.keepRecord(&rec)
	return nil
}

// Close is the client's end of the body: a fill cut short by the client
// goes on in the background.
func (s *streamBody) Close() error {
	if s.over {
		return s.body.Close()
	}
	if !s.e.bg.goTracked(0, func(context.Context) { s.drain() }) {
		s.end(errors.New("edge: shutting down"))
		return s.body.Close()
	}
	return nil
}

// drain reads the rest of the body into the segments.
func (s *streamBody) drain() {
	defer s.body.Close()
	stop := context.AfterFunc(s.e.bg.ctx, func() { s.cancel(errors.New("edge: shutting down")) })
	defer stop()
	buf := make([]byte, 64<<10)
	for !s.over {
		if _, err := s.Read(buf); err != nil {
			s.end(err)
			return
		}
	}
}
