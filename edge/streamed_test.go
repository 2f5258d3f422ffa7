package edge

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shoalcdn/shoal/erasure"
)

// methodCounts counts an origin's requests by method, and the Range
// fields it was sent.
type methodCounts struct {
	get, head, ranged atomic.Int64
}

// countMethods wraps o's handler so that c counts what reaches it.
func countMethods(t testing.TB, o *testOrigin) *methodCounts {
	t.Helper()
	c := &methodCounts{}
	next := o.srv.Config.Handler
	o.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet:
			c.get.Add(1)
		case http.MethodHead:
			c.head.Add(1)
		}
		if r.Header.Get("Range") != "" {
			c.ranged.Add(1)
		}
		next.ServeHTTP(w, r)
	})
	return c
}

// newStreamedCluster is a fleet of n edges with streamed fills (the
// default).
func newStreamedCluster(t testing.TB, o *testOrigin, n int) *cluster {
	t.Helper()
	return newCluster(t, o, n, nil)
}

func (c *methodCounts) check(t *testing.T, gets int64) {
	t.Helper()
	if g, h, r := c.get.Load(), c.head.Load(), c.ranged.Load(); g != gets || h != 0 || r != 0 {
		t.Errorf("origin saw %d GETs (%d ranged) and %d HEADs, want %d GETs, none ranged, no HEAD", g, r, h, gets)
	}
}

// TestStreamedFillOneGET: a miss through one edge of three is one origin
// GET (no HEAD, no range); the object is then served byte-identical by
// every edge without the origin.
func TestStreamedFillOneGET(t *testing.T) {
	t.Parallel()
	o := newTestOrigin(t, "public, max-age=3600")
	counts := countMethods(t, o)
	c := newStreamedCluster(t, o, 3)
	for _, size := range []int{0, 1000, 256 << 10, 1<<20 + 12345} {
		name := fmt.Sprintf("/obj-%d.bin", size)
		want := o.put(t, name, size, uint64(size))
		before := counts.get.Load()
		for i := range c.edges {
			resp, body := c.get(i, name)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("%s via edge %d: status %d", name, i, resp.StatusCode)
			}
			sameBytes(t, fmt.Sprintf("%s via edge %d", name, i), body, want)
			cs := resp.Header.Get("Cache-Status")
			if i == 0 && !strings.Contains(cs, "fwd=miss; stored") {
				t.Errorf("%s via edge 0: Cache-Status %q, want a stored miss", name, cs)
			}
			if i > 0 && !strings.Contains(cs, "hit") && !strings.Contains(cs, "stored") {
				t.Errorf("%s via edge %d: Cache-Status %q", name, i, cs)
			}
		}
		if got := counts.get.Load() - before; got != 1 {
			t.Errorf("%s: origin saw %d GETs through three edges, want 1", name, got)
		}
	}
	counts.check(t, 4)
	// Again, from every edge: the fleet has it all.
	before := o.requests.Load()
	for i := range c.edges {
		_, body := c.get(i, "/obj-1060921.bin")
		if len(body) != 1<<20+12345 {
			t.Fatalf("second round via edge %d: %d bytes", i, len(body))
		}
	}
	if got := o.requests.Load() - before; got != 0 {
		t.Errorf("second round: origin saw %d requests, want 0", got)
	}
}

// TestStreamedFillNoHeadProbe: ranged and conditional misses are one
// whole-object GET too, and answered from it.
func TestStreamedFillNoHeadProbe(t *testing.T) {
	t.Parallel()
	o := newTestOrigin(t, "public, max-age=3600")
	counts := countMethods(t, o)
	c := newStreamedCluster(t, o, 3)
	want := o.put(t, "/ranged.bin", 700<<10, 7)
	resp, body := c.get(1, "/ranged.bin", "Range", "bytes=300000-300099")
	if resp.StatusCode != http.StatusPartialContent {
		t.Fatalf("ranged miss: status %d", resp.StatusCode)
	}
	sameBytes(t, "ranged miss", body, want[300000:300100])
	resp, body = c.get(2, "/ranged.bin", "Range", "bytes=-10")
	if resp.StatusCode != http.StatusPartialContent {
		t.Fatalf("ranged hit: status %d", resp.StatusCode)
	}
	sameBytes(t, "ranged hit", body, want[len(want)-10:])
	etag := resp.Header.Get("ETag")
	resp, _ = c.get(0, "/ranged.bin", "If-None-Match", etag)
	if resp.StatusCode != http.StatusNotModified {
		t.Errorf("If-None-Match of the stored ETag: status %d, want 304", resp.StatusCode)
	}
	o.put(t, "/cond.bin", 5000, 8)
	resp, _ = c.get(2, "/cond.bin", "If-None-Match", `"nothing-like-it"`)
	if resp.StatusCode != http.StatusOK {
		t.Errorf("conditional miss: status %d, want 200", resp.StatusCode)
	}
	counts.check(t, 2)
}

// TestStreamedFillCollapses: nine clients on three edges missing the
// same object at once cost the origin one GET, and all get its bytes.
func TestStreamedFillCollapses(t *testing.T) {
	t.Parallel()
	o := newTestOrigin(t, "public, max-age=3600")
	counts := countMethods(t, o)
	c := newStreamedCluster(t, o, 3)
	want := o.put(t, "/crowd.bin", 2<<20+777, 9)
	o.delay.Store(int64(200 * time.Millisecond)) // so that the nine overlap
	var wg sync.WaitGroup
	bodies := make([][]byte, 9)
	statuses := make([]int, 9)
	for k := range 9 {
		wg.Go(func() {
			req, _ := http.NewRequest(http.MethodGet, c.edges[k%3].url+"/crowd.bin", nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Errorf("client %d: %v", k, err)
				return
			}
			defer resp.Body.Close()
			statuses[k] = resp.StatusCode
			b, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Errorf("client %d: reading: %v", k, err)
			}
			bodies[k] = b
		})
	}
	wg.Wait()
	for k := range 9 {
		if statuses[k] != http.StatusOK {
			t.Errorf("client %d: status %d", k, statuses[k])
			continue
		}
		sameBytes(t, fmt.Sprintf("client %d", k), bodies[k], want)
	}
	counts.check(t, 1)
}

// TestStreamedFillNotStored: a response that may not be stored is one
// origin GET per request, relayed, and the fleet forwards the next
// requests directly (a pass record).
func TestStreamedFillNotStored(t *testing.T) {
	t.Parallel()
	o := newTestOrigin(t, "no-store")
	counts := countMethods(t, o)
	c := newStreamedCluster(t, o, 3)
	want := o.put(t, "/private.bin", 3000, 3)
	for i := range c.edges {
		resp, body := c.get(i, "/private.bin")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("edge %d: status %d", i, resp.StatusCode)
		}
		sameBytes(t, fmt.Sprintf("edge %d", i), body, want)
	}
	counts.check(t, 3)
}

// slowOrigin serves one object of size bytes under any path, with a
// strong ETag and a Content-Length, in 32 KiB chunks every pace, and
// counts its GETs.
func slowOrigin(t testing.TB, want []byte, pace time.Duration) (*testOrigin, *atomic.Int64) {
	t.Helper()
	var gets atomic.Int64
	o := &testOrigin{}
	o.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || r.Header.Get("Range") != "" {
			http.Error(w, "GET only, whole", http.StatusForbidden)
			return
		}
		gets.Add(1)
		w.Header().Set("ETag", `"v1"`)
		w.Header().Set("Cache-Control", "public, max-age=3600")
		w.Header().Set("Content-Length", strconv.Itoa(len(want)))
		rc := http.NewResponseController(w)
		for b := want; len(b) > 0; {
			n := min(len(b), 32<<10)
			if _, err := w.Write(b[:n]); err != nil {
				return
			}
			rc.Flush()
			b = b[n:]
			select {
			case <-time.After(pace):
			case <-r.Context().Done():
				return
			}
		}
	}))
	t.Cleanup(o.srv.Close)
	return o, &gets
}

// TestStreamedFillFillerCrash: when the edge filling an object dies, a
// reader of the fill at another edge sees its connection cut after a
// correct prefix, never wrong bytes; the lease moves on and the next
// request gets the whole object.
func TestStreamedFillFillerCrash(t *testing.T) {
	t.Parallel()
	want := make([]byte, 2<<20)
	for i := range want {
		want[i] = byte(i * 7 / 3)
	}
	o, gets := slowOrigin(t, want, 15*time.Millisecond)
	c := newStreamedCluster(t, o, 3)
	// Edge 0 takes the miss and fills.
	resp0, err := http.Get(c.edges[0].url + "/big.bin")
	if err != nil {
		t.Fatal(err)
	}
	defer resp0.Body.Close()
	if _, err := io.ReadFull(resp0.Body, make([]byte, 100<<10)); err != nil {
		t.Fatal(err)
	}
	// Edge 1 reads the fill in progress from edge 0.
	resp1, err := http.Get(c.edges[1].url + "/big.bin")
	if err != nil {
		t.Fatal(err)
	}
	defer resp1.Body.Close()
	if resp1.StatusCode != http.StatusOK {
		t.Fatalf("edge 1: status %d", resp1.StatusCode)
	}
	c.kill(0)
	got, err := io.ReadAll(resp1.Body)
	if err == nil && len(got) == len(want) {
		t.Log("the fill completed before the kill")
	} else if err == nil {
		t.Errorf("edge 1: a short body of %d bytes without an error", len(got))
	}
	sameBytes(t, "what edge 1 sent before the cut", got, want[:len(got)])
	// The next request, through edge 2, gets the object whole.
	resp, body := c.get(2, "/big.bin")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("edge 2 after the crash: status %d", resp.StatusCode)
	}
	sameBytes(t, "edge 2 after the crash", body, want)
	if g := gets.Load(); g != 2 {
		t.Logf("origin GETs: %d", g)
	}
}

// TestStreamedFillHeadForwarded: a HEAD miss is forwarded as a HEAD and
// stores nothing; the GET that follows is the one fill.
func TestStreamedFillHeadForwarded(t *testing.T) {
	t.Parallel()
	c, o := newScriptedCluster(t, 3, nil)
	want := body(5000)
	o.set("/h", 200, want, "ETag", `"h1"`, "Cache-Control", "public, max-age=3600")
	resp, _ := c.do(0, http.MethodHead, "/h")
	if resp.StatusCode != http.StatusOK || resp.ContentLength != int64(len(want)) {
		t.Errorf("HEAD miss: status %d, length %d", resp.StatusCode, resp.ContentLength)
	}
	if h, g := o.count(http.MethodHead, "/h", ""), o.count(http.MethodGet, "/h", ""); h != 1 || g != 0 {
		t.Errorf("after a HEAD miss the origin saw %d HEADs and %d GETs, want 1 and 0", h, g)
	}
	_, got := c.get(1, "/h")
	sameBytes(t, "GET after the HEAD", got, want)
	resp, _ = c.do(1, http.MethodHead, "/h")
	if !strings.HasPrefix(resp.Header.Get("Cache-Status"), "shoal; hit") {
		t.Errorf("HEAD of a stored object: Cache-Status %q, want a hit", resp.Header.Get("Cache-Status"))
	}
	if h, g := o.count(http.MethodHead, "/h", ""), o.count(http.MethodGet, "/h", ""); h != 1 || g != 1 {
		t.Errorf("the origin saw %d HEADs and %d GETs, want 1 and 1", h, g)
	}
}

// TestStreamedFillRevalidates: a stale object is revalidated with one
// conditional GET (no HEAD); the 304 refreshes it for the fleet.
func TestStreamedFillRevalidates(t *testing.T) {
	t.Parallel()
	clock := &testClock{}
	c, o := newScriptedCluster(t, 3, func(cfg *Config) { cfg.Now = clock.Now })
	o.setClock(clock.Now)
	want := body(300 << 10)
	o.set("/r", 200, want, "ETag", `"r1"`, "Cache-Control", "public, max-age=60")
	_, got := c.get(0, "/r")
	sameBytes(t, "first GET", got, want)
	waitLeasesEnded(t, c)
	clock.Advance(2 * time.Minute)
	resp, got := c.get(1, "/r")
	sameBytes(t, "GET of the stale object", got, want)
	if cs := resp.Header.Get("Cache-Status"); !strings.Contains(cs, "fwd=stale; fwd-status=304") {
		t.Errorf("revalidated: Cache-Status %q, want fwd=stale; fwd-status=304", cs)
	}
	if n := o.count(http.MethodGet, "/r", "If-None-Match"); n != 1 {
		t.Errorf("the origin saw %d conditional GETs, want 1", n)
	}
	for i := range c.edges {
		resp, got := c.get(i, "/r")
		sameBytes(t, fmt.Sprintf("after the 304, edge %d", i), got, want)
		if cs := resp.Header.Get("Cache-Status"); !strings.HasPrefix(cs, "shoal; hit") {
			t.Errorf("after the 304, edge %d: Cache-Status %q, want a hit", i, cs)
		}
	}
	if h, g := o.count(http.MethodHead, "/r", ""), o.count(http.MethodGet, "/r", ""); h != 0 || g != 2 {
		t.Errorf("the origin saw %d HEADs and %d GETs, want none and 2", h, g)
	}
}

// waitLeasesEnded waits until no edge of c holds a fill lease of a fill
// in progress: the fills are over and their records kept by the
// coordinators.
func waitLeasesEnded(t testing.TB, c *cluster) {
	t.Helper()
	waitFor(t, func() bool {
		for _, e := range c.edges {
			e.leases.mu.Lock()
			n := len(e.leases.m)
			e.leases.mu.Unlock()
			if n > 0 {
				return false
			}
		}
		return true
	})
}

// TestStreamedFillOriginRefusesHead: an origin that answers HEAD and
// ranges with 403 (as an S3 presigned GET URL does) is cached from its
// one GET.
func TestStreamedFillOriginRefusesHead(t *testing.T) {
	t.Parallel()
	want := make([]byte, 600<<10)
	for i := range want {
		want[i] = byte(i * 13)
	}
	o, gets := slowOrigin(t, want, 0)
	c := newStreamedCluster(t, o, 3)
	for i := range c.edges {
		resp, got := c.get(i, "/presigned.bin?sig=1")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("edge %d: status %d", i, resp.StatusCode)
		}
		sameBytes(t, fmt.Sprintf("edge %d", i), got, want)
	}
	if g := gets.Load(); g != 1 {
		t.Errorf("origin saw %d GETs, want 1", g)
	}
}

// TestLeaseCodec round-trips lease messages and answers through edge's
// conversion to swarm's codec (swarm/lease_test.go checks the bytes): the
// record comes back decoded, and the key of a message with a record is
// the record's.
func TestLeaseCodec(t *testing.T) {
	rec := &Record{Key: "/k", Size: 10, Layout: testLayout, ETag: `"e"`, Validator: `"e"`, Fetched: time.Unix(1, 0), Expires: time.Unix(2, 0)}
	msgs := []*leaseMsg{
		{kind: leaseAgain, member: "a:1", key: "/k", gone: "b:2"},
		{kind: leaseHeader, member: "a:1", key: "/k", rec: rec},
		{kind: leaseDone, member: "a:1", rec: rec},
		{kind: leaseVary, member: "a:1", key: "/k", vary: "Accept-Language, Accept-Encoding"},
	}
	for _, m := range msgs {
		got, err := parseLeaseMsg(m.append(nil))
		if err != nil {
			t.Fatalf("kind %d: %v", m.kind, err)
		}
		if got.kind != m.kind || got.member != m.member || got.key != "/k" || got.gone != m.gone || got.vary != m.vary || (m.rec != nil) != (got.rec != nil) || m.rec != nil && !got.rec.Same(m.rec) {
			t.Errorf("kind %d: got %+v, want %+v", m.kind, got, m)
		}
	}
	answers := []*leaseAnswer{
		{kind: leaseGranted},
		{kind: leaseGranted, rec: rec},
		{kind: leaseUsable, fromOrigin: true, rec: rec},
		{kind: leaseFilling, holder: "b:2", rec: rec},
		{kind: leaseVaries, vary: "Accept-Language"},
	}
	for _, a := range answers {
		got, err := parseLeaseAnswer(a.append(nil))
		if err != nil {
			t.Fatalf("answer %d: %v", a.kind, err)
		}
		if got.kind != a.kind || got.holder != a.holder || got.vary != a.vary || got.fromOrigin != a.fromOrigin || (a.rec != nil) != (got.rec != nil) || a.rec != nil && !got.rec.Same(a.rec) {
			t.Errorf("answer %d: got %+v, want %+v", a.kind, got, a)
		}
	}
	// The record-level checks stay here: swarm carries records as bytes.
	pass := &Record{Key: "/k", Pass: true, Fetched: time.Unix(1, 0)}
	if _, err := parseLeaseMsg((&leaseMsg{kind: leaseHeader, member: "a:1", rec: pass}).append(nil)); !errors.Is(err, errLease) {
		t.Errorf("header with a pass record: got %v, want errLease", err)
	}
	if _, err := parseLeaseAnswer((&leaseAnswer{kind: leaseFilling, holder: "b:2", rec: pass}).append(nil)); !errors.Is(err, errLease) {
		t.Errorf("filling with a pass record: got %v, want errLease", err)
	}
	if _, err := parseLeaseMsg([]byte{leaseDone, 1, 'a', 0xff}); err == nil {
		t.Error("done with a malformed record: no error")
	}
}

// quirkyOrigin serves want under any path as one kind of real-world origin
// does, and counts its requests and the body bytes it sent.
//   - "static": Content-Length, a strong ETag, HEAD and ranges allowed;
//   - "no-head": HEAD and ranges refused with 403 (an S3 presigned URL);
//   - "chunked": no Content-Length (the body is flushed as it goes), no ranges;
//   - "no-validator": Content-Length, neither ETag nor Last-Modified;
//   - "accept": 404 unless the request's Accept names the one media type
//     it has (a registry's manifest), and no Vary.
func quirkyOrigin(t testing.TB, kind string, want []byte) (*testOrigin, *atomic.Int64) {
	t.Helper()
	var requests atomic.Int64
	o := &testOrigin{}
	o.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		h := w.Header()
		h.Set("Cache-Control", "public, max-age=3600")
		switch kind {
		case "no-head", "chunked":
			if r.Method != http.MethodGet || r.Header.Get("Range") != "" {
				http.Error(w, "GET only, whole", http.StatusForbidden)
				return
			}
		case "accept":
			if r.Header.Get("Accept") != "application/vnd.oci.image.manifest.v1+json" {
				http.Error(w, "manifest unknown", http.StatusNotFound)
				return
			}
			h.Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
		}
		if kind != "no-validator" {
			h.Set("ETag", `"v1"`)
		}
		if kind == "chunked" {
			rc := http.NewResponseController(w)
			for b := want; len(b) > 0; {
				n := min(len(b), 100<<10)
				w.Write(b[:n])
				o.bytes.Add(int64(n))
				rc.Flush()
				b = b[n:]
			}
			return
		}
		cw := &countingResponse{ResponseWriter: w, n: &o.bytes}
		http.ServeContent(cw, r, "", time.Time{}, strings.NewReader(string(want)))
	}))
	t.Cleanup(o.srv.Close)
	return o, &requests
}

// TestStreamedFillAnyOrigin: whatever the origin — one that refuses HEAD,
// streams chunked, sends no validator, answers by Accept, or is plain
// static — an object is cached from its first miss through one edge of
// three and served byte-identical by every edge, the origin sending its
// body once (a small one in exactly one request).
func TestStreamedFillAnyOrigin(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{"static", "no-head", "chunked", "no-validator", "accept"} {
		for _, size := range []int{1000, 3*int(testLayout.SegmentSize) + 4321} {
			t.Run(fmt.Sprintf("%s/%d", kind, size), func(t *testing.T) {
				want := make([]byte, size)
				for i := range want {
					want[i] = byte(i*31 + size)
				}
				o, requests := quirkyOrigin(t, kind, want)
				c := newStreamedCluster(t, o, 3)
				var hdr []string
				if kind == "accept" {
					hdr = []string{"Accept", "application/vnd.oci.image.manifest.v1+json"}
				}
				for round := range 2 {
					for i := range c.edges {
						resp, got := c.get(i, "/obj", hdr...)
						if resp.StatusCode != http.StatusOK {
							t.Fatalf("round %d edge %d: status %d", round, i, resp.StatusCode)
						}
						sameBytes(t, fmt.Sprintf("round %d edge %d", round, i), got, want)
					}
				}
				if sent := o.bytes.Load(); float64(sent) > 1.05*float64(size) {
					t.Errorf("origin sent %d body bytes for a %d-byte object (%.2f×)", sent, size, float64(sent)/float64(size))
				}
				if n := requests.Load(); size < int(testLayout.SegmentSize) && n != 1 {
					t.Errorf("origin saw %d requests for a one-segment object, want 1", n)
				}
			})
		}
	}
}

// TestStreamedFillLostSegment: when a segment of an object without a
// validator is lost from the whole fleet, the object is fetched again
// whole, as a new version, never by range (which could mix versions), and
// the client still gets the right bytes.
func TestStreamedFillLostSegment(t *testing.T) {
	t.Parallel()
	want := make([]byte, 3*int(testLayout.SegmentSize)+99)
	for i := range want {
		want[i] = byte(i * 17)
	}
	o, requests := quirkyOrigin(t, "no-validator", want)
	ranged := countMethods(t, o)
	c := newStreamedCluster(t, o, 3)
	for i := range c.edges {
		_, got := c.get(i, "/v")
		sameBytes(t, fmt.Sprintf("edge %d", i), got, want)
	}
	rec, ok := c.edges[1].records.Get("/v")
	if !ok || !rec.Streamed() {
		t.Fatalf("edge 1 holds record %+v, want one of the fleet's own version", rec)
	}
	// Wait for the filler to let go of its stream, then lose segment 1.
	deadline := time.Now().Add(10 * time.Second)
	for _, e := range c.edges {
		for e.streams.localFill(rec.ID()) != nil && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
	}
	seg := erasure.SegmentID{Object: rec.ID(), Index: 1}
	for _, e := range c.edges {
		e.mem.Purge()
		for i := range testLayout.Params.Total() {
			e.store.Remove(erasure.ShardID{Segment: seg, Index: uint8(i)})
		}
	}
	// The first request after the loss meets it after its header (its
	// connection is cut after a correct prefix) or before (it is served
	// from the object fetched again); either way never a wrong byte, and
	// the object is fetched again once.
	before := requests.Load()
	req, _ := http.NewRequest(http.MethodGet, c.edges[1].url+"/v", nil)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if len(b) > len(want) || !bytes.Equal(b, want[:len(b)]) || err == nil && len(b) != len(want) {
			t.Errorf("the request meeting the loss: %d bytes, err %v; want the object, or a correct prefix and a cut", len(b), err)
		}
	}
	resp, got := c.get(1, "/v")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("after the loss: status %d", resp.StatusCode)
	}
	sameBytes(t, "after the loss", got, want)
	if n := requests.Load() - before; n != 1 {
		t.Errorf("the origin saw %d requests after the loss, want 1 (the object again)", n)
	}
	for i := range c.edges {
		_, got := c.get(i, "/v")
		sameBytes(t, fmt.Sprintf("edge %d, the new version", i), got, want)
	}
	if n := requests.Load() - before; n != 1 {
		t.Errorf("the origin saw %d requests after the loss and the other edges' reads, want 1", n)
	}
	if r := ranged.ranged.Load(); r != 0 {
		t.Errorf("the origin saw %d ranged requests, want none", r)
	}
	if now, ok := c.edges[1].records.Get("/v"); !ok || now.Same(rec) {
		t.Errorf("edge 1 still serves the lost version (record %v)", ok)
	}
}

// TestStreamedFillPlacedByCoordinators: the filler sends each segment of
// a streamed fill once, to the segment's coordinator, which places its
// shards (swarm.StatPlace): the filler pushes no shard itself, every
// shard reaches its holder, and the other edges read the object from the
// fleet without the origin.
func TestStreamedFillPlacedByCoordinators(t *testing.T) {
	t.Parallel()
	o := newTestOrigin(t, "public, max-age=3600")
	counts := countMethods(t, o)
	c := newStreamedCluster(t, o, 3)
	const size = 6*(256<<10) + 1000
	segs := int(testLayout.Segments(size))
	want := o.put(t, "/placed.bin", size, 21)
	_, body := c.get(0, "/placed.bin")
	sameBytes(t, "the filler's client", body, want)
	filler := c.edges[0].Edge
	waitFor(t, func() bool {
		return counterValueLabel(t, filler, "shoal_streamed_segments_placed_total", "by", "coordinator") == float64(segs)
	})
	if n := counterValueLabel(t, filler, "shoal_streamed_segments_placed_total", "by", "filler"); n != 0 {
		t.Errorf("the filler placed %v segments itself, want 0 (their coordinators are up)", n)
	}
	if n := counterValueLabel(t, filler, "shoal_shard_pushes_total", "result", "ok"); n != 0 {
		t.Errorf("the filler pushed %v shards, want 0: its uplink carries each segment once", n)
	}
	waitFor(t, func() bool { return storedShards(c) >= segs*testLayout.Params.Total() })
	for i := 1; i < len(c.edges); i++ {
		resp, body := c.get(i, "/placed.bin")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("edge %d: status %d", i, resp.StatusCode)
		}
		sameBytes(t, fmt.Sprintf("edge %d", i), body, want)
	}
	counts.check(t, 1)
}

// TestStreamedFillCoordinatorsRefuse: when the segments' coordinators do
// not take them (members of an older release answer StatPlace with an
// error), the filler places every segment itself, and the object is in
// the fleet all the same.
func TestStreamedFillCoordinatorsRefuse(t *testing.T) {
	t.Parallel()
	o := newTestOrigin(t, "public, max-age=3600")
	counts := countMethods(t, o)
	c := newStreamedCluster(t, o, 3)
	for _, e := range c.edges[1:] {
		e.filler.refuseTake.Store(true)
	}
	const size = 4*(256<<10) + 77
	segs := int(testLayout.Segments(size))
	want := o.put(t, "/refused.bin", size, 22)
	_, body := c.get(0, "/refused.bin")
	sameBytes(t, "the filler's client", body, want)
	filler := c.edges[0].Edge
	waitFor(t, func() bool {
		return counterValueLabel(t, filler, "shoal_streamed_segments_placed_total", "by", "filler") == float64(segs)
	})
	if n := counterValueLabel(t, filler, "shoal_streamed_segments_placed_total", "by", "coordinator"); n != 0 {
		t.Errorf("%v segments placed by coordinators that refuse them", n)
	}
	waitFor(t, func() bool { return storedShards(c) >= segs*testLayout.Params.Total() })
	for i := 1; i < len(c.edges); i++ {
		_, body := c.get(i, "/refused.bin")
		sameBytes(t, fmt.Sprintf("edge %d", i), body, want)
	}
	counts.check(t, 1)
}
