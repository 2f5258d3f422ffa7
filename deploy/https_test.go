package deploy

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/quic-go/quic-go/http3"
)

// TestSystemdHTTPS checks the HTTPS and HTTP/3 example for systemd: the
// drop-in gives the service the certificates' group, read access to their
// directory and the one capability port 443 needs, and passes
// systemd-analyze verify with the unit; every variable of https.env.example
// is a flag; and an edge run with edge.env.example and https.env.example
// (its paths and ports moved here) serves HTTPS with the certificate each
// SNI name asks for, HTTP/3, and Alt-Svc.
func TestSystemdHTTPS(t *testing.T) {
	const dropIn, envFile = "systemd/https.conf", "systemd/https.env.example"
	u := parseUnit(t, dropIn)
	for _, kv := range []string{
		"Service/SupplementaryGroups=shoal-tls", "Service/ReadOnlyPaths=/etc/shoal/client-tls",
		"Service/AmbientCapabilities=CAP_NET_BIND_SERVICE", "Service/CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
		"Service/PrivateUsers=no",
	} {
		sk, want, _ := strings.Cut(kv, "=")
		section, key, _ := strings.Cut(sk, "/")
		if !slices.Contains(u[section][key], want) {
			t.Errorf("%s: [%s] %s=%s: got %q", dropIn, section, key, want, u[section][key])
		}
	}
	if len(u) != 1 || len(u["Service"]) != 5 {
		t.Errorf("%s sets %v: want only the five settings above", dropIn, u)
	}

	flags := edgeFlags(t)
	env := readEnv(t, envFile)
	for k := range env {
		if flag, ok := strings.CutPrefix(k, "SHOAL_"); !ok || !flags[strings.ToLower(strings.ReplaceAll(flag, "_", "-"))] {
			t.Errorf("%s: %s is not a flag of shoal edge: it would be ignored", envFile, k)
		}
	}
	b, _ := os.ReadFile(envFile)
	for _, l := range strings.Split(string(b), "\n") {
		if k, _, ok := strings.Cut(strings.TrimPrefix(l, "#"), "="); ok && strings.HasPrefix(k, "SHOAL_") &&
			!flags[strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(k, "SHOAL_"), "_", "-"))] {
			t.Errorf("%s: commented %s is not a flag of shoal edge", envFile, k)
		}
	}
	certs, keys := strings.Split(env["SHOAL_TLS_CERT"], ","), strings.Split(env["SHOAL_TLS_KEY"], ",")
	if len(certs) != 2 || len(keys) != len(certs) {
		t.Fatalf("SHOAL_TLS_CERT %v, SHOAL_TLS_KEY %v: want two hosts, a key each", certs, keys)
	}
	for _, f := range append(slices.Clone(certs), keys...) {
		if filepath.Dir(f) != "/etc/shoal/client-tls" {
			t.Errorf("%s is outside /etc/shoal/client-tls, which the drop-in makes readable", f)
		}
	}

	// Run it: the edge's own example plus these lines, with the
	// certificates in a temporary directory and loopback ports.
	dir := t.TempDir()
	var hosts []string
	for i, c := range certs {
		host := strings.TrimSuffix(filepath.Base(c), ".crt")
		hosts = append(hosts, host)
		if strings.TrimSuffix(filepath.Base(keys[i]), ".key") != host {
			t.Errorf("key %s does not go with certificate %s", keys[i], c)
		}
		writeSelfSigned(t, filepath.Join(dir, filepath.Base(c)), filepath.Join(dir, filepath.Base(keys[i])), host, int64(i+1))
	}
	port := freeTCPUDPPort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	environ := []string{}
	for k, v := range readEnv(t, "systemd/edge.env.example") {
		if k == "SHOAL_DISK_CACHE" {
			v = "64MiB"
		}
		environ = append(environ, k+"="+v)
	}
	for k, v := range env {
		switch k {
		case "SHOAL_TLS_LISTEN", "SHOAL_H3_LISTEN":
			v = addr
		case "SHOAL_TLS_CERT", "SHOAL_TLS_KEY":
			v = strings.ReplaceAll(v, "/etc/shoal/client-tls", dir)
		}
		environ = append(environ, k+"="+v)
	}
	if out, err := exec.Command(imageBinary(t), "certs", "--dir", filepath.Join(dir, "tls")).CombinedOutput(); err != nil {
		t.Fatalf("shoal certs: %v\n%s", err, out)
	}
	admin := freePort(t)
	cmd := exec.Command(imageBinary(t), "edge", "--tls-dir="+filepath.Join(dir, "tls"), "--data-dir="+filepath.Join(dir, "data"),
		"--listen=127.0.0.1:0", "--peer-listen=127.0.0.1:0", fmt.Sprintf("--admin-listen=127.0.0.1:%d", admin), "--drain-delay=0s",
		"--origin=http://127.0.0.1:1") // no origin: a 502 over HTTPS is as good as a 200 here
	cmd.Env = append(os.Environ(), environ...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("after SIGTERM: %v", err)
			}
		case <-time.After(40 * time.Second):
			cmd.Process.Kill()
			t.Errorf("the edge did not stop within 40 s of SIGTERM")
		}
		if t.Failed() {
			t.Logf("shoal edge:\n%s", &out)
		}
	}()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/readyz", admin))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready after 20 s")
		}
	}
	for i, host := range hosts {
		for _, proto := range []string{"h1", "h2", "h3"} {
			tc := &tls.Config{ServerName: host, InsecureSkipVerify: true} // self-signed: the name and serial are checked below
			var rt http.RoundTripper
			if proto == "h3" {
				h3 := &http3.Transport{TLSClientConfig: tc}
				defer h3.Close()
				rt = h3
			} else {
				tr := &http.Transport{TLSClientConfig: tc, Protocols: new(http.Protocols)}
				tr.Protocols.SetHTTP1(proto == "h1")
				tr.Protocols.SetHTTP2(proto == "h2")
				defer tr.CloseIdleConnections()
				rt = tr
			}
			resp, err := (&http.Client{Transport: rt, Timeout: 20 * time.Second}).Get("https://" + addr + "/x")
			if err != nil {
				t.Fatalf("%s %s: %v", proto, host, err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if want := map[string]int{"h1": 1, "h2": 2, "h3": 3}[proto]; resp.ProtoMajor != want {
				t.Errorf("%s %s: answered over %s", proto, host, resp.Proto)
			}
			if leaf := resp.TLS.PeerCertificates[0]; leaf.SerialNumber.Int64() != int64(i+1) {
				t.Errorf("%s %s: certificate %v (serial %d), want %s's", proto, host, leaf.DNSNames, leaf.SerialNumber, host)
			}
			if want := fmt.Sprintf(`h3=":%d"; ma=86400`, port); proto != "h3" && resp.Header.Get("Alt-Svc") != want {
				t.Errorf("%s %s: Alt-Svc %q, want %q", proto, host, resp.Header.Get("Alt-Svc"), want)
			}
		}
	}

	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		missingTool(t, "systemd-analyze not found (Debian package systemd)")
	}
	// The unit with the drop-in beside it (SYSTEMD_UNIT_PATH makes
	// systemd-analyze read drop-ins from there), ExecStart pointing at a
	// binary that exists here.
	udir := t.TempDir()
	ub, _ := os.ReadFile("systemd/shoal-edge.service")
	unitFile := filepath.Join(udir, "shoal-edge.service")
	os.WriteFile(unitFile, bytes.ReplaceAll(ub, []byte("/usr/local/bin/shoal"), []byte(imageBinary(t))), 0o644)
	os.Mkdir(unitFile+".d", 0o755)
	db, _ := os.ReadFile(dropIn)
	os.WriteFile(filepath.Join(unitFile+".d", "https.conf"), db, 0o644)
	vcmd := exec.Command(sa, "verify", unitFile)
	vcmd.Env = append(os.Environ(), "SYSTEMD_LOG_COLOR=0", "SYSTEMD_COLORS=0", "SYSTEMD_UNIT_PATH="+udir+":")
	if vout, err := vcmd.CombinedOutput(); err != nil || len(bytes.TrimSpace(vout)) > 0 {
		t.Errorf("systemd-analyze verify with the drop-in: %v\n%s", err, vout)
	}
	scmd := exec.Command(sa, "security", "--offline=yes", "--threshold=20", unitFile)
	scmd.Env = vcmd.Env
	sout, err := scmd.CombinedOutput()
	exposure := -1.0
	if m := regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+)`).FindSubmatch(sout); m != nil {
		exposure, _ = strconv.ParseFloat(string(m[1]), 64)
	}
	if err != nil || exposure < 0 || exposure > 2.0 {
		t.Errorf("systemd-analyze security with the drop-in: %v, exposure %.1f (want at most 2.0, \"OK\"):\n%s", err, exposure, sout)
	}
	t.Logf("systemd-analyze security with the drop-in: exposure %.1f", exposure)
}

// writeSelfSigned writes a self-signed certificate for host, with serial.
func writeSelfSigned(t *testing.T, certFile, keyFile, host string, serial int64) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: host}, DNSNames: []string{host},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
}

// freeTCPUDPPort returns a loopback port free for both TCP and UDP.
func freeTCPUDPPort(t *testing.T) int {
	t.Helper()
	for range 50 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		pc, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		ln.Close()
		if err == nil {
			pc.Close()
			return port
		}
	}
	t.Fatal("no port free for both TCP and UDP")
	return 0
}
