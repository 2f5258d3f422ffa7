package main

// End-to-end tests of the limits against abuse (package front): each one
// attacks a real edge in some way and shows that an honest client is
// served, byte for byte, while it happens, and that what the attack sent
// never reached the origin in a surprising form.

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/quic-go/quic-go/http3"
)

// abuseEdge starts an origin serving www and one edge with extra flags.
func abuseEdge(t *testing.T, www string, extra ...string) (*fleet, *edgeProc) {
	t.Helper()
	f := loneFleet(t, www)
	e := startEdge(t, edgeSpec{name: "edge", origin: f.proxy.url, tlsDir: fleetTLS(t),
		peer: f.peers[0], peers: f.peers, extra: extra})
	e.waitReady(t)
	return f, e
}

// honest fetches o through e with a fresh connection and checks every byte.
func honest(t *testing.T, e *edgeProc, o object) {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, sum, n := fetch(t, c, "GET", e.url+o.path, nil)
	checkWhole(t, "an honest client", o, resp, sum, n)
}

// rawRequest sends raw bytes on a new connection to addr and returns what
// comes back until the server closes or 5 s pass.
func rawRequest(t *testing.T, addr, req string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(c)
	return string(b)
}

func statusOf(resp string) string {
	line, _, _ := strings.Cut(resp, "\r\n")
	return line
}

// TestE2EAbuseSizeLimits: an oversized header is answered 431 and an
// oversized request target 414, neither reaching the origin.
func TestE2EAbuseSizeLimits(t *testing.T) {
	shoalBinary(t)
	www := t.TempDir()
	o := writeObject(t, www, "ok.bin", 200<<10, 1)
	f, e := abuseEdge(t, www, "--max-header-bytes", "16KiB")
	before := f.proxy.nreqs()
	big := "GET /ok.bin HTTP/1.1\r\nHost: x\r\nX-Junk: " + strings.Repeat("a", 64<<10) + "\r\n\r\n"
	long := "GET /ok.bin?" + strings.Repeat("q", 10<<10) + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
	longPost := "POST /" + strings.Repeat("p", 10<<10) + " HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
	var wg sync.WaitGroup
	results := make([]string, 24)
	for i := range results {
		wg.Go(func() {
			switch i % 3 {
			case 0:
				results[i] = statusOf(rawRequest(t, e.listen, big))
			case 1:
				results[i] = statusOf(rawRequest(t, e.listen, long))
			default:
				results[i] = statusOf(rawRequest(t, e.listen, longPost))
			}
		})
	}
	honest(t, e, o)
	wg.Wait()
	for i, got := range results {
		want := map[int]string{0: "HTTP/1.1 431 Request Header Fields Too Large", 1: "HTTP/1.1 414 Request URI Too Long", 2: "HTTP/1.1 414 Request URI Too Long"}[i%3]
		if got != want {
			t.Fatalf("request %d: %q, want %q", i, got, want)
		}
	}
	if reqs := f.proxy.requests(before); len(reqs) > 1 { // the honest GET's HEAD at most
		for _, r := range reqs {
			if strings.Contains(r, "qqqq") || strings.Contains(r, "pppp") {
				t.Fatalf("an oversized request reached the origin: %.80s", r)
			}
		}
	}
	if got := scrape(t, e).sum("shoal_client_rejected_total", "reason=uri_too_long"); got < 16 {
		t.Errorf("shoal_client_rejected_total{reason=uri_too_long} = %v, want at least 16", got)
	}
}

// TestE2EAbuseSlowloris: clients that dribble their headers, or connect
// and send nothing, are cut after --read-header-timeout, keep-alive
// connections after --idle-timeout, and honest clients are served all
// along.
func TestE2EAbuseSlowloris(t *testing.T) {
	shoalBinary(t)
	www := t.TempDir()
	o := writeObject(t, www, "ok.bin", 300<<10, 2)
	_, e := abuseEdge(t, www, "--read-header-timeout", "1s", "--idle-timeout", "1s")
	const attackers = 100
	cut := make(chan time.Duration, attackers)
	start := time.Now()
	for i := range attackers {
		c, err := net.Dial("tcp", e.listen)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		go func() {
			// Half dribble a header a byte at a time, half send nothing.
			if i%2 == 0 {
				io.WriteString(c, "GET /ok.bin HTTP/1.1\r\n")
				for range 100 {
					if _, err := c.Write([]byte("X")); err != nil {
						break
					}
					time.Sleep(100 * time.Millisecond)
				}
			}
		}()
		go func() {
			c.SetReadDeadline(time.Now().Add(15 * time.Second))
			io.Copy(io.Discard, c)
			cut <- time.Since(start)
		}()
	}
	for range 3 {
		honest(t, e, o)
	}
	for range attackers {
		if d := <-cut; d > 10*time.Second {
			t.Fatalf("a slowloris connection lived %v with --read-header-timeout 1s", d)
		}
	}
	honest(t, e, o)

	// Keep-alive: an idle connection is closed after --idle-timeout.
	c, err := net.Dial("tcp", e.listen)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "HEAD /ok.bin HTTP/1.1\r\nHost: x\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	t0 := time.Now()
	c.SetReadDeadline(time.Now().Add(15 * time.Second))
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("idle keep-alive connection: read %v, want EOF", err)
	}
	if d := time.Since(t0); d > 10*time.Second {
		t.Errorf("idle keep-alive connection closed after %v with --idle-timeout 1s", d)
	}
}

// TestE2EAbuseSlowReader: a client that requests a large object and stops
// reading is cut off by --min-send-rate, while a slow but honest client,
// whose download takes longer than the window many times over, gets every
// byte.
func TestE2EAbuseSlowReader(t *testing.T) {
	shoalBinary(t)
	www := t.TempDir()
	large := writeObject(t, www, "large.bin", 24<<20, 3)
	small := writeObject(t, www, "small.bin", 3<<20, 4)
	_, e := abuseEdge(t, www, "--min-send-rate", "256KiB", "--min-send-window", "2s", "--memory-cache", "64MiB")
	honest(t, e, large) // warm: the attack below is on the edge, not the origin

	// The attacker: a tiny receive window, and no reading.
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
	}}
	ac, err := d.Dial("tcp", e.listen)
	if err != nil {
		t.Fatal(err)
	}
	defer ac.Close()
	fmt.Fprintf(ac, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", large.path)

	// Meanwhile, a slow honest client reads the small object at about
	// 640 KiB/s (2.5 times the minimum): about 5 s, two and a half windows.
	slowDone := make(chan error, 1)
	go func() {
		resp, err := http.Get(e.url + small.path)
		if err != nil {
			slowDone <- err
			return
		}
		defer resp.Body.Close()
		h := sha256.New()
		buf := make([]byte, 32<<10)
		var n int64
		for {
			m, err := resp.Body.Read(buf)
			h.Write(buf[:m])
			n += int64(m)
			if err == io.EOF {
				break
			}
			if err != nil {
				slowDone <- fmt.Errorf("after %d bytes: %w", n, err)
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		if n != small.size || hex.EncodeToString(h.Sum(nil)) != small.sum {
			slowDone <- fmt.Errorf("got %d bytes, want %d, or the wrong ones", n, small.size)
			return
		}
		slowDone <- nil
	}()
	honest(t, e, small)
	start := time.Now()
	if err := <-slowDone; err != nil {
		t.Fatalf("the slow honest client: %v", err)
	}
	if took := time.Since(start); took < 3*time.Second {
		t.Logf("the slow client took only %v", took)
	}

	// By now (several seconds without reading) the attacker is cut: what it
	// can still read is what the socket buffers held, then the end.
	time.Sleep(2 * time.Second)
	ac.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := io.Copy(io.Discard, ac)
	if n >= large.size {
		t.Fatalf("the reader that stopped got all %d bytes", n)
	}
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("the reader that stopped was not cut off (read %d bytes, then waited): %v", n, err)
	}
	t.Logf("the reader that stopped got %s of %s before the edge cut it", mibs(n), mibs(large.size))
	honest(t, e, large)
}

// TestE2EAbuseMaxConns: with --max-conns N, N connections that send
// nothing do not lock an honest client out (the oldest idle one makes
// room), and a flood never holds more than N open; over HTTP/3, the
// connection past N is refused until one closes.
func TestE2EAbuseMaxConns(t *testing.T) {
	shoalBinary(t)
	www := t.TempDir()
	o := writeObject(t, www, "ok.bin", 100<<10, 5)
	fe := startFrontEdge(t, www, "--max-conns", "8", "--read-header-timeout", "30s")
	e := fe.edgeProc
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := range 50 {
		addr := e.listen
		if i%2 == 1 {
			addr = fe.tlsAddr // a TLS handshake never started
		}
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	time.Sleep(200 * time.Millisecond)
	for range 5 {
		honest(t, e, o)
		resp, sum, n := fetch(t, fe.h2(), "GET", "https://"+fe.tlsAddr+o.path, nil)
		checkWhole(t, "an honest HTTPS client", o, resp, sum, n)
	}
	m := scrape(t, e)
	if open := m.sum("shoal_client_connections", "listener=http") + m.sum("shoal_client_connections", "listener=https"); open > 8 {
		t.Errorf("%v client connections open with --max-conns 8", open)
	}
	if ev := m.sum("shoal_client_rejected_total", "reason=conn_evicted"); ev < 40 {
		t.Errorf("shoal_client_rejected_total{reason=conn_evicted} = %v after 60 connections with a cap of 8", ev)
	}

	// HTTP/3: eight clients hold an idle connection each; newcomers are
	// served all the same, each evicting the oldest idle one, and the
	// QUIC connections open stay at the cap.
	before := scrape(t, e).sum("shoal_client_rejected_total", "reason=conn_evicted")
	for i := range 12 {
		tr := &http3.Transport{TLSClientConfig: fe.tlsConfig("a.test")}
		defer tr.Close()
		resp, sum, n := fetch(t, &http.Client{Transport: tr}, "GET", "https://"+fe.h3+o.path, nil)
		checkWhole(t, fmt.Sprintf("HTTP/3 client %d with --max-conns 8", i+1), o, resp, sum, n)
	}
	m = scrape(t, e)
	if got := m.sum("shoal_client_connections", "listener=h3"); got > 8 || got < 1 {
		t.Errorf("shoal_client_connections{listener=h3} = %v, want 1 to 8", got)
	}
	if ev := m.sum("shoal_client_rejected_total", "reason=conn_evicted") - before; ev != 4 {
		t.Errorf("%v idle QUIC connections evicted for 12 clients with --max-conns 8, want 4", ev)
	}
}

// TestE2EAbuseRateLimit: one address over --rate-limit gets 429 while
// another address is served.
func TestE2EAbuseRateLimit(t *testing.T) {
	shoalBinary(t)
	www := t.TempDir()
	o := writeObject(t, www, "ok.bin", 10<<10, 6)
	f, e := abuseEdge(t, www, "--rate-limit", "5", "--rate-burst", "10")
	codes := map[int]int{}
	c := &http.Client{Timeout: 5 * time.Second}
	var retryAfter string
	start := time.Now()
	for range 60 {
		resp, _ := fetchBytes(t, c, "GET", e.url+o.path, nil, nil)
		codes[resp.StatusCode]++
		if resp.StatusCode == http.StatusTooManyRequests {
			retryAfter = resp.Header.Get("Retry-After")
		}
	}
	// The burst, plus what the bucket refilled while the requests ran.
	most := 10 + int(5*time.Since(start).Seconds()) + 1
	if codes[200] < 10 || codes[200] > most || codes[429] != 60-codes[200] || codes[429] == 0 {
		t.Fatalf("60 quick requests from one address with --rate-limit 5 --rate-burst 10 in %v: %v, want 10 to %d × 200 and the rest 429",
			time.Since(start), codes, most)
	}
	if retryAfter == "" {
		t.Error("429 without Retry-After")
	}
	// Another client address (127.0.0.2 is loopback too) is not held back.
	other := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: (&net.Dialer{
		LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}).DialContext}}
	for range 5 {
		resp, sum, n := fetch(t, other, "GET", e.url+o.path, nil)
		checkWhole(t, "another address", o, resp, sum, n)
	}
	if n := f.proxy.nreqs(); n > 2 {
		t.Errorf("the origin saw %d requests; the limited ones must not reach it", n)
	}
}

// TestE2EAbuseRateLimitBehindProxy: with --trusted-proxies, a client that
// sends its own X-Forwarded-For or Forwarded from an untrusted address is
// still limited by that address, while the clients a trusted proxy names
// are limited each apart: one over the limit does not hold back another
// behind the same proxy, and a client cannot escape by prepending
// addresses to the header the proxy extends.
func TestE2EAbuseRateLimitBehindProxy(t *testing.T) {
	shoalBinary(t)
	www := t.TempDir()
	o := writeObject(t, www, "ok.bin", 10<<10, 7)
	f, e := abuseEdge(t, www, "--rate-limit", "2", "--rate-burst", "5", "--trusted-proxies", "127.0.0.2/32, 10.0.0.0/8")
	from := func(ip byte) *http.Client {
		return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: (&net.Dialer{
			LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, ip)}}).DialContext}}
	}
	// burst sends n requests with the headers h(i) and counts the answers.
	burst := func(c *http.Client, n int, h func(i int) http.Header) map[int]int {
		codes := map[int]int{}
		for i := range n {
			resp, _ := fetchBytes(t, c, "GET", e.url+o.path, h(i), nil)
			codes[resp.StatusCode]++
		}
		return codes
	}
	// An untrusted peer that names a new client in every request.
	start := time.Now()
	spoofer := burst(from(1), 30, func(i int) http.Header {
		return http.Header{"X-Forwarded-For": {fmt.Sprintf("198.51.100.%d", i)}, "Forwarded": {fmt.Sprintf("for=203.0.113.%d", i)}}
	})
	if most := 5 + int(2*time.Since(start).Seconds()) + 1; spoofer[200] > most || spoofer[429] == 0 {
		t.Errorf("30 requests from an untrusted address with a new X-Forwarded-For each: %v, want at most %d × 200 and the rest 429", spoofer, most)
	}
	// Behind the trusted proxy (127.0.0.2, with 10.0.0.0/8 its inner
	// hops), client A goes over the limit, also when it prepends
	// addresses of its own to the header.
	proxy := from(2)
	start = time.Now()
	a := burst(proxy, 30, func(i int) http.Header {
		xff := "192.0.2.10, 10.1.1.1"
		if i%2 == 1 {
			xff = fmt.Sprintf("198.51.100.%d, 192.0.2.10, 10.1.1.1", i)
		}
		return http.Header{"X-Forwarded-For": {xff}}
	})
	if most := 5 + int(2*time.Since(start).Seconds()) + 1; a[200] > most || a[429] == 0 {
		t.Errorf("30 requests of one client behind the trusted proxy: %v, want at most %d × 200 and the rest 429", a, most)
	}
	// Client B behind the same proxy, and client C named by Forwarded,
	// are served meanwhile.
	for range 4 {
		resp, sum, n := fetch(t, proxy, "GET", e.url+o.path, http.Header{"X-Forwarded-For": {"192.0.2.11"}})
		checkWhole(t, "another client behind the proxy", o, resp, sum, n)
		resp, sum, n = fetch(t, proxy, "GET", e.url+o.path, http.Header{"Forwarded": {`for="192.0.2.12:4711";proto=https`}})
		checkWhole(t, "a client named by Forwarded", o, resp, sum, n)
	}
	// The proxy itself, when it names no client, is one client of its own.
	resp, sum, n := fetch(t, proxy, "GET", e.url+o.path, nil)
	checkWhole(t, "the proxy itself", o, resp, sum, n)
	if got := scrape(t, e).sum("shoal_client_rejected_total", "reason=rate_limited"); got != float64(spoofer[429]+a[429]) {
		t.Errorf("shoal_client_rejected_total{reason=rate_limited} = %v, want %d", got, spoofer[429]+a[429])
	}
	if n := f.proxy.nreqs(); n > 2 {
		t.Errorf("the origin saw %d requests; the limited ones must not reach it", n)
	}
}

// TestE2EAbuseForwardFlood: requests the edge forwards to the origin
// (unsafe methods, a lone edge's forwarded misses) are held to
// --origin-concurrency like fills: a flood of them that the origin is slow
// to answer never has more than the cap in flight at the origin, the rest
// wait their turn and are all answered in the end, and a cached object is
// served byte for byte meanwhile.
func TestE2EAbuseForwardFlood(t *testing.T) {
	shoalBinary(t)
	const limit = 4
	body := bytes.Repeat([]byte("shoal forward flood "), 3<<10)
	var inflight, peak atomic.Int64
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/ok.bin" {
			w.Header().Set("Cache-Control", "public, max-age=3600")
			w.Header().Set("ETag", `"ok"`)
			http.ServeContent(w, r, "ok.bin", time.Unix(1e9, 0), bytes.NewReader(body))
			return
		}
		n := inflight.Add(1)
		defer inflight.Add(-1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		io.Copy(io.Discard, r.Body)
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		io.WriteString(w, "done "+r.Method)
	}))
	defer srv.Close()
	peer := freeUDP(t)
	e := startEdge(t, edgeSpec{name: "edge", origin: srv.URL, tlsDir: fleetTLS(t), peer: peer, peers: []string{peer},
		extra: []string{"--origin-concurrency", fmt.Sprint(limit), "--forward-misses"}})
	e.waitReady(t)
	want := sha256.Sum256(body)
	o := object{path: "/ok.bin", size: int64(len(body)), sum: hex.EncodeToString(want[:])}
	honest(t, e, o) // cached from here on

	const flood = 24
	var wg sync.WaitGroup
	answers := make(chan string, flood)
	c := &http.Client{Timeout: 60 * time.Second}
	for i := range flood {
		wg.Go(func() {
			method, path := "POST", fmt.Sprintf("/post/%d", i)
			if i%2 == 1 {
				method, path = "GET", fmt.Sprintf("/miss/%d", i) // a forwarded miss
			}
			req, _ := http.NewRequest(method, e.url+path, strings.NewReader("x"))
			resp, err := c.Do(req)
			if err != nil {
				answers <- err.Error()
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			answers <- fmt.Sprintf("%d %s", resp.StatusCode, b)
		})
	}
	deadline := time.Now().Add(20 * time.Second)
	for inflight.Load() < limit {
		if time.Now().After(deadline) {
			t.Fatalf("%d forwarded requests in flight at the origin after 20 s, want %d", inflight.Load(), limit)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// While the origin holds the cap's worth, the others wait at the edge,
	// and cached hits are served.
	for range 5 {
		honest(t, e, o)
	}
	if p := peak.Load(); p > limit {
		t.Errorf("%d forwarded requests in flight at the origin with --origin-concurrency %d", p, limit)
	}
	close(release)
	wg.Wait()
	close(answers)
	for a := range answers {
		if a != "200 done POST" && a != "200 done GET" {
			t.Errorf("a forwarded request: %q, want 200 done", a)
		}
	}
	if p := peak.Load(); p > limit {
		t.Errorf("%d forwarded requests in flight at the origin with --origin-concurrency %d", p, limit)
	}
}

// TestE2EAbuseSmuggling sends the shapes of request smuggling over plain
// HTTP and HTTP/1.1 over TLS: each is refused with 400 and the connection
// closed, and nothing of it reaches the origin; an honest client is served
// meanwhile.
func TestE2EAbuseSmuggling(t *testing.T) {
	shoalBinary(t)
	www := t.TempDir()
	o := writeObject(t, www, "ok.bin", 50<<10, 7)
	fe := startFrontEdge(t, www)
	smuggled := "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
	cases := []struct{ name, req string }{
		{"CL and TE", "POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled},
		{"TE and CL", "POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 40\r\n\r\n0\r\n\r\n" + smuggled},
		{"two equal CL", "POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello" + smuggled},
		{"two CL", "POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 40\r\n\r\nhello" + smuggled},
		{"TE not chunked", "POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n" + smuggled},
		{"two TE", "POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled},
		{"space before colon", "POST /up HTTP/1.1\r\nHost: x\r\nContent-Length : 40\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled},
		{"obs-fold TE", "POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\n chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n" + smuggled},
		{"TE in HTTP/1.0", "POST /up HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n" + smuggled},
		{"CL and TE on GET", "GET /ok.bin HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled},
		{"second request smuggles", "GET /ok.bin HTTP/1.1\r\nHost: x\r\n\r\nPOST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled},
	}
	before := fe.f.proxy.nreqs()
	for _, c := range cases {
		for _, over := range []string{"http", "https"} {
			var got string
			if over == "http" {
				got = rawRequest(t, fe.listen, c.req)
			} else {
				got = rawTLSRequest(t, fe, c.req)
			}
			statuses := responseStatuses(got)
			want := []string{"400"}
			if c.name == "second request smuggles" {
				want = []string{"200", "400"}
			}
			if (c.name == "TE not chunked" || c.name == "two TE") && strings.Join(statuses, ",") == "501" {
				continue // net/http refuses it first, as it should
			}
			if strings.Join(statuses, ",") != strings.Join(want, ",") {
				t.Errorf("%s over %s: responses %v, want %v (and the connection closed)\n%.300s", c.name, over, statuses, want, got)
			}
		}
		honest(t, fe.edgeProc, o)
	}
	for _, r := range fe.f.proxy.requests(before) {
		if strings.Contains(r, "/up") || strings.Contains(r, "/smuggled") {
			t.Errorf("a refused request reached the origin: %s", r)
		}
	}
	// A well-framed POST is still forwarded, chunked or not.
	for _, req := range []string{
		"POST /form HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
		"POST /form HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
	} {
		if st := responseStatuses(rawRequest(t, fe.listen, req)); len(st) != 1 || st[0] == "400" {
			t.Errorf("a well-framed POST: responses %v, want the origin's answer", st)
		}
	}
	if got := scrape(t, fe.edgeProc).sum("shoal_client_rejected_total", "reason=bad_framing"); got < 12 {
		// The rest net/http refuses itself (two different Content-Lengths,
		// a space before the colon, an unknown Transfer-Encoding).
		t.Errorf("shoal_client_rejected_total{reason=bad_framing} = %v, want at least 12", got)
	}
}

func rawTLSRequest(t *testing.T, fe *frontEdge, req string) string {
	t.Helper()
	cfg := fe.tlsConfig("a.test")
	cfg.NextProtos = []string{"http/1.1"}
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", fe.tlsAddr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(c)
	return string(b)
}

// responseStatuses reads the HTTP/1.1 responses in raw and returns their
// status codes.
func responseStatuses(raw string) []string {
	var out []string
	br := bufio.NewReader(strings.NewReader(raw))
	for {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return out
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		out = append(out, fmt.Sprint(resp.StatusCode))
	}
}

// TestE2EAbusePaths: paths that an origin could resolve differently from
// the cache key are refused with 400 and never reach the origin.
func TestE2EAbusePaths(t *testing.T) {
	shoalBinary(t)
	www := t.TempDir()
	o := writeObject(t, www, "dir/ok.bin", 10<<10, 8)
	f, e := abuseEdge(t, www)
	before := f.proxy.nreqs()
	for _, p := range []string{
		"/dir/../dir/ok.bin", "/dir/%2e%2e/dir/ok.bin", "/dir/%2E/ok.bin", "/..",
		"/dir%2Fok.bin", "/dir%2fok.bin", "/dir%5Cok.bin", "/dir\\ok.bin",
		"/dir/ok.bin%00.txt", "/dir/ok%0d%0a.bin", "/dir/ok.bin%", "/dir/ok%zz.bin",
	} {
		for _, method := range []string{"GET", "POST"} {
			got := rawRequest(t, e.listen, method+" "+p+" HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
			if st := statusOf(got); !strings.HasPrefix(st, "HTTP/1.1 400 ") {
				t.Errorf("%s %s: %q, want 400", method, p, st)
			}
		}
	}
	honest(t, e, o)
	// A plain "." segment names the same object (apt sends them): served
	// as, and forwarded as, the path without it.
	for _, p := range []string{"/dir/./ok.bin", "/./dir/././ok.bin"} {
		resp, sum, n := fetch(t, newClient(), "GET", e.url+p, nil)
		checkWhole(t, "a path with . segments", o, resp, sum, n)
	}
	// Dot segments in the query are not a path.
	resp, sum, n := fetch(t, newClient(), "GET", e.url+o.path+"?v=../1", nil)
	checkWhole(t, "a query with dots", o, resp, sum, n)
	for _, r := range f.proxy.requests(before) {
		if !strings.Contains(r, o.path) || strings.Contains(r, "..") && !strings.Contains(r, "?v=../1") {
			t.Errorf("the origin was asked %q", r)
		}
	}
	if bytes.Contains([]byte(strings.Join(f.proxy.requests(before), "\n")), []byte("%2")) {
		t.Errorf("an encoded path reached the origin: %v", f.proxy.requests(before))
	}
}

// TestE2EAbuseSlowUpload: request bodies are held to --min-send-rate too: a
// client that dribbles a POST body is cut off (and its request never
// completes at the origin), while a slow but honest upload arrives whole.
func TestE2EAbuseSlowUpload(t *testing.T) {
	shoalBinary(t)
	www := t.TempDir()
	o := writeObject(t, www, "ok.bin", 100<<10, 9)
	f, e := abuseEdge(t, www, "--min-send-rate", "256KiB", "--min-send-window", "2s")
	const attackers = 10
	cut := make(chan time.Duration, attackers)
	for range attackers {
		c, err := net.Dial("tcp", e.listen)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		go func() {
			start := time.Now()
			fmt.Fprintf(c, "POST /dribble HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n")
			for range 300 {
				if _, err := c.Write([]byte("x")); err != nil {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			c.SetReadDeadline(time.Now().Add(20 * time.Second))
			io.Copy(io.Discard, c)
			cut <- time.Since(start)
		}()
	}
	// The honest upload: 1 MiB at about 640 KiB/s, 2.5 times the minimum.
	body := bytes.Repeat([]byte("honest upload "), (1<<20)/14)
	pr, pw := io.Pipe()
	go func() {
		for b := body; len(b) > 0; {
			n := min(len(b), 32<<10)
			pw.Write(b[:n])
			b = b[n:]
			time.Sleep(50 * time.Millisecond)
		}
		pw.Close()
	}()
	req, _ := http.NewRequestWithContext(t.Context(), "POST", e.url+"/honest-upload", pr)
	req.ContentLength = int64(len(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("the slow honest upload: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	honest(t, e, o)
	for range attackers {
		if d := <-cut; d > 10*time.Second {
			t.Fatalf("a dribbled upload lasted %v with --min-send-rate 256KiB over 2s", d)
		}
	}
	f.proxy.mu.Lock()
	defer f.proxy.mu.Unlock()
	var whole bool
	for _, p := range f.proxy.posts {
		if bytes.Equal(p, body) {
			whole = true
			continue
		}
		if len(p) >= 1000000 {
			t.Errorf("a dribbled body of %d bytes reached the origin whole", len(p))
		}
	}
	if !whole {
		t.Errorf("the slow honest upload did not reach the origin whole (%d bodies seen)", len(f.proxy.posts))
	}
}
