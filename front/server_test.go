package front

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/quic-go/quic-go/http3"
)

// testFront serves h on a plain, a TLS and a QUIC listener on loopback.
type testFront struct {
	srv              *Server
	plain, tls, quic string
	pool             *x509.CertPool
	errs             chan error
	pc               net.PacketConn
}

func startTestFront(t testing.TB, cfg Config) *testFront {
	t.Helper()
	dir := t.TempDir()
	cf := selfSigned(t, dir, "a", 1, "a.test")
	certs, err := LoadCerts([]CertFile{cf}, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Certs = certs
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	pem, _ := os.ReadFile(cf.Cert)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	ln1, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tf := &testFront{srv: srv, plain: ln1.Addr().String(), tls: ln2.Addr().String(), quic: pc.LocalAddr().String(),
		pool: pool, errs: make(chan error, 3), pc: pc}
	go func() { tf.errs <- srv.Serve(ln1) }()
	go func() { tf.errs <- srv.ServeTLS(ln2) }()
	go func() { tf.errs <- srv.ServeHTTP3(pc) }()
	t.Cleanup(func() { srv.Close(); pc.Close() })
	return tf
}

func (tf *testFront) clients(t testing.TB) map[string]*http.Client {
	tc := &tls.Config{RootCAs: tf.pool, ServerName: "a.test"}
	h1 := &http.Transport{TLSClientConfig: tc, Protocols: new(http.Protocols)}
	h1.Protocols.SetHTTP1(true)
	h2 := &http.Transport{TLSClientConfig: tc.Clone(), Protocols: new(http.Protocols)}
	h2.Protocols.SetHTTP2(true)
	h3 := &http3.Transport{TLSClientConfig: tc.Clone()}
	t.Cleanup(func() { h1.CloseIdleConnections(); h2.CloseIdleConnections(); h3.Close() })
	return map[string]*http.Client{
		"http://" + tf.plain:        {},
		"https://" + tf.tls + "/h1": {Transport: h1},
		"https://" + tf.tls + "/h2": {Transport: h2},
		"https://" + tf.quic:        {Transport: h3},
	}
}

func TestServerProtocolsAndShutdown(t *testing.T) {
	body := bytes.Repeat([]byte("shoal"), 50_000)
	tf := startTestFront(t, Config{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Proto", r.Proto)
		if r.TLS == nil && r.ProtoMajor != 3 {
			w.Header().Set("X-Plain", "1")
		}
		w.Write(body)
	}), MinSendRate: 1 << 10})
	for base, c := range tf.clients(t) {
		resp, err := c.Get(base + "/x")
		if err != nil {
			t.Fatalf("%s: %v", base, err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || !bytes.Equal(b, body) {
			t.Fatalf("%s: %d bytes, %v; want the body", base, len(b), err)
		}
		plain := base == "http://"+tf.plain
		if got := resp.Header.Get("Alt-Svc") != ""; got == plain {
			t.Errorf("%s (%s): Alt-Svc %q", base, resp.Proto, resp.Header.Get("Alt-Svc"))
		}
		if got := resp.Header.Get("X-Plain") == "1"; got != plain {
			t.Errorf("%s (%s): the handler saw TLS = %v", base, resp.Proto, !got)
		}
		if resp.Header.Get("X-Proto") != resp.Proto {
			t.Errorf("%s: the handler saw %s, the client %s", base, resp.Header.Get("X-Proto"), resp.Proto)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := tf.srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	for range 3 {
		if err := <-tf.errs; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("a Serve returned %v after Shutdown, want http.ErrServerClosed", err)
		}
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	defer ln.Close()
	if err := tf.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		t.Errorf("Serve after Shutdown: %v", err)
	}
}

// BenchmarkServe fetches a 1 MiB body through the front over each
// protocol, on loopback, one request at a time.
func BenchmarkServe(b *testing.B) {
	body := bytes.Repeat([]byte{7}, 1<<20)
	tf := startTestFront(b, Config{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(body)
	}), MinSendRate: 1 << 10})
	for base, c := range tf.clients(b) {
		name := map[string]string{"http://" + tf.plain: "http1", "https://" + tf.tls + "/h1": "https1", "https://" + tf.tls + "/h2": "h2", "https://" + tf.quic: "h3"}[base]
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				resp, err := c.Get(base + "/x")
				if err != nil {
					b.Fatal(err)
				}
				n, _ := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if n != int64(len(body)) {
					b.Fatalf("%d bytes", n)
				}
			}
		})
	}
}

// BenchmarkChecks is the cost of the per-request checks on a plain GET.
func BenchmarkChecks(b *testing.B) {
	srv, err := New(Config{Handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}), RateLimit: 1e9, MinSendRate: 1024})
	if err != nil {
		b.Fatal(err)
	}
	r, _ := http.NewRequest("GET", "http://x/releases/v1.2.3/app-linux-amd64.tar.gz?sig=abc", nil)
	r.RequestURI = "/releases/v1.2.3/app-linux-amd64.tar.gz?sig=abc"
	r.RemoteAddr = "127.0.0.1:5555"
	w := &discardWriter{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		srv.Handler().ServeHTTP(w, r)
	}
}

type discardWriter struct{ h http.Header }

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *discardWriter) WriteHeader(int)             {}

func BenchmarkFraming(b *testing.B) {
	req := []byte("GET /releases/v1.2.3/app.tar.gz HTTP/1.1\r\nHost: dl.example.com\r\nUser-Agent: curl/8\r\nAccept: */*\r\nRange: bytes=0-1023\r\n\r\n")
	f := newFraming(1 << 16)
	b.SetBytes(int64(len(req)))
	b.ReportAllocs()
	for b.Loop() {
		f.feed(req)
		f.next()
	}
}

// TestAltSvcPort: Alt-Svc names H3Port when set (clients reach the QUIC
// socket through a Service on another port), else the socket's own.
func TestAltSvcPort(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})
	for _, port := range []int{0, 443} {
		tf := startTestFront(t, Config{Handler: ok, H3Port: port})
		want := tf.quic[strings.LastIndex(tf.quic, ":")+1:]
		if port != 0 {
			want = "443"
		}
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: tf.pool, ServerName: "a.test"}}}
		// ServeHTTP3 sets Alt-Svc once its socket is up.
		var got string
		for i := 0; got == "" && i < 100; i++ {
			resp, err := c.Get("https://" + tf.tls + "/")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			got = resp.Header.Get("Alt-Svc")
			if got == "" {
				time.Sleep(10 * time.Millisecond)
			}
		}
		if want := `h3=":` + want + `"; ma=86400`; got != want {
			t.Errorf("H3Port %d: Alt-Svc %q, want %q", port, got, want)
		}
		c.CloseIdleConnections()
	}
	if _, err := New(Config{Handler: ok, H3Port: 70000}); err == nil {
		t.Error("H3Port 70000 accepted")
	}
}
