package edge

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"slices"
	"strconv"

	"github.com/shoalcdn/shoal/origin"
)

// Range requests (RFC 9110 §14).
//
// The ranges of a request are parsed by origin.ParseRange, then sorted and
// merged when they overlap or are at most rangeGap bytes apart (§14.2
// lets a server coalesce them), so the bytes sent never exceed the object
// plus the multipart framing, whatever the request asks for. More than
// Config.MaxRanges ranges left after merging make the edge ignore Range
// and send the whole object, as §14.2 allows; a Range that is not a valid
// bytes range is ignored too.

// rangeGap is how far apart two ranges may be and still be merged: less
// than the framing a part would cost.
const rangeGap = 80

// errTooManyRanges reports a Range field with more ranges than allowed.
var errTooManyRanges = errors.New("edge: too many ranges")

// planRanges returns the ranges to send for a Range field value on an
// object of size bytes: sorted and merged. It returns
// origin.ErrRangeUnsatisfiable for a 416, and another error when the field
// is to be ignored (malformed, or errTooManyRanges).
func planRanges(field string, size int64, maxRanges int) ([]origin.ByteRange, error) {
	rs, err := origin.ParseRange(field, size)
	if err != nil {
		return nil, err
	}
	slices.SortFunc(rs, func(a, b origin.ByteRange) int {
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
		return nil, errTooManyRanges
	}
	return out, nil
}

// byteranges frames ranges of one object as multipart/byteranges
// (RFC 9110 §14.6).
type byteranges struct {
	boundary string
	heads    []string // what precedes each part's bytes
	tail     string
}

func newMultipart(ranges []origin.ByteRange, size int64, contentType string) *byteranges {
	var b [12]byte
	rand.Read(b[:])
	m := &byteranges{boundary: "shoal-" + hex.EncodeToString(b[:])}
	for i, r := range ranges {
		head := ""
		if i > 0 {
			head = "\r\n"
		}
		head += "--" + m.boundary + "\r\n"
		if contentType != "" {
			head += "Content-Type: " + contentType + "\r\n"
		}
		head += "Content-Range: " + r.ContentRange(size) + "\r\n\r\n"
		m.heads = append(m.heads, head)
	}
	m.tail = "\r\n--" + m.boundary + "--\r\n"
	return m
}

// contentType is the value of the response's Content-Type.
func (m *byteranges) contentType() string { return "multipart/byteranges; boundary=" + m.boundary }

// length is the body's exact length, for Content-Length.
func (m *byteranges) length(ranges []origin.ByteRange) string {
	n := int64(len(m.tail))
	for i, r := range ranges {
		n += int64(len(m.heads[i])) + r.Length
	}
	return strconv.FormatInt(n, 10)
}
