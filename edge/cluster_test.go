package edge

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shoalcdn/shoal/erasure"
	"github.com/shoalcdn/shoal/front"
	"github.com/shoalcdn/shoal/origin"
	"github.com/shoalcdn/shoal/store"
	"github.com/shoalcdn/shoal/swarm"
)

// testLayout keeps tests fast: 256 KiB segments, 4+2 shards.
var testLayout = erasure.Layout{SegmentSize: 256 << 10, Params: erasure.Params{K: 4, M: 2}}

// testOrigin is a real origin.Server on loopback that counts what it sends.
type testOrigin struct {
	dir      string
	srv      *httptest.Server
	bytes    atomic.Int64
	requests atomic.Int64
	down     atomic.Bool
	delay    atomic.Int64 // nanoseconds to stall every request
}

func newTestOrigin(t testing.TB, cacheControl string) *testOrigin {
	t.Helper()
	o := &testOrigin{dir: t.TempDir()}
	h, err := origin.NewServer(origin.ServerConfig{Dir: o.dir, CacheControl: cacheControl, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	o.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.requests.Add(1)
		if d := o.delay.Load(); d > 0 {
			select {
			case <-time.After(time.Duration(d)):
			case <-r.Context().Done():
				return
			}
		}
		if o.down.Load() {
			http.Error(w, "origin down for the test", http.StatusServiceUnavailable)
			return
		}
		h.ServeHTTP(&countingResponse{ResponseWriter: w, n: &o.bytes}, r)
	}))
	t.Cleanup(o.srv.Close)
	return o
}

// put writes a file of size pseudo-random bytes under name and returns them.
func (o *testOrigin) put(t testing.TB, name string, size int, seed uint64) []byte {
	t.Helper()
	var s [32]byte
	s[0], s[1] = byte(seed), byte(seed>>8)
	b := make([]byte, size)
	rand.NewChaCha8(s).Read(b)
	p := filepath.Join(o.dir, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p+".tmp", b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(p+".tmp", p); err != nil {
		t.Fatal(err)
	}
	return b
}

type countingResponse struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (w *countingResponse) Write(b []byte) (int, error) {
	n, err := w.ResponseWriter.Write(b)
	w.n.Add(int64(n))
	return n, err
}

// quietLogger is the test edges' logger: silent, or at debug level on
// stderr with -v, or appended to the file SHOAL_TEST_LOGFILE names (for a
// flaky test, where -v changes the timing too much).
func quietLogger() *slog.Logger {
	if f := os.Getenv("SHOAL_TEST_LOGFILE"); f != "" {
		w, err := os.OpenFile(f, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			panic(err)
		}
		return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// testCreds makes one fleet CA and node certificate per test binary run.
var testCreds = sync.OnceValues(func() (*swarm.Credentials, error) {
	dir, err := os.MkdirTemp("", "shoal-edge-test-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	if err := swarm.WriteCerts(dir, []string{"127.0.0.1"}); err != nil {
		return nil, err
	}
	return swarm.LoadCredentials(dir)
})

type testEdge struct {
	*Edge
	url    string
	closed bool
	pc     net.PacketConn
}

type cluster struct {
	t      testing.TB
	origin *testOrigin
	edges  []*testEdge
}

// parallelTests: the cluster tests that spend most of their time waiting
// (for gossip probes, repair delays, origin pacing, peers' timeouts)
// call t.Parallel, so that two of them (go test's -parallel, GOMAXPROCS)
// wait together. They share nothing: each cluster has its own ports, and
// a gossip cluster its own loopback addresses. Tests that restart an edge
// on its old port, or that time what they check, run alone; so do the
// gossip clusters' tests: two of those at once on two loaded cores made
// memberlist take live members for dead (extra membership changes, extra
// repairs: TestRepairAfterCrash failed so under go test ./...).

// newCluster starts n edges on loopback with one shared peer list, in
// front of o, with real QUIC between them and real HTTP in front.
func newCluster(t testing.TB, o *testOrigin, n int, tweak func(*Config)) *cluster {
	t.Helper()
	return newClusterConns(t, o, n, tweak, nil)
}

// newClusterConns is newCluster with each edge's peer socket passed
// through wrap, if set.
func newClusterConns(t testing.TB, o *testOrigin, n int, tweak func(*Config), wrap func(i int, pc net.PacketConn) net.PacketConn) *cluster {
	t.Helper()
	creds, err := testCreds()
	if err != nil {
		t.Fatal(err)
	}
	c := &cluster{t: t, origin: o}
	pcs := make([]net.PacketConn, n)
	peers := make([]string, n)
	for i := range pcs {
		if pcs[i], err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		peers[i] = pcs[i].LocalAddr().String()
	}
	for i := range n {
		cfg := Config{
			Origin:      origin.ClientConfig{Base: o.srv.URL, Attempts: 2, Backoff: 10 * time.Millisecond, Timeout: 5 * time.Second},
			Swarm:       swarm.Config{Self: peers[i], Peers: peers, Credentials: creds, DialTimeout: 500 * time.Millisecond},
			Layout:      testLayout,
			MemoryCache: 64 << 20,
			Store:       store.Config{Limit: 64 << 20},
			PeerTimeout: 2 * time.Second,
			Logger:      quietLogger().With("edge", i),
		}
		if tweak != nil {
			tweak(&cfg)
		}
		e, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		pc := pcs[i]
		if wrap != nil {
			pc = wrap(i, pc)
		}
		go e.ServePeers(pc)
		te := &testEdge{Edge: e, url: serveClients(t, e, ln), pc: pc}
		c.edges = append(c.edges, te)
		t.Cleanup(func() {
			if !te.closed {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				e.Shutdown(ctx)
			}
			pc.Close()
		})
	}
	t.Cleanup(c.shutdown) // runs before the edges' own cleanups
	c.connect()
	return c
}

// serveClients serves e to clients on ln the one way there is, the
// binary's: a front.Server (with front's default limits) whose handler is
// e, attached to e so that e's Shutdown and Close stop it and /readyz
// counts e as serving. It returns the base URL of ln.
func serveClients(t testing.TB, e *Edge, ln net.Listener) string {
	t.Helper()
	srv, err := front.New(front.Config{Handler: e, Logger: e.cfg.Logger, Registerer: e.Registerer()})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Attach(srv); err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	return "http://" + ln.Addr().String()
}

// shutdown shuts the live edges down together, but for one, shut down
// last: each lingers for its last answers to reach its peers
// (swarm.Node.Shutdown), which, one edge after another, added up to
// seconds per test; and in a gossip fleet an edge's leave waits until it
// has told a member still there (memberlist's Leave), which the last
// edge is for the others and which the last needs no more.
func (c *cluster) shutdown() {
	var live []*testEdge
	for _, e := range c.edges {
		if !e.closed {
			e.closed = true
			live = append(live, e)
		}
	}
	stop := func(e *testEdge) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		e.Shutdown(ctx)
	}
	if len(live) == 0 {
		return
	}
	var wg sync.WaitGroup
	for _, e := range live[:len(live)-1] {
		wg.Go(func() { stop(e) })
	}
	wg.Wait()
	stop(live[len(live)-1])
}

// connect dials every peer from every edge before a test sends its first
// request. Under -race on a loaded machine the first mTLS handshake can
// outlast the short DialTimeout the tests use, and a failed dial sends the
// request to the origin, which tests counting origin requests would see.
func (c *cluster) connect() {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i, e := range c.edges {
		for j, peer := range c.edges {
			if i == j {
				continue
			}
			for {
				err := e.Node().Connect(ctx, peer.Node().Self())
				if err == nil {
					break
				}
				if ctx.Err() != nil {
					c.t.Fatalf("edge %d cannot reach edge %d: %v", i, j, err)
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
	}
}

// kill stops edge i at once, as a crash would, and closes its socket.
func (c *cluster) kill(i int) {
	c.edges[i].closed = true
	c.edges[i].Close()
	if pc := c.edges[i].pc; pc != nil { // nil for the gossip clusters of gossip_test.go
		pc.Close()
	}
}

// get fetches path through edge i with the given header fields.
func (c *cluster) get(i int, path string, hdr ...string) (*http.Response, []byte) {
	c.t.Helper()
	return c.do(i, http.MethodGet, path, hdr...)
}

func (c *cluster) do(i int, method, path string, hdr ...string) (*http.Response, []byte) {
	c.t.Helper()
	req, err := http.NewRequest(method, c.edges[i].url+path, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	for j := 0; j+1 < len(hdr); j += 2 {
		req.Header.Set(hdr[j], hdr[j+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s via edge %d: %v", method, path, i, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatalf("%s %s via edge %d: reading body: %v", method, path, i, err)
	}
	return resp, body
}

func sameBytes(t *testing.T, what string, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: got %d bytes (sha256 %x), want %d bytes (sha256 %x)", what, len(got), sha256.Sum256(got), len(want), sha256.Sum256(want))
	}
}

func TestFleetServesFromPeers(t *testing.T) {
	o := newTestOrigin(t, "public, max-age=3600")
	c := newCluster(t, o, 4, nil)
	const size = 8<<20 + 12345
	want := o.put(t, "/release.bin", size, 1)
	for i := range c.edges {
		resp, body := c.get(i, "/release.bin")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("edge %d: status %d", i, resp.StatusCode)
		}
		sameBytes(t, fmt.Sprintf("edge %d", i), body, want)
		wantStatus := "shoal; hit;"
		if i == 0 {
			wantStatus = "shoal; fwd=miss; stored;"
		}
		if got := resp.Header.Get("Cache-Status"); !strings.HasPrefix(got, wantStatus) {
			t.Errorf("edge %d: Cache-Status %q, want it to start with %q", i, got, wantStatus)
		}
	}
	if got, limit := o.bytes.Load(), int64(size*11/10); got > limit {
		t.Errorf("origin sent %d bytes for a %d-byte object through 4 edges, want at most %d", got, size, limit)
	}
	for i, e := range c.edges[1:] {
		st := e.Stats()
		fleet := st.Served[srcPeer] + st.Served[srcMemory] + st.Served[srcDisk]
		if fleet*2 < size {
			t.Errorf("edge %d served %v: want most bytes from the fleet", i+1, st.Served)
		}
	}
	// A second round is served without the origin at all.
	before := o.bytes.Load()
	for i := range c.edges {
		_, body := c.get(i, "/release.bin")
		sameBytes(t, fmt.Sprintf("second round, edge %d", i), body, want)
	}
	if got := o.bytes.Load() - before; got != 0 {
		t.Errorf("second round: origin sent %d bytes, want 0", got)
	}
}

func TestKillEdgeKeepsObjectInFleet(t *testing.T) {
	t.Parallel() // mostly waiting (parallelTests)
	for victim := range 4 {
		t.Run(fmt.Sprintf("kill-%d", victim), func(t *testing.T) {
			o := newTestOrigin(t, "public, max-age=3600")
			c := newCluster(t, o, 4, nil)
			want := o.put(t, "/b.bin", 3<<20+77, 2)
			_, body := c.get(0, "/b.bin")
			sameBytes(t, "first fetch", body, want)
			// Let the shard pushes land before the crash, and the record
			// reach its replicas: a streamed fill's filler replicates it
			// once its pushes are over (streamed.go, talkLease), a moment
			// after the last shard is stored.
			waitFor(t, func() bool { return storedShards(c) >= int(testLayout.Segments(int64(len(want))))*6 })
			waitFor(t, func() bool { return recordReplicated(c, "/b.bin") })
			before, reqs := o.bytes.Load(), o.requests.Load()
			c.kill(victim)
			reader := (victim + 2) % 4
			if reader == 0 {
				reader = 3 // a third edge: neither the first reader nor the victim
			}
			resp, body := c.get(reader, "/b.bin")
			if resp.StatusCode != http.StatusOK {
				t.Errorf("after killing edge %d, via edge %d: status %d", victim, reader, resp.StatusCode)
			}
			sameBytes(t, fmt.Sprintf("after killing edge %d, via edge %d", victim, reader), body, want)
			if got := o.bytes.Load() - before; got != 0 {
				t.Errorf("origin sent %d more bytes after the kill, want 0", got)
			}
			if got := o.requests.Load() - reqs; got != 0 {
				t.Errorf("origin got %d more requests after the kill, want 0", got)
			}
		})
	}
}

// recordReplicated reports whether 1+recordReplicas live edges hold a
// record of key: the filler and the members it replicates the record to
// (its coordinator among them, or told by the fill's lease).
func recordReplicated(c *cluster, key string) bool {
	n := 0
	for _, e := range c.edges {
		if _, ok := e.records.Get(key); ok && !e.closed {
			n++
		}
	}
	return n >= 1+recordReplicas
}

func storedShards(c *cluster) int {
	n := 0
	for _, e := range c.edges {
		if !e.closed {
			n += e.store.Stats().Shards
		}
	}
	return n
}

func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 30s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// corruptStore replaces every stored shard for which pick is true with a
// copy that has a bit flipped, under its right descriptor, in memory or on
// disk.
func corruptStore(e *testEdge, pick func(erasure.ShardID) bool) int {
	n := 0
	for _, id := range e.store.IDs() {
		if !pick(id) {
			continue
		}
		d, data, ok := e.store.Shard(id)
		if !ok {
			continue
		}
		bad := bytes.Clone(data)
		bad[len(bad)/2] ^= 0x40
		if err := e.store.PutShard(id, d, bad); err != nil {
			panic(err)
		}
		n++
	}
	return n
}

func clearMemory(c *cluster) {
	for _, e := range c.edges {
		e.mem.Purge()
	}
}

func TestCorruptShardsAreNeverServed(t *testing.T) {
	o := newTestOrigin(t, "public, max-age=3600")
	c := newCluster(t, o, 4, nil)
	want := o.put(t, "/c.bin", 2<<20, 3)
	_, body := c.get(0, "/c.bin")
	sameBytes(t, "first fetch", body, want)
	waitFor(t, func() bool { return storedShards(c) >= 8*6 })

	// Two shards of every segment go bad (as many as 4+2 tolerates), on
	// whichever edges hold them.
	corrupted := 0
	for _, e := range c.edges {
		corrupted += corruptStore(e, func(id erasure.ShardID) bool { return id.Index == 0 || id.Index == 5 })
	}
	if corrupted == 0 {
		t.Fatal("corrupted nothing")
	}
	clearMemory(c)
	before := o.bytes.Load()
	for i := range c.edges {
		resp, body := c.get(i, "/c.bin")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("edge %d: status %d", i, resp.StatusCode)
		}
		sameBytes(t, fmt.Sprintf("edge %d with 2 bad shards per segment", i), body, want)
	}
	if got := o.bytes.Load() - before; got != 0 {
		t.Errorf("origin sent %d bytes; two bad shards per segment should be rebuilt from the rest", got)
	}
	var dropped float64
	for _, e := range c.edges {
		dropped += counterValue(t, e.Edge, "shoal_corrupt_shards_total")
	}
	if dropped == 0 {
		t.Error("no corrupt shard was counted")
	}

	// Now every shard is bad: the fleet must go back to the origin, and
	// still serve the right bytes.
	for _, e := range c.edges {
		corruptStore(e, func(erasure.ShardID) bool { return true })
	}
	clearMemory(c)
	_, body = c.get(3, "/c.bin")
	sameBytes(t, "every shard corrupt", body, want)
}

func counterValue(t *testing.T, e *Edge, name string) float64 {
	t.Helper()
	return counterValueLabel(t, e, name, "", "")
}

func TestRanges(t *testing.T) {
	o := newTestOrigin(t, "public, max-age=3600")
	c := newCluster(t, o, 3, nil)
	const size = 4<<20 + 999
	want := o.put(t, "/r.bin", size, 4)
	tests := []struct {
		rng       string
		code      int
		first     int
		last      int // inclusive
		wantRange string
	}{
		{"bytes=1000-2000000", 206, 1000, 2000000, fmt.Sprintf("bytes 1000-2000000/%d", size)},
		{"bytes=-100", 206, size - 100, size - 1, fmt.Sprintf("bytes %d-%d/%d", size-100, size-1, size)},
		{"bytes=4194000-", 206, 4194000, size - 1, fmt.Sprintf("bytes 4194000-%d/%d", size-1, size)},
		{"bytes=0-0", 206, 0, 0, fmt.Sprintf("bytes 0-0/%d", size)},
		{"bytes=262143-262144", 206, 262143, 262144, fmt.Sprintf("bytes 262143-262144/%d", size)},
		{"bytes=0-99999999", 206, 0, size - 1, fmt.Sprintf("bytes 0-%d/%d", size-1, size)},
		{fmt.Sprintf("bytes=%d-", size), 416, 0, -1, fmt.Sprintf("bytes */%d", size)},
		{"bytes=0-1,5-6", 206, 0, 6, fmt.Sprintf("bytes 0-6/%d", size)}, // merged: 3 bytes apart
		{"lines=1-2", 200, 0, size - 1, ""},
	}
	for i, tt := range tests {
		resp, body := c.get(i%3, "/r.bin", "Range", tt.rng)
		if resp.StatusCode != tt.code {
			t.Errorf("%s: status %d, want %d", tt.rng, resp.StatusCode, tt.code)
			continue
		}
		if got := resp.Header.Get("Content-Range"); got != tt.wantRange {
			t.Errorf("%s: Content-Range %q, want %q", tt.rng, got, tt.wantRange)
		}
		if tt.code != 416 {
			sameBytes(t, tt.rng, body, want[tt.first:tt.last+1])
		}
	}
}

func TestRangedMissFetchesOnlyNeededSegments(t *testing.T) {
	o := newTestOrigin(t, "public, max-age=3600")
	c := newCluster(t, o, 3, func(cfg *Config) {
		cfg.ReadAhead = 1
		// Ranged fills fetch only the segments a range needs (still the
		// path of --ranged-fills); a streamed fill fetches the object
		// once: TestRangedMissFetchesObjectOnce.
		cfg.RangedFills = true
	})
	const size = 8 << 20
	want := o.put(t, "/big.bin", size, 5)
	seg := testLayout.SegmentSize
	resp, body := c.get(1, "/big.bin", "Range", fmt.Sprintf("bytes=%d-%d", 5*seg+10, 6*seg-1))
	if resp.StatusCode != http.StatusPartialContent {
		t.Fatalf("status %d", resp.StatusCode)
	}
	sameBytes(t, "segment 5", body, want[5*seg+10:6*seg])
	if got := o.bytes.Load(); got > seg {
		t.Errorf("origin sent %d bytes for a range inside one %d-byte segment", got, seg)
	}
}

// TestRangedMissFetchesObjectOnce: with streamed fills (the default), a
// range on a cold miss is answered from one origin GET of the whole
// object, which the fleet keeps: the client gets its bytes, the origin
// sends the object once in one request, and the whole object is then
// served by every edge without the origin.
func TestRangedMissFetchesObjectOnce(t *testing.T) {
	o := newTestOrigin(t, "public, max-age=3600")
	c := newCluster(t, o, 3, func(cfg *Config) { cfg.ReadAhead = 1 })
	const size = 2<<20 + 999
	want := o.put(t, "/big.bin", size, 5)
	seg := testLayout.SegmentSize
	resp, body := c.get(1, "/big.bin", "Range", fmt.Sprintf("bytes=%d-%d", 5*seg+10, 6*seg-1))
	if resp.StatusCode != http.StatusPartialContent {
		t.Fatalf("status %d", resp.StatusCode)
	}
	sameBytes(t, "segment 5", body, want[5*seg+10:6*seg])
	for i := range c.edges {
		_, body := c.get(i, "/big.bin")
		sameBytes(t, fmt.Sprintf("whole object via edge %d", i), body, want)
	}
	if got, limit := o.bytes.Load(), int64(size*105/100); got > limit {
		t.Errorf("origin sent %d bytes for a %d-byte object, want at most %d", got, size, limit)
	}
	if got := o.requests.Load(); got != 1 {
		t.Errorf("origin got %d requests, want 1", got)
	}
}

func TestConditionalAndHead(t *testing.T) {
	o := newTestOrigin(t, "public, max-age=3600")
	c := newCluster(t, o, 2, nil)
	want := o.put(t, "/h.bin", 600<<10, 6)
	resp, body := c.do(0, http.MethodHead, "/h.bin")
	if resp.StatusCode != 200 || len(body) != 0 || resp.ContentLength != int64(len(want)) {
		t.Fatalf("HEAD: status %d, body %d bytes, Content-Length %d", resp.StatusCode, len(body), resp.ContentLength)
	}
	etag := resp.Header.Get("ETag")
	if etag == "" || resp.Header.Get("Last-Modified") == "" || resp.Header.Get("Accept-Ranges") != "bytes" {
		t.Fatalf("HEAD headers: %v", resp.Header)
	}
	if o.bytes.Load() != 0 {
		t.Errorf("HEAD made the origin send %d body bytes", o.bytes.Load())
	}
	resp, body = c.get(1, "/h.bin", "If-None-Match", etag)
	if resp.StatusCode != http.StatusNotModified || len(body) != 0 {
		t.Errorf("If-None-Match: status %d, %d bytes", resp.StatusCode, len(body))
	}
	resp, _ = c.get(1, "/h.bin", "If-None-Match", `"other"`, "If-Modified-Since", resp.Header.Get("Last-Modified"))
	if resp.StatusCode != http.StatusOK {
		t.Errorf("If-None-Match not matching wins over If-Modified-Since: status %d", resp.StatusCode)
	}
	resp, body = c.get(0, "/h.bin", "Range", "bytes=0-9", "If-Range", `"stale"`)
	if resp.StatusCode != http.StatusOK {
		t.Errorf("If-Range with another ETag: status %d, want 200", resp.StatusCode)
	}
	sameBytes(t, "If-Range mismatch", body, want)
	resp, body = c.get(0, "/h.bin", "Range", "bytes=0-9", "If-Range", etag)
	if resp.StatusCode != http.StatusPartialContent {
		t.Errorf("If-Range with the ETag: status %d, want 206", resp.StatusCode)
	}
	sameBytes(t, "If-Range match", body, want[:10])
	if age := resp.Header.Get("Age"); age == "" {
		t.Error("no Age header on a cached response")
	}
}

func TestForwardsWhatItDoesNotCache(t *testing.T) {
	o := newTestOrigin(t, "no-store")
	c := newCluster(t, o, 2, nil)
	want := o.put(t, "/private.bin", 1000, 7)
	for range 2 {
		resp, body := c.get(0, "/private.bin")
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		sameBytes(t, "no-store object", body, want)
		if got := resp.Header.Get("Cache-Status"); got != "shoal; fwd=uri-miss" {
			t.Errorf("Cache-Status %q", got)
		}
	}
	if n := c.edges[0].store.Stats().Shards; n != 0 {
		t.Errorf("stored %d shards of a no-store object", n)
	}
	resp, _ := c.do(1, http.MethodPost, "/private.bin")
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST: status %d, Allow %q; want the origin's 405", resp.StatusCode, resp.Header.Get("Allow"))
	}
	resp, _ = c.get(1, "/missing")
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("missing object: status %d, want the origin's 404", resp.StatusCode)
	}
}

func TestOriginFailures(t *testing.T) {
	for _, ranged := range []bool{false, true} {
		t.Run(fmt.Sprintf("ranged=%v", ranged), func(t *testing.T) {
			o := newTestOrigin(t, "public, max-age=3600")
			c := newCluster(t, o, 2, func(cfg *Config) {
				cfg.Origin.Timeout = 300 * time.Millisecond
				cfg.Origin.Attempts = 1
				cfg.RangedFills = ranged
			})
			o.put(t, "/x.bin", 1000, 8)
			o.put(t, "/s.bin", 1000, 9)
			o.down.Store(true)
			// A streamed fill relays the origin's 503 as sent, as nginx
			// does; a ranged fill's HEAD failing is the fleet's 502.
			want := http.StatusServiceUnavailable
			if ranged {
				want = http.StatusBadGateway
			}
			resp, _ := c.get(0, "/x.bin")
			if resp.StatusCode != want {
				t.Errorf("origin answering 503: status %d, want %d", resp.StatusCode, want)
			}
			o.down.Store(false)
			o.delay.Store(int64(2 * time.Second))
			// /s.bin: a URL the 503 above did not touch. A relayed 503
			// leaves a pass record of /x.bin for passTTL (as a lone edge's
			// forwarded miss does, miss.go), and a pass is forwarded
			// without the origin timeout: TestForwardedPassTimesOut.
			resp, _ = c.get(1, "/s.bin")
			if resp.StatusCode != http.StatusGatewayTimeout {
				t.Errorf("origin too slow: status %d, want 504", resp.StatusCode)
			}
			o.delay.Store(0)
			resp, _ = c.get(1, "/s.bin")
			if resp.StatusCode != 200 {
				t.Errorf("origin back: status %d", resp.StatusCode)
			}
			resp, _ = c.get(1, "/x.bin")
			if resp.StatusCode != 200 {
				t.Errorf("origin back, after a 503: status %d", resp.StatusCode)
			}

			// An origin that goes away for good: a closed port.
			o.srv.Close()
			resp, _ = c.get(0, "/y.bin")
			if resp.StatusCode != http.StatusBadGateway {
				t.Errorf("origin gone: status %d, want 502", resp.StatusCode)
			}
		})
	}
}

// TestForwardedPassTimesOut: a request the edge forwards (a pass: here
// of a URL whose last response was a relayed 503) gets the origin timeout
// for its response header, as a miss does: a 504, not a wait as long as
// the origin's.
func TestForwardedPassTimesOut(t *testing.T) {
	o := newTestOrigin(t, "public, max-age=3600")
	c := newCluster(t, o, 2, func(cfg *Config) {
		cfg.Origin.Timeout = 300 * time.Millisecond
		cfg.Origin.Attempts = 1
	})
	o.put(t, "/x.bin", 1000, 8)
	o.down.Store(true)
	if resp, _ := c.get(0, "/x.bin"); resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("origin answering 503: status %d, want it relayed", resp.StatusCode)
	}
	o.down.Store(false)
	o.delay.Store(int64(2 * time.Second))
	resp, _ := c.get(1, "/x.bin")
	if resp.StatusCode != http.StatusGatewayTimeout {
		t.Errorf("a forwarded pass to an origin slower than the origin timeout: status %d (%s), want 504", resp.StatusCode, resp.Header.Get("Cache-Status"))
	}
}

func TestObjectChangedAtOrigin(t *testing.T) {
	// max-age long: the fleet believes its record, yet the file changes.
	o := newTestOrigin(t, "public, max-age=3600")
	c := newCluster(t, o, 3, func(cfg *Config) { cfg.MemoryCache = 1 << 20 })
	o.put(t, "/v.bin", 2<<20, 9)
	resp, _ := c.do(0, http.MethodHead, "/v.bin")
	if resp.StatusCode != 200 {
		t.Fatal(resp.Status)
	}
	// The new version has another size and content; the record still names
	// the old one, so the first segment fetch fails If-Range.
	want := o.put(t, "/v.bin", 2<<20+5, 10)
	resp, body := c.get(1, "/v.bin")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d after the object changed", resp.StatusCode)
	}
	sameBytes(t, "new version", body, want)
}

func TestManyConcurrentClients(t *testing.T) {
	o := newTestOrigin(t, "public, max-age=3600")
	c := newCluster(t, o, 4, nil)
	const size = 3 << 20
	want := o.put(t, "/flash.bin", size, 11)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 16 {
		wg.Go(func() {
			resp, err := http.Get(c.edges[i%4].url + "/flash.bin")
			if err != nil {
				errs <- err
				return
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			if err != nil {
				errs <- err
				return
			}
			if !bytes.Equal(b, want) {
				errs <- fmt.Errorf("client %d: wrong bytes (%d)", i, len(b))
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got, limit := o.bytes.Load(), int64(size*11/10); got > limit {
		t.Errorf("flash crowd of 16 on 4 edges: origin sent %d bytes, want at most %d", got, limit)
	}
}
