package origin

import (
	"errors"
	"math"
	"strconv"
	"strings"
)

// This file holds the parsers and formatters for the byte-range fields of
// RFC 9110 §14, shared by the client and the server:
//
//	Range:         bytes=0-499, 1000-, -500      (range-unit "=" 1#range-spec)
//	Content-Range: bytes 0-499/1234              (206)
//	Content-Range: bytes */1234                  (416)
//
// Positions are decimal, inclusive, and unbounded in the grammar; the parsers
// saturate them at math.MaxInt64 instead of trusting them.

// maxRangeSpecs bounds how many range-specs one Range field may hold. A field with
// more is ignored (the whole representation is sent), so a hostile header costs
// no more than a scan.
const maxRangeSpecs = 64

var (
	// ErrRangeSyntax reports a Range field that is not a valid bytes
	// ranges-specifier. A server ignores such a field.
	ErrRangeSyntax = errors.New("origin: malformed Range")
	// ErrRangeUnsatisfiable reports a valid Range field none of whose ranges
	// overlaps the representation: 416.
	ErrRangeUnsatisfiable = errors.New("origin: range not satisfiable")
)

// byteRange is a satisfiable range of a representation: length bytes from
// start, with 0 <= start, 0 < length and start+length <= size.
type byteRange struct {
	start, length int64
}

// appendContentRange appends the Content-Range value for r within a
// representation of size bytes: "bytes first-last/size".
func (r byteRange) appendContentRange(b []byte, size int64) []byte {
	b = append(b, "bytes "...)
	b = strconv.AppendInt(b, r.start, 10)
	b = append(b, '-')
	b = strconv.AppendInt(b, r.start+r.length-1, 10)
	b = append(b, '/')
	return strconv.AppendInt(b, size, 10)
}

// parseRange parses a Range field value for a representation of size bytes.
// It returns the satisfiable ranges, in the order given, clamped to the
// representation. It returns ErrRangeSyntax when the field is malformed, in a
// unit other than bytes, or holds more than maxRangeSpecs specs, and
// ErrRangeUnsatisfiable when it is valid but no range overlaps [0, size).
func parseRange(s string, size int64) ([]byteRange, error) {
	const unit = "bytes="
	if size < 0 || len(s) < len(unit) || !strings.EqualFold(s[:len(unit)], unit) {
		return nil, ErrRangeSyntax
	}
	var (
		ranges []byteRange
		specs  int
	)
	for elem := range strings.SplitSeq(s[len(unit):], ",") {
		elem = trimOWS(elem)
		if elem == "" {
			continue // a #list may hold empty elements (RFC 9110 §5.6.1.2)
		}
		if specs++; specs > maxRangeSpecs {
			return nil, ErrRangeSyntax
		}
		first, last, ok := strings.Cut(elem, "-")
		if !ok {
			return nil, ErrRangeSyntax
		}
		if first == "" {
			// suffix-range: the last n bytes.
			n, ok := parseDigits(last)
			if !ok {
				return nil, ErrRangeSyntax
			}
			if n == 0 || size == 0 {
				continue // unsatisfiable
			}
			n = min(n, size)
			ranges = append(ranges, byteRange{start: size - n, length: n})
			continue
		}
		start, ok := parseDigits(first)
		if !ok {
			return nil, ErrRangeSyntax
		}
		end := int64(math.MaxInt64)
		if last != "" {
			if end, ok = parseDigits(last); !ok || end < start {
				return nil, ErrRangeSyntax
			}
		}
		if start >= size {
			continue // unsatisfiable
		}
		end = min(end, size-1)
		ranges = append(ranges, byteRange{start: start, length: end - start + 1})
	}
	if specs == 0 {
		return nil, ErrRangeSyntax
	}
	if len(ranges) == 0 {
		return nil, ErrRangeUnsatisfiable
	}
	return ranges, nil
}

// parseContentRange parses a Content-Range field value of the satisfied form
// "bytes first-last/complete". complete is -1 when the field says "*" (unknown).
// ok is false for anything else, including the unsatisfied form "bytes */n",
// first > last, and last >= complete.
func parseContentRange(s string) (first, last, complete int64, ok bool) {
	const unit = "bytes "
	if len(s) < len(unit) || !strings.EqualFold(s[:len(unit)], unit) {
		return 0, 0, 0, false
	}
	rng, cl, found := strings.Cut(s[len(unit):], "/")
	if !found {
		return 0, 0, 0, false
	}
	f, l, found := strings.Cut(rng, "-")
	if !found {
		return 0, 0, 0, false
	}
	if first, ok = parseDigits(f); !ok {
		return 0, 0, 0, false
	}
	if last, ok = parseDigits(l); !ok || last < first {
		return 0, 0, 0, false
	}
	if cl == "*" {
		return first, last, -1, true
	}
	if complete, ok = parseDigits(cl); !ok || last >= complete {
		return 0, 0, 0, false
	}
	return first, last, complete, true
}

// parseDigits parses 1*DIGIT, saturating at math.MaxInt64. Signs, spaces and
// empty strings are rejected, unlike strconv.ParseInt.
func parseDigits(s string) (int64, bool) {
	if s == "" {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		d := int64(c - '0')
		if n > (math.MaxInt64-d)/10 {
			n = math.MaxInt64
			continue // keep validating the rest
		}
		n = n*10 + d
	}
	return n, true
}

// trimOWS trims optional whitespace (SP and HTAB, RFC 9110 §5.6.3).
func trimOWS(s string) string {
	return strings.Trim(s, " \t")
}
