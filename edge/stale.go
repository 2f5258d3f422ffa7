package edge

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
)

// Validation and stale responses (RFC 9111 §4.2.4, §4.3; RFC 5861).

// mayServeStale reports whether r's origin lets it be used stale at all:
// not with must-revalidate, proxy-revalidate or no-cache.
func mayServeStale(r *Record, d directives) bool {
	if r.Pass || d.has("must-revalidate") || d.has("proxy-revalidate") {
		return false
	}
	v, ok := d["no-cache"]
	return !ok || v != ""
}

// whileRevalidating reports whether r, stale at now, may be served while
// it is refreshed in the background (stale-while-revalidate).
func (e *Edge) whileRevalidating(r *Record, now time.Time) bool {
	d, _ := cachePolicy(r.Header)
	if !mayServeStale(r, d) {
		return false
	}
	w, ok, valid := d.seconds("stale-while-revalidate")
	return ok && valid && now.Before(r.Expires.Add(w))
}

// onError reports whether r, stale at now, may be served because the
// origin failed: within its stale-if-error window, or else within
// Config.ServeStaleOnError unless s-maxage (which implies
// proxy-revalidate, RFC 9111 §5.2.2.10) asks for revalidation.
func (e *Edge) onError(r *Record, now time.Time) bool {
	d, _ := cachePolicy(r.Header)
	if !mayServeStale(r, d) {
		return false
	}
	w, ok, valid := d.seconds("stale-if-error")
	switch {
	case ok && !valid:
		return false
	case !ok && d.has("s-maxage"):
		return false
	case !ok:
		w = e.cfg.ServeStaleOnError
	}
	return now.Before(r.Expires.Add(w))
}

// refreshInBackground runs refresh for key on a background goroutine,
// unless one is already running for key on this edge.
func (e *Edge) refreshInBackground(key string, refresh func(ctx context.Context)) {
	if _, busy := e.refreshing.LoadOrStore(key, true); busy {
		return
	}
	e.goBackground(func(ctx context.Context) {
		defer e.refreshing.Delete(key)
		refresh(ctx)
	})
}

// headOrigin asks the origin about key with a HEAD, conditional on old's
// validators when old is not nil (If-None-Match and If-Modified-Since:
// the origin evaluates If-None-Match first). A 304 refreshes old with the
// fields it carries (RFC 9111 §4.3.4); anything else makes a new record.
func (e *Edge) headOrigin(ctx context.Context, key string, old *Record) (*Record, error) {
	cond := variantFields(key) // a variant's fields select it (vary.go)
	if old != nil {
		if cond == nil {
			cond = http.Header{}
		}
		if old.ETag != "" {
			cond.Set("If-None-Match", old.ETag)
		}
		if old.LastModified != "" {
			cond.Set("If-Modified-Since", old.LastModified)
		}
	}
	ctx, span := e.tracer.Start(ctx, "origin.head", traceAttrs(attribute.String("shoal.object", key), attribute.Bool("shoal.conditional", old != nil)))
	defer span.End()
	o, target, err := e.sites.split(key)
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
		return nil, err
	}
	info, err := o.client.Head(ctx, target, cond)
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
		return nil, fmt.Errorf("edge: origin HEAD %s: %w", key, err)
	}
	span.SetAttributes(attribute.Int("http.response.status_code", info.StatusCode), attribute.Int64("shoal.size", info.Size))
	now := e.now()
	if info.StatusCode == http.StatusNotModified && old != nil {
		r := newRecord(key, http.StatusOK, updatedHeader(old.Header, info.Header), old.Size, old.Validator, old.Layout, now, e.cfg.MaxHeuristicFreshness)
		r.revalidated = true
		return r, nil
	}
	return newRecord(key, info.StatusCode, info.Header, info.Size, info.Validator(), e.cfg.Layout, now, e.cfg.MaxHeuristicFreshness), nil
}

// notUpdated are the fields a 304 does not change in a stored response
// (RFC 9111 §3.2): its length and range, and what the stored bytes depend
// on (their coding and digest, and the ETag that names their version).
var notUpdated = map[string]bool{
	"Content-Length": true, "Content-Range": true, "Content-Encoding": true, "Content-Md5": true, "Etag": true,
}

// updatedHeader returns stored updated by the fields of a 304: each field
// it carries replaces the stored one, except notUpdated and what is never
// stored (RFC 9111 §3.2).
// Its Age and Date come along for the new record's freshness.
func updatedHeader(stored, fresh http.Header) http.Header {
	h := stored.Clone()
	if h == nil {
		h = http.Header{}
	}
	for name, vs := range fresh {
		if hopByHop[name] || notUpdated[name] {
			continue
		}
		h[name] = append([]string(nil), vs...)
	}
	if _, ok := fresh["Age"]; !ok {
		delete(h, "Age")
	}
	return h
}

// imsDate is the date a stored response's If-Modified-Since is evaluated
// against (RFC 9111 §4.3.2): its Last-Modified, else its Date, else when
// it was received. The fallback applies to If-Modified-Since alone: an
// If-Unmodified-Since without a Last-Modified is still ignored (RFC 9110
// §13.1.4).
func imsDate(r *http.Request, rec *Record, lastMod time.Time) time.Time {
	if !lastMod.IsZero() || r.Header.Get("If-Modified-Since") == "" || r.Header.Get("If-Unmodified-Since") != "" {
		return lastMod
	}
	if d, err := http.ParseTime(rec.Header.Get("Date")); err == nil && !d.After(rec.Fetched) {
		return d
	}
	return rec.Fetched
}
