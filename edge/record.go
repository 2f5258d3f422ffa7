package edge

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/shoalcdn/shoal/erasure"
	"github.com/shoalcdn/shoal/internal/httpcache"
)

// Record is what the fleet knows about one object version: enough to serve
// its headers, answer conditional requests, and find or fetch its segments.
// Records travel between edges in Stat and Fill payloads.
type Record struct {
	// Key is the cache key: the request target (path and query).
	Key string
	// Pass marks a response the edge must not store: requests for it are
	// forwarded to the origin. Only Key, Fetched and Expires are set.
	Pass bool
	// Size is the object's length in bytes.
	Size int64
	// Layout is how the object is cut and coded.
	Layout erasure.Layout
	// ETag and LastModified are the origin's validators as sent.
	ETag, LastModified string
	// Validator names this version to the origin in If-Range: a strong
	// ETag, else a Last-Modified date old enough to be trusted (see
	// origin.Info.Validator). An object of one segment without either is
	// stored under a made-up validator, "#" and the time it was fetched,
	// which names the version but is never sent (see IfRange); a larger
	// one is only stored by a streamed fill, under "#s" and a unique
	// suffix (streamVersion), since the one response it comes from is its
	// only source: its segments are never fetched by range, which could
	// mix versions. So is an object of unknown length (a chunked
	// response), whatever its validators.
	Validator string
	// Header holds the response fields replayed to clients.
	Header http.Header
	// Fetched is when the origin last confirmed this version (local clock);
	// Expires is when it stops being fresh.
	Fetched, Expires time.Time
	// Age is the response's age at Fetched, in seconds (RFC 9111 §4.2.3).
	Age int64
	// Status is the response's status code when not 200: a response of
	// one segment stored from a forwarded or streamed fill's body
	// (miss.go), which the fleet's own fetches could not get again. Zero
	// means 200.
	Status int

	// revalidated marks a record the origin confirmed with a 304 (for
	// Cache-Status). It travels in the Stat answer's flags, not in the
	// record's encoding.
	revalidated bool
}

// IfRange returns what guards a ranged fetch of this version: the
// validator, or "" for a made-up one (the fetch then checks the size).
func (r *Record) IfRange() string {
	if strings.HasPrefix(r.Validator, "#") {
		return ""
	}
	return r.Validator
}

// ID returns the object version's identity. A streamed version's does
// not depend on its size, which a chunked response makes known only at its
// end, after its first segments were placed: its validator is unique.
func (r *Record) ID() erasure.ObjectID {
	if r.Streamed() {
		return erasure.NewObjectID(r.Key, r.Validator, -1, r.Layout)
	}
	return erasure.NewObjectID(r.Key, r.Validator, r.Size, r.Layout)
}

// Streamed reports whether r is a version of the fleet's own making, made
// by a streamed fill: one response is its only source (see Validator).
func (r *Record) Streamed() bool { return strings.HasPrefix(r.Validator, streamedPrefix) }

// streamedPrefix starts the validator of a streamed fill's own version.
const streamedPrefix = "#s"

// streamVersion returns a new version name for a streamed fill: unique
// in the fleet (the time and random bits).
func streamVersion(now time.Time) string {
	var b [6]byte
	rand.Read(b[:])
	return streamedPrefix + strconv.FormatInt(now.UnixNano(), 36) + "." + hex.EncodeToString(b[:])
}

// Fresh reports whether r may be used at now without asking the origin.
func (r *Record) Fresh(now time.Time) bool { return now.Before(r.Expires) }

// Same reports whether o describes the same object version as r.
func (r *Record) Same(o *Record) bool {
	return r.Pass == o.Pass && r.Status == o.Status && r.Size == o.Size && r.ETag == o.ETag && r.LastModified == o.LastModified &&
		r.Validator == o.Validator && r.Layout == o.Layout
}

// Limits of a record's encoding.
const (
	maxRecordKey     = 8 << 10
	maxRecordField   = 8 << 10
	maxRecordHeaders = 64
	recordVersion    = 1
)

var errRecord = errors.New("edge: malformed record")

// Append appends r's encoding to b. Layout, all integers big-endian,
// strings as a uvarint length and bytes:
//
//	version(1)=1 flags(1: bit0 pass, bit1 status) key
//	size(8) segment size(8) k(1) m(1) etag last-modified validator
//	fetched(8, unix ns) expires(8, unix ns) age(8)
//	header count(1), then count × (name, value)
//	[status(2), when flags bit1]
func (r *Record) Append(b []byte) []byte {
	var flags byte
	if r.Pass {
		flags |= 1
	}
	if r.Status != 0 {
		flags |= 2
	}
	b = append(b, recordVersion, flags)
	b = appendString(b, r.Key)
	b = binary.BigEndian.AppendUint64(b, uint64(r.Size))
	b = binary.BigEndian.AppendUint64(b, uint64(r.Layout.SegmentSize))
	b = append(b, byte(r.Layout.Params.K), byte(r.Layout.Params.M))
	b = appendString(b, r.ETag)
	b = appendString(b, r.LastModified)
	b = appendString(b, r.Validator)
	b = binary.BigEndian.AppendUint64(b, uint64(r.Fetched.UnixNano()))
	b = binary.BigEndian.AppendUint64(b, uint64(r.Expires.UnixNano()))
	b = binary.BigEndian.AppendUint64(b, uint64(r.Age))
	n := 0
	for _, vs := range r.Header {
		n += len(vs)
	}
	n = min(n, maxRecordHeaders)
	b = append(b, byte(n))
	for _, name := range sortedKeys(r.Header) {
		for _, v := range r.Header[name] {
			if n == 0 {
				break
			}
			b = appendString(b, name)
			b = appendString(b, v)
			n--
		}
	}
	if r.Status != 0 {
		b = binary.BigEndian.AppendUint16(b, uint16(r.Status))
	}
	return b
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

type recordReader struct {
	b   []byte
	err error
}

func (rr *recordReader) fail(format string, args ...any) {
	if rr.err == nil {
		rr.err = fmt.Errorf("%w: "+format, append([]any{errRecord}, args...)...)
	}
}

func (rr *recordReader) bytes(n int) []byte {
	if rr.err != nil {
		return nil
	}
	if n > len(rr.b) {
		rr.fail("truncated")
		return nil
	}
	out := rr.b[:n]
	rr.b = rr.b[n:]
	return out
}

func (rr *recordReader) u64() uint64 {
	b := rr.bytes(8)
	if b == nil {
		return 0
	}
	return binary.BigEndian.Uint64(b)
}

func (rr *recordReader) str(limit int) string {
	if rr.err != nil {
		return ""
	}
	n, k := binary.Uvarint(rr.b)
	if k <= 0 {
		rr.fail("bad length")
		return ""
	}
	if n > uint64(limit) {
		rr.fail("field of %d bytes exceeds %d", n, limit)
		return ""
	}
	rr.b = rr.b[k:]
	return string(rr.bytes(int(n)))
}

// parseRecord decodes a record that fills b exactly.
func parseRecord(b []byte) (*Record, error) {
	rr := &recordReader{b: b}
	hdr := rr.bytes(2)
	if rr.err != nil {
		return nil, rr.err
	}
	if hdr[0] != recordVersion {
		return nil, fmt.Errorf("%w: version %d", errRecord, hdr[0])
	}
	if hdr[1]&^3 != 0 {
		return nil, fmt.Errorf("%w: flags %#x", errRecord, hdr[1])
	}
	r := &Record{Pass: hdr[1]&1 != 0}
	r.Key = rr.str(maxRecordKey)
	r.Size = int64(rr.u64())
	r.Layout.SegmentSize = int64(rr.u64())
	if km := rr.bytes(2); km != nil {
		r.Layout.Params = erasure.Params{K: int(km[0]), M: int(km[1])}
	}
	r.ETag = rr.str(maxRecordField)
	r.LastModified = rr.str(maxRecordField)
	r.Validator = rr.str(maxRecordField)
	r.Fetched = time.Unix(0, int64(rr.u64()))
	r.Expires = time.Unix(0, int64(rr.u64()))
	r.Age = int64(rr.u64())
	var n int
	if c := rr.bytes(1); c != nil {
		n = int(c[0])
	}
	if n > maxRecordHeaders {
		rr.fail("%d header fields exceed %d", n, maxRecordHeaders)
	}
	if n > 0 && rr.err == nil {
		r.Header = make(http.Header, n)
	}
	for range n {
		name, value := rr.str(maxRecordField), rr.str(maxRecordField)
		if rr.err != nil {
			break
		}
		if !validHeaderName(name) || strings.ContainsAny(value, "\r\n\x00") {
			rr.fail("bad header field %q", name)
			break
		}
		r.Header.Add(name, value)
	}
	if hdr[1]&2 != 0 {
		if b := rr.bytes(2); b != nil {
			r.Status = int(binary.BigEndian.Uint16(b))
			if r.Status < 200 || r.Status > 599 || r.Status == http.StatusOK {
				rr.fail("status %d", r.Status)
			}
		}
	}
	if rr.err != nil {
		return nil, rr.err
	}
	if len(rr.b) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", errRecord, len(rr.b))
	}
	if r.Key == "" {
		return nil, fmt.Errorf("%w: empty key", errRecord)
	}
	if r.Pass {
		return r, nil
	}
	if r.Size < 0 || r.Age < 0 {
		return nil, fmt.Errorf("%w: negative size or age", errRecord)
	}
	if err := r.Layout.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", errRecord, err)
	}
	if r.Validator == "" {
		return nil, fmt.Errorf("%w: no validator", errRecord)
	}
	return r, nil
}

func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("\"(),/:;<=>?@[\\]{}", c) >= 0 {
			return false
		}
	}
	return true
}

func sortedKeys(h http.Header) []string {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	// Insertion sort: header maps are small.
	for i := 1; i < len(keys); i++ {
		for j := i; j > 0 && keys[j] < keys[j-1]; j-- {
			keys[j], keys[j-1] = keys[j-1], keys[j]
		}
	}
	return keys
}

// fillRequest is the payload of a Fill: which segment of which object.
type fillRequest struct {
	Record  *Record
	Segment uint32
}

func (f *fillRequest) Append(b []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, f.Segment)
	return f.Record.Append(b)
}

func parseFillRequest(b []byte) (*fillRequest, error) {
	if len(b) < 4 {
		return nil, fmt.Errorf("%w: fill request of %d bytes", errRecord, len(b))
	}
	r, err := parseRecord(b[4:])
	if err != nil {
		return nil, err
	}
	if r.Pass {
		return nil, fmt.Errorf("%w: fill for a pass record", errRecord)
	}
	f := &fillRequest{Record: r, Segment: binary.BigEndian.Uint32(b)}
	if int64(f.Segment) >= r.Layout.Segments(r.Size) {
		return nil, fmt.Errorf("%w: segment %d of %d", errRecord, f.Segment, r.Layout.Segments(r.Size))
	}
	return f, nil
}

// Freshness and storability (RFC 9111 §3 and §4.2): the rules are
// httpcache's; what follows adds the edge's own (segments, validators, what
// a record can carry).

// notReplayed are fields the edge computes itself for each response (and
// Set-Cookie, whose responses are not stored at all). Everything else is
// kept: Date, since a cache passes on the origin's (RFC 9110 §6.6.1); Via
// and Server as the origin sent them.
var notReplayed = map[string]bool{
	"Age": true, "Content-Length": true, "Accept-Ranges": true,
	"Set-Cookie": true, "Cache-Status": true,
}

// passTTL is how long the fleet remembers that a URL is not stored, so
// that it does not ask the origin twice per request.
const passTTL = 5 * time.Second

// newRecord builds the record for a HEAD response from the origin, or a
// pass record when the response may not be stored in shared caches or
// carries no validator that can guard ranged fetches (validator is what
// origin.Info.Validator chose).
//
// Not stored: what httpcache.Storable refuses (no-store, unqualified
// private, "Vary: *", Set-Cookie; other Vary values: see vary.go), a
// status other than 200 (segments are ranges of a 200's body; other
// statuses are forwarded), an unknown length, no usable validator, or
// fields the record cannot carry. Qualified private="f" and no-cache="f"
// drop the named fields from what is stored (httpcache.NotStored).
func newRecord(key string, status int, h http.Header, size int64, validator string, layout erasure.Layout, now time.Time, maxHeuristic time.Duration) *Record {
	pass := func(ttl time.Duration) *Record {
		return &Record{Key: key, Pass: true, Fetched: now, Expires: now.Add(ttl)}
	}
	if status != http.StatusOK || size < 0 || validator == "" && size > layout.SegmentSize || !httpcache.Storable(h) {
		return pass(passTTL)
	}
	if validator == "" {
		validator = "#" + strconv.FormatInt(now.UnixNano(), 36)
	}
	r := &Record{Key: key, Size: size, Layout: layout, ETag: h.Get("ETag"), LastModified: h.Get("Last-Modified"),
		Validator: validator, Fetched: now, Header: http.Header{}}
	if len(r.ETag) > maxRecordField || len(r.LastModified) > maxRecordField {
		return pass(passTTL)
	}
	r.Age = httpcache.Age(h, now)
	r.Expires = now.Add(httpcache.Freshness(h, now, maxHeuristic) - time.Duration(r.Age)*time.Second)
	drop := httpcache.NotStored(h)
	fields := 0
	for name, vs := range h {
		if httpcache.IsHopByHop(name) || notReplayed[name] || drop[name] {
			continue
		}
		for _, v := range vs {
			// What the record's encoding cannot carry to the other edges
			// is not stored: the fleet would hold a record it cannot use.
			if len(name) > maxRecordField || len(v) > maxRecordField || !validHeaderName(name) || strings.ContainsAny(v, "\r\n\x00") {
				return pass(passTTL)
			}
		}
		if fields += len(vs); fields > maxRecordHeaders {
			return pass(passTTL)
		}
		r.Header[name] = append([]string(nil), vs...)
	}
	return r
}

// newBodyRecord is newRecord for a response whose body the edge holds
// (a forwarded miss, miss.go), of any status: it returns nil when the
// response may not be stored and is only to be relayed. Besides 200, a
// status httpcache.StorableStatus allows is stored as long as its body is
// one segment: the fleet could not fetch it again with its own requests.
func newBodyRecord(key string, status int, h http.Header, size int64, validator string, layout erasure.Layout, now time.Time, maxHeuristic time.Duration) *Record {
	if status == http.StatusOK {
		return newRecord(key, status, h, size, validator, layout, now, maxHeuristic)
	}
	if !httpcache.StorableStatus(status, h) || size < 0 || size > layout.SegmentSize {
		return nil
	}
	if status == http.StatusNoContent {
		size = 0
	}
	r := newRecord(key, http.StatusOK, h, size, validator, layout, now, maxHeuristic)
	if r.Pass {
		return nil
	}
	r.Status = status
	return r
}
