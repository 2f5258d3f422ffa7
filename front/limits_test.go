package front

import (
	"crypto/tls"
	"io"
	"net/http"
	"testing"
	"testing/synctest"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/quic-go/quic-go/http3"
)

func TestRateLimiter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rl := newRateLimiter(10, 5)
		allowed := func(ip string, n int) int {
			ok := 0
			for range n {
				if rl.allow(ip) {
					ok++
				}
			}
			return ok
		}
		if got := allowed("a", 20); got != 5 {
			t.Fatalf("a burst of 20: %d allowed, want the burst of 5", got)
		}
		if got := allowed("b", 3); got != 3 {
			t.Fatalf("another address: %d of 3 allowed", got)
		}
		time.Sleep(500 * time.Millisecond) // 5 tokens back at 10/s
		if got := allowed("a", 20); got != 5 {
			t.Fatalf("after 0.5s: %d allowed, want 5", got)
		}
		time.Sleep(time.Hour)
		if got := allowed("a", 20); got != 5 {
			t.Fatalf("after an hour: %d allowed, want the burst of 5, no more", got)
		}
	})
}

func TestRateLimiterBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rl := newRateLimiter(1000, 1)
		for i := range maxBuckets + 10 {
			rl.allow(string(rune(i)))
			if i%1000 == 0 {
				time.Sleep(time.Millisecond)
			}
		}
		if n := len(rl.buckets); n > maxBuckets {
			t.Fatalf("%d buckets kept, want at most %d", n, maxBuckets)
		}
	})
}

// TestQUICConnCapEvictsIdle: at MaxConns, a new HTTP/3 client evicts the
// oldest QUIC connection with no request in flight; a connection in a
// request is never the one evicted, and when every one is in a request
// the new one is refused until one finishes.
func TestQUICConnCapEvictsIdle(t *testing.T) {
	release := make(chan struct{})
	tf := startTestFront(t, Config{MaxConns: 2, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			w.WriteHeader(http.StatusOK)
			http.NewResponseController(w).Flush()
			<-release
		}
		io.WriteString(w, "ok")
	})})
	client := func() *http3.Transport {
		tr := &http3.Transport{TLSClientConfig: &tls.Config{RootCAs: tf.pool, ServerName: "a.test"}}
		t.Cleanup(func() { tr.Close() })
		return tr
	}
	get := func(tr *http3.Transport, path string) (*http.Response, error) {
		req, _ := http.NewRequestWithContext(t.Context(), "GET", "https://"+tf.quic+path, nil)
		return tr.RoundTrip(req)
	}
	getOK := func(name string, tr *http3.Transport) {
		t.Helper()
		resp, err := get(tr, "/x")
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || string(b) != "ok" {
			t.Fatalf("%s: %q, %v", name, b, err)
		}
	}
	open := func() int { return tf.srv.conns.openConns("h3") }

	busy := client()
	slow, err := get(busy, "/slow") // in a request until release
	if err != nil {
		t.Fatal(err)
	}
	idle := client()
	getOK("an idle client's first request", idle)
	if n := open(); n != 2 {
		t.Fatalf("%d QUIC connections open, want 2", n)
	}
	// A third client: the idle one goes, the busy one stays.
	third := client()
	getOK("a third client at the cap", third)
	if n := open(); n != 2 {
		t.Errorf("%d QUIC connections open with MaxConns 2", n)
	}
	if n := rejectedCount(t, tf.srv, ("conn_evicted")); n != 1 {
		t.Errorf("conn_evicted = %v, want 1", n)
	}
	// Both slots busy: a newcomer is refused.
	slow2, err := get(third, "/slow")
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := get(client(), "/x"); err == nil {
		resp.Body.Close()
		t.Fatalf("a new client with every connection in a request: %s, want it refused", resp.Status)
	}
	close(release)
	for _, r := range []*http.Response{slow, slow2} {
		b, err := io.ReadAll(r.Body)
		r.Body.Close()
		if err != nil || string(b) != "ok" {
			t.Fatalf("a request in flight on a connection at the cap: %q, %v", b, err)
		}
	}
	// At least once: a refused client's handshake may be tried again (a
	// retransmitted Initial), and each attempt is refused and counted.
	if n := rejectedCount(t, tf.srv, ("conn_limit")); n < 1 {
		t.Errorf("conn_limit = %v, want at least 1", n)
	}
	getOK("a newcomer once the requests finished", client())
}

func rejectedCount(t *testing.T, s *Server, reason string) float64 {
	t.Helper()
	var m dto.Metric
	if err := s.m.rejected.WithLabelValues(reason).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
