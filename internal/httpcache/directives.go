package httpcache

import (
	"net/http"
	"strings"
	"time"
)

// Cache directives (RFC 9111 §5.2) and the targeted fields of RFC 9213.
//
// Which field governs a Shoal edge's cache, most specific first:
//
//	Shoal-Cache-Control  targeted at Shoal only; consumed, never sent on
//	CDN-Cache-Control    targeted at every CDN (RFC 9213 §3); kept in the
//	                     response, since a CDN further down is a target too
//	Cache-Control        every cache
//
// The first of these that is present and parses wholly governs alone: its
// directives replace those of Cache-Control rather than add to them
// (RFC 9213 §2.1). Clients always get the origin's Cache-Control unchanged.

// ShoalCacheControl is the field targeted at Shoal edges alone, in
// canonical form. An edge removes it from what it sends on.
const ShoalCacheControl = "Shoal-Cache-Control"

// maxDeltaSeconds is what a delta-seconds larger than a cache can
// represent is read as (RFC 9111 §1.2.2).
const maxDeltaSeconds = 1 << 31

// maxDirectives bounds how many directives one field keeps, so a hostile
// field costs no more than a scan.
const maxDirectives = 64

// Directives is a parsed cache-directive list: lower-cased names mapped to
// their values, unquoted. A directive repeated keeps its first value
// (RFC 9111 §4.2.1 allows the first occurrence to be used).
type Directives map[string]string

// Has reports whether the directive name is present.
func (d Directives) Has(name string) bool {
	_, ok := d[name]
	return ok
}

// Seconds returns a delta-seconds directive as a duration: ok is false
// when it is absent, valid false when its value is not 1*DIGIT (the
// caller treats such a lifetime as zero: stale). Values past what a cache
// can represent saturate at 2^31 seconds (RFC 9111 §1.2.2).
func (d Directives) Seconds(name string) (dur time.Duration, ok, valid bool) {
	v, ok := d[name]
	if !ok {
		return 0, false, false
	}
	n, valid := parseDelta(v)
	return time.Duration(n) * time.Second, true, valid
}

// parseDelta parses delta-seconds (1*DIGIT), saturating at
// maxDeltaSeconds.
func parseDelta(s string) (int64, bool) {
	n, ok := parseDigits(s)
	return min(n, maxDeltaSeconds), ok
}

// FieldList returns the names listed in a qualified directive such as
// private="Set-Cookie, X-Foo", canonicalised.
func (d Directives) FieldList(name string) []string {
	var out []string
	for f := range strings.SplitSeq(d[name], ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, http.CanonicalHeaderKey(f))
		}
	}
	return out
}

// ParseCacheControl parses the lines of a Cache-Control-like field
// (RFC 9111 §5.2: a list of token, optionally "=" and a token or
// quoted-string). ok is false when some element does not parse; the
// directives that did parse are returned either way. At most 64
// directives are kept.
func ParseCacheControl(lines []string) (d Directives, ok bool) {
	d = Directives{}
	ok = true
	for _, line := range lines {
		s := line
		for len(s) > 0 {
			// One list element: up to a comma outside a quoted string.
			name, value, rest, good := nextDirective(s)
			s = rest
			if !good {
				ok = false
				continue
			}
			if name == "" {
				continue // empty list elements are allowed
			}
			if _, dup := d[name]; !dup && len(d) < maxDirectives {
				d[name] = value
			}
		}
	}
	return d, ok
}

// nextDirective reads one element of a directive list from s and returns
// it and what follows its comma. An empty element has an empty name.
func nextDirective(s string) (name, value, rest string, ok bool) {
	elem := s
	quoted := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case quoted && c == '\\':
			i++
		case c == '"':
			quoted = !quoted
		case !quoted && c == ',':
			elem, rest = s[:i], s[i+1:]
			i = len(s)
		}
	}
	elem = strings.Trim(elem, " \t")
	if elem == "" {
		return "", "", rest, true
	}
	i := 0
	for i < len(elem) && isTokenChar(elem[i]) {
		i++
	}
	if i == 0 {
		return "", "", rest, false
	}
	name = strings.ToLower(elem[:i])
	after := strings.TrimLeft(elem[i:], " \t")
	if after == "" {
		return name, "", rest, true
	}
	if after[0] != '=' {
		return "", "", rest, false
	}
	v := strings.TrimLeft(after[1:], " \t")
	if !strings.HasPrefix(v, `"`) {
		for j := 0; j < len(v); j++ {
			if !isTokenChar(v[j]) {
				return "", "", rest, false
			}
		}
		return name, v, rest, v != ""
	}
	var b strings.Builder
	for j := 1; j < len(v); j++ {
		switch c := v[j]; {
		case c == '\\' && j+1 < len(v):
			j++
			b.WriteByte(v[j])
		case c == '"':
			if j != len(v)-1 {
				return "", "", rest, false // bytes after the closing quote
			}
			return name, b.String(), rest, true
		default:
			b.WriteByte(c)
		}
	}
	return "", "", rest, false // no closing quote
}

// isTokenChar reports whether c is a tchar (RFC 9110 §5.6.2).
func isTokenChar(c byte) bool {
	return c > ' ' && c < 0x7f && strings.IndexByte("\"(),/:;<=>?@[\\]{}", c) < 0
}

// Policy returns the directives that govern a Shoal edge's cache for a
// response with header h, and the field they came from:
// Shoal-Cache-Control, else CDN-Cache-Control, else Cache-Control
// (RFC 9213 §2.1: an invalid targeted field is ignored).
func Policy(h http.Header) (Directives, string) {
	for _, f := range []string{ShoalCacheControl, "Cdn-Cache-Control"} {
		if lines := h.Values(f); len(lines) > 0 {
			if d, ok := ParseCacheControl(lines); ok && len(d) > 0 {
				return d, f
			}
			// An invalid targeted field is ignored (RFC 9213 §2.1).
		}
	}
	d, _ := ParseCacheControl(h.Values("Cache-Control"))
	return d, "Cache-Control"
}

// OnlyIfCached reports whether a request with header h says
// only-if-cached (RFC 9111 §5.2.1.7). The other request directives are
// not honoured by Shoal (see the README).
func OnlyIfCached(h http.Header) bool {
	if len(h.Values("Cache-Control")) == 0 {
		return false
	}
	d, _ := ParseCacheControl(h.Values("Cache-Control"))
	return d.Has("only-if-cached")
}
