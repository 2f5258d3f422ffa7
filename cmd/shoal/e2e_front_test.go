package main

// End-to-end tests of the client-facing front (package front) through the
// shoal binary: HTTPS with HTTP/1.1 and HTTP/2, HTTP/3, Alt-Svc, SNI and
// certificate rotation.

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/quic-go/quic-go/http3"
)

// clientCA is a CA of the test's own for the certificates clients see
// (never the fleet's peer CA).
type clientCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
	pool *x509.CertPool
}

func newClientCA(t *testing.T) *clientCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test client CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &clientCA{cert: cert, key: key, pool: pool, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue writes a certificate for names (and 127.0.0.1) with the given
// serial to certFile and its key to keyFile, as a rotation would: a new
// file renamed over the old one.
func (ca *clientCA) issue(t *testing.T, certFile, keyFile string, serial int64, names ...string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: names[0]},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames: names, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	writeAtomic(t, keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}))
	writeAtomic(t, certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

func writeAtomic(t *testing.T, path string, b []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// frontEdge is a lone edge with HTTPS and HTTP/3 listeners.
type frontEdge struct {
	*edgeProc
	f           *fleet
	ca          *clientCA
	tlsAddr, h3 string
	certA, keyA string
	certB, keyB string
}

// startFrontEdge starts an origin serving www and one edge with
// certificates for a.test (the default) and b.test, and extra flags.
func startFrontEdge(t *testing.T, www string, extra ...string) *frontEdge {
	t.Helper()
	dir := t.TempDir()
	fe := &frontEdge{ca: newClientCA(t), tlsAddr: freeTCP(t), h3: freeUDP(t),
		certA: filepath.Join(dir, "a.crt"), keyA: filepath.Join(dir, "a.key"),
		certB: filepath.Join(dir, "b.crt"), keyB: filepath.Join(dir, "b.key")}
	fe.ca.issue(t, fe.certA, fe.keyA, 100, "a.test", "localhost")
	fe.ca.issue(t, fe.certB, fe.keyB, 200, "b.test")
	fe.f = loneFleet(t, www)
	args := append([]string{"--tls-listen", fe.tlsAddr, "--h3-listen", fe.h3,
		"--tls-cert", fe.certA, "--tls-key", fe.keyA, "--tls-cert", fe.certB, "--tls-key", fe.keyB}, extra...)
	fe.edgeProc = startEdge(t, edgeSpec{name: "edge", origin: fe.f.proxy.url, tlsDir: fleetTLS(t),
		peer: fe.f.peers[0], peers: fe.f.peers, extra: args})
	fe.waitReady(t)
	return fe
}

func (fe *frontEdge) tlsConfig(serverName string) *tls.Config {
	return &tls.Config{RootCAs: fe.ca.pool, ServerName: serverName}
}

// h1, h2 and h3 return clients that speak only that protocol to the edge.
func (fe *frontEdge) h1() *http.Client {
	tr := &http.Transport{TLSClientConfig: fe.tlsConfig("a.test"), DisableCompression: true}
	tr.Protocols = new(http.Protocols)
	tr.Protocols.SetHTTP1(true)
	return &http.Client{Transport: tr, Timeout: time.Minute}
}

func (fe *frontEdge) h2() *http.Client {
	tr := &http.Transport{TLSClientConfig: fe.tlsConfig("a.test"), DisableCompression: true}
	tr.Protocols = new(http.Protocols)
	tr.Protocols.SetHTTP2(true)
	return &http.Client{Transport: tr, Timeout: time.Minute}
}

func (fe *frontEdge) h3Client(t *testing.T) *http.Client {
	tr := &http3.Transport{TLSClientConfig: fe.tlsConfig("a.test"), DisableCompression: true}
	t.Cleanup(func() { tr.Close() })
	return &http.Client{Transport: tr, Timeout: time.Minute}
}

// serial returns the serial number of the certificate the TLS listener
// shows for serverName.
func (fe *frontEdge) serial(t *testing.T, serverName string) int64 {
	t.Helper()
	c, err := tls.Dial("tcp", fe.tlsAddr, fe.tlsConfig(serverName))
	if err != nil {
		t.Fatalf("TLS handshake for %q: %v", serverName, err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
}

// TestE2EHTTPSAndHTTP3 fetches one object through one edge over plain
// HTTP, h2c, HTTPS with HTTP/1.1 and HTTP/2, HTTP/3 and curl: every body is the
// object's, byte for byte, with the protocol asked for; HTTPS responses
// advertise HTTP/3 and the edge's metrics count every protocol.
func TestE2EHTTPSAndHTTP3(t *testing.T) {
	shoalBinary(t)
	www := t.TempDir()
	obj := writeObject(t, www, "pkg/app.bin", 3<<20+12345, 7)
	fe := startFrontEdge(t, www, "--h2c")
	h3Port := fe.h3[strings.LastIndexByte(fe.h3, ':')+1:]
	wantAltSvc := `h3=":` + h3Port + `"; ma=86400`

	resp, sum, n := fetch(t, newClient(), "GET", fe.url+obj.path, nil)
	checkWhole(t, "plain HTTP", obj, resp, sum, n)
	if v := resp.Header.Get("Alt-Svc"); v != "" {
		t.Errorf("plain HTTP response carries Alt-Svc %q; HTTP/3 is for https", v)
	}
	// h2c, as a load balancer speaks it: HTTP/2 with prior knowledge on
	// the plain listener.
	h2c := &http.Transport{Protocols: new(http.Protocols), DisableCompression: true}
	h2c.Protocols.SetUnencryptedHTTP2(true)
	resp, sum, n = fetch(t, &http.Client{Transport: h2c}, "GET", fe.url+obj.path, nil)
	checkWhole(t, "h2c", obj, resp, sum, n)
	if resp.Proto != "HTTP/2.0" {
		t.Errorf("h2c: response over %s, want HTTP/2.0", resp.Proto)
	}
	https := "https://a.test:" + fe.tlsAddr[strings.LastIndexByte(fe.tlsAddr, ':')+1:]
	for _, c := range []struct {
		name   string
		client *http.Client
		url    string
		proto  string
	}{
		{"HTTPS HTTP/1.1", fe.h1(), "https://" + fe.tlsAddr, "HTTP/1.1"},
		{"HTTPS HTTP/2", fe.h2(), "https://" + fe.tlsAddr, "HTTP/2.0"},
		{"HTTP/3", fe.h3Client(t), "https://" + fe.h3, "HTTP/3.0"},
	} {
		resp, sum, n := fetch(t, c.client, "GET", c.url+obj.path, nil)
		checkWhole(t, c.name, obj, resp, sum, n)
		if resp.Proto != c.proto {
			t.Errorf("%s: response over %s, want %s", c.name, resp.Proto, c.proto)
		}
		if v := resp.Header.Get("Alt-Svc"); v != wantAltSvc {
			t.Errorf("%s: Alt-Svc %q, want %q", c.name, v, wantAltSvc)
		}
		// A range too, to see that the edge's semantics are the same.
		resp, b := fetchBytes(t, c.client, "GET", c.url+obj.path, http.Header{"Range": {"bytes=1048570-1048600"}}, nil)
		if resp.StatusCode != http.StatusPartialContent || string(b) != string(obj.bytesAt(t, 1048570, 31)) {
			t.Errorf("%s: range: %s, %d bytes, want 206 with the object's bytes", c.name, resp.Status, len(b))
		}
	}

	curl, err := exec.LookPath("curl")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("curl is not installed (CI=true): install Debian's curl")
		}
		t.Log("curl is not installed: skipping the curl fetches")
	} else {
		caFile := filepath.Join(t.TempDir(), "ca.pem")
		if err := os.WriteFile(caFile, fe.ca.pem, 0o644); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct{ flag, proto string }{{"--http1.1", "1.1"}, {"--http2", "2"}} {
			out := filepath.Join(t.TempDir(), "body")
			cmd := exec.CommandContext(t.Context(), curl, "--silent", "--show-error", "--fail", c.flag,
				"--cacert", caFile, "--resolve", "a.test:"+fe.tlsAddr[strings.LastIndexByte(fe.tlsAddr, ':')+1:]+":127.0.0.1",
				"--output", out, "--write-out", "%{http_version} %{http_code}", https+obj.path)
			res, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("curl %s: %v\n%s", c.flag, err, res)
			}
			if got, want := string(res), c.proto+" 200"; got != want {
				t.Errorf("curl %s: %q, want %q", c.flag, got, want)
			}
			b, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			h := sha256.Sum256(b)
			if int64(len(b)) != obj.size || hex.EncodeToString(h[:]) != obj.sum {
				t.Errorf("curl %s: %d bytes with sha256 %x, want %d bytes with %s", c.flag, len(b), h, obj.size, obj.sum)
			}
		}
	}

	m := scrape(t, fe.edgeProc)
	for _, p := range []string{"HTTP/1.1", "HTTP/2.0", "HTTP/3.0"} {
		if m.sum("shoal_client_requests_total", "proto="+p) < 2 {
			t.Errorf("shoal_client_requests_total{proto=%q} = %v, want at least 2", p, m.sum("shoal_client_requests_total", "proto="+p))
		}
	}
	if got := m.sum("shoal_requests_total", "method=GET"); got < 7 {
		t.Errorf("shoal_requests_total{method=GET} = %v, want at least 7 (every protocol counts)", got)
	}
	if got := fe.f.proxy.bytes.Load(); got > obj.size+2<<20 {
		t.Errorf("the origin sent %s for a %s object fetched over every protocol", mibs(got), mibs(obj.size))
	}
}

// TestE2ETLSCertificates checks SNI selection and rotation without a
// restart: a rewritten certificate is served to the next handshakes (TLS
// and QUIC), and a broken rewrite keeps the last good one.
func TestE2ETLSCertificates(t *testing.T) {
	shoalBinary(t)
	www := t.TempDir()
	obj := writeObject(t, www, "x.bin", 4096, 1)
	fe := startFrontEdge(t, www)

	for _, c := range []struct {
		sni  string
		want int64
	}{{"a.test", 100}, {"b.test", 200}, {"localhost", 100}} {
		if got := fe.serial(t, c.sni); got != c.want {
			t.Errorf("SNI %q: certificate serial %d, want %d", c.sni, got, c.want)
		}
	}
	// No SNI (an IP address): the default, the first certificate.
	c, err := tls.Dial("tcp", fe.tlsAddr, &tls.Config{RootCAs: fe.ca.pool})
	if err != nil {
		t.Fatalf("TLS handshake without SNI: %v", err)
	}
	if got := c.ConnectionState().PeerCertificates[0].SerialNumber.Int64(); got != 100 {
		t.Errorf("no SNI: serial %d, want the default 100", got)
	}
	c.Close()

	// Rotate b.test: new key, new serial. The next handshakes see it.
	fe.ca.issue(t, fe.certB, fe.keyB, 201, "b.test")
	deadline := time.Now().Add(15 * time.Second)
	for fe.serial(t, "b.test") != 201 {
		if time.Now().After(deadline) {
			t.Fatal("the rotated b.test certificate was not served within 15s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	h3 := &http3.Transport{TLSClientConfig: fe.tlsConfig("b.test")}
	defer h3.Close()
	req, _ := http.NewRequestWithContext(t.Context(), "GET", "https://"+fe.h3+obj.path, nil)
	resp, err := h3.RoundTrip(req)
	if err != nil {
		t.Fatalf("HTTP/3 with SNI b.test: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if got := resp.TLS.PeerCertificates[0].SerialNumber.Int64(); got != 201 {
		t.Errorf("HTTP/3 after rotation: serial %d, want 201", got)
	}
	if got := fe.serial(t, "a.test"); got != 100 {
		t.Errorf("a.test after rotating b.test: serial %d, want 100", got)
	}

	// A broken rewrite (half a file, as a careless copy leaves it) keeps
	// the last good certificate and says so in the log.
	good, _ := os.ReadFile(fe.certB)
	writeAtomic(t, fe.certB, good[:len(good)/2])
	deadline = time.Now().Add(15 * time.Second)
	for !strings.Contains(readFile(t, fe.log), "does not load; keeping the one loaded") {
		if time.Now().After(deadline) {
			t.Fatal("no error logged for a broken certificate file within 15s")
		}
		if got := fe.serial(t, "b.test"); got != 201 {
			t.Fatalf("after a broken rewrite: serial %d, want the last good 201", got)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got := fe.serial(t, "b.test"); got != 201 {
		t.Errorf("after a broken rewrite: serial %d, want the last good 201", got)
	}
	resp, _, _ = fetch(t, fe.h2(), "GET", "https://"+fe.tlsAddr+obj.path, nil)
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET after a broken rewrite: %s", resp.Status)
	}

	// SIGTERM with HTTPS and HTTP/3 clients still connected: a clean exit,
	// without waiting out --drain-timeout for idle connections.
	start := time.Now()
	stopEdge(t, fe.edgeProc)
	t.Logf("SIGTERM to exit: %v", time.Since(start))
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("SIGTERM took %v with idle HTTPS and HTTP/3 clients connected", took)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
