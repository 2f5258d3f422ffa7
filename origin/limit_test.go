package origin

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
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
