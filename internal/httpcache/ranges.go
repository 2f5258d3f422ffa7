package httpcache

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"math"
	"slices"
	"strconv"
	"strings"
)

// The byte-range fields of RFC 9110 §14:
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
	ErrRangeSyntax = errors.New("httpcache: malformed Range")
	// ErrRangeUnsatisfiable reports a valid Range field none of whose ranges
	// overlaps the representation: 416.
	ErrRangeUnsatisfiable = errors.New("httpcache: range not satisfiable")
	// ErrTooManyRanges reports a Range field with more ranges, once
	// merged, than the server allows. A server ignores such a field.
	ErrTooManyRanges = errors.New("httpcache: too many ranges")
)

// Range is a satisfiable range of a representation: Length bytes from
// Start, with 0 <= Start, 0 < Length and Start+Length <= the size.
type Range struct {
	Start, Length int64
}

// AppendContentRange appends the Content-Range value for r within a
// representation of size bytes: "bytes first-last/size".
func (r Range) AppendContentRange(b []byte, size int64) []byte {
	b = append(b, "bytes "...)
	b = strconv.AppendInt(b, r.Start, 10)
	b = append(b, '-')
	b = strconv.AppendInt(b, r.Start+r.Length-1, 10)
	b = append(b, '/')
	return strconv.AppendInt(b, size, 10)
}

// ContentRange returns the Content-Range value of r within a representation
// of size bytes: "bytes first-last/size".
func (r Range) ContentRange(size int64) string {
	return string(r.AppendContentRange(nil, size))
}

// UnsatisfiedContentRange returns the Content-Range value of a 416 for a
// representation of size bytes: "bytes */size" (RFC 9110 §14.4).
func UnsatisfiedContentRange(size int64) string {
	return "bytes */" + strconv.FormatInt(size, 10)
}

// ParseRange parses a Range field value (RFC 9110 §14.2) for a
// representation of size bytes. It returns the satisfiable ranges, in the
// order given, clamped to the representation. It returns ErrRangeSyntax
// when the field is malformed, in a unit other than bytes, or holds more
// than 64 specs (a field to ignore), and ErrRangeUnsatisfiable when it is
// valid but no range overlaps [0, size) (416).
func ParseRange(s string, size int64) ([]Range, error) {
	const unit = "bytes="
	if size < 0 || len(s) < len(unit) || !strings.EqualFold(s[:len(unit)], unit) {
		return nil, ErrRangeSyntax
	}
	var (
		ranges []Range
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
			ranges = append(ranges, Range{Start: size - n, Length: n})
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
		ranges = append(ranges, Range{Start: start, Length: end - start + 1})
	}
	if specs == 0 {
		return nil, ErrRangeSyntax
	}
	if len(ranges) == 0 {
		return nil, ErrRangeUnsatisfiable
	}
	return ranges, nil
}

// ParseContentRange parses a Content-Range field value of the satisfied form
// "bytes first-last/complete" (RFC 9110 §14.4). complete is -1 when the field
// says "*" (unknown). ok is false for anything else, including the
// unsatisfied form "bytes */n", first > last, and last >= complete.
func ParseContentRange(s string) (first, last, complete int64, ok bool) {
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

// rangeGap is how far apart two ranges may be and still be merged by
// PlanRanges: less than the framing a part would cost.
const rangeGap = 80

// PlanRanges returns the ranges to send for a Range field value on a
// representation of size bytes: parsed by ParseRange, then sorted and
// merged when they overlap or are at most 80 bytes apart (RFC 9110 §14.2
// lets a server coalesce them), so the bytes sent never exceed the
// representation plus the multipart framing, whatever the request asks
// for. It returns ErrRangeUnsatisfiable for a 416, and another error when
// the field is to be ignored: malformed, or ErrTooManyRanges when more
// than maxRanges ranges are left after merging (§14.2 allows sending the
// whole representation then).
func PlanRanges(field string, size int64, maxRanges int) ([]Range, error) {
	rs, err := ParseRange(field, size)
	if err != nil {
		return nil, err
	}
	slices.SortFunc(rs, func(a, b Range) int {
		switch {
		case a.Start < b.Start:
			return -1
		case a.Start > b.Start:
			return 1
		}
		return 0
	})
	out := rs[:1]
	for _, r := range rs[1:] {
		last := &out[len(out)-1]
		if end := last.Start + last.Length; r.Start <= end+rangeGap {
			last.Length = max(end, r.Start+r.Length) - last.Start
			continue
		}
		out = append(out, r)
	}
	if len(out) > maxRanges {
		return nil, ErrTooManyRanges
	}
	return out, nil
}

// Multipart frames ranges of one representation as multipart/byteranges
// (RFC 9110 §14.6). The bytes of part i go between Heads[i] and the next
// head (or Tail).
type Multipart struct {
	// Boundary is the random boundary delimiter.
	Boundary string
	// Heads holds, for each part, what precedes its bytes: the delimiter
	// and the part's Content-Type and Content-Range.
	Heads []string
	// Tail is the close delimiter, after the last part's bytes.
	Tail string
}

// NewMultipart frames ranges of a representation of size bytes and media
// type contentType (none when empty), with a random boundary.
func NewMultipart(ranges []Range, size int64, contentType string) *Multipart {
	var b [12]byte
	rand.Read(b[:])
	m := &Multipart{Boundary: "shoal-" + hex.EncodeToString(b[:])}
	for i, r := range ranges {
		head := ""
		if i > 0 {
			head = "\r\n"
		}
		head += "--" + m.Boundary + "\r\n"
		if contentType != "" {
			head += "Content-Type: " + contentType + "\r\n"
		}
		head += "Content-Range: " + r.ContentRange(size) + "\r\n\r\n"
		m.Heads = append(m.Heads, head)
	}
	m.Tail = "\r\n--" + m.Boundary + "--\r\n"
	return m
}

// ContentType is the value of the response's Content-Type.
func (m *Multipart) ContentType() string { return "multipart/byteranges; boundary=" + m.Boundary }

// Length is the body's exact length, for Content-Length, given the ranges
// m was made for.
func (m *Multipart) Length(ranges []Range) string {
	n := int64(len(m.Tail))
	for i, r := range ranges {
		n += int64(len(m.Heads[i])) + r.Length
	}
	return strconv.FormatInt(n, 10)
}
