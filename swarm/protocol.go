package swarm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/shoalcdn/shoal/erasure"
)

// The peer protocol: one QUIC stream per request. The client writes a
// request header (and, for PutShard, the shard), closes its side, and reads
// one response header followed by its body. All integers are big-endian.
//
// Request header:
//
//	offset  size  field
//	0       1     protocol version, 1
//	1       1     op: 1 GetShard, 2 PutShard, 3 Stat, 4 Fill
//	2       1     T, length of the W3C traceparent (0..MaxTraceParent)
//	3       T     traceparent, ASCII ("" when the request is not traced)
//	then, by op:
//	  GetShard  37    shard ID: object ID (32), segment index (4), shard index (1)
//	  PutShard  37    shard ID
//	            2     D, descriptor length (<= MaxDescriptor)
//	            D     descriptor (erasure.Descriptor encoding)
//	            4     shard length, must equal the descriptor's shard length;
//	                  the shard's bytes follow the header
//	  Stat      2     K, key length (1..MaxKey), then K bytes of key
//	  Fill      4     P, payload length (1..MaxPayload), then P bytes
//
// Response header:
//
//	0       1     status: 0 OK, 1 not found, 2 bad request, 3 failed, 4 timeout,
//	              5 stale
//	1       2     M, message length (0..MaxMessage), then M bytes of UTF-8:
//	              the error, or for an OK Fill the segment's source
//	then, when the status is OK, by op:
//	  GetShard  2 + D descriptor, 4 shard length (= descriptor's), shard bytes
//	  PutShard  nothing
//	  Stat      4 payload length (<= MaxPayload), payload bytes
//	  Fill      2 + D descriptor, 4 segment length (= descriptor's), segment bytes;
//	            or a segment length of 0 for a segment that is not empty: a
//	            placed answer, the segment's shards are at their holders
//	            (the payload asked for one; see Segment)
//
// Stat and Fill payloads are opaque here: the edge defines them.

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
	// MaxKey bounds a Stat key.
	MaxKey = 8 << 10
	// MaxPayload bounds Stat and Fill payloads.
	MaxPayload = 1 << 20
	// MaxMessage bounds an error message.
	MaxMessage = 1 << 10
	// MaxBody bounds a shard or segment body.
	MaxBody = erasure.MaxSegmentSize
)

// Op is a request type.
type Op uint8

// The requests of the peer protocol.
const (
	OpGetShard Op = 1
	OpPutShard Op = 2
	OpStat     Op = 3
	OpFill     Op = 4
)

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
