package edge

import (
	"net/http"
	"strings"
)

// Vary (RFC 9111 §4.1). The fleet fetches objects with requests of its
// own (the coordinator's HEAD, the segment coordinators' ranged GETs) that
// carry none of the client's fields, so what it stores of a response with
// Vary is the variant selected by a request without the fields it names.
// That variant is served to requests that lack them too; a request that
// sends any of them is forwarded to the origin, so a client never gets a
// variant chosen for other field values. "Vary: *" is never stored.

// varyFields returns the canonical names a Vary field lists, and whether
// it lists "*".
func varyFields(h http.Header) (fields []string, star bool) {
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
	return fields, star
}

// variesFrom reports whether a request with header req selects another
// variant than the one stored for a response with header stored: it
// sends a field that the response's Vary names.
func variesFrom(stored, req http.Header) bool {
	fields, star := varyFields(stored)
	if star {
		return true
	}
	for _, f := range fields {
		if len(req.Values(f)) > 0 {
			return true
		}
	}
	return false
}
