package main

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shoalcdn/shoal/swarm"
)

// The tests of issue 18, "mistakes are loud": each mistake an operator
// makes with two edges in front of one origin is said in the logs, on
// /admin/peers, and by `shoal check`.

// readLog returns what p has written so far.
func (p *proc) readLog(t *testing.T) string {
	t.Helper()
	b, _ := os.ReadFile(p.log)
	return string(b)
}

// peersDoc reads e's /admin/peers.
func peersDoc(t *testing.T, e *edgeProc) []map[string]any {
	t.Helper()
	resp, err := e.client(5 * time.Second).Get(e.admin + "/admin/peers")
	if err != nil {
		t.Fatalf("%s /admin/peers: %v", e.name, err)
	}
	defer resp.Body.Close()
	var doc struct {
		Members []map[string]any `json:"members"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatalf("%s /admin/peers: %v", e.name, err)
	}
	return doc.Members
}

// peerEntry returns the member of addr in /admin/peers, or nil.
func peerEntry(t *testing.T, e *edgeProc, addr string) map[string]any {
	for _, m := range peersDoc(t, e) {
		if m["addr"] == addr {
			return m
		}
	}
	return nil
}

// runCheckCmd runs `shoal check` with args and env, and returns its
// output and exit status.
func runCheckCmd(t *testing.T, env []string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(shoalBinary(t), append([]string{"check"}, args...)...)
	cmd.Env = append(cleanEnv(), env...)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &ee):
		return string(out), ee.ExitCode()
	}
	t.Fatalf("shoal check: %v\n%s", err, out)
	return "", 0
}

// checkArgs are the flags of `shoal check` for the edge self of a fleet
// of peers: the check dials from a port of its own.
func checkArgs(origin, tlsDir, self string, peers []string, extra ...string) []string {
	return append([]string{"--origin", origin, "--tls-dir", tlsDir, "--advertise", self, "--peers", strings.Join(peers, ","),
		"--segment-size", "1MiB", "--shards", e2eShards}, extra...)
}

func TestLoudTwoCAs(t *testing.T) {
	www := t.TempDir()
	origin := startOrigin(t, www)
	var dirs []string
	for i := range 2 {
		dir := filepath.Join(t.TempDir(), fmt.Sprint("tls", i))
		if out, err := runShoal("certs", "--dir", dir, "--hosts", "127.0.0.1"); err != nil {
			t.Fatalf("shoal certs: %v\n%s", err, out)
		}
		dirs = append(dirs, dir)
	}
	peers := []string{freeUDP(t), freeUDP(t)}
	var edges []*edgeProc
	for i := range 2 {
		edges = append(edges, startEdge(t, edgeSpec{name: fmt.Sprint("edge", i+1), origin: origin.url, tlsDir: dirs[i], peer: peers[i], peers: peers}))
	}
	for _, e := range edges {
		e.waitReady(t)
	}
	for i, e := range edges {
		ca := readCA(t, dirs[i])
		waitFor(t, e.proc, "the unknown authority logged", func() bool {
			return strings.Contains(e.readLog(t), "reason=unknown_authority")
		})
		if log := e.readLog(t); !strings.Contains(log, swarm.Fingerprint(ca)) {
			t.Errorf("%s does not name its own CA's fingerprint %s", e.name, swarm.Fingerprint(ca))
		}
		var last map[string]any
		waitFor(t, e.proc, "/admin/peers shows the peer's last error", func() bool {
			m := peerEntry(t, e, peers[1-i])
			last, _ = m["last_error"].(map[string]any)
			return last != nil
		})
		if last["reason"] != "unknown_authority" || !strings.Contains(fmt.Sprint(last["message"]), "CA") {
			t.Errorf("%s /admin/peers last_error %v, want unknown_authority naming the CAs", e.name, last)
		}
		if n := scrape(t, e).sum("shoal_peer_connect_failures_total", "reason=unknown_authority"); n < 1 {
			t.Errorf("%s: shoal_peer_connect_failures_total{reason=unknown_authority} = %v", e.name, n)
		}
	}
	out, code := runCheckCmd(t, nil, checkArgs(origin.url, dirs[0], peers[0], peers)...)
	if code == 0 || !strings.Contains(out, "unknown_authority") || !strings.Contains(out, "error peer "+peers[1]) {
		t.Errorf("shoal check across two CAs exited %d, want non-zero naming the unknown authority:\n%s", code, out)
	}
}

func readCA(t *testing.T, dir string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, swarm.CACertFile))
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestLoudLayoutMismatch(t *testing.T) {
	www := t.TempDir()
	o := writeObject(t, www, "big.bin", 3<<20, 18)
	origin := startOrigin(t, www)
	proxy := startProxy(t, origin.url)
	peers := []string{freeUDP(t), freeUDP(t)}
	sizes := []string{"1MiB", "512KiB"}
	var edges []*edgeProc
	for i := range 2 {
		edges = append(edges, startEdge(t, edgeSpec{name: fmt.Sprint("edge", i+1), origin: proxy.url, tlsDir: fleetTLS(t),
			peer: peers[i], peers: peers, extra: []string{"--segment-size", sizes[i]}}))
	}
	for _, e := range edges {
		e.waitReady(t)
	}
	for i, e := range edges {
		waitFor(t, e.proc, "the other edge marked incompatible", func() bool {
			m := peerEntry(t, e, peers[1-i])
			return m != nil && m["incompatible"] == true
		})
		log := e.readLog(t)
		if !strings.Contains(log, "layout differs") || !strings.Contains(log, "1048576") || !strings.Contains(log, "524288") {
			t.Errorf("%s does not log the mismatch with both segment sizes", e.name)
		}
	}
	for _, e := range edges {
		resp, sum, n := fetch(t, e.client(30*time.Second), "GET", e.url+o.path, nil)
		checkWhole(t, e.name, o, resp, sum, n)
	}
	if got := proxy.bytes.Load(); got > 2*o.size {
		t.Errorf("origin sent %s for an object of %s through two edges, want at most twice", mibs(got), mibs(o.size))
	}
	for _, e := range edges {
		if log := e.readLog(t); strings.Contains(log, "unreachable") {
			t.Errorf("%s logs an unreachable coordinator, when the layouts differ", e.name)
		}
		if n := scrape(t, e).sum("shoal_peers_incompatible"); n != 1 {
			t.Errorf("%s: shoal_peers_incompatible %v, want 1", e.name, n)
		}
	}
}

func TestLoudEnvironment(t *testing.T) {
	www := t.TempDir()
	origin := startOrigin(t, www)
	self := freeUDP(t)
	args := checkArgs(origin.url, fleetTLS(t), self, []string{self})
	out, code := runCheckCmd(t, []string{"SHOAL_ORIGN=http://127.0.0.1:1"}, args...)
	if code != 0 || !strings.Contains(out, "SHOAL_ORIGN") || !strings.Contains(out, "did you mean SHOAL_ORIGIN") {
		t.Errorf("SHOAL_ORIGN: check exited %d, want 0 with a warning naming SHOAL_ORIGIN:\n%s", code, out)
	}
	out, code = runCheckCmd(t, []string{"SHOAL_ORIGN=http://127.0.0.1:1", "SHOAL_STRICT_ENV=true"}, args...)
	if code == 0 || !strings.Contains(out, "SHOAL_ORIGIN") || !strings.Contains(out, "--strict-env") {
		t.Errorf("SHOAL_ORIGN under --strict-env: exited %d, want an error naming SHOAL_ORIGIN:\n%s", code, out)
	}
	// The edge itself warns at start, and refuses under --strict-env.
	e := startEdge(t, edgeSpec{name: "edge", origin: origin.url, tlsDir: fleetTLS(t), peer: self, peers: []string{self},
		env: []string{"SHOAL_ORIGN=http://127.0.0.1:1"}})
	waitFor(t, e.proc, "a warning naming SHOAL_ORIGIN", func() bool { return strings.Contains(e.readLog(t), "did you mean SHOAL_ORIGIN") })
	strict := startEdge(t, edgeSpec{name: "strict", origin: origin.url, tlsDir: fleetTLS(t), peer: freeUDP(t),
		env: []string{"SHOAL_ORIGN=http://127.0.0.1:1"}, extra: []string{"--strict-env"}})
	if code := strict.exitCode(t, readyTimeout); code == 0 || !strings.Contains(strict.readLog(t), "SHOAL_ORIGIN") {
		t.Errorf("--strict-env with SHOAL_ORIGN: exit %d, want an error naming SHOAL_ORIGIN:\n%s", code, strict.readLog(t))
	}
	// Conflicting flags are an error with advice.
	out, code = runCheckCmd(t, nil, append(args, "--require-signed")...)
	if code == 0 || !strings.Contains(out, "--trust-key") {
		t.Errorf("--require-signed without --trust-key: exited %d:\n%s", code, out)
	}
}

// TestLoudCertificateExpiry starts an edge whose certificate expires in
// three days: it warns, and the metric says so.
func TestLoudCertificateExpiry(t *testing.T) {
	www := t.TempDir()
	origin := startOrigin(t, www)
	dir := t.TempDir()
	writeShortCert(t, fleetTLS(t), dir, 72*time.Hour)
	self := freeUDP(t)
	e := startEdge(t, edgeSpec{name: "edge", origin: origin.url, tlsDir: dir, peer: self, peers: []string{self}})
	e.waitReady(t)
	if log := e.readLog(t); !strings.Contains(log, "fleet (peer) certificate expires in") {
		t.Errorf("no warning of the certificate expiring in 3 days:\n%s", log)
	}
	left := scrape(t, e).sum("shoal_certificate_expiry_seconds", "cert=peer")
	if left < 71*3600 || left > 72*3600 {
		t.Errorf("shoal_certificate_expiry_seconds{cert=peer} = %v, want about 3 days", left)
	}
	out, code := runCheckCmd(t, nil, checkArgs(origin.url, dir, self, []string{self})...)
	if code != 0 || !strings.Contains(out, "warn  certificate peer") {
		t.Errorf("check of a certificate expiring in 3 days: exit %d, want 0 with a warning:\n%s", code, out)
	}
}

// writeShortCert writes into dir the CA of caDir and a node certificate it
// signs, valid for d.
func writeShortCert(t *testing.T, caDir, dir string, d time.Duration) {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(filepath.Join(caDir, swarm.CACertFile), filepath.Join(caDir, swarm.CAKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	// A node key of the fleet's: the key does not matter, the dates do.
	nodePair, err := tls.LoadX509KeyPair(filepath.Join(caDir, swarm.NodeCertFile), filepath.Join(caDir, swarm.NodeKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(nodePair.Certificate[0])
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "shoal node"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(d),
		KeyUsage: x509.KeyUsageDigitalSignature, IPAddresses: leaf.IPAddresses,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, leaf.PublicKey, pair.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	copyFile(t, filepath.Join(caDir, swarm.CACertFile), filepath.Join(dir, swarm.CACertFile))
	copyFile(t, filepath.Join(caDir, swarm.NodeKeyFile), filepath.Join(dir, swarm.NodeKeyFile))
	if err := os.WriteFile(filepath.Join(dir, swarm.NodeCertFile), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestLoudCheckHealthyFleet runs `shoal check` with the flags of one edge
// of a healthy three-edge fleet: exit 0, one line per peer.
func TestLoudCheckHealthyFleet(t *testing.T) {
	www := t.TempDir()
	f := startFleet(t, www, 3)
	out, code := runCheckCmd(t, nil, checkArgs(f.proxy.url, fleetTLS(t), f.peers[0], f.peers)...)
	if code != 0 {
		t.Fatalf("shoal check of a healthy fleet exited %d:\n%s", code, out)
	}
	for i, p := range f.peers {
		want := "ok    peer " + p + ": "
		if n := strings.Count(out, want); n != 1 {
			t.Errorf("peer %d: %d lines %q, want 1:\n%s", i, n, want, out)
		}
	}
	if !strings.Contains(out, "layout agrees") || strings.Contains(out, "error") {
		t.Errorf("check output:\n%s", out)
	}
}

// portOn returns a port free for UDP and TCP on every address of ips.
func portOn(t *testing.T, ips []string) string {
	t.Helper()
	for range 50 {
		pc, err := net.ListenPacket("udp", ips[0]+":0")
		if err != nil {
			t.Fatal(err)
		}
		port := fmt.Sprint(pc.LocalAddr().(*net.UDPAddr).Port)
		pc.Close()
		free := true
		for _, ip := range ips {
			pc, err := net.ListenPacket("udp", net.JoinHostPort(ip, port))
			if err != nil {
				free = false
				break
			}
			pc.Close()
			ln, err := net.Listen("tcp", net.JoinHostPort(ip, port))
			if err != nil {
				free = false
				break
			}
			ln.Close()
		}
		if free {
			return port
		}
	}
	t.Fatalf("no port free on all of %v", ips)
	return ""
}

// TestLoudCheckJoin runs `shoal check` with the flags of an edge of a
// gossip fleet (--join): three edges on 127.0.0.1-3 with one peer port,
// as the pods behind the Helm chart's headless Service, and a fourth of
// another CA. The check dials every address the seeds name at the peer
// port over the peer protocol: exit 0 and one line per peer for the
// fleet; with the fourth among the seeds, exit 1 naming the unknown
// authority, or 0 with a warning under --remote-warnings.
func TestLoudCheckJoin(t *testing.T) {
	ips := []string{"127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4"}
	for _, ip := range ips[1:] {
		ln, err := net.Listen("tcp", ip+":0")
		if err != nil {
			t.Skipf("skipping: %s is not a loopback address here: %v", ip, err)
		}
		ln.Close()
	}
	www := t.TempDir()
	origin := startOrigin(t, www)
	tlsDir := fleetTLS(t)
	otherTLS := filepath.Join(t.TempDir(), "other")
	if out, err := runShoal("certs", "--dir", otherTLS, "--hosts", "127.0.0.4"); err != nil {
		t.Fatalf("shoal certs: %v\n%s", err, out)
	}
	peerPort, gossipPort := portOn(t, ips), portOn(t, ips)
	addr := func(i int, port string) string { return net.JoinHostPort(ips[i], port) }
	var edges []*edgeProc
	for i := range 3 {
		edges = append(edges, startEdge(t, edgeSpec{
			name: fmt.Sprintf("edge%d", i+1), origin: origin.url, tlsDir: tlsDir, peer: addr(i, peerPort),
			extra: []string{"--join", addr(0, gossipPort), "--gossip-listen", addr(i, gossipPort)},
		}))
	}
	stranger := startEdge(t, edgeSpec{name: "stranger", origin: origin.url, tlsDir: otherTLS, peer: addr(3, peerPort)})
	for _, e := range append(edges, stranger) {
		e.waitReady(t)
	}
	seeds := func(n int) string {
		var s []string
		for i := range n {
			s = append(s, addr(i, gossipPort))
		}
		return strings.Join(s, ",")
	}
	args := func(n int, extra ...string) []string {
		return append([]string{"--origin", origin.url, "--tls-dir", tlsDir, "--peer-listen", addr(0, peerPort),
			"--join", seeds(n), "--segment-size", "1MiB", "--shards", e2eShards}, extra...)
	}

	out, code := runCheckCmd(t, nil, args(3)...)
	if code != 0 {
		t.Fatalf("shoal check --join of a healthy fleet exited %d:\n%s", code, out)
	}
	for i := range 3 {
		if n := strings.Count(out, "ok    peer "+addr(i, peerPort)+": "); n != 1 {
			t.Errorf("edge%d: %d lines, want 1:\n%s", i+1, n, out)
		}
	}
	if n := strings.Count(out, "layout agrees"); n != 2 || !strings.Contains(out, "this edge (not dialled)") || strings.Contains(out, "error") {
		t.Errorf("want two peers dialled with layouts that agree and this edge not dialled:\n%s", out)
	}
	// --outside (a helm test pod): every peer is dialled, this address too.
	out, code = runCheckCmd(t, nil, args(3, "--outside")...)
	if n := strings.Count(out, "layout agrees"); code != 0 || n != 3 {
		t.Errorf("shoal check --outside exited %d with %d peers agreeing, want 0 and 3:\n%s", code, n, out)
	}

	out, code = runCheckCmd(t, nil, args(4)...)
	stranger4 := "error peer " + addr(3, peerPort) + ": unknown_authority: "
	if code == 0 || !strings.Contains(out, stranger4) || !strings.Contains(out, swarm.Fingerprint(readCA(t, otherTLS))) {
		t.Errorf("shoal check with an edge of another CA exited %d, want non-zero with %q naming its CA:\n%s", code, stranger4, out)
	}
	if n := strings.Count(out, "layout agrees"); n != 2 {
		t.Errorf("the fleet's two other peers: %d agree, want 2:\n%s", n, out)
	}
	// --remote-warnings (an init container): the same finding, a warning.
	out, code = runCheckCmd(t, nil, args(4, "--remote-warnings")...)
	if code != 0 || !strings.Contains(out, "warn  peer "+addr(3, peerPort)+": unknown_authority: ") {
		t.Errorf("shoal check --remote-warnings exited %d, want 0 with the unknown authority as a warning:\n%s", code, out)
	}
}
