package httpcache

import (
	"net/http"
	"strings"
	"time"
)

// Conditional requests (RFC 9110 §13).

type precondition int

const (
	proceed precondition = iota
	notModified
	preconditionFailed
)

// CheckPreconditions evaluates a GET or HEAD's If-Match,
// If-Unmodified-Since, If-None-Match and If-Modified-Since against a
// representation with entity tag etag (may be "") last modified at
// lastModified (zero if unknown), in the order of RFC 9110 §13.2.2. HTTP
// dates have one-second resolution, so lastModified is truncated to the
// second. It returns 0 to proceed, http.StatusNotModified or
// http.StatusPreconditionFailed. If-Range is evaluated separately, with
// Range (IfRangeHolds).
func CheckPreconditions(r *http.Request, etag string, lastModified time.Time) int {
	hasMod := !lastModified.IsZero()
	switch evalPreconditions(r, etag, lastModified.Truncate(time.Second), hasMod) {
	case notModified:
		return http.StatusNotModified
	case preconditionFailed:
		return http.StatusPreconditionFailed
	}
	return 0
}

// evalPreconditions evaluates If-Match, If-Unmodified-Since, If-None-Match and
// If-Modified-Since in the order of RFC 9110 §13.2.2, for GET or HEAD of an
// existing representation.
func evalPreconditions(r *http.Request, etag string, mod time.Time, hasMod bool) precondition {
	if im := headerList(r.Header, "If-Match"); im != "" {
		if !etagListMatch(im, etag, StrongMatch) {
			return preconditionFailed
		}
	} else if ius := r.Header.Get("If-Unmodified-Since"); ius != "" && hasMod {
		if t, err := http.ParseTime(ius); err == nil && mod.After(t) {
			return preconditionFailed
		}
	}
	if inm := headerList(r.Header, "If-None-Match"); inm != "" {
		if etagListMatch(inm, etag, WeakMatch) {
			return notModified
		}
	} else if ims := r.Header.Get("If-Modified-Since"); ims != "" && hasMod {
		if t, err := http.ParseTime(ims); err == nil && !mod.After(t) {
			return notModified
		}
	}
	return proceed
}

// IfRangeHolds reports whether a Range may be honoured given the If-Range
// field value v (RFC 9110 §13.1.5): absent, an entity tag that strongly
// matches etag, or a date exactly equal to lastModified (zero if unknown;
// truncated to the second).
func IfRangeHolds(v, etag string, lastModified time.Time) bool {
	return ifRangeHolds(v, etag, lastModified.Truncate(time.Second), !lastModified.IsZero())
}

func ifRangeHolds(v, etag string, mod time.Time, hasMod bool) bool {
	v = trimOWS(v)
	switch {
	case v == "":
		return true
	case v[0] == '"' || strings.HasPrefix(v, "W/"):
		return StrongMatch(v, etag)
	default:
		t, err := http.ParseTime(v)
		return err == nil && hasMod && t.Equal(mod)
	}
}

// headerList joins the field lines of a list-based field.
func headerList(h http.Header, key string) string {
	v := h.Values(key)
	if len(v) <= 1 {
		return strings.Join(v, "")
	}
	return strings.Join(v, ",")
}

// HasConditionals reports whether h holds a precondition or If-Range
// (RFC 9110 §13.1).
func HasConditionals(h http.Header) bool {
	for _, f := range []string{"If-None-Match", "If-Modified-Since", "If-Match", "If-Unmodified-Since", "If-Range"} {
		if h.Get(f) != "" {
			return true
		}
	}
	return false
}

// ModifiedDate is the date a stored response's If-Modified-Since is
// evaluated against (RFC 9111 §4.3.2), for a request with header req: its
// Last-Modified (lastMod, zero if none), else the stored response's Date
// (from its header stored) when not after received, else received, when
// it was received. The fallback applies to If-Modified-Since alone: with
// no If-Modified-Since, or with an If-Unmodified-Since (which without a
// Last-Modified is still ignored, RFC 9110 §13.1.4), lastMod is returned.
func ModifiedDate(req, stored http.Header, lastMod, received time.Time) time.Time {
	if !lastMod.IsZero() || req.Get("If-Modified-Since") == "" || req.Get("If-Unmodified-Since") != "" {
		return lastMod
	}
	if d, err := http.ParseTime(stored.Get("Date")); err == nil && !d.After(received) {
		return d
	}
	return received
}
