package edge

// Regression tests for defects found in review; each failed before its fix.

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shoalcdn/shoal/erasure"
)

// A client that half-closes after its request cancels the request context
// while writes still succeed; the response loop once took a nil channel
// from the closed queue and blocked forever. The edge is served here
// through a handler that counts the requests it has not returned from:
// they must all return, however the code below ServeHTTP is named.
func TestStreamDoesNotHangWhenTheClientHalfCloses(t *testing.T) {
	o := newTestOrigin(t, "public, max-age=3600")
	c := newCluster(t, o, 1, nil)
	const size = 40 * (256 << 10)
	o.put(t, "/big.bin", size, 1)
	if resp, body := c.get(0, "/big.bin"); resp.StatusCode != 200 || len(body) != size {
		t.Fatalf("warm-up: status %d, %d bytes", resp.StatusCode, len(body))
	}
	var inHandler atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inHandler.Add(1)
		defer inHandler.Add(-1) // also when the handler panics (http.ErrAbortHandler)
		c.edges[0].ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		if inHandler.Load() > 0 {
			srv.Listener.Close() // srv.Close would wait for a hung handler forever
			return
		}
		srv.Close()
	})
	addr := srv.Listener.Addr().String()
	for range 30 {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(conn, "GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
		conn.(*net.TCPConn).CloseWrite()
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, resp.Body); err != nil && strings.Contains(err.Error(), "timeout") {
			t.Fatal("response neither finished nor was cut within 5 s")
		}
		conn.Close()
	}
	deadline := time.Now().Add(5 * time.Second)
	for inHandler.Load() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d requests of clients that half-closed still in the edge's handler 5 s after their connections closed", inHandler.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// An object that changes at the origin after its first segment is in the
// fleet: at most one response is cut, then the new version is served.
func TestChangeNoticedAfterTheFirstSegment(t *testing.T) {
	o := newTestOrigin(t, "public, max-age=3600")
	// Ranged fills (--ranged-fills) fetch only the ranged segment, and the
	// next ones by If-Range; a streamed fill fetches the whole object at
	// once: TestChangeNoticedOnRefill is the default's case.
	c := newCluster(t, o, 3, func(cfg *Config) { cfg.RangedFills = true })
	const seg = 256 << 10
	o.put(t, "/c.bin", 4*seg, 1)
	if resp, _ := c.get(0, "/c.bin", "Range", "bytes=0-99"); resp.StatusCode != 206 {
		t.Fatal(resp.Status)
	}
	want := o.put(t, "/c.bin", 4*seg, 2) // same size, new content and ETag
	cut := 0
	for i := range 4 {
		resp, err := http.Get(c.edges[0].url + "/c.bin")
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		switch {
		case err != nil || int64(len(b)) < resp.ContentLength:
			cut++ // a cut response may hold old bytes: it is visibly incomplete
		case !bytes.Equal(b, want):
			t.Fatalf("GET %d: a complete %d-byte body that is not the new version", i, len(b))
		}
	}
	if cut > 1 {
		t.Errorf("%d of 4 responses were cut after the object changed, want at most 1", cut)
	}
}

// TestChangeNoticedOnRefill: with streamed fills (the default), an
// object that changes at the origin after the fleet stored it whole, and
// then loses a segment, is refilled by If-Range: at most one response is
// cut, then the new version is served.
func TestChangeNoticedOnRefill(t *testing.T) {
	o := newTestOrigin(t, "public, max-age=3600")
	c := newCluster(t, o, 3, nil)
	const seg = 256 << 10
	old := o.put(t, "/c.bin", 4*seg, 1)
	_, b := c.get(0, "/c.bin")
	sameBytes(t, "first GET", b, old)
	rec, ok := c.edges[0].records.Get("/c.bin")
	if !ok {
		t.Fatal("edge 0 has no record of what it served")
	}
	settled(t, c, rec)
	want := o.put(t, "/c.bin", 4*seg, 2) // same size, new content and ETag
	lose(c, erasure.SegmentID{Object: rec.ID(), Index: 2})
	cut := 0
	for i := range 4 {
		resp, err := http.Get(c.edges[0].url + "/c.bin")
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		switch {
		case err != nil || int64(len(b)) < resp.ContentLength:
			cut++ // a cut response may hold old bytes: it is visibly incomplete
			if len(b) > 2*seg || !bytes.Equal(b, old[:len(b)]) {
				t.Errorf("GET %d: cut after %d bytes that are not the old version's first two segments", i, len(b))
			}
		case !bytes.Equal(b, want):
			t.Fatalf("GET %d: a complete %d-byte body that is not the new version", i, len(b))
		}
	}
	if cut > 1 {
		t.Errorf("%d of 4 responses were cut after the object changed, want at most 1", cut)
	}
}

// settled waits until no edge streams rec's fill any more: from then on
// its segments are read from their holders (streamed.go).
func settled(t *testing.T, c *cluster, rec *Record) {
	t.Helper()
	waitFor(t, func() bool {
		for _, e := range c.edges {
			if !e.closed && e.streams.localFill(rec.ID()) != nil {
				return false
			}
		}
		return true
	})
}

// lose drops every copy of seg the fleet has: its shards and the memory
// tiers.
func lose(c *cluster, seg erasure.SegmentID) {
	for _, e := range c.edges {
		if e.closed {
			continue
		}
		e.mem.Purge()
		for i := range testLayout.Params.Total() {
			e.store.Remove(erasure.ShardID{Segment: seg, Index: uint8(i)})
		}
	}
}

// A failing origin is not asked more often than the client asks times the
// client's attempts: no extra lookups on top.
func TestFailingOriginIsNotAmplified(t *testing.T) {
	for _, ranged := range []bool{false, true} {
		t.Run(fmt.Sprintf("ranged=%v", ranged), func(t *testing.T) {
			o := newTestOrigin(t, "public, max-age=3600")
			c := newCluster(t, o, 3, func(cfg *Config) { cfg.RangedFills = ranged }) // Attempts: 2
			o.put(t, "/d.bin", 1000, 6)
			if resp, _ := c.do(0, http.MethodHead, "/d.bin"); resp.StatusCode != 200 {
				t.Fatal(resp.Status)
			}
			o.down.Store(true)
			before := o.requests.Load()
			// A streamed fill relays the origin's 503 as sent, as nginx
			// does; a ranged fill's failure is the fleet's 502.
			want := http.StatusServiceUnavailable
			if ranged {
				want = http.StatusBadGateway
			}
			const n = 10
			for range n {
				if resp, _ := c.get(0, "/d.bin"); resp.StatusCode != want {
					t.Fatalf("status %d, want %d", resp.StatusCode, want)
				}
			}
			if got := o.requests.Load() - before; got > 2*n {
				t.Errorf("%d client GETs made %d origin requests, want at most %d", n, got, 2*n)
			}
		})
	}
}

func TestConcurrentReadsOnOneEdgeAreCoalesced(t *testing.T) {
	o := newTestOrigin(t, "public, max-age=3600")
	c := newCluster(t, o, 4, nil)
	const size = 8 * (256 << 10)
	want := o.put(t, "/g.bin", size, 7)
	c.get(0, "/g.bin")
	waitFor(t, func() bool { return storedShards(c) >= 8*6 })
	clearMemory(c)
	e := c.edges[1]
	before := e.Stats().PeerBytes
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			resp, err := http.Get(e.url + "/g.bin")
			if err != nil {
				t.Error(err)
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if !bytes.Equal(b, want) {
				t.Errorf("wrong bytes: %d", len(b))
			}
		})
	}
	wg.Wait()
	if got := float64(e.Stats().PeerBytes-before) / size; got > 1.6 {
		t.Errorf("16 concurrent clients on one edge pulled %.1f× the object from peers, want about 1× (at most 1.6×)", got)
	}
}

// An error answered to a request for a stored object carries none of the
// object's fields: with ranged fills, a HEAD made the record and the
// segment fill fails; with streamed fills (the default), the object was
// stored whole, lost its segment, and the refill fails.
func TestErrorsCarryNoObjectHeaders(t *testing.T) {
	for _, ranged := range []bool{false, true} {
		t.Run(fmt.Sprintf("ranged=%v", ranged), func(t *testing.T) {
			o := newTestOrigin(t, "public, max-age=3600")
			c := newCluster(t, o, 1, func(cfg *Config) { cfg.RangedFills = ranged })
			want := o.put(t, "/h.bin", 1000, 6)
			if ranged {
				c.do(0, http.MethodHead, "/h.bin")
			} else {
				_, b := c.get(0, "/h.bin")
				sameBytes(t, "first GET", b, want)
				rec, ok := c.edges[0].records.Get("/h.bin")
				if !ok {
					t.Fatal("no record of what the edge served")
				}
				settled(t, c, rec)
				lose(c, erasure.SegmentID{Object: rec.ID()})
			}
			o.down.Store(true)
			resp, _ := c.get(0, "/h.bin", "Range", "bytes=10-19")
			if resp.StatusCode != http.StatusBadGateway {
				t.Fatalf("status %d, want 502", resp.StatusCode)
			}
			for _, f := range []string{"Content-Range", "Etag", "Last-Modified", "Age", "Accept-Ranges"} {
				if v := resp.Header.Get(f); v != "" {
					t.Errorf("502 carries %s: %q", f, v)
				}
			}
		})
	}
}

// An origin that sends an ETag without quotes and no Last-Modified gives
// no validator that can guard ranged fetches: forwarded, never a 502.
func TestUnquotedETagIsForwarded(t *testing.T) {
	o := newTestOrigin(t, "public, max-age=3600")
	body := bytes.Repeat([]byte("x"), 1000)
	o.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", "abc123")
		w.Header().Set("Cache-Control", "public, max-age=3600")
		http.ServeContent(w, r, "f", time.Time{}, bytes.NewReader(body))
	})
	c := newCluster(t, o, 2, nil)
	for i := range 3 {
		resp, got := c.get(i%2, "/f")
		if resp.StatusCode != 200 || !bytes.Equal(got, body) {
			t.Fatalf("GET %d: status %d, %d bytes", i, resp.StatusCode, len(got))
		}
	}
}

// A header the record cannot carry between edges makes the object pass.
func TestOversizeHeaderIsForwarded(t *testing.T) {
	o := newTestOrigin(t, "public, max-age=3600")
	h := o.srv.Config.Handler
	o.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "<"+strings.Repeat("a", 9000)+">; rel=preload")
		h.ServeHTTP(w, r)
	})
	c := newCluster(t, o, 3, nil)
	want := o.put(t, "/obj.bin", 5*(256<<10), 3)
	for i := range 3 {
		resp, got := c.get(i, "/obj.bin")
		if resp.StatusCode != 200 || !bytes.Equal(got, want) {
			t.Fatalf("GET via edge %d: status %d, %d bytes", i, resp.StatusCode, len(got))
		}
	}
}

func TestMemoryTierCountsWhatItHolds(t *testing.T) {
	o := newTestOrigin(t, "public, max-age=3600")
	c := newCluster(t, o, 1, nil)
	o.put(t, "/m.bin", 4*(256<<10), 4)
	c.get(0, "/m.bin")
	b, n, _ := c.edges[0].mem.Stats()
	coder, _ := erasure.NewCoder(testLayout.Params)
	if held := int64(n * coder.EncodedLen(256<<10)); b < held {
		t.Errorf("memory tier accounts %d bytes for %d segments whose arrays hold %d", b, n, held)
	}
}

// With the segment coordinator down, the next in the ranking coordinates:
// concurrent clients still cost the origin about one copy.
func TestCoordinatorDownFillsAreCoalesced(t *testing.T) {
	t.Parallel() // mostly waiting (parallelTests in cluster_test.go)
	o := newTestOrigin(t, "public, max-age=3600")
	c := newCluster(t, o, 3, nil)
	const size = 12 * (256 << 10)
	want := o.put(t, "/flash.bin", size, 5)
	c.kill(2)
	c.get(0, "/warm-up") // lets edge 0 notice that edge 2 is gone
	c.get(1, "/warm-up")
	o.delay.Store(int64(50 * time.Millisecond))
	before := o.bytes.Load()
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			resp, err := http.Get(c.edges[i%2].url + "/flash.bin")
			if err != nil {
				t.Error(err)
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if !bytes.Equal(b, want) {
				t.Errorf("wrong bytes: %d", len(b))
			}
		})
	}
	wg.Wait()
	if got := float64(o.bytes.Load()-before) / size; got > 1.3 {
		t.Errorf("8 clients on 2 edges, 1 of 3 edges dead: origin sent %.2f× the object, want about 1×", got)
	}
}
