package swarm

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
	"testing/iotest"

	"github.com/shoalcdn/shoal/erasure"
)

// Shards big enough that readBody hashes them in several steps, of a
// length that is not a multiple of the hash's 16 KiB block.
func bigShards(t *testing.T) ([][]byte, *erasure.Descriptor) {
	shards, d := encodeSegment(t, erasure.Params{K: 4, M: 2}, 1<<20+4*5_000+3, 21)
	if d.ShardLen <= 2*hashStep || d.ShardLen%(16<<10) == 0 {
		t.Fatalf("shard of %d bytes does not exercise the hashing steps", d.ShardLen)
	}
	return shards, d
}

func TestGetShardIntoAndHashWhileReading(t *testing.T) {
	nodes := startNodes(t, 2, nil, nil)
	a, b := nodes[0], nodes[1]
	shards, d := bigShards(t)
	for i, s := range shards {
		b.store.PutShard(testShardID(3, uint8(i)), d, s)
	}
	ctx := testContext(t)
	for i, s := range shards {
		id := testShardID(3, uint8(i))
		gd, got, err := a.GetShard(ctx, b.addr, id)
		if err != nil || !gd.Equal(d) || !bytes.Equal(got, s) {
			t.Fatalf("GetShard(%d): %d bytes, %v; want the shard", i, len(got), err)
		}
		// Into a slot of a larger buffer, as a segment being rebuilt is.
		buf := make([]byte, 3*d.ShardLen)
		dst := buf[d.ShardLen : 2*d.ShardLen]
		gd, err = a.GetShardInto(ctx, b.addr, id, dst)
		if err != nil || !gd.Equal(d) || !bytes.Equal(dst, s) {
			t.Fatalf("GetShardInto(%d): %v; want the shard in place", i, err)
		}
		if !bytes.Equal(buf[:d.ShardLen], make([]byte, d.ShardLen)) || !bytes.Equal(buf[2*d.ShardLen:], make([]byte, d.ShardLen)) {
			t.Fatalf("GetShardInto(%d) wrote outside dst", i)
		}
	}

	id := testShardID(3, 0)
	for _, n := range []int{d.ShardLen - 1, d.ShardLen + 1} {
		dst := make([]byte, n)
		_, err := a.GetShardInto(ctx, b.addr, id, dst)
		var ie *erasure.IntegrityError
		if err == nil || errors.As(err, &ie) {
			t.Errorf("GetShardInto with a buffer of %d for a shard of %d: got %v, want an error that blames no one", n, d.ShardLen, err)
		}
		if !bytes.Equal(dst, make([]byte, n)) {
			t.Errorf("GetShardInto with a buffer of %d wrote into it", n)
		}
	}
	if _, err := a.GetShardInto(ctx, b.addr, id, nil); err == nil {
		t.Error("GetShardInto with no buffer: got no error")
	}
	// The connection is still good after the cancelled streams.
	if _, _, err := a.GetShard(ctx, b.addr, id); err != nil {
		t.Fatalf("GetShard after the refused buffers: %v", err)
	}

	b.store.setCorrupt(true)
	for _, into := range []bool{false, true} {
		var err error
		if into {
			_, err = a.GetShardInto(ctx, b.addr, id, make([]byte, d.ShardLen))
		} else {
			_, _, err = a.GetShard(ctx, b.addr, id)
		}
		var ie *erasure.IntegrityError
		if !errors.As(err, &ie) || ie.Shard != 0 || ie.Reason != "hash" {
			t.Errorf("corrupt shard (into %v): got %v, want a hash IntegrityError for shard 0", into, err)
		}
	}
}

func TestPutShardLargeVerified(t *testing.T) {
	nodes := startNodes(t, 2, nil, nil)
	a, b := nodes[0], nodes[1]
	shards, d := bigShards(t)
	ctx := testContext(t)
	if err := a.PutShard(ctx, b.addr, testShardID(4, 5), d, shards[5]); err != nil {
		t.Fatal(err)
	}
	if _, got, ok := b.store.Shard(testShardID(4, 5)); !ok || !bytes.Equal(got, shards[5]) {
		t.Fatal("the pushed shard was not stored whole")
	}
	// A flip in the last bytes, past the last whole hashing step.
	for _, at := range []int{0, hashStep, d.ShardLen - 1} {
		bad := bytes.Clone(shards[2])
		bad[at] ^= 1
		err := a.PutShard(ctx, b.addr, testShardID(4, 2), d, bad)
		var re *RemoteError
		if !errors.As(err, &re) || re.Status != StatusBadRequest {
			t.Errorf("shard flipped at %d: got %v, want status %d", at, err, StatusBadRequest)
		}
	}
	if _, _, ok := b.store.Shard(testShardID(4, 2)); ok {
		t.Error("a corrupt shard was stored")
	}
}

// piecesReader hands out its bytes in pieces of random sizes, as a QUIC
// stream does.
type piecesReader struct {
	b   []byte
	rng *rand.Rand
}

func (r *piecesReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := min(len(p), len(r.b), 1+r.rng.IntN(40_000))
	copy(p, r.b[:n])
	r.b = r.b[n:]
	return n, nil
}

func TestReadBody(t *testing.T) {
	data := testSegment(3*hashStep+12345, 7)
	rng := rand.New(rand.NewPCG(3, 4))
	var h erasure.Hasher
	for _, n := range []int{0, 1, hashStep - 1, hashStep, hashStep + 1, len(data)} {
		h.Write([]byte("state left over from an earlier body"))
		body := make([]byte, n)
		if err := readBody(&piecesReader{data[:n], rng}, body, &h); err != nil {
			t.Fatalf("%d bytes: %v", n, err)
		}
		if !bytes.Equal(body, data[:n]) {
			t.Fatalf("%d bytes: body differs", n)
		}
		if got, want := h.Sum(), erasure.Sum(data[:n]); got != want {
			t.Errorf("%d bytes: hash %s, want %s", n, got, want)
		}
		if err := readBody(iotest.DataErrReader(&piecesReader{data[:n], rng}), body, nil); err != nil {
			t.Errorf("%d bytes, EOF with the last bytes: %v", n, err)
		}
	}
	body := make([]byte, 1000)
	if err := readBody(&piecesReader{data[:999], rng}, body, &h); err != io.ErrUnexpectedEOF {
		t.Errorf("truncated body: got %v, want io.ErrUnexpectedEOF", err)
	}
	boom := errors.New("boom")
	if err := readBody(iotest.ErrReader(boom), body, &h); err != boom {
		t.Errorf("failing reader: got %v, want %v", err, boom)
	}
}
