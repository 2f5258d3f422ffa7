package origin

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// TestLimited: forwarded requests and the client's own share
// MaxConcurrent: with two slots, six forwarded requests whose responses
// are held open never put more than two in flight at the origin, a slot comes back when a body is
// closed or a round trip fails, a request whose context ends while
// waiting gives up without reaching the origin, and the client's own
// requests get slots back afterwards.
func TestLimited(t *testing.T) {
	var inflight, peak, seen atomic.Int64
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.Add(1)
		n := inflight.Add(1)
		defer inflight.Add(-1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		w.Header().Set("Content-Length", "2")
		if r.Method == http.MethodHead {
			return
		}
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		<-release
		io.WriteString(w, "ok")
	}))
	defer srv.Close()
	c, err := NewClient(ClientConfig{Base: srv.URL, MaxConcurrent: 2})
	if err != nil {
		t.Fatal(err)
	}
	rt := c.Limited(c.Transport())

	// A failed round trip gives its slot back.
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	for range 3 {
		req, _ := http.NewRequest("GET", dead.URL, nil)
		if _, err := rt.RoundTrip(req); err == nil {
			t.Fatal("a round trip to a closed port succeeded")
		}
	}

	var wg sync.WaitGroup
	bodies := make(chan string, 6)
	for range 6 {
		wg.Go(func() {
			req, _ := http.NewRequest("POST", srv.URL+"/f", nil)
			resp, err := rt.RoundTrip(req)
			if err != nil {
				bodies <- err.Error()
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			bodies <- string(b)
		})
	}
	// A request that gives up while waiting never reaches the origin.
	for seen.Load() < 2 {
		runtime.Gosched()
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/gave-up", nil)
	if _, err := rt.RoundTrip(req); !errors.Is(err, context.Canceled) {
		t.Errorf("a canceled request waiting for a slot: %v, want context.Canceled", err)
	}
	close(release)
	wg.Wait()
	close(bodies)
	for b := range bodies {
		if b != "ok" {
			t.Errorf("a forwarded request: %q, want ok", b)
		}
	}
	if p := peak.Load(); p > 2 {
		t.Errorf("%d requests in flight at the origin with MaxConcurrent 2", p)
	}
	if s := seen.Load(); s != 6 {
		t.Errorf("the origin saw %d requests, want the 6 forwarded", s)
	}
	// Every slot is free again: the client's own request goes through.
	if _, err := c.Head(context.Background(), "/head", nil); err != nil {
		t.Errorf("Head after the forwarded requests: %v", err)
	}
}

// TestLimitedRetriesDroppedConnection: an origin that closes the connection
// without answering gets a safe request without a body once more, on a new
// connection; an unsafe one, or a second drop, is the caller's error.
func TestLimitedRetriesDroppedConnection(t *testing.T) {
	var drops atomic.Int64 // connections still to drop
	var seen sync.Map      // method -> count
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := seen.LoadOrStore(r.Method, new(atomic.Int64))
		n.(*atomic.Int64).Add(1)
		if drops.Add(-1) >= 0 {
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				conn.Close()
			}
			return
		}
		io.WriteString(w, "ok")
	}))
	defer srv.Close()
	c, err := NewClient(ClientConfig{Base: srv.URL, MaxConcurrent: 2})
	if err != nil {
		t.Fatal(err)
	}
	rt := c.Limited(c.Transport())
	count := func(method string) int64 {
		n, ok := seen.Load(method)
		if !ok {
			return 0
		}
		return n.(*atomic.Int64).Load()
	}

	drops.Store(1)
	req, _ := http.NewRequest("GET", srv.URL+"/x", nil)
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatalf("GET after one dropped connection: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "ok" || count("GET") != 2 {
		t.Errorf("GET: body %q after %d requests, want ok after 2", b, count("GET"))
	}

	// An origin that drops every connection: one retry, not a loop (Go's
	// transport adds one of its own when the connection was a reused one).
	drops.Store(100)
	req, _ = http.NewRequest("GET", srv.URL+"/y", nil)
	if _, err := rt.RoundTrip(req); err == nil {
		t.Error("GET with every connection dropped succeeded")
	}
	if n := count("GET") - 2; n < 2 || n > 4 {
		t.Errorf("origin saw %d GETs of a dropping origin, want 2 to 4", n)
	}

	drops.Store(1)
	req, _ = http.NewRequest("POST", srv.URL+"/z", strings.NewReader("body"))
	if _, err := rt.RoundTrip(req); err == nil {
		t.Error("POST on a dropped connection succeeded")
	}
	if count("POST") != 1 {
		t.Errorf("origin saw %d POSTs, want 1: an unsafe request is never sent twice", count("POST"))
	}
	drops.Store(0)
	// Every slot came back.
	for range 2 {
		req, _ := http.NewRequest("HEAD", srv.URL+"/h", nil)
		resp, err := rt.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
}
