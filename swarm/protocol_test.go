package swarm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/shoalcdn/shoal/erasure"
)

const testTraceParent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

// testSegment returns n deterministic, non-repeating bytes.
func testSegment(n int, seed byte) []byte {
	b := make([]byte, n)
	x := uint32(seed) + 1
	for i := range b {
		x = x*1664525 + 1013904223
		b[i] = byte(x >> 24)
	}
	return b
}

// encodeSegment codes a segment of n bytes with p and returns its shards
// and descriptor.
func encodeSegment(t testing.TB, p erasure.Params, n int, seed byte) ([][]byte, *erasure.Descriptor) {
	t.Helper()
	c, err := erasure.NewCoder(p)
	if err != nil {
		t.Fatal(err)
	}
	shards, d, err := c.Encode(testSegment(n, seed))
	if err != nil {
		t.Fatal(err)
	}
	return shards, d
}

func testShardID(seg uint32, idx uint8) erasure.ShardID {
	var id erasure.ShardID
	for i := range id.Segment.Object {
		id.Segment.Object[i] = byte(i*7 + 3)
	}
	id.Segment.Index = seg
	id.Index = idx
	return id
}

// testRequests returns one valid request of each op, traced and not.
func testRequests(t testing.TB) map[string]*Request {
	t.Helper()
	_, d := encodeSegment(t, erasure.Params{K: 4, M: 2}, 10_000, 1)
	reqs := map[string]*Request{}
	for _, tp := range []string{"", testTraceParent} {
		suffix := "/untraced"
		if tp != "" {
			suffix = "/traced"
		}
		reqs["get_shard"+suffix] = &Request{Op: OpGetShard, TraceParent: tp, Shard: testShardID(7, 3)}
		reqs["put_shard"+suffix] = &Request{Op: OpPutShard, TraceParent: tp, Shard: testShardID(1<<31, 5), Descriptor: d, BodyLen: d.ShardLen}
		reqs["stat"+suffix] = &Request{Op: OpStat, TraceParent: tp, Payload: []byte("GET example.com/a/b.bin")}
		reqs["fill"+suffix] = &Request{Op: OpFill, TraceParent: tp, Payload: []byte{0, 1, 2, 3, 0xff}}
	}
	reqs["stat/max_key"] = &Request{Op: OpStat, Payload: bytes.Repeat([]byte{'k'}, MaxKey)}
	reqs["fill/max_payload"] = &Request{Op: OpFill, Payload: bytes.Repeat([]byte{'p'}, MaxPayload)}
	reqs["get_shard/max_traceparent"] = &Request{Op: OpGetShard, TraceParent: strings.Repeat("t", MaxTraceParent), Shard: testShardID(0, 0)}
	return reqs
}

func equalRequest(a, b *Request) bool {
	if a.Op != b.Op || a.TraceParent != b.TraceParent || a.Shard != b.Shard || a.BodyLen != b.BodyLen || !bytes.Equal(a.Payload, b.Payload) {
		return false
	}
	if (a.Descriptor == nil) != (b.Descriptor == nil) {
		return false
	}
	return a.Descriptor == nil || a.Descriptor.Equal(b.Descriptor)
}

func TestRequestRoundTrip(t *testing.T) {
	for name, req := range testRequests(t) {
		t.Run(name, func(t *testing.T) {
			enc := req.Append([]byte("prefix"))[len("prefix"):]
			// A PutShard's body follows its header on the stream; the
			// decoder must stop at the end of the header.
			body := []byte("the shard body that follows")
			rd := bytes.NewReader(append(bytes.Clone(enc), body...))
			got, err := ReadRequest(rd)
			if err != nil {
				t.Fatalf("ReadRequest: %v", err)
			}
			if !equalRequest(got, req) {
				t.Errorf("got %+v, want %+v", got, req)
			}
			if rest := rd.Len(); rest != len(body) {
				t.Errorf("got %d bytes left after the header, want %d", rest, len(body))
			}
			if again := got.Append(nil); !bytes.Equal(again, enc) {
				t.Errorf("re-encoding differs:\ngot  %x\nwant %x", again, enc)
			}
		})
	}
}

// checkPrefix says whether a truncation test tries the prefix of i of n
// bytes: every one of a small frame; the ends and a sample of the middle of
// a frame with a payload of up to a megabyte, which would otherwise take
// minutes.
func checkPrefix(i, n int) bool {
	return n <= 4096 || i < 64 || i > n-16 || i%65521 == 0
}

func TestReadRequestTruncated(t *testing.T) {
	for name, req := range testRequests(t) {
		t.Run(name, func(t *testing.T) {
			enc := req.Append(nil)
			for i := range len(enc) {
				if !checkPrefix(i, len(enc)) {
					continue
				}
				got, err := ReadRequest(bytes.NewReader(enc[:i]))
				if !errors.Is(err, ErrFrame) {
					t.Fatalf("prefix of %d/%d bytes: got %+v, %v, want ErrFrame", i, len(enc), got, err)
				}
			}
		})
	}
}

func TestReadRequestMalformed(t *testing.T) {
	_, d := encodeSegment(t, erasure.Params{K: 4, M: 2}, 10_000, 1)
	put := func(mod func(r *Request)) []byte {
		r := &Request{Op: OpPutShard, Shard: testShardID(0, 1), Descriptor: d, BodyLen: d.ShardLen}
		mod(r)
		return r.Append(nil)
	}
	get := (&Request{Op: OpGetShard, Shard: testShardID(0, 1)}).Append(nil)
	with := func(b []byte, i int, v byte) []byte {
		b = bytes.Clone(b)
		b[i] = v
		return b
	}
	// descAt is the offset of a PutShard's descriptor length field.
	const descAt = 3 + shardIDLen
	badDesc := put(func(*Request) {})
	badDesc[descAt+2] = 9 // descriptor version
	longDesc := put(func(*Request) {})
	binary.BigEndian.PutUint16(longDesc[descAt:], MaxDescriptor+1)
	shortDesc := put(func(*Request) {})
	binary.BigEndian.PutUint16(shortDesc[descAt:], uint16(d.EncodedLen()-1))
	hugeBody := put(func(*Request) {})
	binary.BigEndian.PutUint32(hugeBody[len(hugeBody)-4:], MaxBody+1)
	fillHeader := func(n uint32) []byte {
		return binary.BigEndian.AppendUint32([]byte{Version, byte(OpFill), 0}, n)
	}
	statHeader := func(n uint16) []byte {
		return binary.BigEndian.AppendUint16([]byte{Version, byte(OpStat), 0}, n)
	}

	tests := []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"version 0", with(get, 0, 0)},
		{"version 2", with(get, 0, 2)},
		{"op 0", with(get, 1, 0)},
		{"op 5", with(get, 1, 5)},
		{"op 255", with(get, 1, 255)},
		{"traceparent too long", (&Request{Op: OpGetShard, TraceParent: strings.Repeat("t", MaxTraceParent+1)}).Append(nil)},
		{"traceparent length 255", append([]byte{Version, byte(OpGetShard), 255}, make([]byte, 255+shardIDLen)...)},
		{"key over MaxKey", (&Request{Op: OpStat, Payload: make([]byte, MaxKey+1)}).Append(nil)},
		{"key length 65535", statHeader(0xffff)},
		{"payload over MaxPayload", fillHeader(MaxPayload + 1)},
		{"payload length 4G", fillHeader(0xffffffff)},
		{"empty stat key", (&Request{Op: OpStat}).Append(nil)},
		{"empty fill payload", (&Request{Op: OpFill}).Append(nil)},
		{"body shorter than descriptor", put(func(r *Request) { r.BodyLen-- })},
		{"body longer than descriptor", put(func(r *Request) { r.BodyLen++ })},
		{"body of zero bytes", put(func(r *Request) { r.BodyLen = 0 })},
		{"body over MaxBody", hugeBody},
		{"shard index k+m", put(func(r *Request) { r.Shard.Index = 6 })},
		{"shard index 255", put(func(r *Request) { r.Shard.Index = 255 })},
		{"descriptor version", badDesc},
		{"descriptor over MaxDescriptor", longDesc},
		{"descriptor length short", shortDesc},
		{"descriptor length zero", append(put(func(*Request) {})[:descAt], 0, 0, 0, 0, 0, 0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ReadRequest(bytes.NewReader(tt.in))
			if !errors.Is(err, ErrFrame) {
				t.Fatalf("got %+v, %v, want ErrFrame", got, err)
			}
			if got != nil {
				t.Errorf("got request %+v with error", got)
			}
		})
	}
}

// errReader fails every read with err.
type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

func TestReadErrorsAreNotFrameErrors(t *testing.T) {
	// A transport failure is not the peer's malformed frame: callers tell
	// a broken connection from a broken peer by this.
	boom := errors.New("connection reset")
	if _, err := ReadRequest(errReader{boom}); !errors.Is(err, boom) || errors.Is(err, ErrFrame) {
		t.Errorf("ReadRequest: got %v, want %v and not ErrFrame", err, boom)
	}
	if _, err := ReadResponse(errReader{boom}, OpGetShard); !errors.Is(err, boom) || errors.Is(err, ErrFrame) {
		t.Errorf("ReadResponse: got %v, want %v and not ErrFrame", err, boom)
	}
}

type testResponse struct {
	name string
	op   Op
	resp *Response
}

// testResponses returns valid responses to every op with every status.
func testResponses(t testing.TB) []testResponse {
	t.Helper()
	_, d := encodeSegment(t, erasure.Params{K: 4, M: 2}, 10_000, 2)
	var out []testResponse
	for _, op := range []Op{OpGetShard, OpPutShard, OpStat, OpFill} {
		var ok Response
		switch op {
		case OpGetShard:
			ok = Response{Descriptor: d, BodyLen: d.ShardLen}
		case OpStat:
			ok = Response{BodyLen: 1234}
		case OpFill:
			ok = Response{Descriptor: d, BodyLen: d.Length, Message: "origin"}
		}
		out = append(out,
			testResponse{op.String() + "/ok", op, &ok},
			testResponse{op.String() + "/not_found", op, &Response{Status: StatusNotFound, Message: "swarm: not found"}},
			testResponse{op.String() + "/bad_request", op, &Response{Status: StatusBadRequest, Message: "bad"}},
			testResponse{op.String() + "/failed", op, &Response{Status: StatusFailed, Message: strings.Repeat("é", MaxMessage/2)}},
			testResponse{op.String() + "/failed_no_message", op, &Response{Status: StatusFailed}},
		)
	}
	out = append(out,
		testResponse{"fill/placed", OpFill, &Response{Descriptor: d, Message: "origin"}},
		testResponse{"stat/empty", OpStat, &Response{}},
		testResponse{"stat/max_payload", OpStat, &Response{BodyLen: MaxPayload}},
	)
	return out
}

func equalResponse(a, b *Response) bool {
	if a.Status != b.Status || a.Message != b.Message || a.BodyLen != b.BodyLen {
		return false
	}
	if (a.Descriptor == nil) != (b.Descriptor == nil) {
		return false
	}
	return a.Descriptor == nil || a.Descriptor.Equal(b.Descriptor)
}

func TestResponseRoundTrip(t *testing.T) {
	for _, tt := range testResponses(t) {
		t.Run(tt.name, func(t *testing.T) {
			enc := tt.resp.Append([]byte("prefix"), tt.op)[len("prefix"):]
			body := []byte("body")
			rd := bytes.NewReader(append(bytes.Clone(enc), body...))
			got, err := ReadResponse(rd, tt.op)
			if err != nil {
				t.Fatalf("ReadResponse: %v", err)
			}
			if !equalResponse(got, tt.resp) {
				t.Errorf("got %+v, want %+v", got, tt.resp)
			}
			if rest := rd.Len(); rest != len(body) {
				t.Errorf("got %d bytes left after the header, want %d", rest, len(body))
			}
			if again := got.Append(nil, tt.op); !bytes.Equal(again, enc) {
				t.Errorf("re-encoding differs:\ngot  %x\nwant %x", again, enc)
			}
		})
	}
}

func TestResponseMessageTruncated(t *testing.T) {
	r := &Response{Status: StatusFailed, Message: strings.Repeat("x", MaxMessage+100)}
	got, err := ReadResponse(bytes.NewReader(r.Append(nil, OpStat)), OpStat)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Message) != MaxMessage {
		t.Errorf("got a message of %d bytes, want %d", len(got.Message), MaxMessage)
	}
}

func TestReadResponseTruncated(t *testing.T) {
	for _, tt := range testResponses(t) {
		t.Run(tt.name, func(t *testing.T) {
			enc := tt.resp.Append(nil, tt.op)
			for i := range len(enc) {
				got, err := ReadResponse(bytes.NewReader(enc[:i]), tt.op)
				if !errors.Is(err, ErrFrame) {
					t.Fatalf("prefix of %d/%d bytes: got %+v, %v, want ErrFrame", i, len(enc), got, err)
				}
			}
		})
	}
}

func TestReadResponseMalformed(t *testing.T) {
	_, d := encodeSegment(t, erasure.Params{K: 4, M: 2}, 10_000, 2)
	ok := func(op Op, mod func(r *Response)) []byte {
		r := &Response{Descriptor: d, BodyLen: d.ShardLen}
		if op == OpFill {
			r.BodyLen = d.Length
		}
		mod(r)
		return r.Append(nil, op)
	}
	same := func(*Response) {}
	withStatus := func(s byte) []byte {
		b := ok(OpGetShard, same)
		b[0] = s
		return b
	}
	badDesc := ok(OpGetShard, same)
	badDesc[3+2+1] = 0 // k = 0
	longMsg := binary.BigEndian.AppendUint16([]byte{byte(StatusFailed)}, MaxMessage+1)
	longMsg = append(longMsg, make([]byte, MaxMessage+1)...)
	statLen := func(n uint32) []byte {
		return binary.BigEndian.AppendUint32([]byte{0, 0, 0}, n)
	}

	tests := []struct {
		name string
		op   Op
		in   []byte
	}{
		{"empty", OpGetShard, nil},
		{"status 6", OpGetShard, withStatus(6)},
		{"status 255", OpGetShard, withStatus(255)},
		{"message over MaxMessage", OpGetShard, longMsg},
		{"get_shard body shorter than descriptor", OpGetShard, ok(OpGetShard, func(r *Response) { r.BodyLen-- })},
		{"get_shard body of segment length", OpGetShard, ok(OpGetShard, func(r *Response) { r.BodyLen = d.Length })},
		{"fill body of shard length", OpFill, ok(OpFill, func(r *Response) { r.BodyLen = d.ShardLen })},
		{"fill body longer than descriptor", OpFill, ok(OpFill, func(r *Response) { r.BodyLen++ })},
		{"get_shard body of 0 bytes", OpGetShard, ok(OpGetShard, func(r *Response) { r.BodyLen = 0 })},
		{"descriptor with k=0", OpGetShard, badDesc},
		{"stat payload over MaxPayload", OpStat, statLen(MaxPayload + 1)},
		{"stat payload length 4G", OpStat, statLen(0xffffffff)},
		{"ok to op 0", Op(0), []byte{0, 0, 0}},
		{"ok to op 5", Op(5), []byte{0, 0, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ReadResponse(bytes.NewReader(tt.in), tt.op)
			if !errors.Is(err, ErrFrame) {
				t.Fatalf("got %+v, %v, want ErrFrame", got, err)
			}
			if got != nil {
				t.Errorf("got response %+v with error", got)
			}
		})
	}
}

func TestOpString(t *testing.T) {
	tests := []struct {
		op   Op
		want string
	}{
		{OpGetShard, "get_shard"},
		{OpPutShard, "put_shard"},
		{OpStat, "stat"},
		{OpFill, "fill"},
		{0, "op(0)"},
		{5, "op(5)"},
		{255, "op(255)"},
	}
	for _, tt := range tests {
		if got := tt.op.String(); got != tt.want {
			t.Errorf("Op(%d).String(): got %q, want %q", uint8(tt.op), got, tt.want)
		}
	}
}

// TestStatModeTable pins the Stat modes to their numbers, which are on the
// wire: members of different releases must agree on them. A mode
// renumbered, two modes on one number, a mode without a name, or a number
// SplitStat accepts that the table does not list, fails it.
func TestStatModeTable(t *testing.T) {
	table := []struct {
		mode StatMode
		wire byte
		name string
	}{
		{StatResolve, 1, "resolve"},
		{StatReplicate, 2, "replicate"},
		{StatRefresh, 3, "refresh"},
		{StatPurge, 4, "purge"},
		{StatPurgePrefix, 5, "purge_prefix"},
		{StatWarm, 6, "warm"},
		{StatPurgeStamped, 7, "purge_stamped"},
		{StatPurgeLog, 8, "purge_log"},
		{StatHello, 9, "hello"},
		{StatLease, 10, "lease"},
		{StatPlace, 11, "place"},
	}
	byWire := map[byte]string{}
	names := map[string]bool{}
	for _, tt := range table {
		if byte(tt.mode) != tt.wire {
			t.Errorf("%s: got number %d, want %d", tt.name, byte(tt.mode), tt.wire)
		}
		if got := tt.mode.String(); got != tt.name {
			t.Errorf("StatMode(%d).String(): got %q, want %q", tt.wire, got, tt.name)
		}
		if prev, dup := byWire[tt.wire]; dup {
			t.Errorf("%s and %s share number %d", prev, tt.name, tt.wire)
		}
		byWire[tt.wire] = tt.name
		if names[tt.mode.String()] {
			t.Errorf("two modes named %q", tt.mode.String())
		}
		names[tt.mode.String()] = true
	}
	for b := range 256 {
		m, _, err := SplitStat([]byte{byte(b), 'x'})
		name, listed := byWire[byte(b)]
		switch {
		case listed && err != nil:
			t.Errorf("SplitStat refuses %s (%d): %v", name, b, err)
		case listed && m.String() != name:
			t.Errorf("SplitStat(%d): got mode %v, want %s", b, m, name)
		case !listed && err == nil:
			t.Errorf("SplitStat accepts mode %d (%v), which the table does not list", b, m)
		case !listed && StatMode(b).String() != fmt.Sprintf("stat_mode(%d)", b):
			t.Errorf("unlisted StatMode(%d) is named %q", b, StatMode(b).String())
		}
	}
}

func TestSplitStat(t *testing.T) {
	key := append(AppendStat([]byte("prefix:"), StatPurgeLog), 1, 2, 3, 4, 5, 6, 7, 8)
	m, payload, err := SplitStat(key[len("prefix:"):])
	if err != nil || m != StatPurgeLog || !bytes.Equal(payload, []byte{1, 2, 3, 4, 5, 6, 7, 8}) {
		t.Errorf("got %v, %x, %v, want purge_log, 0102030405060708, nil", m, payload, err)
	}
	for _, in := range [][]byte{nil, {}, {byte(StatResolve)}, {0, 'k'}, {12, 'k'}, {255, 'k'}} {
		if m, p, err := SplitStat(in); !errors.Is(err, ErrFrame) {
			t.Errorf("SplitStat(%x): got %v, %x, %v, want ErrFrame", in, m, p, err)
		}
	}
}
