package edge

import (
	"net/http"
	"strings"
	"time"
)

// Cache directives (RFC 9111 §5.2) and the targeted fields of RFC 9213.
//
// Which field governs the edge's cache, most specific first:
//
//	Shoal-Cache-Control  targeted at Shoal only; consumed, never sent on
//	CDN-Cache-Control    targeted at every CDN (RFC 9213 §3); kept in the
//	                     response, since a CDN further down is a target too
//	Cache-Control        every cache
//
// The first of these that is present and parses wholly governs alone: its
// directives replace those of Cache-Control rather than add to them
// (RFC 9213 §2.1). Clients always get the origin's Cache-Control unchanged.

// shoalCacheControl is the field targeted at Shoal edges alone.
const shoalCacheControl = "Shoal-Cache-Control"

// maxDeltaSeconds is what a delta-seconds larger than a cache can
// represent is read as (RFC 9111 §1.2.2).
const maxDeltaSeconds = 1 << 31

// directives is a parsed cache-directive list: lower-cased names mapped to
// their values, unquoted. A directive repeated keeps its first value
// (RFC 9111 §4.2.1 allows the first occurrence to be used).
type directives map[string]string

// has reports whether the directive name is present.
func (d directives) has(name string) bool {
	_, ok := d[name]
	return ok
}

// seconds returns a delta-seconds directive as a duration: ok is false
// when it is absent, valid false when its value is not 1*DIGIT (the
// caller treats such a lifetime as zero: stale).
func (d directives) seconds(name string) (dur time.Duration, ok, valid bool) {
	v, ok := d[name]
	if !ok {
		return 0, false, false
	}
	n, valid := parseDelta(v)
	return time.Duration(n) * time.Second, true, valid
}

// parseDelta parses delta-seconds, saturating at maxDeltaSeconds.
func parseDelta(s string) (int64, bool) {
	if s == "" {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		if n < maxDeltaSeconds {
			n = n*10 + int64(c-'0')
		}
	}
	return min(n, maxDeltaSeconds), true
}

// fieldList returns the names listed in a qualified directive such as
// private="Set-Cookie, X-Foo", canonicalised.
func (d directives) fieldList(name string) []string {
	var out []string
	for f := range strings.SplitSeq(d[name], ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, http.CanonicalHeaderKey(f))
		}
	}
	return out
}

// parseDirectives parses the lines of a Cache-Control-like field. ok is
// false when some element does not parse (a token, optionally "=" and a
// token or quoted-string); the directives that did parse are returned
// either way. Limits: at most 64 directives are kept.
func parseDirectives(lines []string) (d directives, ok bool) {
	d = directives{}
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
			if _, dup := d[name]; !dup && len(d) < 64 {
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

func isTokenChar(c byte) bool {
	return c > ' ' && c < 0x7f && strings.IndexByte("\"(),/:;<=>?@[\\]{}", c) < 0
}

// cachePolicy returns the directives that govern the edge's cache for a
// response with header h, and the field they came from.
func cachePolicy(h http.Header) (directives, string) {
	for _, f := range []string{shoalCacheControl, "Cdn-Cache-Control"} {
		if lines := h.Values(f); len(lines) > 0 {
			if d, ok := parseDirectives(lines); ok && len(d) > 0 {
				return d, f
			}
			// An invalid targeted field is ignored (RFC 9213 §2.1).
		}
	}
	d, _ := parseDirectives(h.Values("Cache-Control"))
	return d, "Cache-Control"
}
