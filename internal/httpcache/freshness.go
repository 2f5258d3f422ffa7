package httpcache

import (
	"net/http"
	"strings"
	"time"
)

// Storage and freshness (RFC 9111 §3 and §4.2). The governing directives
// are Policy's: Shoal-Cache-Control, else CDN-Cache-Control, else
// Cache-Control.

// hopByHop are the fields never stored or forwarded (RFC 9110 §7.6.1).
var hopByHop = map[string]bool{
	"Connection": true, "Keep-Alive": true, "Proxy-Connection": true, "Te": true, "Trailer": true,
	"Transfer-Encoding": true, "Upgrade": true, "Proxy-Authenticate": true, "Proxy-Authorization": true,
	"Proxy-Authentication-Info": true,
}

// IsHopByHop reports whether the field named name (canonical) is
// hop-by-hop (RFC 9110 §7.6.1): never stored, and never forwarded or
// replayed.
func IsHopByHop(name string) bool { return hopByHop[name] }

// Storable reports whether a shared cache may store a response with
// header h as far as its fields say (RFC 9111 §3, §3.5): not with
// no-store, unqualified private, "Vary: *" (§4.1) or Set-Cookie (a cookie
// is for one client; a shared cache keeps the cookie-free response only).
// The status, the length and the validators are the caller's to judge.
func Storable(h http.Header) bool {
	cc, _ := Policy(h)
	private, isPrivate := cc["private"]
	switch {
	case cc.Has("no-store"), isPrivate && private == "", varyStar(h), len(h.Values("Set-Cookie")) > 0:
		return false
	}
	return true
}

// heuristicStatus are the status codes cacheable by default (RFC 9110
// §15.1), which heuristic freshness may apply to.
var heuristicStatus = map[int]bool{
	200: true, 203: true, 204: true, 206: true, 300: true, 301: true, 308: true,
	404: true, 405: true, 410: true, 414: true, 501: true,
}

// StorableStatus reports whether a response of status with header h may
// be stored for its status (RFC 9111 §3): a final status this cache
// understands (must-understand, §5.2.2.3), neither 206 nor 304 (which are
// not complete responses), and cacheable by default or with explicit
// freshness or public. Storable is still to be asked.
func StorableStatus(status int, h http.Header) bool {
	cc, _ := Policy(h)
	explicit := cc.Has("max-age") || cc.Has("s-maxage") || len(h.Values("Expires")) > 0
	if cc.Has("must-understand") && http.StatusText(status) == "" {
		return false // a status this cache does not know (RFC 9111 §5.2.2.3)
	}
	return !(status < 200 || status > 599 || status == http.StatusPartialContent || status == http.StatusNotModified ||
		!heuristicStatus[status] && !explicit && !cc.Has("public"))
}

// NotStored returns the fields of a response with header h that are not
// to be stored besides the hop-by-hop ones: those its Connection lists
// (RFC 9110 §7.6.1), and those named by a qualified private="f" or
// no-cache="f" (RFC 9111 §5.2.2.7, §5.2.2.4). Names are canonical.
func NotStored(h http.Header) map[string]bool {
	cc, _ := Policy(h)
	drop := map[string]bool{}
	for _, v := range h.Values("Connection") {
		for f := range strings.SplitSeq(v, ",") {
			drop[http.CanonicalHeaderKey(strings.TrimSpace(f))] = true
		}
	}
	for _, f := range cc.FieldList("private") {
		drop[f] = true
	}
	for _, f := range cc.FieldList("no-cache") {
		drop[f] = true
	}
	return drop
}

// varyStar reports whether h has "Vary: *": a response no request can
// be known to select (RFC 9111 §4.1).
func varyStar(h http.Header) bool {
	_, star := VaryFields(h)
	return star
}

// Age is a response's age when received at now, in seconds (RFC 9111
// §4.2.3): the larger of its Age field and of now minus its Date. Shoal's
// requests to the origin are short, so response_delay is taken as zero. A
// list-based Age ("0, 7200", or several lines) is read by its first
// member, the others discarded (§5.1). A first member that is not a
// non-negative integer ("7200.0", "-1", "abc", "7200;x=1") makes the
// response stale: §5.1 says a cache SHOULD ignore such a field, but it
// comes from a cache upstream that counted some age it could not write,
// and ignoring it could make an old response look new (ATS, Varnish and
// Fastly also treat "7200.0" as old); not reusing it is always safe.
func Age(h http.Header, now time.Time) int64 {
	var age int64
	if v := h.Values("Age"); len(v) > 0 {
		first, _, _ := strings.Cut(v[0], ",")
		n, ok := parseDelta(strings.Trim(first, " \t"))
		if !ok {
			n = maxDeltaSeconds
		}
		age = n
	}
	if date, err := http.ParseTime(h.Get("Date")); err == nil && now.After(date) {
		age = max(age, int64(now.Sub(date)/time.Second))
	}
	return age
}

// Freshness returns the freshness lifetime of a response with header h
// received at now (RFC 9111 §4.2.1): s-maxage, max-age, Expires minus
// Date, or a heuristic 10% of the time since Last-Modified capped at
// maxHeuristic (§4.2.2); zero for no-cache and for an invalid lifetime (an
// invalid max-age or Expires means already stale).
func Freshness(h http.Header, now time.Time, maxHeuristic time.Duration) time.Duration {
	cc, _ := Policy(h)
	return freshness(cc, h, now, maxHeuristic)
}

func freshness(cc Directives, h http.Header, now time.Time, maxHeuristic time.Duration) time.Duration {
	if v, ok := cc["no-cache"]; ok && v == "" {
		return 0
	}
	for _, name := range []string{"s-maxage", "max-age"} {
		if d, ok, valid := cc.Seconds(name); ok {
			if !valid {
				return 0
			}
			return d
		}
	}
	date, errDate := http.ParseTime(h.Get("Date"))
	if errDate != nil {
		date = now // no Date: the time it was received (RFC 9110 §6.6.1)
	}
	if es := h.Values("Expires"); len(es) > 0 {
		exp, err := http.ParseTime(es[0])
		if err != nil {
			return 0 // an invalid Expires means already expired
		}
		return max(exp.Sub(date), 0)
	}
	if lm, err := http.ParseTime(h.Get("Last-Modified")); err == nil && date.After(lm) {
		return min(date.Sub(lm)/10, maxHeuristic)
	}
	return 0
}

// ReusableWithAuthorization reports whether a stored response with
// header h may answer a request that carries Authorization (RFC 9111
// §3.5): only with public, s-maxage or must-revalidate.
func ReusableWithAuthorization(h http.Header) bool {
	d, _ := Policy(h)
	return d.Has("public") || d.Has("s-maxage") || d.Has("must-revalidate")
}
