package httpcache

import "strings"

// Entity tags (RFC 9110 §8.8.3):
//
//	entity-tag = [ "W/" ] DQUOTE *etagc DQUOTE
//	etagc      = %x21 / %x23-7E / obs-text

// scanETag scans one entity-tag at the start of s. It returns the tag as sent
// (with its W/ prefix and quotes), whether it is weak, and the rest of s.
func scanETag(s string) (tag string, weak bool, rest string, ok bool) {
	i := 0
	if strings.HasPrefix(s, "W/") {
		weak, i = true, 2
	}
	if i >= len(s) || s[i] != '"' {
		return "", false, s, false
	}
	for j := i + 1; j < len(s); j++ {
		switch c := s[j]; {
		case c == '"':
			return s[:j+1], weak, s[j+1:], true
		case c == 0x21 || c >= 0x23 && c != 0x7F:
			// etagc
		default:
			return "", false, s, false
		}
	}
	return "", false, s, false
}

// ParseETag reports whether s is exactly one entity-tag (RFC 9110 §8.8.3),
// and whether it is weak.
func ParseETag(s string) (weak, ok bool) {
	_, weak, rest, ok := scanETag(s)
	return weak, ok && rest == ""
}

// StrongMatch is the strong comparison of RFC 9110 §8.8.3.2: both tags
// strong and identical.
func StrongMatch(a, b string) bool {
	return a == b && !strings.HasPrefix(a, "W/")
}

// WeakMatch is the weak comparison of RFC 9110 §8.8.3.2: the opaque tags
// are identical, weak or not.
func WeakMatch(a, b string) bool {
	return strings.TrimPrefix(a, "W/") == strings.TrimPrefix(b, "W/")
}

// etagListMatch reports whether the If-Match / If-None-Match value list ("*" or
// 1#entity-tag) matches etag, the current representation's tag. A malformed
// element ends the scan; the tags before it still count.
func etagListMatch(list, etag string, match func(a, b string) bool) bool {
	list = trimOWS(list)
	if list == "*" {
		return true
	}
	for {
		list = strings.TrimLeft(list, " \t,")
		if list == "" {
			return false
		}
		tag, _, rest, ok := scanETag(list)
		if !ok {
			return false
		}
		if match(tag, etag) {
			return true
		}
		list = rest
	}
}
