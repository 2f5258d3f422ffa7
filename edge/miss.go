package edge

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httputil"
	"strconv"
	"sync"
	"time"

	"github.com/shoalcdn/shoal/erasure"
	"github.com/shoalcdn/shoal/internal/httpcache"
	"github.com/shoalcdn/shoal/origin"
	"github.com/shoalcdn/shoal/swarm"
)

// Forwarded misses: the client's request goes to the origin as it came
// (every end-to-end field, conditionals and credentials included), and
// the one response both answers the client and makes the record. Two
// callers use the proxy below and its response hook, missResponse:
//
//   - streamed fills (streamed.go, the default): the fill's request, under
//     the key's lease. A storable 200 streams (streamResponse); the rules
//     here decide the rest: another storable status, or a variant the
//     fleet cannot fetch, of one segment is stored from the body as it
//     passes (coded and placed); anything else is relayed.
//   - forwardMiss: the misses streamed fills leave (credentials and
//     cookies selecting a variant), and, with Config.RangedFills, the cold
//     GET misses of an edge alone with Config.ForwardMisses. There a
//     response longer than one segment is closed after its header and
//     served through the fleet, segment by segment.
//
// This edge's other clients of the key wait for the forwarded response's
// record rather than ask again.

// pendingMiss is a forwarded miss in flight; done is closed once its
// record (if any) is kept and, for a small object, its segment placed.
type pendingMiss struct {
	done chan struct{}
	once sync.Once
}

func (p *pendingMiss) finish() { p.once.Do(func() { close(p.done) }) }

type missKey struct{}

// missState is what the miss proxy's hooks know of the request.
type missState struct {
	key     string
	p       *pendingMiss
	authz   bool
	headers *time.Timer // stopped when the response header arrives
	// old is the stale record held, if any; revalidating says the request
	// carries its validators (the client sent none of its own).
	old          *Record
	revalidating bool
	reqHeader    http.Header // the client's request fields
	// stream is set for a streamed fill's request (streamed.go).
	stream *streamState
}

// kept notes, for a streamed fill's lease, the record of its key a
// forwarded miss's rules kept.
func (st *missState) kept(rec *Record) {
	if st.stream != nil && rec.Key == st.key {
		st.stream.kept = rec
	}
}

// errHeaderTimeout: the origin did not answer a forwarded miss in time.
var errHeaderTimeout = errors.New("edge: origin response header timed out")

func (e *Edge) originTimeout() time.Duration {
	return orDefault(e.cfg.Origin.Timeout, 30*time.Second)
}

// serveFromFleet is returned by the miss proxy's response hook when the
// response is stored but too large to take from the forwarded body.
type serveFromFleet struct {
	rec   *Record
	stale bool // served because the origin failed
}

func (s *serveFromFleet) Error() string { return "edge: served from the fleet" }

// forwardMiss serves r by forwarding it when this edge is a fleet of its
// own and holds no usable copy for key (none, a pass that expired, or a
// stale one, which the forwarded request then revalidates), and reports
// whether it did. Otherwise it returns false, after waiting for a
// forwarded miss of the same key if one is in flight. A variant (variant
// set) is never served stale while revalidating: its refresh would go
// through the fleet, which cannot fetch it.
func (e *Edge) forwardMiss(w http.ResponseWriter, r *http.Request, key string, variant bool) bool {
	// With --trust-key every byte must pass the segment path's manifest
	// check, which a forwarded body would skip.
	// With streamed fills, a fleet forwards the misses they leave:
	// requests with credentials, conditionals on a cold miss, variants.
	if !e.cfg.ForwardMisses && e.cfg.RangedFills || e.signed != nil || len(e.node.Members()) != 1 && e.cfg.RangedFills {
		return false
	}
	old, ok := e.records.Get(key)
	if ok && (old.Fresh(e.cfg.Now()) || !variant && e.whileRevalidating(old, e.cfg.Now())) {
		return false
	}
	if ok && (old.Pass || !httpcache.Selects(old.Key, old.Header, r.Header)) {
		// Nothing to revalidate for this client: a pass, or the variant
		// of requests without the fields this one sends.
		old, ok = nil, false
	}
	p := &pendingMiss{done: make(chan struct{})}
	if old, loaded := e.pending.LoadOrStore(key, p); loaded {
		select {
		case <-old.(*pendingMiss).done:
		case <-r.Context().Done():
		}
		return false
	}
	// A forwarded miss of key may have ended between the look at the
	// records above and LoadOrStore: it keeps its record before it drops
	// its pending entry, so a second look finds that record.
	if cur, ok := e.records.Get(key); ok && (cur.Fresh(e.cfg.Now()) || !variant && e.whileRevalidating(cur, e.cfg.Now())) {
		e.pending.Delete(key)
		p.finish()
		return false
	}
	defer func() {
		e.pending.Delete(key)
		p.finish()
	}()
	// The origin's response header must come within the origin timeout,
	// as for the edge's own requests; the body then streams as it comes.
	ctx, cancel := context.WithCancelCause(r.Context())
	defer cancel(nil)
	timer := time.AfterFunc(e.originTimeout(), func() { cancel(errHeaderTimeout) })
	defer timer.Stop()
	st := &missState{key: key, p: p, authz: sentCredentials(r), headers: timer, old: old, reqHeader: r.Header}
	if ok && !httpcache.HasConditionals(r.Header) && (old.ETag != "" || old.LastModified != "") {
		// Revalidate the stale object with the client's own request.
		r = r.Clone(r.Context())
		if old.ETag != "" {
			r.Header.Set("If-None-Match", old.ETag)
		}
		if old.LastModified != "" {
			r.Header.Set("If-Modified-Since", old.LastModified)
		}
		st.revalidating = true
	}
	r = r.WithContext(context.WithValue(ctx, missKey{}, st))
	e.missProxy(e.siteOf(r)).ServeHTTP(&countingWriter{ResponseWriter: w, n: e.m.servedBytes.WithLabelValues(srcOrigin)}, r)
	return true
}

// pendingWait bounds how long a request with a fresh record waits for the
// forwarded miss still streaming its body, so a slow first client delays
// the others only so long.
const pendingWait = 5 * time.Second

// waitPending waits for a forwarded miss of key in flight on this edge.
func (e *Edge) waitPending(ctx context.Context, key string) {
	if p, ok := e.pending.Load(key); ok {
		select {
		case <-p.(*pendingMiss).done:
		case <-ctx.Done():
		}
	}
}

// missProxy returns the reverse proxy of forwarded misses to s's origin,
// made once.
func (e *Edge) missProxy(s *site) *httputil.ReverseProxy {
	s.missOnce.Do(func() {
		base := s.client.Base()
		s.missRP = &httputil.ReverseProxy{
			Rewrite: func(pr *httputil.ProxyRequest) {
				pr.SetURL(base)
				pr.SetXForwarded()
				pr.Out.Header.Add("Via", httpcache.Via(pr.In.ProtoMajor, pr.In.ProtoMinor))
			},
			Transport:      e.digests.follow(s.proxy.Transport), // a content fill's redirects (registry.go)
			FlushInterval:  -1,
			ModifyResponse: e.missResponse,
			ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
				var sf *serveFromFleet
				if errors.As(err, &sf) {
					if cw, ok := w.(*countingWriter); ok {
						w = cw.ResponseWriter // the fleet path counts its own bytes
					}
					if st, _ := r.Context().Value(missKey{}).(*missState); st != nil && st.stream != nil {
						// A streamed fill's request is the client's
						// without its range (and its conditionals when
						// the fleet revalidates), detached
						// from it; the answer is to the client's own.
						r = st.stream.client
					}
					if sf.stale {
						e.serveStale(w, r, sf.rec)
						return
					}
					if serr := e.serveRecord(r.Context(), w, clientRequest(r), sf.rec, true); serr != nil {
						clear(w.Header())
						httpError(w, originStatus(serr), "could not read object")
					}
					return
				}
				if st, _ := r.Context().Value(missKey{}).(*missState); st != nil && st.old != nil && e.onError(st.old, e.cfg.Now()) {
					e.log.InfoContext(r.Context(), "origin failing, serving a stale object", "key", st.key, "err", err)
					e.serveStale(w, r, st.old)
					return
				}
				if errors.Is(context.Cause(r.Context()), errHeaderTimeout) {
					err = context.DeadlineExceeded
				}
				e.proxyError(w, r, err)
			},
		}
	})
	return s.missRP
}

// missResponse decides what a forwarded miss's response becomes: stored
// (small: from its body), stored and served from the fleet (large), or a
// pass record; 304s and 206s to the client's own conditionals and
// ranges, and responses to credentials not shared, are only relayed.
func (e *Edge) missResponse(resp *http.Response) error {
	st, _ := resp.Request.Context().Value(missKey{}).(*missState)
	if st == nil {
		resp.Header.Add("Via", httpcache.Via(resp.ProtoMajor, resp.ProtoMinor))
		return nil
	}
	st.headers.Stop()
	now := e.cfg.Now()
	status := "shoal; fwd=miss; fwd-status=" + strconv.Itoa(resp.StatusCode)
	streamed := st.stream != nil
	if streamed {
		s, err := (*streamer)(e).streamResponse(resp, st)
		switch {
		case errors.Is(err, errNotStreamed):
			streamed = false
		case err != nil:
			return err
		case s != "":
			status = s
		}
	}
	defer func() {
		// Via after the record is made: a hit adds its own (serveObject).
		resp.Header.Add("Via", httpcache.Via(resp.ProtoMajor, resp.ProtoMinor))
		resp.Header.Del(httpcache.ShoalCacheControl)
		resp.Header.Add("Cache-Status", status)
	}()
	switch {
	case streamed:
		return nil
	case resp.StatusCode == http.StatusNotModified && st.revalidating:
		// The stale object is still good: serve it with the new fields.
		rec := newRecord(st.key, http.StatusOK, httpcache.UpdateHeaders(st.old.Header, resp.Header), st.old.Size, st.old.Validator, st.old.Layout, now, e.cfg.MaxHeuristicFreshness)
		rec.Status = st.old.Status
		rec.revalidated = true
		e.keepRecord(rec)
		st.p.finish()
		return &serveFromFleet{rec: rec}
	case resp.StatusCode >= 500 && st.old != nil && e.onError(st.old, now):
		e.log.Info("origin failing, serving a stale object", "key", st.key, "status", resp.StatusCode)
		return &serveFromFleet{rec: st.old, stale: true}
	case resp.StatusCode == http.StatusNotModified || resp.StatusCode == http.StatusPartialContent || resp.StatusCode < 200:
		return nil
	}
	key := st.key
	if digestKey(key) {
		// A registry's content by digest is stored only as a streamed
		// 200 (streamResponse): another answer (a 404 in one repository,
		// a 401) is this client's, not the digest's.
		status = "shoal; fwd=uri-miss; detail=registry"
		st.p.finish()
		return nil
	}
	if resp.StatusCode == http.StatusOK {
		// The variant this response is: learned from its Vary.
		target := httpcache.TargetOf(st.key)
		key = httpcache.VariantKey(target, e.learnVary(target, resp.Header), st.reqHeader)
		if key != target && (len(key) >= swarm.MaxKey-2 || !e.fleetVariant(key) && (resp.ContentLength > e.cfg.Layout.SegmentSize || len(e.node.Members()) != 1)) {
			// A variant the fleet could not refetch: relayed only. A fleet
			// keeps none (their keys carry credentials or cookies, vary.go).
			status = "shoal; fwd=miss; detail=vary"
			return nil
		}
	}
	info := &origin.Info{Header: resp.Header, ETag: resp.Header.Get("ETag"), Size: resp.ContentLength}
	if lm, err := http.ParseTime(resp.Header.Get("Last-Modified")); err == nil {
		info.LastModified = lm
	}
	rec := newBodyRecord(key, resp.StatusCode, resp.Header, resp.ContentLength, info.Validator(), e.cfg.Layout, now, e.cfg.MaxHeuristicFreshness)
	if rec != nil && resp.StatusCode != http.StatusOK && resp.Header.Get("Vary") != "" {
		// Variants are keyed for 200s only: another status that varies is
		// relayed, and remembered as a pass.
		rec = nil
	}
	if rec == nil {
		if key == httpcache.TargetOf(key) {
			// Remembered briefly, so that concurrent and following
			// requests are forwarded side by side rather than one after
			// the other.
			p := &Record{Key: key, Pass: true, Fetched: now, Expires: now.Add(passTTL)}
			e.keepRecord(p)
			st.kept(p)
		}
		status = "shoal; fwd=uri-miss"
		st.p.finish()
		return nil
	}
	if st.authz && !rec.Pass && !httpcache.ReusableWithAuthorization(rec.Header) {
		return nil // a response to credentials, not marked shared (RFC 9111 §3.5)
	}
	if rec.Pass && key != httpcache.TargetOf(key) {
		return nil // no pass records for variants: the target's requests decide
	}
	e.keepRecord(rec)
	e.replicate(rec)
	st.kept(rec)
	if rec.Pass {
		status = "shoal; fwd=uri-miss"
		st.p.finish()
		return nil
	}
	if rec.Layout.Segments(rec.Size) > 1 {
		st.p.finish()
		return &serveFromFleet{rec: rec}
	}
	resp.Header.Set("Age", strconv.FormatInt(rec.Age, 10))
	if rec.Status == 0 {
		resp.Header.Set("Accept-Ranges", "bytes")
	}
	status = "shoal; fwd=miss; stored; fwd-status=" + strconv.Itoa(resp.StatusCode) + "; ttl=" + strconv.FormatInt(int64(rec.Expires.Sub(now)/time.Second), 10) + "; detail=origin"
	if rec.Size == 0 {
		st.p.finish()
		return nil
	}
	resp.Body = &segmentTee{e: e, rec: rec, body: resp.Body, buf: make([]byte, e.coder.EncodedLen(int(rec.Size))), p: st.p}
	return nil
}

// segmentTee passes a one-segment body through and, once all of it has
// passed, codes it and places its shards like a fill.
type segmentTee struct {
	e    *Edge
	rec  *Record
	body io.ReadCloser
	buf  []byte
	n    int64
	once sync.Once
	p    *pendingMiss
}

func (t *segmentTee) Read(b []byte) (int, error) {
	n, err := t.body.Read(b)
	if n > 0 {
		if t.n+int64(n) <= t.rec.Size {
			copy(t.buf[t.n:], b[:n])
		}
		t.n += int64(n)
	}
	if err == io.EOF {
		t.finish()
	}
	return n, err
}

func (t *segmentTee) Close() error {
	t.finish()
	return t.body.Close()
}

// finish places the segment if the whole body, and only it, passed.
func (t *segmentTee) finish() {
	t.once.Do(func() {
		defer t.p.finish()
		if t.n != t.rec.Size {
			return // cut short: the segment comes later, by a fill
		}
		e := t.e
		id := erasure.SegmentID{Object: t.rec.ID(), Index: 0}
		shards, d, err := e.coder.EncodeInPlace(t.buf, int(t.rec.Size))
		if err != nil {
			e.log.Warn("could not code a forwarded body", "key", t.rec.Key, "err", err)
			return
		}
		seg := t.buf[:t.rec.Size:t.rec.Size]
		ms := &memSegment{d: d, data: seg, held: len(t.buf)}
		e.mem.Add(id, ms)
		e.m.fills.WithLabelValues(srcOrigin).Inc()
		ms.placed.Store(e.filler.place(id, d, shards))
	})
}

// serveStale answers r from the stale rec after the origin failed.
func (e *Edge) serveStale(w http.ResponseWriter, r *http.Request, rec *Record) {
	if cw, ok := w.(*countingWriter); ok {
		w = cw.ResponseWriter
	}
	if err := e.serveRecord(r.Context(), w, clientRequest(r), rec, false); err != nil {
		clear(w.Header())
		httpError(w, originStatus(err), "could not read object")
	}
}

// clientRequest returns r as the client sent it: without the validators a
// revalidation added.
func clientRequest(r *http.Request) *http.Request {
	if st, _ := r.Context().Value(missKey{}).(*missState); st != nil && st.revalidating {
		r = r.Clone(r.Context())
		r.Header.Del("If-None-Match")
		r.Header.Del("If-Modified-Since")
	}
	return r
}

// serveVariant answers a plain GET that selects a variant the fleet does
// not fetch (vary.go), stored or to be stored under key vk: from the
// edge's copy while it is fresh and its segment at hand, else by
// forwarding the client's request.
func (e *Edge) serveVariant(ctx context.Context, w http.ResponseWriter, r *http.Request, vk string) {
	if e.forwardMiss(w, r, vk, true) {
		return
	}
	if rec, ok := e.records.Get(vk); ok && !rec.Pass && rec.Fresh(e.cfg.Now()) && httpcache.Selects(rec.Key, rec.Header, r.Header) {
		if err := e.serveRecord(ctx, w, r, rec, false); err == nil {
			return
		}
		// Its segment is gone and the fleet cannot fetch a variant: the
		// origin answers, and the next request stores it again.
		e.forgetRecord(rec)
		clear(w.Header())
	}
	e.forward(w, r, "shoal; fwd=miss; detail=vary")
}
