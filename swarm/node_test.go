package swarm

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/shoalcdn/shoal/erasure"
)

// memStore is an in-memory ShardStore.
type memStore struct {
	mu     sync.Mutex
	shards map[erasure.ShardID]memShard
	// corrupt, when set, flips a bit of every shard Shard returns.
	corrupt bool
	// block, when set, makes Shard wait until it is closed.
	block chan struct{}
}

type memShard struct {
	d    *erasure.Descriptor
	data []byte
}

func newMemStore() *memStore { return &memStore{shards: map[erasure.ShardID]memShard{}} }

func (s *memStore) Shard(id erasure.ShardID) (*erasure.Descriptor, []byte, bool) {
	s.mu.Lock()
	sh, ok := s.shards[id]
	corrupt, block := s.corrupt, s.block
	s.mu.Unlock()
	if block != nil {
		<-block
	}
	if ok && corrupt {
		data := bytes.Clone(sh.data)
		data[len(data)/2] ^= 1
		return sh.d, data, true
	}
	return sh.d, sh.data, ok
}

func (s *memStore) PutShard(id erasure.ShardID, d *erasure.Descriptor, data []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.shards[id] = memShard{d, data}
	return nil
}

func (s *memStore) setCorrupt(v bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.corrupt = v
}

func (s *memStore) setBlock(c chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.block = c
}

func (s *memStore) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.shards)
}

// funcHandler is a Handler made of funcs; a nil one answers ErrNotFound.
type funcHandler struct {
	stat func(ctx context.Context, key []byte) ([]byte, error)
	fill func(ctx context.Context, payload []byte) (*Segment, error)
}

func (h *funcHandler) Stat(ctx context.Context, key []byte) ([]byte, error) {
	if h.stat == nil {
		return nil, ErrNotFound
	}
	return h.stat(ctx, key)
}

func (h *funcHandler) Fill(ctx context.Context, payload []byte) (*Segment, error) {
	if h.fill == nil {
		return nil, ErrNotFound
	}
	return h.fill(ctx, payload)
}

// swapHandler is a Handler whose implementation a test may replace while
// the node serves; nil answers ErrNotFound.
type swapHandler struct {
	mu sync.Mutex
	h  Handler
}

func (s *swapHandler) set(h Handler) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.h = h
}

func (s *swapHandler) get() Handler {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.h == nil {
		return &funcHandler{}
	}
	return s.h
}

func (s *swapHandler) Stat(ctx context.Context, key []byte) ([]byte, error) {
	return s.get().Stat(ctx, key)
}

func (s *swapHandler) Fill(ctx context.Context, payload []byte) (*Segment, error) {
	return s.get().Fill(ctx, payload)
}

// requestLog records what OnRequest reports.
type requestLog struct {
	mu      sync.Mutex
	results []string
}

func (l *requestLog) record(op Op, result string, _ int, _ time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.results = append(l.results, op.String()+":"+result)
}

func (l *requestLog) last() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.results) == 0 {
		return ""
	}
	return l.results[len(l.results)-1]
}

type testNode struct {
	*Node
	addr  string
	store *memStore
	log   *requestLog
	// stop closes the node and its socket and waits for Serve to return.
	stop func()
}

// testCreds writes a fresh fleet CA and node certificate into a temporary
// directory and loads them.
func testCreds(t testing.TB) *Credentials {
	t.Helper()
	dir := t.TempDir()
	if err := WriteCerts(dir, []string{"127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	creds, err := LoadCredentials(dir)
	if err != nil {
		t.Fatal(err)
	}
	return creds
}

// startNodes starts n serving nodes on loopback that all know each other
// and share creds (nil means a new fleet CA). configure, if not nil,
// adjusts each node's Config before New.
func startNodes(t testing.TB, n int, creds *Credentials, configure func(i int, cfg *Config)) []*testNode {
	t.Helper()
	if creds == nil {
		creds = testCreds(t)
	}
	pcs := make([]net.PacketConn, n)
	addrs := make([]string, n)
	for i := range pcs {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		pcs[i], addrs[i] = pc, pc.LocalAddr().String()
	}
	nodes := make([]*testNode, n)
	for i, pc := range pcs {
		tn := &testNode{addr: addrs[i], store: newMemStore(), log: &requestLog{}}
		cfg := Config{
			Self:        addrs[i],
			Peers:       addrs,
			Credentials: creds,
			Store:       tn.store,
			Logger:      slog.New(slog.DiscardHandler),
			OnRequest:   tn.log.record,
		}
		if configure != nil {
			configure(i, &cfg)
		}
		node, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		tn.Node = node
		served := make(chan error, 1)
		go func() { served <- node.Serve(pc) }()
		var once sync.Once
		tn.stop = func() {
			once.Do(func() {
				node.Close()
				if err := <-served; !errors.Is(err, ErrServerClosed) {
					t.Errorf("Serve: got %v, want ErrServerClosed", err)
				}
				pc.Close()
			})
		}
		t.Cleanup(tn.stop)
		select {
		case <-node.Ready():
		case err := <-served:
			t.Fatalf("Serve: %v", err)
		}
		nodes[i] = tn
	}
	return nodes
}

func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestNewRequiredFields(t *testing.T) {
	creds := testCreds(t)
	store := newMemStore()
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no self", Config{Credentials: creds, Store: store}, "Self"},
		{"no credentials", Config{Self: "127.0.0.1:1", Store: store}, "Credentials"},
		{"no store", Config{Self: "127.0.0.1:1", Credentials: creds}, "Store"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := New(tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, %v, want an error naming %s", n, err, tt.want)
			}
		})
	}
}

func TestMembers(t *testing.T) {
	n, err := New(Config{
		Self:        "b:1",
		Peers:       []string{"c:1", "a:1", "", "b:1", "c:1"},
		Credentials: testCreds(t),
		Store:       newMemStore(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := n.Members(), []string{"a:1", "b:1", "c:1"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got members %v, want %v", got, want)
	}
	if !n.Alive("b:1") || !n.Alive("a:1") {
		t.Error("a fresh node reports a member down")
	}
	seg := erasure.SegmentID{Index: 9}
	if got, want := n.Holders(seg, 6), Holders([]string{"a:1", "b:1", "c:1"}, seg, 6); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got holders %v, want %v", got, want)
	}
}

func TestRequestBeforeServe(t *testing.T) {
	n, err := New(Config{Self: "127.0.0.1:1", Credentials: testCreds(t), Store: newMemStore()})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := n.GetShard(t.Context(), "127.0.0.1:2", testShardID(0, 0)); !errors.Is(err, ErrNotServing) {
		t.Errorf("got %v, want ErrNotServing", err)
	}
	n.Close()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	if err := n.Serve(pc); !errors.Is(err, ErrServerClosed) {
		t.Errorf("Serve after Close: got %v, want ErrServerClosed", err)
	}
}

func TestPutShardGetShard(t *testing.T) {
	nodes := startNodes(t, 2, nil, nil)
	a, b := nodes[0], nodes[1]
	ctx := testContext(t)
	shards, d := encodeSegment(t, erasure.Params{K: 4, M: 2}, 100_000, 3)
	for i, data := range shards {
		id := testShardID(5, uint8(i))
		if err := a.PutShard(ctx, b.addr, id, d, data); err != nil {
			t.Fatalf("PutShard %d: %v", i, err)
		}
		if got := a.log.last(); got != "put_shard:ok" {
			t.Errorf("OnRequest: got %q, want %q", got, "put_shard:ok")
		}
	}
	if got := b.store.len(); got != len(shards) {
		t.Fatalf("got %d shards stored, want %d", got, len(shards))
	}
	for i, want := range shards {
		id := testShardID(5, uint8(i))
		gotD, got, err := a.GetShard(ctx, b.addr, id)
		if err != nil {
			t.Fatalf("GetShard %d: %v", i, err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("shard %d: got %d bytes that differ from the %d put", i, len(got), len(want))
		}
		if !gotD.Equal(d) {
			t.Errorf("shard %d: got descriptor %+v, want %+v", i, gotD, d)
		}
	}
	// A node may ask itself, as a fleet sharing one member list does.
	if _, got, err := b.GetShard(ctx, b.addr, testShardID(5, 0)); err != nil || !bytes.Equal(got, shards[0]) {
		t.Errorf("GetShard from self: got %d bytes, %v", len(got), err)
	}
}

func TestGetShardNotFound(t *testing.T) {
	nodes := startNodes(t, 2, nil, nil)
	_, _, err := nodes[0].GetShard(testContext(t), nodes[1].addr, testShardID(1, 1))
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("got %v, want ErrNotFound", err)
	}
	if got := nodes[0].log.last(); got != "get_shard:not_found" {
		t.Errorf("OnRequest: got %q, want %q", got, "get_shard:not_found")
	}
	if !nodes[0].Alive(nodes[1].addr) {
		t.Error("a peer that answered not found is reported down")
	}
}

func TestGetShardCorrupt(t *testing.T) {
	nodes := startNodes(t, 2, nil, nil)
	a, b := nodes[0], nodes[1]
	shards, d := encodeSegment(t, erasure.Params{K: 4, M: 2}, 50_000, 4)
	id := testShardID(2, 1)
	b.store.PutShard(id, d, shards[1])
	b.store.setCorrupt(true)

	_, got, err := a.GetShard(testContext(t), b.addr, id)
	var ie *erasure.IntegrityError
	if !errors.As(err, &ie) {
		t.Fatalf("got %d bytes, %v, want an *erasure.IntegrityError", len(got), err)
	}
	if ie.Shard != 1 || ie.Reason != "hash" {
		t.Errorf("got %+v, want shard 1, reason hash", ie)
	}
	if got := a.log.last(); got != "get_shard:corrupt" {
		t.Errorf("OnRequest: got %q, want %q", got, "get_shard:corrupt")
	}
}

func TestPutShardRefused(t *testing.T) {
	shards, d := encodeSegment(t, erasure.Params{K: 4, M: 2}, 50_000, 5)
	corrupt := bytes.Clone(shards[2])
	corrupt[0] ^= 0x80

	t.Run("corrupt bytes", func(t *testing.T) {
		nodes := startNodes(t, 2, nil, nil)
		err := nodes[0].PutShard(testContext(t), nodes[1].addr, testShardID(0, 2), d, corrupt)
		var re *RemoteError
		if !errors.As(err, &re) || re.Status != StatusBadRequest {
			t.Fatalf("got %v, want a RemoteError with status %d", err, StatusBadRequest)
		}
		if !strings.Contains(re.Message, "hash") || re.Op != OpPutShard || re.Peer != nodes[1].addr {
			t.Errorf("got %+v, want a hash mismatch from %s", re, nodes[1].addr)
		}
		if got := nodes[1].store.len(); got != 0 {
			t.Errorf("got %d shards stored, want 0", got)
		}
	})
	t.Run("another shard's bytes", func(t *testing.T) {
		nodes := startNodes(t, 2, nil, nil)
		err := nodes[0].PutShard(testContext(t), nodes[1].addr, testShardID(0, 2), d, shards[3])
		var re *RemoteError
		if !errors.As(err, &re) || re.Status != StatusBadRequest {
			t.Fatalf("got %v, want a RemoteError with status %d", err, StatusBadRequest)
		}
		if got := nodes[1].store.len(); got != 0 {
			t.Errorf("got %d shards stored, want 0", got)
		}
	})
	t.Run("index out of range", func(t *testing.T) {
		nodes := startNodes(t, 2, nil, nil)
		err := nodes[0].PutShard(testContext(t), nodes[1].addr, testShardID(0, 6), d, shards[0])
		if err == nil {
			t.Fatal("got nil error for shard 6 of 4+2")
		}
		if got := nodes[1].store.len(); got != 0 {
			t.Errorf("got %d shards stored, want 0", got)
		}
	})
	t.Run("wrong length", func(t *testing.T) {
		nodes := startNodes(t, 2, nil, nil)
		err := nodes[0].PutShard(testContext(t), nodes[1].addr, testShardID(0, 2), d, shards[2][1:])
		var ie *erasure.IntegrityError
		if !errors.As(err, &ie) || ie.Reason != "length" {
			t.Fatalf("got %v, want a length IntegrityError", err)
		}
	})
}

func TestStatAndFill(t *testing.T) {
	_, d := encodeSegment(t, erasure.Params{K: 4, M: 2}, 30_000, 6)
	seg := testSegment(30_000, 6)
	h := &funcHandler{
		stat: func(_ context.Context, key []byte) ([]byte, error) {
			return append([]byte("record of "), key...), nil
		},
		fill: func(_ context.Context, payload []byte) (*Segment, error) {
			if string(payload) != "fill me" {
				return nil, fmt.Errorf("unexpected payload %q", payload)
			}
			return &Segment{Descriptor: d, Data: seg, Source: "origin"}, nil
		},
	}
	sh := &swapHandler{h: h}
	nodes := startNodes(t, 2, nil, func(_ int, cfg *Config) { cfg.Handler = sh })
	a, b := nodes[0], nodes[1]
	ctx := testContext(t)

	rec, err := a.Stat(ctx, b.addr, []byte("GET /x"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(rec), "record of GET /x"; got != want {
		t.Errorf("Stat: got %q, want %q", got, want)
	}
	got, err := a.Fill(ctx, b.addr, []byte("fill me"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Data, seg) || !got.Descriptor.Equal(d) {
		t.Errorf("Fill: got %d bytes and %+v, want the segment of %d bytes", len(got.Data), got.Descriptor, len(seg))
	}
	if got.Source != "origin" {
		t.Errorf("Fill: got source %q, want %q", got.Source, "origin")
	}

	// A placed answer: the descriptor alone.
	sh.set(&funcHandler{fill: func(context.Context, []byte) (*Segment, error) {
		return &Segment{Descriptor: d, Source: "origin"}, nil
	}})
	got, err = a.Fill(ctx, b.addr, []byte("fill me"))
	if err != nil {
		t.Fatal(err)
	}
	if got.Data != nil || !got.Descriptor.Equal(d) || got.Source != "origin" {
		t.Errorf("placed Fill: got %d bytes, %+v, %q; want no data, the descriptor, \"origin\"", len(got.Data), got.Descriptor, got.Source)
	}

	// An empty Stat record is a valid answer.
	sh.set(&funcHandler{stat: func(context.Context, []byte) ([]byte, error) { return nil, nil }})
	if rec, err := a.Stat(ctx, b.addr, []byte("k")); err != nil || len(rec) != 0 {
		t.Errorf("empty Stat record: got %q, %v", rec, err)
	}
}

func TestNoHandler(t *testing.T) {
	nodes := startNodes(t, 2, nil, nil)
	ctx := testContext(t)
	if _, err := nodes[0].Stat(ctx, nodes[1].addr, []byte("k")); !errors.Is(err, ErrNotFound) {
		t.Errorf("Stat: got %v, want ErrNotFound", err)
	}
	if _, err := nodes[0].Fill(ctx, nodes[1].addr, []byte("p")); !errors.Is(err, ErrNotFound) {
		t.Errorf("Fill: got %v, want ErrNotFound", err)
	}
}

func TestStatAndFillArguments(t *testing.T) {
	nodes := startNodes(t, 1, nil, nil)
	ctx := testContext(t)
	for _, key := range [][]byte{nil, make([]byte, MaxKey+1)} {
		if _, err := nodes[0].Stat(ctx, nodes[0].addr, key); err == nil {
			t.Errorf("Stat with a key of %d bytes: got nil error", len(key))
		}
	}
	for _, p := range [][]byte{nil, make([]byte, MaxPayload+1)} {
		if _, err := nodes[0].Fill(ctx, nodes[0].addr, p); err == nil {
			t.Errorf("Fill with a payload of %d bytes: got nil error", len(p))
		}
	}
}

func TestHandlerErrors(t *testing.T) {
	_, d := encodeSegment(t, erasure.Params{K: 2, M: 1}, 10_000, 7)
	type call func(ctx context.Context, n *testNode, peer string) error
	stat := func(ctx context.Context, n *testNode, peer string) error {
		_, err := n.Stat(ctx, peer, []byte("k"))
		return err
	}
	fill := func(ctx context.Context, n *testNode, peer string) error {
		_, err := n.Fill(ctx, peer, []byte("p"))
		return err
	}
	boom := errors.New("origin said 503")
	tests := []struct {
		name     string
		handler  Handler
		call     call
		notFound bool
		message  string
	}{
		{"stat error", &funcHandler{stat: func(context.Context, []byte) ([]byte, error) { return nil, boom }}, stat, false, boom.Error()},
		{"stat not found", &funcHandler{stat: func(context.Context, []byte) ([]byte, error) {
			return nil, fmt.Errorf("no record: %w", ErrNotFound)
		}}, stat, true, ""},
		{"fill error", &funcHandler{fill: func(context.Context, []byte) (*Segment, error) { return nil, boom }}, fill, false, boom.Error()},
		{"fill not found", &funcHandler{}, fill, true, ""},
		{"fill returns nothing", &funcHandler{fill: func(context.Context, []byte) (*Segment, error) { return nil, nil }}, fill, false, "no segment"},
		{"fill without descriptor", &funcHandler{fill: func(context.Context, []byte) (*Segment, error) {
			return &Segment{Data: []byte("x")}, nil
		}}, fill, false, "no descriptor"},
		{"fill of the wrong length", &funcHandler{fill: func(context.Context, []byte) (*Segment, error) {
			return &Segment{Descriptor: d, Data: []byte("short")}, nil
		}}, fill, false, "descriptor says"},
		{"stat record too large", &funcHandler{stat: func(context.Context, []byte) ([]byte, error) {
			return make([]byte, MaxPayload+1), nil
		}}, stat, false, "exceeds"},
	}
	sh := &swapHandler{}
	nodes := startNodes(t, 2, nil, func(_ int, cfg *Config) { cfg.Handler = sh })
	a, b := nodes[0], nodes[1]
	ctx := testContext(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sh.set(tt.handler)
			err := tt.call(ctx, a, b.addr)
			if tt.notFound {
				if !errors.Is(err, ErrNotFound) {
					t.Errorf("got %v, want ErrNotFound", err)
				}
				return
			}
			var re *RemoteError
			if !errors.As(err, &re) {
				t.Fatalf("got %v, want a *RemoteError", err)
			}
			if re.Status != StatusFailed || !strings.Contains(re.Message, tt.message) {
				t.Errorf("got status %d, message %q, want status %d and a message containing %q", re.Status, re.Message, StatusFailed, tt.message)
			}
			if !a.Alive(b.addr) {
				t.Error("a peer that answered with an error is reported down")
			}
		})
	}
}

func TestMutualTLS(t *testing.T) {
	fleet := startNodes(t, 2, nil, nil)
	// A stranger with a certificate from another CA, that knows the fleet.
	stranger := startNodes(t, 1, nil, func(_ int, cfg *Config) {
		cfg.Peers = []string{fleet[0].addr, fleet[1].addr}
		cfg.DialTimeout = time.Second
	})[0]
	shards, d := encodeSegment(t, erasure.Params{K: 4, M: 2}, 10_000, 8)
	id := testShardID(0, 0)
	for _, n := range []*testNode{fleet[0], fleet[1], stranger} {
		n.store.PutShard(id, d, shards[0])
	}
	ctx := testContext(t)
	// The fleet works among itself...
	if _, _, err := fleet[0].GetShard(ctx, fleet[1].addr, id); err != nil {
		t.Fatalf("within the fleet: %v", err)
	}
	// ...but a stranger is refused, and refuses the fleet.
	if _, got, err := stranger.GetShard(ctx, fleet[0].addr, id); err == nil {
		t.Errorf("stranger got %d bytes from the fleet", len(got))
	} else {
		t.Logf("stranger from fleet: %v", err)
	}
	if _, got, err := fleet[1].GetShard(ctx, stranger.addr, id); err == nil {
		t.Errorf("fleet got %d bytes from a stranger", len(got))
	} else {
		t.Logf("fleet from stranger: %v", err)
	}
	if err := stranger.PutShard(ctx, fleet[1].addr, testShardID(0, 1), d, shards[1]); err == nil {
		t.Error("stranger put a shard into the fleet")
	} else {
		t.Logf("stranger put: %v", err)
	}
	if got := fleet[1].store.len(); got != 1 {
		t.Errorf("fleet node holds %d shards, want 1", got)
	}
}

// TestServerRefusesClient dials a node with clients that skip checking the
// server, so that only the server's check of the client stands between
// them and an answer.
func TestServerRefusesClient(t *testing.T) {
	nodes := startNodes(t, 1, nil, nil)
	shards, d := encodeSegment(t, erasure.Params{K: 4, M: 2}, 10_000, 9)
	id := testShardID(0, 0)
	nodes[0].store.PutShard(id, d, shards[0])
	stranger := testCreds(t) // another fleet CA

	tests := []struct {
		name  string
		certs []tls.Certificate
	}{
		{"no certificate", nil},
		{"certificate from another CA", []tls.Certificate{stranger.Cert}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
			defer cancel()
			tlsConf := &tls.Config{InsecureSkipVerify: true, NextProtos: []string{ALPN}, Certificates: tt.certs}
			conn, err := quic.DialAddr(ctx, nodes[0].addr, tlsConf, &quic.Config{HandshakeIdleTimeout: 2 * time.Second})
			if err != nil {
				t.Logf("refused during the handshake: %v", err)
				return
			}
			defer conn.CloseWithError(0, "")
			// TLS 1.3 lets a client finish its side of the handshake
			// before the server has checked the client's certificate; the
			// server then closes the connection, and no request may be
			// answered.
			st, err := conn.OpenStreamSync(ctx)
			if err != nil {
				t.Logf("refused at the first stream: %v", err)
				return
			}
			st.Write((&Request{Op: OpGetShard, Shard: id}).Append(nil))
			st.Close()
			resp, err := ReadResponse(st, OpGetShard)
			if err == nil {
				t.Fatalf("got response %+v", resp)
			}
			t.Logf("refused at the first request: %v", err)
		})
	}
	// The same client with the fleet's certificate is answered, so the
	// refusals above are the certificate's doing.
	tlsConf := &tls.Config{InsecureSkipVerify: true, NextProtos: []string{ALPN}, Certificates: []tls.Certificate{nodes[0].cfg.Credentials.Cert}}
	ctx := testContext(t)
	conn, err := quic.DialAddr(ctx, nodes[0].addr, tlsConf, &quic.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseWithError(0, "")
	st, err := conn.OpenStreamSync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	st.Write((&Request{Op: OpGetShard, Shard: id}).Append(nil))
	st.Close()
	if _, err := ReadResponse(st, OpGetShard); err != nil {
		t.Fatalf("fleet certificate: %v", err)
	}
}

func TestConnectionReuse(t *testing.T) {
	nodes := startNodes(t, 2, nil, nil)
	a, b := nodes[0], nodes[1]
	shards, d := encodeSegment(t, erasure.Params{K: 4, M: 2}, 10_000, 10)
	id := testShardID(0, 0)
	b.store.PutShard(id, d, shards[0])
	ctx := testContext(t)

	var first *quic.Conn
	for i := range 50 {
		if _, _, err := a.GetShard(ctx, b.addr, id); err != nil {
			t.Fatalf("GetShard %d: %v", i, err)
		}
		a.tr.mu.Lock()
		c := a.tr.conns[b.addr]
		a.tr.mu.Unlock()
		if first == nil {
			first = c
		} else if c != first {
			t.Fatalf("request %d used a new connection", i)
		}
	}
	b.tr.mu.Lock()
	accepted := len(b.tr.accepted)
	b.tr.mu.Unlock()
	if accepted != 1 {
		t.Errorf("peer holds %d accepted connections, want 1", accepted)
	}
}

// TestManyRequestsOneConnection makes more requests on one connection than
// MaxIncomingStreams: each must give its stream back.
func TestManyRequestsOneConnection(t *testing.T) {
	h := &funcHandler{stat: func(_ context.Context, key []byte) ([]byte, error) { return key, nil }}
	nodes := startNodes(t, 2, nil, func(_ int, cfg *Config) { cfg.Handler = h })
	shards, d := encodeSegment(t, erasure.Params{K: 4, M: 2}, 8_000, 11)
	id := testShardID(0, 0)
	nodes[1].store.PutShard(id, d, shards[0])
	n := int(nodes[1].tr.quic.MaxIncomingStreams) + 200
	for i := range n {
		ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
		var err error
		switch i % 3 {
		case 0:
			_, err = nodes[0].Stat(ctx, nodes[1].addr, []byte("k"))
		case 1:
			_, _, err = nodes[0].GetShard(ctx, nodes[1].addr, id)
		case 2:
			_, _, err = nodes[0].GetShard(ctx, nodes[1].addr, testShardID(9, 9)) // not found
			if errors.Is(err, ErrNotFound) {
				err = nil
			}
		}
		cancel()
		if err != nil {
			t.Fatalf("request %d of %d: %v", i, n, err)
		}
	}
}

func TestPeerKilled(t *testing.T) {
	nodes := startNodes(t, 2, nil, func(_ int, cfg *Config) { cfg.DialTimeout = time.Second })
	a, b := nodes[0], nodes[1]
	shards, d := encodeSegment(t, erasure.Params{K: 4, M: 2}, 10_000, 12)
	id := testShardID(0, 0)
	b.store.PutShard(id, d, shards[0])
	if _, _, err := a.GetShard(testContext(t), b.addr, id); err != nil {
		t.Fatal(err)
	}

	b.stop()
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	start := time.Now()
	if _, _, err := a.GetShard(ctx, b.addr, id); err == nil {
		t.Fatal("got a shard from a closed peer")
	} else {
		t.Logf("closed peer: %v", err)
	}
	if took := time.Since(start); took > 2500*time.Millisecond {
		t.Errorf("request to a closed peer took %v", took)
	}
	if a.Alive(b.addr) {
		t.Error("closed peer is reported alive")
	}
	start = time.Now()
	_, _, err := a.GetShard(testContext(t), b.addr, id)
	if !errors.Is(err, ErrPeerDown) {
		t.Errorf("got %v, want ErrPeerDown", err)
	}
	if took := time.Since(start); took > 100*time.Millisecond {
		t.Errorf("request to a peer marked down took %v", took)
	}
	if got := a.log.last(); got != "get_shard:down" {
		t.Errorf("OnRequest: got %q, want %q", got, "get_shard:down")
	}
}

func TestCancelInFlight(t *testing.T) {
	nodes := startNodes(t, 2, nil, nil)
	a, b := nodes[0], nodes[1]
	shards, d := encodeSegment(t, erasure.Params{K: 4, M: 2}, 10_000, 13)
	id := testShardID(0, 0)
	b.store.PutShard(id, d, shards[0])
	release := make(chan struct{})
	b.store.setBlock(release)
	t.Cleanup(func() { close(release) }) // before the nodes close

	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() {
		_, _, err := a.GetShard(ctx, b.addr, id)
		errc <- err
	}()
	time.Sleep(100 * time.Millisecond)
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("got %v, want context.Canceled", err)
		}
	case <-time.After(time.Second):
		t.Fatal("GetShard did not return within a second of cancellation")
	}
	if got := a.log.last(); got != "get_shard:canceled" {
		t.Errorf("OnRequest: got %q, want %q", got, "get_shard:canceled")
	}
	if !a.Alive(b.addr) {
		t.Error("the caller's cancellation marked the peer down")
	}
}

func TestShutdownFinishesRequests(t *testing.T) {
	started := make(chan struct{})
	h := &funcHandler{stat: func(ctx context.Context, key []byte) ([]byte, error) {
		close(started)
		select {
		case <-time.After(300 * time.Millisecond):
			return []byte("done"), nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}}
	nodes := startNodes(t, 2, nil, func(_ int, cfg *Config) { cfg.Handler = h })
	a, b := nodes[0], nodes[1]
	type result struct {
		rec []byte
		err error
	}
	resc := make(chan result, 1)
	go func() {
		rec, err := a.Stat(testContext(t), b.addr, []byte("k"))
		resc <- result{rec, err}
	}()
	<-started
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if err := b.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	r := <-resc
	if r.err != nil || string(r.rec) != "done" {
		t.Errorf("request in flight during Shutdown: got %q, %v, want %q", r.rec, r.err, "done")
	}
}

func TestShutdownDeadline(t *testing.T) {
	entered := make(chan struct{}, 1)
	h := &funcHandler{stat: func(ctx context.Context, key []byte) ([]byte, error) {
		entered <- struct{}{}
		<-ctx.Done()
		return nil, ctx.Err()
	}}
	nodes := startNodes(t, 2, nil, func(_ int, cfg *Config) { cfg.Handler = h })
	a, b := nodes[0], nodes[1]
	errc := make(chan error, 1)
	go func() {
		_, err := a.Stat(testContext(t), b.addr, []byte("k"))
		errc <- err
	}()
	select {
	case <-entered: // the request is being served: Shutdown must wait for it
	case <-time.After(5 * time.Second):
		t.Fatal("the request never reached the handler")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := b.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown: got %v, want context.DeadlineExceeded", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("Shutdown took %v past its deadline", took)
	}
	select {
	case err := <-errc:
		if err == nil {
			t.Error("request cut off by Shutdown succeeded")
		}
	case <-time.After(3 * time.Second):
		t.Error("request cut off by Shutdown did not return")
	}
}

func TestNilTracerProvider(t *testing.T) {
	// Every test runs with a nil TracerProvider; this one says so.
	h := &funcHandler{stat: func(_ context.Context, key []byte) ([]byte, error) { return key, nil }}
	nodes := startNodes(t, 2, nil, func(_ int, cfg *Config) { cfg.Handler = h; cfg.TracerProvider = nil })
	if _, err := nodes[0].Stat(testContext(t), nodes[1].addr, []byte("k")); err != nil {
		t.Fatal(err)
	}
}

func TestClosedNode(t *testing.T) {
	nodes := startNodes(t, 2, nil, nil)
	nodes[0].stop()
	if _, _, err := nodes[0].GetShard(testContext(t), nodes[1].addr, testShardID(0, 0)); !errors.Is(err, ErrServerClosed) {
		t.Errorf("got %v, want ErrServerClosed", err)
	}
}

// TestStreamsReturnedToLateClosingClient makes more requests on one
// connection than MaxIncomingStreams from a client that closes its side of
// each stream only after reading the answer, so that its FIN travels on
// its own: the server must still give every stream back.
func TestStreamsReturnedToLateClosingClient(t *testing.T) {
	creds := testCreds(t)
	nodes := startNodes(t, 1, creds, nil)
	shards, d := encodeSegment(t, erasure.Params{K: 4, M: 2}, 8_000, 14)
	id := testShardID(0, 0)
	nodes[0].store.PutShard(id, d, shards[0])

	// Over a thousand round trips: generous on a loaded machine under -race.
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	conn, err := quic.DialAddr(ctx, nodes[0].addr, creds.ClientConfig(), &quic.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseWithError(0, "")
	req := (&Request{Op: OpGetShard, Shard: id}).Append(nil)
	n := int(nodes[0].tr.quic.MaxIncomingStreams) + 100
	for i := range n {
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		st, err := conn.OpenStreamSync(sctx)
		cancel()
		if err != nil {
			t.Fatalf("stream %d of %d: %v", i, n, err)
		}
		st.Write(req)
		resp, err := ReadResponse(st, OpGetShard)
		if err != nil {
			t.Fatalf("stream %d: %v", i, err)
		}
		if _, err := io.ReadFull(st, make([]byte, resp.BodyLen)); err != nil {
			t.Fatalf("stream %d: %v", i, err)
		}
		st.Close()
		if _, err := st.Read(make([]byte, 1)); err != io.EOF {
			t.Fatalf("stream %d: got %v after the body, want io.EOF", i, err)
		}
	}
}

func TestDeadlineInFlight(t *testing.T) {
	h := &funcHandler{stat: func(ctx context.Context, key []byte) ([]byte, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}}
	nodes := startNodes(t, 2, nil, func(_ int, cfg *Config) { cfg.Handler = h })
	a, b := nodes[0], nodes[1]
	for i := range 5 {
		ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
		_, err := a.Stat(ctx, b.addr, []byte("k"))
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("call %d: got %v, want context.DeadlineExceeded", i, err)
		}
		if got := a.log.last(); got != "stat:canceled" {
			t.Errorf("call %d: OnRequest: got %q, want %q", i, got, "stat:canceled")
		}
	}
	if !a.Alive(b.addr) {
		t.Error("the caller's deadline marked the peer down")
	}
}

// TestPeerKilledMidRequests kills a peer under several requests: they all
// fail, and the one connection failure counts once in the peer's backoff.
func TestPeerKilledMidRequests(t *testing.T) {
	const inFlight = 4
	started := make(chan struct{}, inFlight)
	h := &funcHandler{stat: func(ctx context.Context, key []byte) ([]byte, error) {
		started <- struct{}{}
		<-ctx.Done()
		return nil, ctx.Err()
	}}
	nodes := startNodes(t, 2, nil, func(_ int, cfg *Config) { cfg.Handler = h })
	a, b := nodes[0], nodes[1]
	errc := make(chan error, inFlight)
	for range inFlight {
		go func() {
			_, err := a.Stat(testContext(t), b.addr, []byte("k"))
			errc <- err
		}()
	}
	for range inFlight {
		<-started
	}
	b.stop()
	for range inFlight {
		select {
		case err := <-errc:
			if err == nil {
				t.Error("request to a killed peer succeeded")
			}
		case <-time.After(3 * time.Second):
			t.Fatal("request to a killed peer did not fail within 3s")
		}
	}
	// Its requests may have been answered (cancelled by its shutdown)
	// before its connection closed: the close marks it down.
	for deadline := time.Now().Add(2 * time.Second); a.Alive(b.addr) && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	if a.Alive(b.addr) {
		t.Error("killed peer is reported alive")
	}
	a.health.mu.Lock()
	backoff := a.health.down[b.addr].backoff
	a.health.mu.Unlock()
	if backoff != 500*time.Millisecond {
		t.Errorf("got a backoff of %v after one failure, want 500ms", backoff)
	}
}

func TestPeersReportsConnectionsAndDownState(t *testing.T) {
	nodes := startNodes(t, 3, nil, nil)
	a := nodes[0]
	if _, _, err := a.GetShard(testContext(t), nodes[1].Self(), erasure.ShardID{}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetShard: %v", err)
	}
	nodes[2].stop()
	ctx := testContext(t)
	for a.Alive(nodes[2].Self()) && ctx.Err() == nil {
		a.GetShard(ctx, nodes[2].Self(), erasure.ShardID{})
	}
	byAddr := map[string]PeerInfo{}
	for _, p := range a.Peers() {
		byAddr[p.Addr] = p
	}
	if len(byAddr) != 3 || !byAddr[a.Self()].Self {
		t.Fatalf("Peers: %+v", a.Peers())
	}
	if p := byAddr[nodes[1].Self()]; !p.Connected || p.RTT <= 0 || p.BytesReceived == 0 || p.Down {
		t.Errorf("live peer: %+v", p)
	}
	if p := byAddr[nodes[2].Self()]; !p.Down {
		t.Errorf("closed peer not reported down: %+v", p)
	}
	if a.RTT(nodes[1].Self()) <= 0 {
		t.Error("RTT to a connected peer is zero")
	}
}

// TestPeerThatConnectsIsUp: a peer in its backoff that connects to this
// node (it restarted) is up again at once, so that this node's next
// request to it, an answer to its own maybe, is not refused as "peer is
// down".
func TestPeerThatConnectsIsUp(t *testing.T) {
	creds := testCreds(t)
	nodes := startNodes(t, 2, creds, nil)
	a, b := nodes[0], nodes[1]
	b.stop()
	ctx := testContext(t)
	for a.Alive(b.addr) && ctx.Err() == nil {
		a.GetShard(ctx, b.addr, erasure.ShardID{})
	}
	if _, _, err := a.GetShard(ctx, b.addr, erasure.ShardID{}); !errors.Is(err, ErrPeerDown) {
		t.Fatalf("GetShard of a peer in its backoff: %v, want ErrPeerDown", err)
	}
	// b again, at its address: its first request to a is a new connection.
	pc, err := net.ListenPacket("udp", b.addr)
	if err != nil {
		t.Skipf("cannot listen on %s again: %v", b.addr, err)
	}
	b2, err := New(Config{Self: b.addr, Peers: []string{a.addr, b.addr}, Credentials: creds, Store: newMemStore(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- b2.Serve(pc) }()
	t.Cleanup(func() { b2.Close(); <-served; pc.Close() })
	<-b2.Ready()
	if _, _, err := b2.GetShard(ctx, a.addr, erasure.ShardID{}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetShard from the restarted peer: %v", err)
	}
	if !a.Alive(b.addr) {
		t.Error("a peer that connected is still down")
	}
	if _, _, err := a.GetShard(ctx, b.addr, erasure.ShardID{}); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetShard of the peer that connected: %v, want ErrNotFound", err)
	}
}
