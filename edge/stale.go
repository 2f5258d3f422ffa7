package edge

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"

	"github.com/shoalcdn/shoal/internal/httpcache"
)

// Validation and stale responses (RFC 9111 §4.2.4, §4.3; RFC 5861).

// whileRevalidating reports whether r, stale at now, may be served while
// it is refreshed in the background (stale-while-revalidate).
func (e *Edge) whileRevalidating(r *Record, now time.Time) bool {
	return !r.Pass && httpcache.StaleWhileRevalidate(r.Header, r.Expires, now)
}

// onError reports whether r, stale at now, may be served because the
// origin failed: within its stale-if-error window, or else within
// Config.ServeStaleOnError unless s-maxage asks for revalidation.
func (e *Edge) onError(r *Record, now time.Time) bool {
	return !r.Pass && httpcache.StaleIfError(r.Header, r.Expires, now, e.cfg.ServeStaleOnError)
}

// refreshInBackground runs refresh for key on a background goroutine,
// unless one is already running for key on this edge.
func (e *Edge) refreshInBackground(key string, refresh func(ctx context.Context)) {
	if _, busy := e.refreshing.LoadOrStore(key, true); busy {
		return
	}
	e.bg.goBackground(func(ctx context.Context) {
		defer e.refreshing.Delete(key)
		refresh(ctx)
	})
}

// headOrigin asks the origin about key with a HEAD, conditional on old's
// validators when old is not nil (If-None-Match and If-Modified-Since:
// the origin evaluates If-None-Match first). A 304 refreshes old with the
// fields it carries (RFC 9111 §4.3.4); anything else makes a new record.
func (e *Edge) headOrigin(ctx context.Context, key string, old *Record) (*Record, error) {
	if digestKey(key) {
		// A registry's content by digest is only filled by a client's own
		// GET (registry.go): its key is no target of the origin's.
		return nil, fmt.Errorf("edge: registry content %s is not looked up at the origin by its key", key)
	}
	cond := httpcache.VariantFields(key) // a variant's fields select it (vary.go)
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
	now := e.cfg.Now()
	if info.StatusCode == http.StatusNotModified && old != nil {
		r := newRecord(key, http.StatusOK, httpcache.UpdateHeaders(old.Header, info.Header), old.Size, old.Validator, old.Layout, now, e.cfg.MaxHeuristicFreshness)
		r.revalidated = true
		return r, nil
	}
	return newRecord(key, info.StatusCode, info.Header, info.Size, info.Validator(), e.cfg.Layout, now, e.cfg.MaxHeuristicFreshness), nil
}
