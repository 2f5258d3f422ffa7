package edge

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shoalcdn/shoal/swarm"
)

// TestPlacedFillPayload: the placed flag survives the round trip, and an
// edge that does not know it rejects the payload as a malformed record,
// which is what lets a requester fall back to a whole-segment Fill.
func TestPlacedFillPayload(t *testing.T) {
	r := newRecord("/p.bin", 200, http.Header{"Cache-Control": {"public, max-age=60"}}, 3*testLayout.SegmentSize, "\"v1\"", testLayout, time.Now(), 0)
	req := &fillRequest{Record: r, Segment: 2}
	p := placedPayload(req)
	if p[0]&fillPlaced == 0 {
		t.Fatalf("placed payload %x has no flag", p[:4])
	}
	if _, err := parseFillRequest(p); !errors.Is(err, errRecord) {
		t.Fatalf("an older edge parsing a placed payload: got %v, want errRecord", err)
	}
	old := &swarm.RemoteError{Op: swarm.OpFill, Status: swarm.StatusFailed, Message: fmt.Errorf("%w: segment 2147483650 of 3", errRecord).Error()}
	if !olderCoordinator(old) {
		t.Errorf("olderCoordinator(%v) = false, want true", old)
	}
	for _, err := range []error{
		&swarm.RemoteError{Op: swarm.OpFill, Status: swarm.StatusFailed, Message: "edge: origin fetch failed"},
		&swarm.RemoteError{Op: swarm.OpFill, Status: swarm.StatusStale, Message: errRecord.Error()},
		errRecord,
	} {
		if olderCoordinator(err) {
			t.Errorf("olderCoordinator(%v) = true, want false", err)
		}
	}
	p[0] &^= fillPlaced
	f, err := parseFillRequest(p)
	if err != nil {
		t.Fatal(err)
	}
	if f.Segment != 2 || !f.Record.Same(r) {
		t.Errorf("round trip: got segment %d of %q, want 2 of %q", f.Segment, f.Record.Key, r.Key)
	}
}

// TestPlacedFillReadsFromHolders: a cold read through one edge of four
// asks each segment's coordinator for a placed answer and reads the
// shards from their holders. The client gets the object's bytes, the
// origin sends it about once, and the coordinators answered with
// descriptors, not segments.
func TestPlacedFillReadsFromHolders(t *testing.T) {
	o := newTestOrigin(t, "public, max-age=3600")
	// Placed answers to Fills at segments' coordinators: the ranged fills'
	// machinery (--ranged-fills, and the refill of a lost segment).
	c := newCluster(t, o, 4, func(cfg *Config) { cfg.RangedFills = true })
	const size = 3<<20 + 777
	want := o.put(t, "/placed.bin", size, 5)
	_, got := c.get(0, "/placed.bin")
	sameBytes(t, "cold read", got, want)
	if n, limit := o.bytes.Load(), int64(size*11/10); n > limit {
		t.Errorf("origin sent %d bytes for %d, want at most %d", n, size, limit)
	}
	var placed, fills float64
	for _, e := range c.edges {
		placed += counterValue(t, e.Edge, "shoal_fills_placed_total")
		fills += counterValue(t, e.Edge, "shoal_fills_total")
	}
	// Each of the 13 segments is filled once, by its coordinator; the
	// others' answers to edge 0 are placed unless a push was too slow
	// (then the segment comes whole, as before).
	if fills < 13 || placed < 1 || placed > fills {
		t.Errorf("fills %v, placed answers %v: want 13 fills and the placed answers among them", fills, placed)
	}
	// Every other edge now reads the object from the holders alone.
	for i := 1; i < len(c.edges); i++ {
		_, got := c.get(i, "/placed.bin")
		sameBytes(t, fmt.Sprintf("edge %d", i), got, want)
	}
	if n, limit := o.bytes.Load(), int64(size*11/10); n > limit {
		t.Errorf("after every edge read it, origin sent %d bytes for %d, want at most %d", n, size, limit)
	}
}

// silentConn is a peer socket that can die without a word, as a killed
// process's does: once dead, what is sent to it is lost and it sends
// nothing (no CONNECTION_CLOSE reaches anyone).
type silentConn struct {
	net.PacketConn
	dead atomic.Bool
}

func (c *silentConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	if c.dead.Load() {
		return len(b), nil
	}
	return c.PacketConn.WriteTo(b, addr)
}

func (c *silentConn) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		n, addr, err := c.PacketConn.ReadFrom(b)
		if err != nil || !c.dead.Load() {
			return n, addr, err
		}
	}
}

// TestFillSurvivesSilentCoordinator: a segment's coordinator dies without
// closing its connections while a reader waits on its Fill (its origin
// fetch is held at a gate, then the process goes silent). The reader
// notices by probing, not by the QUIC idle timeout (the abandoned fill is
// counted), asks the next rank, and the client gets every byte right; the
// origin sends the object about once, since the dead coordinator's fetch
// never got through.
func TestFillSurvivesSilentCoordinator(t *testing.T) {
	o := newTestOrigin(t, "public, max-age=3600")
	const victim = 1
	// The victim's origin requests go through a gate that holds its first
	// segment fetch and says so.
	arrived, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	target, err := url.Parse(o.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	gate := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Range") != "" {
			once.Do(func() { close(arrived) })
			select {
			case <-release:
			case <-r.Context().Done():
			}
			http.Error(w, "held by the test", http.StatusServiceUnavailable)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(gate.Close)
	t.Cleanup(func() { close(release) }) // before gate.Close, which waits for handlers
	var silent *silentConn
	n := 0
	gateVictim := func(cfg *Config) {
		cfg.FillProbe = 500 * time.Millisecond
		// A segment coordinator's fill, probed: the ranged fills'
		// machinery (--ranged-fills, and the refill of a lost segment). A
		// streamed fill's filler dying: TestStreamedFillFillerCrash.
		cfg.RangedFills = true
		if n == victim {
			cfg.Origin.Base = gate.URL
		}
		n++
	}
	c := newClusterConns(t, o, 4, gateVictim, func(i int, pc net.PacketConn) net.PacketConn {
		if i != victim {
			return pc
		}
		silent = &silentConn{PacketConn: pc}
		return silent
	})

	const size = 40*256<<10 + 999
	want := o.put(t, "/kill.bin", size, 9)
	type result struct {
		body []byte
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := http.Get(c.edges[0].url + "/kill.bin")
		if err != nil {
			done <- result{nil, err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		done <- result{b, err}
	}()
	select {
	case <-arrived:
	case r := <-done:
		t.Fatalf("the read ended (%d bytes, %v) before the victim filled a segment", len(r.body), r.err)
	}
	silent.dead.Store(true)
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	sameBytes(t, "read across the coordinator's death", r.body, want)
	if n, limit := o.bytes.Load(), int64(size*11/10); n > limit {
		t.Errorf("origin sent %d bytes for %d, want at most %d", n, size, limit)
	}
	if n := counterValue(t, c.edges[0].Edge, "shoal_fills_abandoned_total"); n < 1 {
		t.Errorf("shoal_fills_abandoned_total on the reader = %v, want the silent coordinator's fill given up", n)
	}
	// Dead as far as the fleet knows: stopped as a crash, not shut down,
	// which would wait the cleanup's 5 s for its fill held at the gate.
	c.kill(victim)
}

// TestPushLanesPlaceEveryShard: a filler sends one segment's pushes a
// few at a time (pushLanes), so the first k are placed early; every shard
// still reaches its holder. A cold read through one edge of six: every
// byte right, the origin sends the object about once, each segment's five
// remote shards are pushed (none dropped or failed), and the other edges
// read the object from the holders. With ranged fills the segments'
// coordinators fill and push, and answer placed Fills; with streamed
// fills (the default) the edge that took the miss does.
func TestPushLanesPlaceEveryShard(t *testing.T) {
	for _, ranged := range []bool{false, true} {
		t.Run(fmt.Sprintf("ranged=%v", ranged), func(t *testing.T) {
			o := newTestOrigin(t, "public, max-age=3600")
			c := newCluster(t, o, 6, func(cfg *Config) { cfg.RangedFills = ranged })
			const segments = 5
			size := segments * int(testLayout.SegmentSize)
			want := o.put(t, "/lanes.bin", size, 11)
			_, got := c.get(0, "/lanes.bin")
			sameBytes(t, "cold read", got, want)
			if n, limit := o.bytes.Load(), int64(size*11/10); n > limit {
				t.Errorf("origin sent %d bytes for %d, want at most %d", n, size, limit)
			}
			pushes := func(result string) float64 {
				var n float64
				for _, e := range c.edges {
					n += counterValueLabel(t, e.Edge, "shoal_shard_pushes_total", "result", result)
				}
				return n
			}
			remote := float64(segments * (testLayout.Params.Total() - 1))
			waitFor(t, func() bool { return pushes("ok")+pushes("error")+pushes("dropped") >= remote })
			if ok := pushes("ok"); ok != remote {
				t.Errorf("%v pushes ok (%v failed, %v dropped), want %v", ok, pushes("error"), pushes("dropped"), remote)
			}
			if ranged {
				var placed float64
				for _, e := range c.edges {
					placed += counterValue(t, e.Edge, "shoal_fills_placed_total")
				}
				if placed == 0 {
					t.Error("no coordinator answered a placed Fill")
				}
			}
			// Every other edge reads the object from the holders, no Fill needed.
			for i := 1; i < len(c.edges); i++ {
				_, got := c.get(i, "/lanes.bin")
				sameBytes(t, fmt.Sprintf("edge %d", i), got, want)
			}
			if n, limit := o.bytes.Load(), int64(size*11/10); n > limit {
				t.Errorf("after every edge read it, origin sent %d bytes for %d", n, size)
			}
		})
	}
}

// A stream's segments go to the candidate of their first ranks that took
// the fewest so far: spread evenly, whatever the ranking favours.
func TestHandoffsSpreadSegments(t *testing.T) {
	h := newHandoffs()
	if got := h.pick(nil); got != "" {
		t.Fatalf("no candidate picked %q", got)
	}
	// "a" ranks first for every segment: it gets the first, then the
	// others until they took as many.
	var order []string
	for range 6 {
		order = append(order, h.pick([]string{"a", "b", "c"}))
	}
	if want := []string{"a", "b", "c", "a", "b", "c"}; !slices.Equal(order, want) {
		t.Errorf("picked %v, want %v", order, want)
	}
	// A member that is only a candidate now and then is caught up with.
	if got := h.pick([]string{"a", "d"}); got != "d" {
		t.Errorf("picked %q of a (2 taken) and d (none), want d", got)
	}
	if h.taken["a"] != 2 || h.taken["d"] != 1 {
		t.Errorf("taken %v", h.taken)
	}
}
