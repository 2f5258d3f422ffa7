package swarm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"go.opentelemetry.io/otel/propagation"

	"github.com/shoalcdn/shoal/erasure"
)

// The peer protocol: one QUIC stream per request. The client writes a
// request header (and, for PutShard, the shard), closes its side, and reads
// one response header followed by its body. All integers are big-endian.
// This file names every operation the fleet speaks, with its byte layout:
// the four ops (Op), the questions a Stat asks (StatMode) with their
// payloads and answers, and the Fill payload. Members of different
// releases interoperate, so none of these bytes may change meaning; a new
// question is a new number.
//
// Request header:
//
//	offset  size  field
//	0       1     protocol version, 1
//	1       1     op (Op)
//	2       1     T, length of the W3C traceparent (0..MaxTraceParent)
//	3       T     traceparent, ASCII ("" when the request is not traced)
//	then the op's request fields (below)
//
// Response header:
//
//	0       1     status: 0 OK, 1 not found, 2 bad request, 3 failed, 4 timeout,
//	              5 stale
//	1       2     M, message length (0..MaxMessage), then M bytes of UTF-8:
//	              the error, or for an OK Fill the segment's source
//	then, when the status is OK, the op's answer fields (below)
//
// A descriptor (erasure.Descriptor's encoding) is:
//
//	version (1) | k (1) | m (1) | hash alg=1 BLAKE3 (1) | segment len (4) | shard len (4)
//	| segment hash (32) | shard hash (32) × (k+m)

// Protocol limits. A decoder rejects anything larger before allocating.
const (
	// Version is the protocol version this package speaks.
	Version = 1
	// ALPN is the TLS application protocol of the peer protocol.
	ALPN = "shoal/1"
	// MaxTraceParent bounds the traceparent field (55 bytes in version 00).
	MaxTraceParent = 128
	// MaxDescriptor bounds an encoded descriptor.
	MaxDescriptor = 44 + erasure.HashSize*erasure.MaxShards
	// MaxKey bounds a Stat key (its mode byte included).
	MaxKey = 8 << 10
	// MaxPayload bounds Stat answers and Fill payloads.
	MaxPayload = 1 << 20
	// MaxMessage bounds an error message.
	MaxMessage = 1 << 10
	// MaxBody bounds a shard or segment body.
	MaxBody = erasure.MaxSegmentSize
)

// Op is a request type: the second byte of a request header.
type Op uint8

// The operations of the peer protocol. For each, its request fields
// after the request header and its answer fields after an OK response
// header.
const (
	// OpGetShard reads one shard from its holder's store.
	//
	//	request: shard ID (37) = object ID (32) | segment index (4) | shard index (1)
	//	answer:  descriptor len D (2) | descriptor (D) | shard len (4, = the
	//	         descriptor's) | shard bytes
	OpGetShard Op = 1

	// OpPutShard stores one shard at its holder, which verifies it against
	// the descriptor first.
	//
	//	request: shard ID (37) | descriptor len D (2, <= MaxDescriptor) |
	//	         descriptor (D) | shard len (4, = the descriptor's); the
	//	         shard's bytes follow the header
	//	answer:  nothing
	OpPutShard Op = 2

	// OpStat asks a question about object records and purges, named by
	// the key's first byte (StatMode, below); the rest of the key is the
	// question's payload.
	//
	//	request: key len K (2, 1..MaxKey) | key (K) = mode (1) | payload
	//	answer:  payload len P (4, <= MaxPayload) | P bytes, the mode's answer
	OpStat Op = 3

	// OpFill asks a segment's coordinator for the segment, which it reads
	// or fetches from the origin once for the fleet, then places.
	//
	//	request: payload len P (4, 1..MaxPayload) | fill request (P), below
	//	answer:  descriptor len D (2) | descriptor (D) | segment len (4) |
	//	         segment bytes; segment len is the descriptor's, or 0 for a
	//	         segment that is not empty: a placed answer, the segment's
	//	         shards are at their holders (the request asked for one;
	//	         see Segment). The message is the segment's source
	//	         ("origin", "memory", "disk", "peer").
	OpFill Op = 4
)

// The Fill request, as the edge encodes it (edge/record.go, fillRequest):
//
//	segment index (4) | record (below)
//
// The top bit of the segment index (0x80 in its first byte, which no
// layout reaches) asks for a placed answer. An edge that predates placed
// answers fails such a request as a malformed record (StatusFailed,
// "edge: malformed record" in the message), and the requester asks again
// without the bit.
//
// A record, as the edge encodes it (edge/record.go, Record.Append and
// parseRecord), strings as a uvarint length then the bytes (key and
// fields at most 8 KiB each):
//
//	version (1) = 1 | flags (1: bit 0 pass, bit 1 status) | key |
//	size (8) | segment size (8) | k (1) | m (1) | etag | last-modified |
//	validator | fetched (8, unix ns) | expires (8, unix ns) | age (8, s) |
//	header count (1, <= 64) | count × (name | value) |
//	[status (2), when flags bit 1]

// StatMode is the first byte of a Stat key: the question the Stat asks.
// The rest of the key is the mode's payload, and the Stat answer's
// payload is the mode's answer. "Nothing" is an OK answer of length 0;
// any question may also be answered with a status other than OK, the
// message saying why. AppendStat and SplitStat frame the mode byte.
type StatMode uint8

// The questions a Stat asks.
const (
	// StatResolve asks the object's coordinator for the record of a key,
	// as the acting coordinator: from its records, else from the origin
	// (one request, coalesced for the fleet).
	//
	//	payload: key (the cache key)
	//	answer:  flags (1: bit 0 the origin was asked for this answer,
	//	         bit 1 it answered 304 to a revalidation) | record
	StatResolve StatMode = 1

	// StatReplicate stores a copy of a record at a member ranked below
	// the coordinator for its key.
	//
	//	payload: record
	//	answer:  nothing
	StatReplicate StatMode = 2

	// StatRefresh says that the caller found a version gone at the origin:
	// answer like StatResolve, asking the origin again unless the record
	// held is already another version (a burst of refreshes costs one
	// origin request).
	//
	//	payload: record of the stale version (its header fields dropped)
	//	answer:  as StatResolve
	StatRefresh StatMode = 3

	// StatPurge drops the record of a key (and its variants). Superseded
	// by StatPurgeStamped, and sent only when that does not fit MaxKey;
	// still answered, logged with the time received.
	//
	//	payload: key
	//	answer:  nothing
	StatPurge StatMode = 4

	// StatPurgePrefix drops the records of every key that starts with a
	// prefix. Superseded like StatPurge.
	//
	//	payload: prefix
	//	answer:  nothing
	StatPurgePrefix StatMode = 5

	// StatWarm reads a segment into the receiver's memory tier (a
	// prefetch with warm=all), answering once it is there.
	//
	//	payload: fill request (without the placed bit)
	//	answer:  nothing
	StatWarm StatMode = 6

	// StatPurgeStamped purges a key or a prefix and logs the purge with
	// the time the edge that took it stamped it (edge/purgelog.go).
	//
	//	payload: flags (1: bit 0 prefix, other bits 0) | time (8, unix ns, > 0) | pattern
	//	answer:  nothing
	StatPurgeStamped StatMode = 7

	// StatPurgeLog exchanges purge logs: the receiver answers with its
	// log unless it has the digest sent.
	//
	//	payload: digest (8) of the asker's log
	//	answer:  nothing when the receiver's log has that digest; else its
	//	         log, newest first, within MaxPayload:
	//	         count (2, <= 1024) | count × (flags (1: bit 0 prefix) |
	//	         time (8, unix ns) | pattern len (2) | pattern)
	//
	// The digest is the XOR, over the log's entries, of the 64-bit
	// FNV-1a hash of ("p" for a prefix, "k" for a key) | pattern | time
	// (8, unix ns): equal logs have equal digests on every member.
	StatPurgeLog StatMode = 8

	// StatHello is what two members say when they meet (the dialler asks
	// right after the handshake): who they are and the layout that must be
	// equal fleet-wide (FleetLayout). The swarm answers it itself, not
	// the Handler. Each side compares and, on a difference, marks the
	// other incompatible and logs both values. A member of a release
	// before it answers with an error status (an unknown mode): its
	// layout is unknown and it is kept, so a rolling upgrade works where
	// the layout is equal.
	//
	//	payload: version (1) = 1 | A, address len (1) | address (A, the
	//	         sender's peer address as the fleet spells it, may be
	//	         empty) | segment size (8) | k (1) | m (1) |
	//	         hash algorithm (1, 1 BLAKE3-256) | protocol version (1)
	//	answer:  the same, of the receiver; a receiver without a layout
	//	         answers zeros (unknown). Longer payloads are read up to
	//	         the known fields: later fields may be added.
	StatHello StatMode = 9

	// StatLease is the fill lease of a streamed miss (edge/lease.go, the
	// default fill path): the object's coordinator lets one member
	// at a time fetch a key from the origin, so that concurrent misses
	// anywhere in the fleet collapse into one origin GET. The payload is
	// a kind and its fields, member names as a length (1) then the bytes,
	// records as in the Fill request above. The codec is lease.go
	// (LeaseMsg, LeaseAnswer), which carries records as opaque bytes:
	//
	//	payload: kind (1) | member len (1) | member | rest
	//	         kind 1 ask: rest is the key; member is the asker
	//	         kind 2 header: rest is the record the response header
	//	                made; member is the holder (sent again to renew)
	//	         kind 3 done: rest is the final record (a pass record
	//	                when the response was not stored); the lease ends
	//	         kind 4 abort: rest is the key; the fill failed, the
	//	                lease ends
	//	         kind 5 ask again: rest is gone len (1) | gone | key;
	//	                as ask, from an asker that could not reach gone,
	//	                the holder it was sent to: the coordinator checks
	//	                gone and moves the lease on if it is down
	//	         kind 6 refreshed: rest is the record a 304 refreshed;
	//	                as done, but nothing was streamed: askers read
	//	                the object from its holders at once
	//	         kind 7 renew: rest is the key; the holder still fills it
	//	                but has no record yet (a body of unknown length)
	//	         kind 8 stale: rest is a record of a version of the
	//	                fleet's own that lost a segment: the coordinator
	//	                forgets it, and the next asker fetches it again
	//	         kind 9 vary: rest is vary len (uvarint) | vary | key; the
	//	                key's response varies on vary: the coordinator
	//	                learns it and the lease ends (the holder fills the
	//	                variant under its own key)
	//	         kind 10 ask, known: as ask, from an asker that knows how
	//	                the key varies and asks for the key's own variant
	//	answer to ask: answer (1) | fields
	//	         0 | flags (1: bit 0 from the origin) | record: a usable
	//	           record, read the object as usual
	//	         1 [| record]: granted, the asker fetches the key from
	//	           the origin; the record, when present, is the stale one
	//	           the coordinator holds, to revalidate (a conditional GET)
	//	         2 | member len (1) | member | record: member is filling
	//	           the object; read its segments with Fills at member
	//	         3 | vary: the key's responses vary on these fields; ask
	//	           for the key of the variant the request selects
	//	answer to the others: nothing
	//
	// A member that predates the mode answers StatusFailed (unknown stat
	// mode); the asker then takes the path of a miss without leases.
	StatLease StatMode = 10

	// StatPlace hands the placement of one segment of a streamed fill to
	// the segment's coordinator (edge/placement.go): the member filling
	// the object sends each segment once, to its coordinator, which reads
	// it with a Fill at that member, codes it, keeps it in memory and
	// places its shards, so that the filler's uplink carries the object
	// once rather than every shard of it. The codec is place.go
	// (PlaceMsg). The answer comes once the coordinator holds the segment
	// and has started its pushes (the filler's uplink is then free for the
	// next segment); the filler asks again with flag bit 0 set, answered
	// once k of the segment's shards are at their holders.
	//
	//	payload: flags (1: bit 0 answer once placed, others 0) |
	//	         member len (1, 1..255) | member (the filler) | fill request
	//	answer:  nothing, once the coordinator holds the segment (bit 0
	//	         set: once k shards are placed)
	//
	// A member that predates the mode answers StatusFailed (unknown stat
	// mode); the filler then places the segment's shards itself.
	StatPlace StatMode = 11
)

var statModeNames = [...]string{
	StatResolve:      "resolve",
	StatReplicate:    "replicate",
	StatRefresh:      "refresh",
	StatPurge:        "purge",
	StatPurgePrefix:  "purge_prefix",
	StatWarm:         "warm",
	StatPurgeStamped: "purge_stamped",
	StatPurgeLog:     "purge_log",
	StatHello:        "hello",
	StatLease:        "lease",
	StatPlace:        "place",
}

// String returns the mode's name, e.g. "resolve".
func (m StatMode) String() string {
	if m.known() {
		return statModeNames[m]
	}
	return fmt.Sprintf("stat_mode(%d)", uint8(m))
}

func (m StatMode) known() bool {
	return m >= StatResolve && int(m) < len(statModeNames) && statModeNames[m] != ""
}

// AppendStat appends the framing of a Stat key for mode m to b: the
// mode's payload follows.
func AppendStat(b []byte, m StatMode) []byte { return append(b, byte(m)) }

// SplitStat splits a Stat key into its mode and the mode's payload. Every
// mode has a payload: a key without one, or with a mode this package does
// not know, is an error (ErrFrame).
func SplitStat(key []byte) (StatMode, []byte, error) {
	if len(key) < 2 {
		return 0, nil, fmt.Errorf("%w: stat key of %d bytes (want a mode and a payload)", ErrFrame, len(key))
	}
	m := StatMode(key[0])
	if !m.known() {
		return 0, nil, fmt.Errorf("%w: unknown stat mode %d", ErrFrame, key[0])
	}
	return m, key[1:], nil
}

var opNames = [...]string{OpGetShard: "get_shard", OpPutShard: "put_shard", OpStat: "stat", OpFill: "fill"}

// String returns the op's metric label, e.g. "get_shard".
func (o Op) String() string {
	if o >= OpGetShard && o <= OpFill {
		return opNames[o]
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

// Status is a response's outcome.
type Status uint8

// Response statuses.
const (
	StatusOK         Status = 0
	StatusNotFound   Status = 1
	StatusBadRequest Status = 2
	StatusFailed     Status = 3
	// StatusTimeout: the peer ran out of time on something it depends on
	// (a Fill's or Stat's origin request), as opposed to failing outright.
	StatusTimeout Status = 4
	// StatusStale: the request names a version of something that the peer
	// found no longer exists (an object that changed at the origin).
	StatusStale Status = 5
)

// ErrFrame reports a malformed request or response header.
var ErrFrame = errors.New("swarm: malformed frame")

// Request is a decoded request header.
type Request struct {
	Op Op
	// TraceParent is the W3C traceparent of the caller's span, or "".
	TraceParent string
	// Shard names the shard of a GetShard or PutShard.
	Shard erasure.ShardID
	// Descriptor describes the shard of a PutShard.
	Descriptor *erasure.Descriptor
	// BodyLen is the length of the shard that follows a PutShard header.
	BodyLen int
	// Payload is a Stat key or a Fill payload.
	Payload []byte
}

const shardIDLen = erasure.HashSize + 4 + 1

func appendShardID(b []byte, id erasure.ShardID) []byte {
	b = append(b, id.Segment.Object[:]...)
	b = binary.BigEndian.AppendUint32(b, id.Segment.Index)
	return append(b, id.Index)
}

// Append appends r's header encoding to b.
func (r *Request) Append(b []byte) []byte {
	b = append(b, Version, byte(r.Op), byte(len(r.TraceParent)))
	b = append(b, r.TraceParent...)
	switch r.Op {
	case OpGetShard:
		b = appendShardID(b, r.Shard)
	case OpPutShard:
		b = appendShardID(b, r.Shard)
		b = binary.BigEndian.AppendUint16(b, uint16(r.Descriptor.EncodedLen()))
		b = r.Descriptor.Append(b)
		b = binary.BigEndian.AppendUint32(b, uint32(r.BodyLen))
	case OpStat:
		b = binary.BigEndian.AppendUint16(b, uint16(len(r.Payload)))
		b = append(b, r.Payload...)
	case OpFill:
		b = binary.BigEndian.AppendUint32(b, uint32(len(r.Payload)))
		b = append(b, r.Payload...)
	}
	return b
}

// ReadRequest decodes a request header from rd. For a PutShard the shard's
// BodyLen bytes follow in rd.
func ReadRequest(rd io.Reader) (*Request, error) {
	var hdr [3]byte
	if _, err := io.ReadFull(rd, hdr[:]); err != nil {
		return nil, frameErr("request header", err)
	}
	if hdr[0] != Version {
		return nil, fmt.Errorf("%w: version %d", ErrFrame, hdr[0])
	}
	r := &Request{Op: Op(hdr[1])}
	tp, err := readBytes(rd, int(hdr[2]), MaxTraceParent, "traceparent")
	if err != nil {
		return nil, err
	}
	r.TraceParent = string(tp)
	switch r.Op {
	case OpGetShard:
		r.Shard, err = readShardID(rd)
	case OpPutShard:
		if r.Shard, err = readShardID(rd); err != nil {
			return nil, err
		}
		if r.Descriptor, err = readDescriptor(rd); err != nil {
			return nil, err
		}
		if r.BodyLen, err = readLen32(rd, MaxBody, "shard"); err != nil {
			return nil, err
		}
		if r.BodyLen != r.Descriptor.ShardLen {
			return nil, fmt.Errorf("%w: shard length %d, descriptor says %d", ErrFrame, r.BodyLen, r.Descriptor.ShardLen)
		}
		if int(r.Shard.Index) >= r.Descriptor.Params.Total() {
			return nil, fmt.Errorf("%w: shard index %d of %d", ErrFrame, r.Shard.Index, r.Descriptor.Params.Total())
		}
	case OpStat:
		var n int
		if n, err = readLen16(rd, MaxKey, "key"); err != nil {
			return nil, err
		}
		r.Payload, err = readBytes(rd, n, MaxKey, "key")
	case OpFill:
		var n int
		if n, err = readLen32(rd, MaxPayload, "payload"); err != nil {
			return nil, err
		}
		r.Payload, err = readBytes(rd, n, MaxPayload, "payload")
	default:
		return nil, fmt.Errorf("%w: unknown op %d", ErrFrame, hdr[1])
	}
	if err != nil {
		return nil, err
	}
	if (r.Op == OpStat || r.Op == OpFill) && len(r.Payload) == 0 {
		return nil, fmt.Errorf("%w: empty %v payload", ErrFrame, r.Op)
	}
	return r, nil
}

// Response is a decoded response header.
type Response struct {
	Status Status
	// Message explains a status other than OK.
	Message string
	// Descriptor describes the shard of a GetShard or the segment of a Fill.
	Descriptor *erasure.Descriptor
	// BodyLen is the length of the body that follows: the shard, the
	// segment, or the Stat payload.
	BodyLen int
}

// Append appends r's header encoding for a response to op to b.
func (r *Response) Append(b []byte, op Op) []byte {
	msg := r.Message
	if len(msg) > MaxMessage {
		msg = msg[:MaxMessage]
	}
	b = append(b, byte(r.Status))
	b = binary.BigEndian.AppendUint16(b, uint16(len(msg)))
	b = append(b, msg...)
	if r.Status != StatusOK {
		return b
	}
	switch op {
	case OpGetShard, OpFill:
		b = binary.BigEndian.AppendUint16(b, uint16(r.Descriptor.EncodedLen()))
		b = r.Descriptor.Append(b)
		b = binary.BigEndian.AppendUint32(b, uint32(r.BodyLen))
	case OpStat:
		b = binary.BigEndian.AppendUint32(b, uint32(r.BodyLen))
	}
	return b
}

// ReadResponse decodes the header of a response to op from rd. The body of
// BodyLen bytes follows in rd.
func ReadResponse(rd io.Reader, op Op) (*Response, error) {
	var hdr [3]byte
	if _, err := io.ReadFull(rd, hdr[:]); err != nil {
		return nil, frameErr("response header", err)
	}
	r := &Response{Status: Status(hdr[0])}
	if r.Status > StatusStale {
		return nil, fmt.Errorf("%w: status %d", ErrFrame, hdr[0])
	}
	msg, err := readBytes(rd, int(binary.BigEndian.Uint16(hdr[1:])), MaxMessage, "message")
	if err != nil {
		return nil, err
	}
	r.Message = string(msg)
	if r.Status != StatusOK {
		return r, nil
	}
	switch op {
	case OpGetShard, OpFill:
		if r.Descriptor, err = readDescriptor(rd); err != nil {
			return nil, err
		}
		if r.BodyLen, err = readLen32(rd, MaxBody, "body"); err != nil {
			return nil, err
		}
		if err := checkBodyLen(op, r); err != nil {
			return nil, err
		}
	case OpStat:
		r.BodyLen, err = readLen32(rd, MaxPayload, "payload")
	case OpPutShard:
	default:
		return nil, fmt.Errorf("%w: unknown op %d", ErrFrame, op)
	}
	if err != nil {
		return nil, err
	}
	return r, nil
}

// checkBodyLen checks the body length of an OK GetShard or Fill response
// against its descriptor: a shard's length, a segment's, or 0 for a placed
// Fill answer.
func checkBodyLen(op Op, r *Response) error {
	want := r.Descriptor.ShardLen
	if op == OpFill {
		want = r.Descriptor.Length
		if r.BodyLen == 0 {
			return nil
		}
	}
	if r.BodyLen != want {
		return fmt.Errorf("%w: body length %d, descriptor says %d", ErrFrame, r.BodyLen, want)
	}
	return nil
}

func frameErr(what string, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: truncated %s: %w", ErrFrame, what, err)
	}
	return fmt.Errorf("swarm: reading %s: %w", what, err)
}

func readBytes(rd io.Reader, n, limit int, what string) ([]byte, error) {
	if n > limit {
		return nil, fmt.Errorf("%w: %s of %d bytes exceeds %d", ErrFrame, what, n, limit)
	}
	if n == 0 {
		return nil, nil
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(rd, b); err != nil {
		return nil, frameErr(what, err)
	}
	return b, nil
}

func readLen16(rd io.Reader, limit int, what string) (int, error) {
	var b [2]byte
	if _, err := io.ReadFull(rd, b[:]); err != nil {
		return 0, frameErr(what+" length", err)
	}
	n := int(binary.BigEndian.Uint16(b[:]))
	if n > limit {
		return 0, fmt.Errorf("%w: %s of %d bytes exceeds %d", ErrFrame, what, n, limit)
	}
	return n, nil
}

func readLen32(rd io.Reader, limit int, what string) (int, error) {
	var b [4]byte
	if _, err := io.ReadFull(rd, b[:]); err != nil {
		return 0, frameErr(what+" length", err)
	}
	n := binary.BigEndian.Uint32(b[:])
	if uint64(n) > uint64(limit) {
		return 0, fmt.Errorf("%w: %s of %d bytes exceeds %d", ErrFrame, what, n, limit)
	}
	return int(n), nil
}

func readShardID(rd io.Reader) (erasure.ShardID, error) {
	var b [shardIDLen]byte
	if _, err := io.ReadFull(rd, b[:]); err != nil {
		return erasure.ShardID{}, frameErr("shard ID", err)
	}
	var id erasure.ShardID
	copy(id.Segment.Object[:], b[:erasure.HashSize])
	id.Segment.Index = binary.BigEndian.Uint32(b[erasure.HashSize:])
	id.Index = b[erasure.HashSize+4]
	return id, nil
}

func readDescriptor(rd io.Reader) (*erasure.Descriptor, error) {
	n, err := readLen16(rd, MaxDescriptor, "descriptor")
	if err != nil {
		return nil, err
	}
	b, err := readBytes(rd, n, MaxDescriptor, "descriptor")
	if err != nil {
		return nil, err
	}
	d, err := erasure.ParseDescriptor(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrFrame, err)
	}
	return d, nil
}

// hashers holds the Hashers that verify bodies as they arrive.
var hashers = sync.Pool{New: func() any { return new(erasure.Hasher) }}

// hashStep is how many received bytes readBody lets pile up before it
// hashes them: a multiple of the Hasher's 16 KiB block, so that nothing is
// copied, and small enough that the bytes are still in cache.
const hashStep = 64 << 10

// readBody fills body from rd, as io.ReadFull does, and, when h is not nil,
// hashes it into h (after a Reset) as it arrives: the bytes are hashed
// while still in cache, and the check needs no second pass over them.
func readBody(rd io.Reader, body []byte, h *erasure.Hasher) error {
	if h != nil {
		h.Reset()
	}
	off, hashed := 0, 0
	for off < len(body) {
		m, err := rd.Read(body[off:])
		off += m
		if h != nil && off-hashed >= hashStep {
			end := hashed + (off-hashed)/hashStep*hashStep
			h.Write(body[hashed:end])
			hashed = end
		}
		if err != nil && off < len(body) {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
	}
	if h != nil {
		h.Write(body[hashed:])
	}
	return nil
}

// traceContext carries the caller's span in a request header's
// traceparent field: the client injects it, the server extracts it.
var traceContext = propagation.TraceContext{}

// traceCarrier is the traceparent field as a propagation.TextMapCarrier.
type traceCarrier struct{ tp string }

func (c *traceCarrier) Get(key string) string {
	if key == "traceparent" {
		return c.tp
	}
	return ""
}
func (c *traceCarrier) Set(key, value string) {
	if key == "traceparent" && len(value) <= MaxTraceParent {
		c.tp = value
	}
}
func (c *traceCarrier) Keys() []string { return []string{"traceparent"} }
