package httpcache

import (
	"net/http"
	"time"
)

// Validation and stale responses (RFC 9111 §4.2.4, §4.3; RFC 5861).

// mayServeStale reports whether a response's directives d let it be used
// stale at all: not with must-revalidate, proxy-revalidate or unqualified
// no-cache (RFC 9111 §4.2.4).
func mayServeStale(d Directives) bool {
	if d.Has("must-revalidate") || d.Has("proxy-revalidate") {
		return false
	}
	v, ok := d["no-cache"]
	return !ok || v != ""
}

// StaleWhileRevalidate reports whether a stored response with header h,
// fresh until expires and stale at now, may be served while it is
// revalidated in the background (RFC 5861 §3).
func StaleWhileRevalidate(h http.Header, expires, now time.Time) bool {
	d, _ := Policy(h)
	if !mayServeStale(d) {
		return false
	}
	w, ok, valid := d.Seconds("stale-while-revalidate")
	return ok && valid && now.Before(expires.Add(w))
}

// StaleIfError reports whether a stored response with header h, fresh
// until expires and stale at now, may be served because the origin
// failed (RFC 5861 §4): within its stale-if-error window, or else within
// fallback (the operator's choice) unless s-maxage, which implies
// proxy-revalidate (RFC 9111 §5.2.2.10), asks for revalidation.
func StaleIfError(h http.Header, expires, now time.Time, fallback time.Duration) bool {
	d, _ := Policy(h)
	if !mayServeStale(d) {
		return false
	}
	w, ok, valid := d.Seconds("stale-if-error")
	switch {
	case ok && !valid:
		return false
	case !ok && d.Has("s-maxage"):
		return false
	case !ok:
		w = fallback
	}
	return now.Before(expires.Add(w))
}

// notUpdated are the fields a 304 does not change in a stored response
// (RFC 9111 §3.2): its length and range, and what the stored bytes depend
// on (their coding and digest, and the ETag that names their version).
var notUpdated = map[string]bool{
	"Content-Length": true, "Content-Range": true, "Content-Encoding": true, "Content-Md5": true, "Etag": true,
}

// UpdateHeaders returns the stored header updated by the fields of a 304
// (RFC 9111 §3.2, §4.3.4): each field fresh carries replaces the stored
// one, except the hop-by-hop fields and those the stored bytes depend on
// (length, range, coding, digest, ETag). Its Age and Date come along for
// the updated response's freshness; a stored Age the 304 does not repeat
// is dropped. Neither argument is modified.
func UpdateHeaders(stored, fresh http.Header) http.Header {
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
