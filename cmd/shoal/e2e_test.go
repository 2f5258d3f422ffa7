package main

// Process-level end-to-end tests of the shoal binary: the third tier of
// STYLE.md §9. The binary is built once per run (shoalBinary); each test
// then starts real `shoal origin` and `shoal edge` processes on loopback,
// with real QUIC and real HTTP, and SIGKILLs them when it ends. Origin egress is measured by the
// test, with a counting reverse proxy between the edges and the origin,
// rather than taken from the edges' own metrics.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/shoalcdn/shoal/swarm"
)

const (
	// e2eSegment and e2eShards are the layout every test fleet uses: small
	// segments keep the tests fast while objects still span many of them.
	e2eSegment = 1 << 20
	e2eShards  = "4+2"
	// readyTimeout bounds a process's start.
	readyTimeout = 15 * time.Second
)

// e2e is the state shared by the whole suite: the binary and the fleet CA.
var e2e struct {
	once   sync.Once
	dir    string
	bin    string
	tlsDir string
	out    []byte
	err    error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if e2e.dir != "" {
		os.RemoveAll(e2e.dir)
	}
	os.Exit(code)
}

// shoalBinary builds the shoal binary once per test run, and the fleet's
// certificates with it, and returns the binary's path. It skips the test
// under -short.
func shoalBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test of the shoal binary; skipped with -short")
	}
	e2e.once.Do(func() {
		if e2e.dir, e2e.err = os.MkdirTemp("", "shoal-e2e-"); e2e.err != nil {
			return
		}
		goTool, err := exec.LookPath("go") // go test puts its own GOROOT/bin first
		if err != nil {
			goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
		}
		e2e.bin = filepath.Join(e2e.dir, "shoal")
		if e2e.out, e2e.err = exec.Command(goTool, "build", "-o", e2e.bin, ".").CombinedOutput(); e2e.err != nil {
			return
		}
		e2e.tlsDir = filepath.Join(e2e.dir, "tls")
		e2e.out, e2e.err = runShoal("certs", "--dir", e2e.tlsDir, "--hosts", "127.0.0.1,localhost")
	})
	if e2e.err != nil {
		t.Fatalf("building shoal and the fleet certificates: %v\n%s", e2e.err, e2e.out)
	}
	return e2e.bin
}

// fleetTLS returns the directory of the suite's fleet CA and node certificate.
func fleetTLS(t *testing.T) string {
	shoalBinary(t)
	return e2e.tlsDir
}

// runShoal runs the binary to completion, with a minute's limit.
func runShoal(args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, e2e.bin, args...)
	cmd.Env = cleanEnv()
	return cmd.CombinedOutput()
}

// cleanEnv is the test's environment without any SHOAL_ variable, so that a
// developer's settings cannot leak into the processes under test.
func cleanEnv() []string {
	return slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "SHOAL_") })
}

// proc is a shoal process started by a test. Its output goes to a log file
// that is printed if the test fails; it is SIGKILLed at the end of the test.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{} // closed once the process has exited
	err  error         // Wait's result, set before done is closed
}

func startProc(t *testing.T, name string, env []string, args ...string) *proc {
	t.Helper()
	return startProcIn(t, name, env, nil, args...)
}

// startProcIn is startProc with the binary run by wrap, a command line
// that execs it (ip netns exec NS), when wrap is not empty.
func startProcIn(t *testing.T, name string, env, wrap []string, args ...string) *proc {
	t.Helper()
	return startProgram(t, name, shoalBinary(t), env, wrap, args...)
}

// startProgram is startProcIn for any program bin (a registry, a
// containerd daemon the test runs beside the fleet).
func startProgram(t *testing.T, name, bin string, env, wrap []string, args ...string) *proc {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, args...) // cancel sends SIGKILL
	if len(wrap) > 0 {
		cmd = exec.CommandContext(ctx, wrap[0], slices.Concat(wrap[1:], []string{bin}, args)...)
	}
	cmd.Env = append(cleanEnv(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	// Die with the test binary, even when a timeout kills it before the
	// cleanups run.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		cancel()
		f.Close()
		t.Fatalf("starting %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	// Cleanups run last-registered first: kill, then show the log.
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("---- %s: %s %s\n%s---- end of %s", name, filepath.Base(bin), strings.Join(args, " "), b, name)
		}
	})
	t.Cleanup(func() {
		cancel()
		<-p.done
	})
	return p
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *proc) kill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil && !p.exited() {
		t.Fatalf("killing %s: %v", p.name, err)
	}
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s did not die after SIGKILL", p.name)
	}
}

// exitCode waits up to d for the process to exit and returns its exit code.
func (p *proc) exitCode(t *testing.T, d time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(d):
		t.Fatalf("%s still running after %v", p.name, d)
	}
	var ee *exec.ExitError
	switch {
	case p.err == nil:
		return 0
	case errors.As(p.err, &ee):
		return ee.ExitCode()
	}
	t.Fatalf("%s: %v", p.name, p.err)
	return -1
}

// freeTCP and freeUDP return a loopback address that was free a moment ago.
// handedOut holds every address freeTCP and freeUDP returned in this test
// process. The port of a closed probe socket is free for the kernel to
// give out again, and it did: two edges of one test were handed the same
// --listen port. An address is never handed out twice.
var handedOut = struct {
	sync.Mutex
	addrs map[string]bool
}{addrs: map[string]bool{}}

// freeAddr returns an address on 127.0.0.1 that probe could bind and that
// no earlier call returned.
func freeAddr(t *testing.T, probe func() (string, error)) string {
	t.Helper()
	for range 100 {
		addr, err := probe()
		if err != nil {
			t.Fatal(err)
		}
		handedOut.Lock()
		seen := handedOut.addrs[addr]
		handedOut.addrs[addr] = true
		handedOut.Unlock()
		if !seen {
			return addr
		}
	}
	t.Fatal("no free address on 127.0.0.1 not handed out before")
	return ""
}

func freeTCP(t *testing.T) string {
	t.Helper()
	return freeAddr(t, func() (string, error) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", err
		}
		defer ln.Close()
		return "tcp " + ln.Addr().String(), nil
	})[len("tcp "):]
}

func freeUDP(t *testing.T) string {
	t.Helper()
	return freeAddr(t, func() (string, error) {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return "", err
		}
		defer pc.Close()
		return "udp " + pc.LocalAddr().String(), nil
	})[len("udp "):]
}

// waitFor polls ok until it returns true, failing the test if p exits or
// readyTimeout passes first.
func waitFor(t *testing.T, p *proc, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(readyTimeout)
	for !ok() {
		if p.exited() {
			t.Fatalf("%s exited while waiting for %s: %v", p.name, what, p.err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no %s after %v", p.name, what, readyTimeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func tcpUp(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// originProc is a running `shoal origin`.
type originProc struct {
	*proc
	url string
}

func startOrigin(t *testing.T, dir string) *originProc {
	t.Helper()
	return startOriginEnv(t, dir, nil)
}

// startOriginEnv starts an origin with extra environment variables.
func startOriginEnv(t *testing.T, dir string, env []string) *originProc {
	t.Helper()
	addr := freeTCP(t)
	p := startProc(t, "origin", env, "origin", "--dir", dir, "--listen", addr,
		"--cache-control", "public, max-age=3600", "--log-format", "text")
	waitFor(t, p, "listener on "+addr, func() bool { return tcpUp(addr) })
	return &originProc{proc: p, url: "http://" + addr}
}

// countingProxy sits between the edges and the origin and counts the
// response body bytes the origin sends, so origin egress is measured here
// rather than taken from the edges' metrics.
type countingProxy struct {
	url   string
	bytes atomic.Int64
	mu    sync.Mutex
	reqs  []string // "METHOD target [Range]"
	posts [][]byte // bodies of requests other than GET and HEAD
}

func startProxy(t *testing.T, origin string) *countingProxy {
	t.Helper()
	return startProxyOn(t, origin, nil, nil)
}

// startProxyOn is startProxy listening on ln and dialling the origin with
// dial (in a network namespace); nil means loopback.
func startProxyOn(t *testing.T, origin string, ln net.Listener, dial func(ctx context.Context, network, addr string) (net.Conn, error)) *countingProxy {
	t.Helper()
	target, err := url.Parse(origin)
	if err != nil {
		t.Fatal(err)
	}
	cp := &countingProxy{}
	tr := &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 64, DialContext: dial}
	rp := &httputil.ReverseProxy{
		Rewrite:   func(pr *httputil.ProxyRequest) { pr.SetURL(target) },
		Transport: tr,
		ModifyResponse: func(resp *http.Response) error {
			resp.Body = &countingBody{ReadCloser: resp.Body, n: &cp.bytes}
			return nil
		},
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entry := r.Method + " " + r.URL.RequestURI()
		if rg := r.Header.Get("Range"); rg != "" {
			entry += " Range: " + rg
		}
		cp.mu.Lock()
		cp.reqs = append(cp.reqs, entry)
		cp.mu.Unlock()
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			b, err := io.ReadAll(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			cp.mu.Lock()
			cp.posts = append(cp.posts, b)
			cp.mu.Unlock()
			r.Body = io.NopCloser(bytes.NewReader(b))
		}
		rp.ServeHTTP(w, r)
	}))
	if ln != nil {
		srv.Listener.Close()
		srv.Listener = ln
	}
	srv.Start()
	t.Cleanup(func() {
		srv.Close()
		tr.CloseIdleConnections()
	})
	t.Cleanup(func() {
		if t.Failed() {
			cp.mu.Lock()
			defer cp.mu.Unlock()
			t.Logf("origin requests through the counting proxy (%d, %d body bytes):\n%s", len(cp.reqs), cp.bytes.Load(), strings.Join(cp.reqs, "\n"))
		}
	})
	cp.url = srv.URL
	return cp
}

type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	return n, err
}

// requests returns the origin requests seen since the i-th.
func (cp *countingProxy) requests(from int) []string {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	return slices.Clone(cp.reqs[min(from, len(cp.reqs)):])
}

func (cp *countingProxy) nreqs() int {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	return len(cp.reqs)
}

// edgeProc is a running `shoal edge`.
type edgeProc struct {
	*proc
	url, admin string // http://client, http://admin
	listen     string // client host:port
	peer       string // peer address, as in --peers
	// dial, when set, reaches the edge (in a network namespace).
	dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// client returns an HTTP client that reaches the edge.
func (e *edgeProc) client(timeout time.Duration) *http.Client {
	if e.dial == nil {
		return &http.Client{Timeout: timeout}
	}
	return &http.Client{Timeout: timeout, Transport: &http.Transport{DialContext: e.dial, DisableCompression: true, DisableKeepAlives: true}}
}

// edgeSpec says how to start one edge.
type edgeSpec struct {
	name   string
	origin string   // --origin
	tlsDir string   // --tls-dir
	peer   string   // --peer-listen (UDP)
	peers  []string // --peers
	extra  []string
	env    []string // extra environment variables
}

func startEdge(t *testing.T, s edgeSpec) *edgeProc {
	t.Helper()
	listen, admin := freeTCP(t), freeTCP(t)
	args := []string{"edge",
		"--listen", listen, "--admin-listen", admin,
		"--origin", s.origin,
		"--peer-listen", s.peer, "--peers", strings.Join(s.peers, ","),
		"--tls-dir", s.tlsDir,
		"--segment-size", "1MiB", "--shards", e2eShards,
		"--log-format", "text",
	}
	p := startProc(t, s.name, s.env, append(args, s.extra...)...)
	return &edgeProc{proc: p, url: "http://" + listen, admin: "http://" + admin, listen: listen, peer: s.peer}
}

// waitReady waits for the edge's /readyz to answer 200.
func (e *edgeProc) waitReady(t *testing.T) {
	t.Helper()
	c := e.client(time.Second)
	waitFor(t, e.proc, "200 from /readyz", func() bool {
		resp, err := c.Get(e.admin + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// fleet is an origin, the counting proxy in front of it, and edges that all
// share one --peers list.
type fleet struct {
	www    string
	origin *originProc
	proxy  *countingProxy
	edges  []*edgeProc
	peers  []string
}

// startFleet starts an origin serving www and n edges, each with extra flags,
// and waits until every edge is ready.
func startFleet(t *testing.T, www string, n int, extra ...string) *fleet {
	t.Helper()
	f := &fleet{www: www}
	f.origin = startOrigin(t, www)
	f.proxy = startProxy(t, f.origin.url)
	f.startEdges(t, n, extra...)
	return f
}

// startEdges starts n edges with extra flags in front of f.proxy, sharing
// one --peers list, and waits until every edge is ready.
func (f *fleet) startEdges(t *testing.T, n int, extra ...string) {
	t.Helper()
	for range n {
		f.peers = append(f.peers, freeUDP(t))
	}
	tlsDir := fleetTLS(t)
	for i, peer := range f.peers {
		f.edges = append(f.edges, startEdge(t, edgeSpec{
			name: fmt.Sprintf("edge%d", i+1), origin: f.proxy.url, tlsDir: tlsDir,
			peer: peer, peers: f.peers, extra: extra,
		}))
	}
	for _, e := range f.edges {
		e.waitReady(t)
	}
}

// object is a file of the origin's directory.
type object struct {
	path string // URL path
	file string
	size int64
	sum  string // sha256, hex
}

// writeObject writes size deterministic pseudo-random bytes to www/name.
func writeObject(t *testing.T, www, name string, size int64, seed uint64) object {
	t.Helper()
	file := filepath.Join(www, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	var s [32]byte
	binary.LittleEndian.PutUint64(s[:], seed)
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(rand.NewChaCha8(s), size)); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return object{path: "/" + name, file: file, size: size, sum: hex.EncodeToString(h.Sum(nil))}
}

// bytesAt reads n bytes of the object's file at off.
func (o object) bytesAt(t *testing.T, off, n int64) []byte {
	t.Helper()
	f, err := os.Open(o.file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, n)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	return b
}

// nameRanked returns the first object name "<prefix>-<i><ext>" for whose
// cache key ok accepts the members' rendezvous ranking, the one the edges
// use to place records: rank[0] is the record's coordinator, rank[1] and
// rank[2] keep replicas. Tests use it to pin down a placement that random
// ports would otherwise choose for them.
func nameRanked(peers []string, prefix, ext string, ok func(rank []string) bool) string {
	for i := 0; ; i++ {
		name := fmt.Sprintf("%s-%d%s", prefix, i, ext)
		if ok(swarm.Rank(peers, []byte("/"+name))) {
			return name
		}
	}
}

func newClient() *http.Client {
	return &http.Client{
		Timeout:   2 * time.Minute,
		Transport: &http.Transport{DisableCompression: true},
	}
}

// fetch sends a request and returns the response (body closed) with the
// body's sha256 and length.
func fetch(t *testing.T, c *http.Client, method, url string, h http.Header) (*http.Response, string, int64) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	copyHeader(req.Header, h)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	hs := sha256.New()
	n, err := io.Copy(hs, resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body after %d bytes: %v", method, url, n, err)
	}
	return resp, hex.EncodeToString(hs.Sum(nil)), n
}

// fetchBytes is fetch for small bodies, returned whole.
func fetchBytes(t *testing.T, c *http.Client, method, url string, h http.Header, body io.Reader) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	copyHeader(req.Header, h)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, url, err)
	}
	return resp, b
}

func copyHeader(dst, src http.Header) {
	for k, vs := range src {
		dst[k] = vs
	}
}

// checkWhole checks a 200 response carrying all of o.
func checkWhole(t *testing.T, via string, o object, resp *http.Response, sum string, n int64) {
	t.Helper()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s via %s: status %s, want 200", o.path, via, resp.Status)
	}
	if n != o.size || sum != o.sum {
		t.Fatalf("GET %s via %s: got %d bytes with sha256 %s, want %d bytes with %s", o.path, via, n, sum, o.size, o.sum)
	}
}

// sample is one line of Prometheus text.
type sample struct {
	name   string
	labels map[string]string
	value  float64
}

// promMetrics is a scrape of an edge's /metrics.
type promMetrics []sample

func scrape(t *testing.T, e *edgeProc) promMetrics {
	t.Helper()
	resp, err := e.client(5 * time.Second).Get(e.admin + "/metrics")
	if err != nil {
		t.Fatalf("scraping %s: %v", e.name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scraping %s: %s", e.name, resp.Status)
	}
	var m promMetrics
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		s, err := parseSample(line)
		if err != nil {
			t.Fatalf("%s /metrics: %v", e.name, err)
		}
		m = append(m, s)
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("scraping %s: %v", e.name, err)
	}
	return m
}

// parseSample parses `name{k="v",...} value` (label values without escapes,
// which is all Shoal emits).
func parseSample(line string) (sample, error) {
	sp := strings.LastIndexByte(line, ' ')
	if sp < 0 {
		return sample{}, fmt.Errorf("no value in %q", line)
	}
	v, err := strconv.ParseFloat(line[sp+1:], 64)
	if err != nil {
		return sample{}, fmt.Errorf("value of %q: %w", line, err)
	}
	s := sample{name: line[:sp], labels: map[string]string{}, value: v}
	if i := strings.IndexByte(s.name, '{'); i >= 0 {
		ls := strings.TrimSuffix(s.name[i+1:], "}")
		s.name = s.name[:i]
		for kv := range strings.SplitSeq(ls, ",") {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				return sample{}, fmt.Errorf("label %q in %q", kv, line)
			}
			s.labels[k] = strings.Trim(v, `"`)
		}
	}
	return s, nil
}

// sum adds up the samples of name whose labels include every "k=v" given.
func (m promMetrics) sum(name string, match ...string) float64 {
	var total float64
next:
	for _, s := range m {
		if s.name != name {
			continue
		}
		for _, kv := range match {
			k, v, _ := strings.Cut(kv, "=")
			if s.labels[k] != v {
				continue next
			}
		}
		total += s.value
	}
	return total
}

// served returns an edge's shoal_served_bytes_total by source.
func (m promMetrics) served() map[string]int64 {
	out := map[string]int64{}
	for _, src := range []string{"memory", "disk", "peer", "origin"} {
		out[src] = int64(m.sum("shoal_served_bytes_total", "source="+src))
	}
	return out
}

// waitPlaced waits until the fleet's shard stores hold want shards in all:
// a fill returns to the client before its shards reach their holders.
func (f *fleet) waitPlaced(t *testing.T, want int) {
	t.Helper()
	deadline := time.Now().Add(readyTimeout)
	for {
		var have float64
		for _, e := range f.edges {
			if !e.exited() {
				have += scrape(t, e).sum("shoal_store_shards")
			}
		}
		if int(have) >= want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the fleet holds %d shards after %v, want %d", int(have), readyTimeout, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func mibs(n int64) string { return fmt.Sprintf("%.2f MiB", float64(n)/(1<<20)) }

// TestE2EFleetServesFromPeers downloads one object through each of four
// edges in turn: the origin sends it about once, the later edges serve it
// from the fleet, and every body and header is right.
func TestE2EFleetServesFromPeers(t *testing.T) {
	shoalBinary(t)
	www := t.TempDir()
	const size = 64 << 20
	f := startFleet(t, www, 4)
	// Name the object so that edge 1, which sees the first request, is not
	// the coordinator of its record: the usual case (three times in four),
	// and the one where only the coordinator talks to the origin.
	name := nameRanked(f.peers, "release", ".tar", func(rank []string) bool { return rank[0] != f.edges[0].peer })
	obj := writeObject(t, www, name, size, 1)

	c := newClient()
	oresp, _ := fetchBytes(t, c, http.MethodHead, f.origin.url+obj.path, nil, nil)
	originETag := oresp.Header.Get("ETag")
	if originETag == "" {
		t.Fatalf("the origin sent no ETag for %s", obj.path)
	}

	for i, e := range f.edges {
		start := time.Now()
		resp, sum, n := fetch(t, c, http.MethodGet, e.url+obj.path, nil)
		t.Logf("%s: %s in %v, Cache-Status %q", e.name, mibs(n), time.Since(start).Round(time.Millisecond), resp.Header.Get("Cache-Status"))
		checkWhole(t, e.name, obj, resp, sum, n)
		if got, want := resp.Header.Get("Content-Length"), strconv.FormatInt(size, 10); got != want {
			t.Errorf("%s: Content-Length %q, want %q", e.name, got, want)
		}
		if got := resp.Header.Get("ETag"); got != originETag {
			t.Errorf("%s: ETag %q, want the origin's %q", e.name, got, originETag)
		}
		if got := resp.Header.Get("Accept-Ranges"); got != "bytes" {
			t.Errorf("%s: Accept-Ranges %q, want bytes", e.name, got)
		}
		cs := resp.Header.Get("Cache-Status")
		switch {
		case cs == "":
			t.Errorf("%s: no Cache-Status", e.name)
		case i == 0 && !strings.Contains(cs, "fwd=miss"):
			t.Errorf("%s: Cache-Status %q on the fleet's first request for the object, want fwd=miss "+
				"(the origin was asked for the record and every byte; edge/doc.go: \"hit\" when the fleet had the bytes)", e.name, cs)
		case i > 0 && !strings.Contains(cs, "hit"):
			t.Errorf("%s: Cache-Status %q, want a hit", e.name, cs)
		}
	}

	egress := f.proxy.bytes.Load()
	t.Logf("origin egress: %s for %d downloads of %s (%.3f×)", mibs(egress), len(f.edges), mibs(size), float64(egress)/size)
	if limit := int64(size) * 110 / 100; egress > limit {
		t.Errorf("origin sent %s, want at most %s (1.10 × the object)", mibs(egress), mibs(limit))
	}
	for i, e := range f.edges {
		srv := scrape(t, e).served()
		var total int64
		for _, v := range srv {
			total += v
		}
		fleetBytes := srv["peer"] + srv["memory"] + srv["disk"]
		t.Logf("%s served: memory %s, disk %s, peer %s, origin %s", e.name, mibs(srv["memory"]), mibs(srv["disk"]), mibs(srv["peer"]), mibs(srv["origin"]))
		if total != size {
			t.Errorf("%s: shoal_served_bytes_total sums to %d, want %d", e.name, total, int64(size))
		}
		if i > 0 && 2*fleetBytes <= total {
			t.Errorf("%s: %s of %s served from the fleet (peer, memory, disk), want more than half", e.name, mibs(fleetBytes), mibs(total))
		}
	}
}

// TestE2EFleetCacheStatusCoordinator is the other placement of the first
// request: the edge asked is the record's coordinator and asks the origin
// itself.
func TestE2EFleetCacheStatusCoordinator(t *testing.T) {
	shoalBinary(t)
	www := t.TempDir()
	f := startFleet(t, www, 4)
	name := nameRanked(f.peers, "clip", ".ts", func(rank []string) bool { return rank[0] == f.edges[0].peer })
	obj := writeObject(t, www, name, 3<<20, 2)
	c := newClient()
	for i, e := range f.edges[:2] {
		resp, sum, n := fetch(t, c, http.MethodGet, e.url+obj.path, nil)
		checkWhole(t, e.name, obj, resp, sum, n)
		cs := resp.Header.Get("Cache-Status")
		t.Logf("%s: Cache-Status %q", e.name, cs)
		if want := []string{"fwd=miss", "hit"}[i]; !strings.Contains(cs, want) {
			t.Errorf("%s: Cache-Status %q, want %s", e.name, cs, want)
		}
	}
}

// TestE2EKillEdge fetches an object through the fleet, kills an edge with
// SIGKILL, and fetches the object through another: the shards left suffice,
// the origin is not asked for a byte, and the dead edge costs little time.
//
// With 4 members and 4+2 shards, ranks 0 and 1 of a segment hold two shards
// each, so any one edge's loss leaves at least k=4. The cases pin the
// record's placement (see nameRanked), so each exercises a known path:
//
//   - edge1, the edge that served the first download, is the record's
//     coordinator and edge3 keeps no replica: edge3 must look the record up
//     past a dead coordinator, then read shards around it;
//   - edge2 is the record's coordinator and edge3 keeps a replica: only the
//     shard reads meet the dead edge.
//
// The time limit is a liveness bound, not a speed goal: before the kill the
// same download takes well under a second, and an edge waits at most
// PeerTimeout (5 s) for a peer; a dead peer may cost that once, not once
// per segment nor the 15 s QUIC idle timeout.
func TestE2EKillEdge(t *testing.T) {
	shoalBinary(t)
	const (
		size     = 32 << 20
		deadline = 9 * time.Second // PeerTimeout, plus 4 s for the rest
	)
	for _, tc := range []struct {
		name         string
		victim       int
		viaHasRecord bool
	}{
		{"edge1, record coordinator, no replica on the reader", 0, false},
		{"edge2, record coordinator, replica on the reader", 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel() // separate fleets; most of a case is waiting
			www := t.TempDir()
			f := startFleet(t, www, 4)
			victim, via := f.edges[tc.victim], f.edges[2]
			name := nameRanked(f.peers, "b", ".bin", func(rank []string) bool {
				return rank[0] == victim.peer && slices.Index(rank, via.peer) < 3 == tc.viaHasRecord
			})
			obj := writeObject(t, www, name, size, 3)
			c := newClient()
			start := time.Now()
			resp, sum, n := fetch(t, c, http.MethodGet, f.edges[0].url+obj.path, nil)
			checkWhole(t, f.edges[0].name, obj, resp, sum, n)
			fetched := time.Since(start)
			f.waitPlaced(t, size/e2eSegment*6)
			t.Logf("%s through %s in %v; its shards placed %v later", mibs(n), f.edges[0].name,
				fetched.Round(time.Millisecond), (time.Since(start) - fetched).Round(time.Millisecond))
			before, nreq := f.proxy.bytes.Load(), f.proxy.nreqs()

			victim.kill(t)
			start = time.Now()
			resp, sum, n = fetch(t, newClient(), http.MethodGet, via.url+obj.path, nil)
			took := time.Since(start)
			m := scrape(t, via)
			srv := m.served()
			t.Logf("after killing %s: %s through %s in %v, Cache-Status %q; origin requests since: %q",
				victim.name, mibs(n), via.name, took.Round(time.Millisecond), resp.Header.Get("Cache-Status"), f.proxy.requests(nreq))
			t.Logf("%s served: memory %s, disk %s, peer %s, origin %s; hedged %v; peer requests: ok %v, canceled %v, error %v, down %v",
				via.name, mibs(srv["memory"]), mibs(srv["disk"]), mibs(srv["peer"]), mibs(srv["origin"]),
				m.sum("shoal_hedged_requests_total"), m.sum("shoal_peer_requests_total", "result=ok"),
				m.sum("shoal_peer_requests_total", "result=canceled"), m.sum("shoal_peer_requests_total", "result=error"),
				m.sum("shoal_peer_requests_total", "result=down"))
			checkWhole(t, via.name, obj, resp, sum, n)
			if got := f.proxy.bytes.Load() - before; got != 0 {
				t.Errorf("the origin sent %d body bytes after %s died, want 0: the surviving shards decode every segment", got, victim.name)
			}
			if took > deadline {
				t.Errorf("the download through %s took %v after %s died, want at most %v", via.name, took.Round(time.Millisecond), victim.name, deadline)
			}
		})
	}
}

// TestE2ERanges checks single byte ranges through an edge, and that a ranged
// miss fetches only the segments it needs.
func TestE2ERanges(t *testing.T) {
	shoalBinary(t)
	www := t.TempDir()
	// Not a multiple of the segment size: the last segment is short.
	const size = 8<<20 + 12345
	obj := writeObject(t, www, "r.bin", size, 4)
	big := writeObject(t, www, "big.bin", 32<<20, 5)
	f := startFleet(t, www, 4)
	c := newClient()

	// A range on a cold miss is answered from the object's one streamed
	// fill: the origin sends the object once, whole, and the range is
	// served as its segments are cut (nginx and Varnish do the same
	// without a slice module).
	t.Run("miss fetches the object once", func(t *testing.T) {
		e := f.edges[1]
		before, nreq := f.proxy.bytes.Load(), f.proxy.nreqs()
		const first, last = 5 << 20, 6<<20 - 1 // exactly segment 5
		resp, body := fetchBytes(t, c, http.MethodGet, e.url+big.path, http.Header{"Range": {fmt.Sprintf("bytes=%d-%d", first, last)}}, nil)
		if resp.StatusCode != http.StatusPartialContent {
			t.Fatalf("status %s, want 206", resp.Status)
		}
		if got, want := resp.Header.Get("Content-Range"), fmt.Sprintf("bytes %d-%d/%d", first, last, big.size); got != want {
			t.Errorf("Content-Range %q, want %q", got, want)
		}
		if !bytes.Equal(body, big.bytesAt(t, first, last-first+1)) {
			t.Errorf("got %d bytes that differ from the file's [%d, %d]", len(body), first, last)
		}
		// The fill goes on after the range is served: wait for its end.
		deadline := time.Now().Add(20 * time.Second)
		for f.proxy.bytes.Load()-before < big.size && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		grew := f.proxy.bytes.Load() - before
		reqs := f.proxy.requests(nreq)
		t.Logf("origin sent %s for a 1 MiB range of a %s miss; requests: %q", mibs(grew), mibs(big.size), reqs)
		if grew < big.size || grew > big.size*105/100 || len(reqs) != 1 {
			t.Errorf("origin sent %s in %d requests for a %s object, want it once, whole, in one request", mibs(grew), len(reqs), mibs(big.size))
		}
	})

	cases := []struct {
		name, rng    string
		code         int
		first, last  int64 // the bytes expected, for 206
		contentRange string
	}{
		{"middle", "bytes=1000-2000000", 206, 1000, 2000000, fmt.Sprintf("bytes 1000-2000000/%d", size)},
		{"suffix", "bytes=-100", 206, size - 100, size - 1, fmt.Sprintf("bytes %d-%d/%d", size-100, size-1, size)},
		{"open to the end", "bytes=8388000-", 206, 8388000, size - 1, fmt.Sprintf("bytes 8388000-%d/%d", size-1, size)},
		{"past the end", fmt.Sprintf("bytes=%d-", size), 416, 0, 0, fmt.Sprintf("bytes */%d", size)},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := f.edges[i%len(f.edges)]
			resp, body := fetchBytes(t, c, http.MethodGet, e.url+obj.path, http.Header{"Range": {tc.rng}}, nil)
			if resp.StatusCode != tc.code {
				t.Fatalf("Range %s via %s: status %s, want %d", tc.rng, e.name, resp.Status, tc.code)
			}
			if got := resp.Header.Get("Content-Range"); got != tc.contentRange {
				t.Errorf("Range %s: Content-Range %q, want %q", tc.rng, got, tc.contentRange)
			}
			if tc.code != http.StatusPartialContent {
				return
			}
			n := tc.last - tc.first + 1
			if got, want := resp.Header.Get("Content-Length"), strconv.FormatInt(n, 10); got != want {
				t.Errorf("Range %s: Content-Length %q, want %q", tc.rng, got, want)
			}
			if !bytes.Equal(body, obj.bytesAt(t, tc.first, n)) {
				t.Errorf("Range %s: got %d bytes that differ from the file's [%d, %d]", tc.rng, len(body), tc.first, tc.last)
			}
		})
	}
}

// TestE2EForeignCA starts an edge whose certificate comes from another CA
// but which lists the fleet's peers: the fleet must not hand it a shard, and
// it must still serve the right bytes, from the origin.
func TestE2EForeignCA(t *testing.T) {
	shoalBinary(t)
	www := t.TempDir()
	const size = 16 << 20
	obj := writeObject(t, www, "c.bin", size, 6)
	f := startFleet(t, www, 4)
	c := newClient()
	resp, sum, n := fetch(t, c, http.MethodGet, f.edges[0].url+obj.path, nil)
	checkWhole(t, f.edges[0].name, obj, resp, sum, n)
	f.waitPlaced(t, size/e2eSegment*6)

	foreignTLS := filepath.Join(t.TempDir(), "tls")
	if out, err := runShoal("certs", "--dir", foreignTLS, "--hosts", "127.0.0.1,localhost"); err != nil {
		t.Fatalf("shoal certs: %v\n%s", err, out)
	}
	peer := freeUDP(t)
	foreign := startEdge(t, edgeSpec{
		name: "foreign", origin: f.proxy.url, tlsDir: foreignTLS,
		peer: peer, peers: append(slices.Clone(f.peers), peer),
	})
	foreign.waitReady(t)

	before := f.proxy.bytes.Load()
	start := time.Now()
	resp, sum, n = fetch(t, c, http.MethodGet, foreign.url+obj.path, nil)
	t.Logf("foreign edge: %s in %v, Cache-Status %q", mibs(n), time.Since(start).Round(time.Millisecond), resp.Header.Get("Cache-Status"))
	checkWhole(t, foreign.name, obj, resp, sum, n)

	m := scrape(t, foreign)
	srv := m.served()
	t.Logf("foreign served: memory %s, disk %s, peer %s, origin %s; peer requests ok %v, error %v, down %v",
		mibs(srv["memory"]), mibs(srv["disk"]), mibs(srv["peer"]), mibs(srv["origin"]),
		m.sum("shoal_peer_requests_total", "result=ok"), m.sum("shoal_peer_requests_total", "result=error"), m.sum("shoal_peer_requests_total", "result=down"))
	if srv["peer"] != 0 {
		t.Errorf("foreign edge served %s from peers, want 0", mibs(srv["peer"]))
	}
	if ok := m.sum("shoal_peer_requests_total", "result=ok"); ok != 0 {
		t.Errorf("foreign edge: %v peer requests succeeded, want 0", ok)
	}
	if pb := m.sum("shoal_peer_bytes_total"); pb != 0 {
		t.Errorf("foreign edge received %v bytes from peers, want 0", pb)
	}
	if got := f.proxy.bytes.Load() - before; got < size {
		t.Errorf("the origin sent %s for the foreign edge's download of %s, want all of it (nothing came from the fleet)", mibs(got), mibs(size))
	}
}

// TestE2EEdgeRefusesWithoutTLS: an edge without --tls-dir does not start.
func TestE2EEdgeRefusesWithoutTLS(t *testing.T) {
	shoalBinary(t)
	start := time.Now()
	out, err := runShoal("edge", "--origin", "http://127.0.0.1:9", "--listen", freeTCP(t),
		"--peer-listen", freeUDP(t), "--admin-listen", freeTCP(t), "--log-format", "text")
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() == 0 {
		t.Fatalf("shoal edge without --tls-dir: err %v, want a non-zero exit; output:\n%s", err, out)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("shoal edge without --tls-dir took %v to exit", d)
	}
	if !bytes.Contains(out, []byte("TLS")) || !bytes.Contains(out, []byte("shoal certs")) {
		t.Errorf("output does not mention TLS and `shoal certs`:\n%s", out)
	}
	t.Logf("exit %d: %s", ee.ExitCode(), bytes.TrimSpace(out))
}

// TestE2EEnvFlags starts an origin configured by SHOAL_* variables only,
// then one where a flag overrides its variable.
func TestE2EEnvFlags(t *testing.T) {
	shoalBinary(t)
	www := t.TempDir()
	obj := writeObject(t, www, "env.bin", 100<<10, 7)
	c := newClient()

	addr := freeTCP(t)
	p := startProc(t, "origin-env", []string{"SHOAL_LISTEN=" + addr, "SHOAL_DIR=" + www,
		"SHOAL_CACHE_CONTROL=public, max-age=60", "SHOAL_LOG_FORMAT=text"}, "origin")
	waitFor(t, p, "listener on "+addr, func() bool { return tcpUp(addr) })
	resp, sum, n := fetch(t, c, http.MethodGet, "http://"+addr+obj.path, nil)
	checkWhole(t, p.name, obj, resp, sum, n)
	if got := resp.Header.Get("Cache-Control"); got != "public, max-age=60" {
		t.Errorf("Cache-Control %q, want the one SHOAL_CACHE_CONTROL set", got)
	}

	envAddr, flagAddr := freeTCP(t), freeTCP(t)
	p = startProc(t, "origin-flag-wins", []string{"SHOAL_LISTEN=" + envAddr, "SHOAL_DIR=" + www}, "origin", "--listen", flagAddr)
	waitFor(t, p, "listener on "+flagAddr, func() bool { return tcpUp(flagAddr) })
	resp, sum, n = fetch(t, c, http.MethodGet, "http://"+flagAddr+obj.path, nil)
	checkWhole(t, p.name, obj, resp, sum, n)
	if tcpUp(envAddr) {
		t.Errorf("the origin listens on SHOAL_LISTEN's %s too; --listen should win", envAddr)
	}
}

// TestE2ESIGTERMDrains sends SIGTERM to an edge in the middle of a slow
// download: the download completes, new connections are refused, and the
// process exits 0 within --drain-timeout.
func TestE2ESIGTERMDrains(t *testing.T) {
	shoalBinary(t)
	www := t.TempDir()
	// Larger than the loopback socket buffers, so the handler is still
	// writing when the signal comes.
	const size = 32 << 20
	obj := writeObject(t, www, "slow.bin", size, 8)
	const drain = 20 * time.Second
	f := startFleet(t, www, 1, "--drain-timeout", drain.String())
	e := f.edges[0]

	c := newClient()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, e.url+obj.path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %s, want 200", resp.Status)
	}
	h := sha256.New()
	if _, err := io.CopyN(h, resp.Body, 1<<20); err != nil {
		t.Fatalf("reading the first MiB: %v", err)
	}
	time.Sleep(200 * time.Millisecond)

	sigterm := time.Now()
	if err := e.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// The listener closes at once; the process stays for the download.
	deadline := time.Now().Add(5 * time.Second)
	for tcpUp(e.listen) {
		if time.Now().After(deadline) {
			t.Fatalf("%s still accepts connections 5s after SIGTERM", e.name)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if e.exited() {
		t.Fatalf("%s exited before the in-flight download finished: %v", e.name, e.err)
	}
	if resp, err := (&http.Client{Timeout: time.Second}).Get(e.admin + "/readyz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("/readyz while draining: %s, want 503", resp.Status)
		}
	}

	// Finish reading, slowly at first.
	for range 4 {
		if _, err := io.CopyN(h, resp.Body, 1<<20); err != nil {
			t.Fatalf("reading during the drain: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	rest, err := io.Copy(h, resp.Body)
	if err != nil {
		t.Fatalf("reading during the drain: %v", err)
	}
	if got, n := hex.EncodeToString(h.Sum(nil)), 5<<20+rest; got != obj.sum || n != size {
		t.Fatalf("drained download: %d bytes with sha256 %s, want %d bytes with %s", n, got, int64(size), obj.sum)
	}
	if code := e.exitCode(t, drain+5*time.Second-time.Since(sigterm)); code != 0 {
		t.Errorf("%s exited %d after SIGTERM, want 0", e.name, code)
	}
	if took := time.Since(sigterm); took > drain {
		t.Errorf("%s took %v to exit, more than --drain-timeout %v", e.name, took, drain)
	}
	t.Logf("%s exited %v after SIGTERM", e.name, time.Since(sigterm).Round(time.Millisecond))
	if tcpUp(e.listen) {
		t.Errorf("%s's port accepts connections after exit", e.name)
	}
}

// TestE2EOtherMethodsForwarded: a POST goes to the origin unchanged and its
// answer comes back.
func TestE2EOtherMethodsForwarded(t *testing.T) {
	shoalBinary(t)
	www := t.TempDir()
	writeObject(t, www, "form", 1000, 9)
	f := startFleet(t, www, 1)
	e := f.edges[0]
	nreq := f.proxy.nreqs()
	payload := []byte("name=shoal&x=1")
	resp, _ := fetchBytes(t, newClient(), http.MethodPost, e.url+"/form?q=1",
		http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, bytes.NewReader(payload))
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST via %s: status %s, want the origin's 405", e.name, resp.Status)
	}
	if got := resp.Header.Get("Allow"); got != "GET, HEAD" {
		t.Errorf("POST via %s: Allow %q, want the origin's \"GET, HEAD\"", e.name, got)
	}
	t.Logf("POST via %s: %s, Allow %q, Cache-Status %q", e.name, resp.Status, resp.Header.Get("Allow"), resp.Header.Get("Cache-Status"))
	reqs := f.proxy.requests(nreq)
	if !slices.Equal(reqs, []string{"POST /form?q=1"}) {
		t.Errorf("origin saw %q, want one POST /form?q=1", reqs)
	}
	f.proxy.mu.Lock()
	posts := slices.Clone(f.proxy.posts)
	f.proxy.mu.Unlock()
	if len(posts) != 1 || !bytes.Equal(posts[0], payload) {
		t.Errorf("origin got POST bodies %q, want [%q]", posts, payload)
	}
}
