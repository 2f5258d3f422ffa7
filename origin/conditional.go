package origin

import (
	"net/http"
	"time"
)

// The helpers below expose this package's RFC 9110 range and precondition
// logic to the edge, which answers the same questions from its cache.

// ByteRange is one satisfiable byte range: Length bytes from Start.
type ByteRange struct {
	Start, Length int64
}

// ContentRange returns the Content-Range value of r within a representation
// of size bytes: "bytes first-last/size".
func (r ByteRange) ContentRange(size int64) string {
	return string(byteRange{start: r.Start, length: r.Length}.appendContentRange(nil, size))
}

// ParseRange parses a Range field value for a representation of size bytes
// and returns its satisfiable ranges, clamped, in the order given. It returns
// ErrRangeSyntax for a field to ignore (malformed, another unit, too many
// ranges) and ErrRangeUnsatisfiable when no range overlaps the
// representation (416).
func ParseRange(s string, size int64) ([]ByteRange, error) {
	rs, err := parseRange(s, size)
	if err != nil {
		return nil, err
	}
	out := make([]ByteRange, len(rs))
	for i, r := range rs {
		out[i] = ByteRange{Start: r.start, Length: r.length}
	}
	return out, nil
}

// CheckPreconditions evaluates a GET or HEAD's If-Match,
// If-Unmodified-Since, If-None-Match and If-Modified-Since against a
// representation with entity tag etag (may be "") last modified at
// lastModified (zero if unknown), in the order of RFC 9110 §13.2.2. It
// returns 0 to proceed, http.StatusNotModified or
// http.StatusPreconditionFailed.
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

// IfRangeMatches reports whether r's Range may be honoured given its
// If-Range (RFC 9110 §13.1.5): absent, an entity tag that strongly matches
// etag, or a date exactly equal to lastModified.
func IfRangeMatches(r *http.Request, etag string, lastModified time.Time) bool {
	return ifRangeHolds(r.Header.Get("If-Range"), etag, lastModified.Truncate(time.Second), !lastModified.IsZero())
}
