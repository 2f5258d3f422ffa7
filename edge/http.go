package edge

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/shoalcdn/shoal/internal/httpcache"
	"github.com/shoalcdn/shoal/swarm"
)

// writeChunk and writeTimeout set the slowest client the edge tolerates:
// every writeChunk bytes must leave within writeTimeout (about 8 KiB/s), so
// a slow but honest download of any size completes while a client that
// stops reading is cut off.
const (
	writeChunk   = 256 << 10
	writeTimeout = 30 * time.Second
)

// serverKind is a constant option, made once rather than per request.
var serverKind = trace.WithSpanKind(trace.SpanKindServer)

func traceAttrs(kv ...attribute.KeyValue) trace.SpanStartOption {
	return trace.WithAttributes(kv...)
}

// ServeHTTP serves a client request. GET and HEAD of objects the origin
// lets shared caches store go through the fleet; everything else is
// forwarded to the origin unchanged.
func (e *Edge) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	sw := &statusWriter{ResponseWriter: w}
	start := time.Now()
	// A traced client's trace goes on here (W3C traceparent).
	// (W3C Trace Context ignores tracestate without traceparent; Extract
	// costs an allocation even when there is nothing to extract.)
	ctx := r.Context()
	if len(r.Header["Traceparent"]) > 0 {
		ctx = propagation.TraceContext{}.Extract(ctx, propagation.HeaderCarrier(r.Header))
	}
	ctx, span := e.tracer.Start(ctx, r.Method, serverKind)
	recording := span.IsRecording()
	if recording {
		// Built only for a span that keeps them: a no-op span (tracing
		// off) would drop them, after their cost on every request.
		span.SetAttributes(
			attribute.String("http.request.method", r.Method),
			attribute.String("url.path", r.URL.Path),
			attribute.String("server.address", r.Host),
			attribute.String("client.address", r.RemoteAddr),
			attribute.String("user_agent.original", r.UserAgent()),
			attribute.String("http.request.header.range", r.Header.Get("Range")),
			attribute.String("shoal.node", e.node.Self()))
	}
	defer func() {
		code := sw.code()
		if recording {
			span.SetAttributes(attribute.Int("http.response.status_code", code),
				attribute.Int64("http.response.body.size", sw.bytes),
				attribute.String("shoal.cache_status", sw.Header().Get("Cache-Status")))
		}
		if code >= 500 {
			span.SetStatus(codes.Error, http.StatusText(code))
		}
		span.End()
		e.m.request(r.Method, code).Inc()
		e.m.requestTime(r.Method).Observe(time.Since(start).Seconds())
	}()
	r = r.WithContext(ctx)

	site := e.siteOf(r)
	if site == nil {
		misdirected(sw, r) // a Host no origin is configured for (origins.go)
		return
	}
	key := r.URL.RequestURI()
	switch {
	case r.Method != http.MethodGet && r.Method != http.MethodHead:
		// Every other method goes to the origin unchanged; an unsafe one
		// invalidates what the fleet holds for its target (see purge.go).
		e.forward(sw, r, "shoal; fwd=method")
		return
	case !strings.HasPrefix(key, "/"):
		httpError(sw, http.StatusBadRequest, "request target must be a path")
		return
	}
	target := key
	key = site.key(key)
	switch {
	case len(key) > swarm.MaxKey-1:
		httpError(sw, http.StatusRequestURITooLong, "request target too long")
		return
	}
	// A registry's content by digest: kept by digest, read with the
	// origin's permission, checked against its digest (registry.go).
	dr := e.digests.route(sw, r, site, target, key, e.forward)
	if dr.done {
		return
	}
	if dr.dw != nil {
		defer dr.dw.Finish()
	}
	key, r, ctx = dr.key, dr.r, dr.r.Context()
	out := dr.w
	if digestKey(key) && ctx.Value(registryAuthorized{}) != key {
		// Content by digest is only served with the origin's yes, which
		// route marks: not to a target that spells a key with a site
		// prefix on an edge of one site (//x/v2/_/...), say.
		e.forward(out, r, "shoal; fwd=bypass; detail=reserved")
		return
	}
	if httpcache.OnlyIfCached(r.Header) {
		// RFC 9111 §5.2.1.7: a stored response that may be used, or 504.
		rec, ok := e.records.Get(e.requestKey(key, r.Header))
		if !ok || rec.Pass || !rec.Fresh(e.cfg.Now()) || !httpcache.Selects(rec.Key, rec.Header, r.Header) {
			out.Header().Set("Cache-Status", "shoal; fwd=miss; detail=only-if-cached")
			httpError(out, http.StatusGatewayTimeout, "not in the cache (only-if-cached)")
			return
		}
		if err := e.serveRecord(ctx, out, r, rec, false); err != nil {
			clear(out.Header())
			httpError(out, http.StatusGatewayTimeout, "not in the cache (only-if-cached)")
		}
		return
	}
	plainGet := r.Method == http.MethodGet && r.Header.Get("Range") == ""
	if vk := e.requestKey(key, r.Header); !e.cfg.RangedFills && (vk == key || e.fleetVariant(vk)) && ((*streamer)(e).streamedMiss(out, r, vk) || (*streamer)(e).headMiss(out, r, vk)) {
		return // one origin GET, streamed, or the client's HEAD (streamed.go)
	}
	switch vk := e.requestKey(key, r.Header); {
	case vk != key && e.fleetVariant(vk):
		// A variant the fleet fetches with its own requests (vary.go); an
		// edge alone forwards it.
		if plainGet && len(e.node.Members()) == 1 && e.forwardMiss(out, r, vk, false) {
			return
		}
		key = vk
	case vk != key && plainGet:
		e.serveVariant(ctx, out, r, vk)
		return
	case plainGet:
		if e.forwardMiss(out, r, key, false) {
			return
		}
	}
	rec, fromOrigin, err := e.record(ctx, key, nil)
	if err == nil && !rec.Pass && !httpcache.Selects(rec.Key, rec.Header, r.Header) {
		// The record is of another variant than the one r selects: learn
		// how the target varies, and look up r's variant if the fleet can
		// fetch it.
		target := httpcache.TargetOf(key)
		vk := httpcache.VariantKey(target, e.learnVary(target, rec.Header), r.Header)
		if vk == key || !e.fleetVariant(vk) {
			e.forward(out, r, "shoal; fwd=miss; detail=vary")
			return
		}
		key = vk
		if rec, fromOrigin, err = e.record(ctx, key, nil); err == nil && !rec.Pass && !httpcache.Selects(rec.Key, rec.Header, r.Header) {
			e.forward(out, r, "shoal; fwd=miss; detail=vary")
			return
		}
	}
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
		e.log.WarnContext(ctx, "object lookup failed", "key", key, "err", err)
		httpError(out, originStatus(err), "origin unavailable")
		return
	}
	if sentCredentials(r) && !rec.Pass && !httpcache.ReusableWithAuthorization(rec.Header) {
		// A response for everyone is not necessarily one for an
		// authorised request: only public, s-maxage or must-revalidate
		// say it is (RFC 9111 §3.5).
		e.forward(out, r, "shoal; fwd=bypass; detail=authorization")
		return
	}
	err = e.serveRecord(ctx, out, r, rec, fromOrigin)
	if err == nil {
		return
	}
	// Nothing was sent: the first segment could not be read. If that is
	// because the object changed under the fleet's record, look it up again
	// (once for the fleet) and serve the new version.
	if errors.Is(err, swarm.ErrStale) && rec.Streamed() && !e.cfg.RangedFills {
		// A segment of a version of the fleet's own was lost: the object
		// is fetched again (streamed.go).
		clear(out.Header())
		if (*streamer)(e).refill(out, r, key, rec) {
			return
		}
	} else if errors.Is(err, swarm.ErrStale) {
		if nrec, _, rerr := e.record(ctx, key, rec); rerr == nil && !nrec.Same(rec) {
			e.log.InfoContext(ctx, "object changed at the origin, serving the new version", "key", key)
			clear(out.Header())
			if err = e.serveRecord(ctx, out, r, nrec, true); err == nil {
				return
			}
		}
	}
	if rec.Status != 0 {
		// Its body is gone and the fleet cannot fetch a non-200 response:
		// the origin answers, and the next miss stores it again.
		e.forgetRecord(rec)
		clear(out.Header())
		e.forward(out, r, "shoal; fwd=miss")
		return
	}
	span.SetStatus(codes.Error, err.Error())
	e.log.WarnContext(ctx, "could not read object", "key", key, "err", err)
	clear(out.Header())
	httpError(out, originStatus(err), "could not read object")
}

type cacheStatusKey struct{}

// headerTimerKey holds a forwarded request's header timer, stopped by the
// proxy once the response header arrived.
type headerTimerKey struct{}

// forward sends r to the origin unchanged, through the reverse proxy, and
// appends cacheStatus to the origin's Cache-Status (RFC 9211 lists caches
// from the origin outwards). Its body bytes count as served from the origin.
func (e *Edge) forward(w http.ResponseWriter, r *http.Request, cacheStatus string) {
	s := e.siteOf(r)
	if s == nil {
		misdirected(w, r)
		return
	}
	ctx := context.WithValue(r.Context(), cacheStatusKey{}, cacheStatus)
	ctx = context.WithValue(ctx, forwardedKey{}, forwarded{site: s, target: r.URL.RequestURI(), host: r.Host, unsafe: !safeMethods[r.Method]})
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		// The origin's response header must come within the origin
		// timeout, as for a miss (miss.go); not for a method with a body,
		// whose upload may take longer.
		var cancel context.CancelCauseFunc
		ctx, cancel = context.WithCancelCause(ctx)
		defer cancel(nil)
		timer := time.AfterFunc(e.originTimeout(), func() { cancel(errHeaderTimeout) })
		defer timer.Stop()
		ctx = context.WithValue(ctx, headerTimerKey{}, timer)
	}
	r = r.WithContext(ctx)
	s.proxy.ServeHTTP(&countingWriter{ResponseWriter: w, n: e.m.servedBytes.WithLabelValues(srcOrigin)}, r)
}

// countingWriter counts the body bytes written through it.
type countingWriter struct {
	http.ResponseWriter
	n interface{ Add(float64) }
}

func (w *countingWriter) Write(b []byte) (int, error) {
	n, err := w.ResponseWriter.Write(b)
	w.n.Add(float64(n))
	return n, err
}

func (w *countingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// serveRecord answers r from rec. It returns an error, having written
// nothing, when the first bytes of the body could not be read.
func (e *Edge) serveRecord(ctx context.Context, w http.ResponseWriter, r *http.Request, rec *Record, fromOrigin bool) error {
	if rec.Pass {
		e.forward(w, r, "shoal; fwd=uri-miss")
		return nil
	}
	return e.serveObject(ctx, w, r, rec, fromOrigin)
}

func (e *Edge) serveObject(ctx context.Context, w http.ResponseWriter, r *http.Request, rec *Record, fromOrigin bool) error {
	now := e.cfg.Now()
	h := w.Header()
	for k, vs := range rec.Header {
		h[k] = slices.Clip(vs) // an Add below must not write into the record's array
	}
	// Shoal-Cache-Control is for the edge alone (see httpcache.Policy).
	delete(h, httpcache.ShoalCacheControl) // canonical: Del would canonicalise it again
	var fv fieldValues
	fv.set(h, "Accept-Ranges", "bytes")
	fv.set(h, "Age", strconv.FormatInt(rec.Age+max(int64(now.Sub(rec.Fetched)/time.Second), 0), 10))
	if len(h["Via"]) > 0 {
		h.Add("Via", httpcache.Via(r.ProtoMajor, r.ProtoMinor))
	} else {
		fv.set(h, "Via", httpcache.Via(r.ProtoMajor, r.ProtoMinor))
	}
	// Last-Modified as a date only matters to a request that compares
	// dates (If-Modified-Since, If-Unmodified-Since, If-Range): parsing
	// it for every request was a percent of a small hot object's time.
	var lastMod time.Time
	if rh := r.Header; rh["If-Modified-Since"] != nil || rh["If-Unmodified-Since"] != nil || rh["If-Range"] != nil {
		lastMod, _ = http.ParseTime(rec.LastModified)
	}
	cacheStatus := func(detail string) {
		fv.set(h, "Cache-Status", cacheStatusValue(rec, fromOrigin, detail, now))
	}

	if rec.Status != 0 {
		// A stored response other than a 200 (miss.go) is replayed as it
		// came: no ranges, no preconditions (they select representations).
		if rec.Status != http.StatusNoContent && rec.Status != http.StatusNotModified {
			h.Set("Content-Length", strconv.FormatInt(rec.Size, 10))
		}
		h.Del("Accept-Ranges")
		if r.Method == http.MethodHead || rec.Size == 0 {
			cacheStatus("")
			w.WriteHeader(rec.Status)
			return nil
		}
		return e.stream(ctx, w, rec, 0, rec.Size, func(src string) {
			cacheStatus(src)
			w.WriteHeader(rec.Status)
		})
	}
	switch httpcache.CheckPreconditions(r, rec.ETag, httpcache.ModifiedDate(r.Header, rec.Header, lastMod, rec.Fetched)) {
	case http.StatusNotModified:
		for _, f := range []string{"Content-Type", "Content-Encoding", "Content-Language", "Content-Disposition"} {
			h.Del(f)
		}
		cacheStatus("")
		w.WriteHeader(http.StatusNotModified)
		return nil
	case http.StatusPreconditionFailed:
		cacheStatus("")
		httpError(w, http.StatusPreconditionFailed, "precondition failed")
		return nil
	}

	ranges := []httpcache.Range{{Start: 0, Length: rec.Size}}
	code := http.StatusOK
	if rh := r.Header.Get("Range"); rh != "" && r.Method == http.MethodGet && httpcache.IfRangeHolds(r.Header.Get("If-Range"), rec.ETag, lastMod) {
		rs, err := httpcache.PlanRanges(rh, rec.Size, e.cfg.MaxRanges)
		switch {
		case errors.Is(err, httpcache.ErrRangeUnsatisfiable):
			cacheStatus("")
			h.Set("Content-Range", httpcache.UnsatisfiedContentRange(rec.Size))
			httpError(w, http.StatusRequestedRangeNotSatisfiable, "range not satisfiable")
			return nil
		case err == nil:
			ranges, code = rs, http.StatusPartialContent
		}
	}
	var parts *httpcache.Multipart
	switch {
	case len(ranges) > 1:
		h.Del("Content-Range")
		parts = httpcache.NewMultipart(ranges, rec.Size, h.Get("Content-Type"))
		h.Set("Content-Type", parts.ContentType())
		h.Set("Content-Length", parts.Length(ranges))
	case code == http.StatusPartialContent:
		h.Set("Content-Range", ranges[0].ContentRange(rec.Size))
		fallthrough
	default:
		fv.set(h, "Content-Length", strconv.FormatInt(ranges[0].Length, 10))
	}
	if r.Method == http.MethodHead || rec.Size == 0 {
		cacheStatus("")
		w.WriteHeader(code)
		return nil
	}
	if parts == nil {
		return e.stream(ctx, w, rec, ranges[0].Start, ranges[0].Length, func(src string) {
			cacheStatus(src)
			w.WriteHeader(code)
		})
	}
	for i, rg := range ranges {
		var begin func(string)
		if i == 0 {
			begin = func(src string) {
				cacheStatus(src)
				w.WriteHeader(code)
				io.WriteString(w, parts.Heads[0])
			}
		} else if _, err := io.WriteString(w, parts.Heads[i]); err != nil {
			return nil // the client went away
		}
		if err := e.stream(ctx, w, rec, rg.Start, rg.Length, begin); err != nil {
			return err
		}
		if ctx.Err() != nil {
			return nil
		}
	}
	io.WriteString(w, parts.Tail)
	return nil
}

// fieldValues hands out the one-value slices of the header fields a
// response sets from one allocation, where Header.Set makes one per field.
// Each slice has a capacity of one, so an Add to its field copies it.
type fieldValues []string

// set sets h's field key, which must be in canonical form, to v.
func (f *fieldValues) set(h http.Header, key, v string) {
	if len(*f) == 0 {
		*f = make([]string, 5)
	}
	(*f)[0] = v
	h[key] = (*f)[:1:1]
	*f = (*f)[1:]
}

// cacheStatusValue is the edge's Cache-Status entry (RFC 9211) for a
// response from rec: "hit" when the fleet had the record and the first
// bytes, with a negative ttl when it is served stale; "fwd=miss; stored"
// when the origin was asked for either; "fwd=stale; fwd-status=304" when
// the origin confirmed a stale record. detail names the tier of the
// first segment.
func cacheStatusValue(rec *Record, fromOrigin bool, detail string, now time.Time) string {
	ttl := int64(rec.Expires.Sub(now) / time.Second)
	if ttl < 0 || rec.Expires.Before(now) && ttl == 0 {
		ttl = min(ttl, -1) // stale, however little
	}
	// One allocation: this runs for every response.
	var buf [80]byte
	b := buf[:0]
	switch {
	case fromOrigin && rec.revalidated:
		b = append(b, "shoal; fwd=stale; fwd-status=304; stored; ttl="...)
	case fromOrigin || detail == srcOrigin:
		b = append(b, "shoal; fwd=miss; stored; fwd-status=200; ttl="...)
	default:
		b = append(b, "shoal; hit; ttl="...)
	}
	b = strconv.AppendInt(b, ttl, 10)
	if detail != "" {
		b = append(append(b, "; detail="...), detail...)
	}
	return string(b)
}

type segOut struct {
	data []byte
	src  string
	err  error
}

// stream sends [start, start+length) of the object, reading segments
// ReadAhead ahead of the one being written. Memory stays at a few
// segments whatever the object's size, and the first byte leaves as soon as
// the first segment is ready. begin, if not nil, runs before the first
// byte is written (it writes the status); when the first segment cannot be
// read stream then returns an error, having written nothing. Any later
// failure cuts the connection, so the client sees a short body, never a
// wrong one.
func (e *Edge) stream(ctx context.Context, w http.ResponseWriter, rec *Record, start, length int64, begin func(src string)) error {
	seg := rec.Layout.SegmentSize
	first, last := start/seg, (start+length-1)/seg
	rc := http.NewResponseController(w)
	end := start + length
	wrote := begin == nil
	// Bytes of this response by source, for its span: "how much of this
	// object came from the origin".
	var bySource [numSources]int64
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		defer func() {
			span.SetAttributes(
				attribute.Int64("shoal.bytes.memory", bySource[0]), attribute.Int64("shoal.bytes.disk", bySource[1]),
				attribute.Int64("shoal.bytes.peer", bySource[2]), attribute.Int64("shoal.bytes.origin", bySource[3]))
		}()
	}
	// send writes the part of segment i in [start, end). It reports
	// whether stream is over, and with what.
	send := func(i int64, out segOut) (bool, error) {
		if out.err != nil {
			if !wrote {
				return true, out.err
			}
			switch {
			case errors.Is(out.err, swarm.ErrStale) && rec.Streamed():
				// Too late for this response: the next fetches the object again.
				(*streamer)(e).lost(ctx, rec)
			case errors.Is(out.err, swarm.ErrStale):
				// Too late for this response; look the object up again
				// before cutting it, so that the next gets the new version.
				rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
				e.record(rctx, rec.Key, rec)
				cancel()
			}
			e.log.WarnContext(ctx, "segment read failed mid-response, cutting the connection", "key", rec.Key, "segment", i, "err", out.err)
			panic(http.ErrAbortHandler)
		}
		e.m.segmentRead(out.src).Inc()
		segOff := i * seg
		if int64(len(out.data)) != min(seg, rec.Size-segOff) {
			err := fmt.Errorf("edge: segment %d of %s has %d bytes", i, rec.Key, len(out.data))
			if !wrote {
				return true, err
			}
			e.log.ErrorContext(ctx, "cutting the connection", "err", err)
			panic(http.ErrAbortHandler)
		}
		b := out.data[max(start, segOff)-segOff : min(end, segOff+int64(len(out.data)))-segOff]
		if !wrote {
			begin(out.src)
			wrote = true
		}
		served := e.m.servedFrom(out.src)
		sent := 0
		var now time.Time
		defer func() {
			// Once per segment, not per chunk: the tracker takes a lock
			// (and the time of the last chunk: clock reads are not free).
			e.hot.add(rec.Key, sent, now)
			bySource[sourceSlot(out.src)] += int64(sent)
		}()
		for len(b) > 0 {
			n := min(len(b), writeChunk)
			now = time.Now()
			_ = rc.SetWriteDeadline(now.Add(writeTimeout))
			m, err := w.Write(b[:n])
			served.Add(float64(m))
			sent += m
			if err != nil {
				return true, nil // the client went away; cancel stops the readers
			}
			b = b[n:]
		}
		return false, nil
	}
	if first == last {
		// One segment (every object up to the segment size): read it
		// here. The read-ahead below costs two goroutines, their channels
		// and a cancellable context per response, which was most of the
		// edge's own time serving a small hot object.
		data, src, err := e.reader.segment(ctx, rec, uint32(first))
		if err != nil && ctx.Err() != nil {
			return nil // the client went away
		}
		_, err = send(first, segOut{data, src, err})
		return err
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	queue := make(chan chan segOut, e.cfg.ReadAhead)
	go func() {
		defer close(queue)
		for i := first; i <= last; i++ {
			ch := make(chan segOut, 1)
			select {
			case queue <- ch:
			case <-ctx.Done():
				return
			}
			go func() {
				data, src, err := e.reader.segment(ctx, rec, uint32(i))
				ch <- segOut{data, src, err}
			}()
		}
	}()
	for i := first; i <= last; i++ {
		var out segOut
		select {
		case ch, ok := <-queue:
			if !ok {
				return nil // cancelled: the client went away
			}
			select {
			case out = <-ch:
			case <-ctx.Done():
				return nil
			}
		case <-ctx.Done():
			return nil // the client went away
		}
		if done, err := send(i, out); done {
			return err
		}
	}
	return nil
}

// statusWriter remembers the status code and counts the body bytes.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusWriter) code() int {
	if w.status == 0 {
		return http.StatusOK
	}
	return w.status
}

// sourceSlot numbers the sources: memory, disk, peer, origin.
func sourceSlot(src string) int {
	switch src {
	case srcMemory:
		return 0
	case srcDisk:
		return 1
	case srcPeer:
		return 2
	}
	return 3
}

// httpError writes a short plain-text error.
func httpError(w http.ResponseWriter, code int, msg string) {
	h := w.Header()
	for _, f := range []string{"Content-Encoding", "Content-Disposition", "ETag", "Last-Modified", "Cache-Control", "Expires", "Content-Length"} {
		h.Del(f)
	}
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	fmt.Fprintln(w, msg)
}

// originStatus maps a failure to reach the origin to 504 for a timeout and
// 502 for anything else.
func originStatus(err error) int {
	var ne interface{ Timeout() bool }
	if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
		return http.StatusGatewayTimeout
	}
	return http.StatusBadGateway
}
