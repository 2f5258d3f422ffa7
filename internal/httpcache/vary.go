package httpcache

import (
	"net/http"
	"slices"
	"strings"
)

// Vary (RFC 9111 §4.1). A variant is stored under its own key: the
// request target, then, when the request sends any of the fields the
// response's Vary names, a newline and one "Name=value" line per field
// sent (names canonical and sorted, list values joined by "," with the
// whitespace around commas removed: the normalisation §4.1 allows). A
// newline cannot occur in a request target, so variant keys never clash
// with targets.

// VaryFields returns the canonical names a Vary field lists, sorted and
// unique, and whether it lists "*".
func VaryFields(h http.Header) (fields []string, star bool) {
	for _, line := range h.Values("Vary") {
		for f := range strings.SplitSeq(line, ",") {
			f = strings.TrimSpace(f)
			switch {
			case f == "":
			case f == "*":
				star = true
			default:
				fields = append(fields, http.CanonicalHeaderKey(f))
			}
		}
	}
	slices.Sort(fields)
	return slices.Compact(fields), star
}

// caseless are the fields whose values compare case-insensitively:
// language ranges, content codings and charsets (RFC 9110 §12.5.4,
// §8.4.1, §12.5.2); their variant keys are lower-cased, so "eN, De"
// selects the variant of "en, de".
var caseless = map[string]bool{"Accept-Language": true, "Accept-Encoding": true, "Accept-Charset": true}

// VariantKey is the key of the variant a request with header h selects
// among the responses of target that vary on fields (as VaryFields
// returns them).
func VariantKey(target string, fields []string, h http.Header) string {
	var b strings.Builder
	b.WriteString(target)
	for _, f := range fields {
		vs := h.Values(f)
		if len(vs) == 0 {
			continue
		}
		var parts []string
		for _, v := range vs {
			for p := range strings.SplitSeq(v, ",") {
				parts = append(parts, strings.TrimSpace(p))
			}
		}
		v := strings.Join(parts, ",")
		if caseless[f] {
			v = strings.ToLower(v)
		}
		b.WriteByte('\n')
		b.WriteString(f)
		b.WriteByte('=')
		b.WriteString(v)
	}
	return b.String()
}

// VariantFields returns the request fields a variant key names, one
// value each, as a request for that variant sends them; nil for a plain
// target.
func VariantFields(key string) http.Header {
	i := strings.IndexByte(key, '\n')
	if i < 0 {
		return nil
	}
	h := http.Header{}
	for line := range strings.SplitSeq(key[i+1:], "\n") {
		name, value, _ := strings.Cut(line, "=")
		h[name] = []string{value}
	}
	return h
}

// TargetOf returns the request target of a cache key (a target, or a
// variant key).
func TargetOf(key string) string {
	if i := strings.IndexByte(key, '\n'); i >= 0 {
		return key[:i]
	}
	return key
}

// Selects reports whether a request with header req may be answered by
// the response stored under key with header stored: the variant the
// request selects is that one (RFC 9111 §4.1). A "Vary: *" response is
// selected by no request.
func Selects(key string, stored, req http.Header) bool {
	fields, star := VaryFields(stored)
	return !star && VariantKey(TargetOf(key), fields, req) == key
}
