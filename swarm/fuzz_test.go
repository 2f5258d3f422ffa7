package swarm

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// FuzzReadRequest checks that ReadRequest never panics, that what it
// accepts respects the protocol limits, and that it consumes exactly one
// header, which Append reproduces byte for byte: a request has one
// encoding and nothing in it is ignored.
func FuzzReadRequest(f *testing.F) {
	for _, req := range testRequests(f) {
		if len(req.Payload) > 4096 {
			continue // the fuzzer mutates large seeds slowly
		}
		b := req.Append(nil)
		f.Add(b)
		f.Add(b[:len(b)-1])
		f.Add(append(bytes.Clone(b), 0xee))
	}
	f.Add([]byte{})
	f.Add([]byte{Version, byte(OpStat), 0, 0xff, 0xff})
	f.Add([]byte{Version, byte(OpFill), 0, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{Version, byte(OpPutShard), 0xff})

	f.Fuzz(func(t *testing.T, in []byte) {
		rd := bytes.NewReader(in)
		req, err := ReadRequest(rd)
		if err != nil {
			if req != nil {
				t.Fatalf("ReadRequest returned %+v with error %v", req, err)
			}
			// A bytes.Reader fails only with io.EOF, so every error is
			// the frame's.
			if !errors.Is(err, ErrFrame) {
				t.Fatalf("ReadRequest error %v is not ErrFrame", err)
			}
			return
		}
		if n := len(req.TraceParent); n > MaxTraceParent {
			t.Fatalf("traceparent of %d bytes, limit %d", n, MaxTraceParent)
		}
		switch req.Op {
		case OpGetShard:
			if req.Payload != nil || req.Descriptor != nil || req.BodyLen != 0 {
				t.Fatalf("GetShard with payload, descriptor or body: %+v", req)
			}
		case OpPutShard:
			if req.Descriptor == nil {
				t.Fatal("PutShard without descriptor")
			}
			if err := req.Descriptor.Validate(); err != nil {
				t.Fatalf("PutShard with invalid descriptor: %v", err)
			}
			if req.BodyLen != req.Descriptor.ShardLen || req.BodyLen > MaxBody {
				t.Fatalf("PutShard body of %d bytes, descriptor says %d", req.BodyLen, req.Descriptor.ShardLen)
			}
			if int(req.Shard.Index) >= req.Descriptor.Params.Total() {
				t.Fatalf("PutShard of shard %d of %d", req.Shard.Index, req.Descriptor.Params.Total())
			}
		case OpStat:
			if n := len(req.Payload); n < 1 || n > MaxKey {
				t.Fatalf("Stat key of %d bytes, want 1..%d", n, MaxKey)
			}
		case OpFill:
			if n := len(req.Payload); n < 1 || n > MaxPayload {
				t.Fatalf("Fill payload of %d bytes, want 1..%d", n, MaxPayload)
			}
		default:
			t.Fatalf("accepted unknown op %d", req.Op)
		}
		consumed := len(in) - rd.Len()
		if got := req.Append(nil); !bytes.Equal(got, in[:consumed]) {
			t.Fatalf("re-encoding differs from the %d bytes consumed:\ngot  %x\nwant %x", consumed, got, in[:consumed])
		}
	})
}

// FuzzReadResponse is FuzzReadRequest for responses, with the op the
// response answers fuzzed too.
func FuzzReadResponse(f *testing.F) {
	for _, tt := range testResponses(f) {
		b := tt.resp.Append(nil, tt.op)
		f.Add(byte(tt.op), b)
		f.Add(byte(tt.op), b[:len(b)-1])
		f.Add(byte(tt.op), append(bytes.Clone(b), 0xee))
	}
	f.Add(byte(0), []byte{0, 0, 0})
	f.Add(byte(OpStat), []byte{0, 0, 0, 0xff, 0xff, 0xff, 0xff})
	f.Add(byte(OpFill), []byte{4, 0, 0})

	f.Fuzz(func(t *testing.T, op byte, in []byte) {
		rd := bytes.NewReader(in)
		resp, err := ReadResponse(rd, Op(op))
		if err != nil {
			if resp != nil {
				t.Fatalf("ReadResponse returned %+v with error %v", resp, err)
			}
			if !errors.Is(err, ErrFrame) {
				t.Fatalf("ReadResponse error %v is not ErrFrame", err)
			}
			return
		}
		if resp.Status > StatusStale {
			t.Fatalf("accepted status %d", resp.Status)
		}
		if n := len(resp.Message); n > MaxMessage {
			t.Fatalf("message of %d bytes, limit %d", n, MaxMessage)
		}
		if resp.BodyLen < 0 || resp.BodyLen > MaxBody {
			t.Fatalf("body of %d bytes, limit %d", resp.BodyLen, MaxBody)
		}
		if resp.Status == StatusOK {
			switch Op(op) {
			case OpGetShard, OpFill:
				if resp.Descriptor == nil {
					t.Fatalf("OK %v without descriptor", Op(op))
				}
				if err := resp.Descriptor.Validate(); err != nil {
					t.Fatalf("OK %v with invalid descriptor: %v", Op(op), err)
				}
				want := resp.Descriptor.ShardLen
				if Op(op) == OpFill {
					want = resp.Descriptor.Length
					if resp.BodyLen == 0 {
						want = 0 // a placed answer
					}
				}
				if resp.BodyLen != want {
					t.Fatalf("body of %d bytes, descriptor says %d", resp.BodyLen, want)
				}
			case OpStat:
				if resp.BodyLen > MaxPayload {
					t.Fatalf("Stat payload of %d bytes, limit %d", resp.BodyLen, MaxPayload)
				}
			case OpPutShard:
				if resp.BodyLen != 0 || resp.Descriptor != nil {
					t.Fatalf("OK PutShard with a body: %+v", resp)
				}
			default:
				t.Fatalf("accepted OK for unknown op %d", op)
			}
		} else if resp.Descriptor != nil || resp.BodyLen != 0 {
			t.Fatalf("status %d with a body: %+v", resp.Status, resp)
		}
		consumed := len(in) - rd.Len()
		if got := resp.Append(nil, Op(op)); !bytes.Equal(got, in[:consumed]) {
			t.Fatalf("re-encoding differs from the %d bytes consumed:\ngot  %x\nwant %x", consumed, got, in[:consumed])
		}
	})
}

// FuzzSplitStat checks that SplitStat never panics, that it accepts only
// the modes of the table with a payload, that AppendStat reproduces what
// it accepts byte for byte, and that its errors are ErrFrame.
func FuzzSplitStat(f *testing.F) {
	for m := range StatMode(len(statModeNames)) {
		f.Add(append(AppendStat(nil, m), "//example.test/a"...))
		f.Add(AppendStat(nil, m))
	}
	f.Add([]byte{})
	f.Add([]byte{byte(StatPurgeLog) + 1, 0})
	f.Add([]byte{0xff, 0xff})

	f.Fuzz(func(t *testing.T, in []byte) {
		m, payload, err := SplitStat(in)
		if err != nil {
			if !errors.Is(err, ErrFrame) {
				t.Fatalf("SplitStat error %v is not ErrFrame", err)
			}
			if m != 0 || payload != nil {
				t.Fatalf("SplitStat returned %v, %x with error %v", m, payload, err)
			}
			return
		}
		if !m.known() || strings.HasPrefix(m.String(), "stat_mode(") {
			t.Fatalf("SplitStat accepted mode %d, which has no name", uint8(m))
		}
		if len(payload) == 0 {
			t.Fatalf("SplitStat accepted mode %v without a payload", m)
		}
		if out := append(AppendStat(nil, m), payload...); !bytes.Equal(out, in) {
			t.Fatalf("AppendStat gives %x, the key was %x", out, in)
		}
	})
}
