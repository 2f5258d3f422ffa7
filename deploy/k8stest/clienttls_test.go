package k8stest

import (
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
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/quic-go/quic-go/http3"
	corev1 "k8s.io/api/core/v1"
)

// selfSigned returns a PEM certificate and key for host, with serial as its
// serial number (to tell a rotated certificate from the old one).
func selfSigned(t *testing.T, host string, serial int64) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: host}, DNSNames: []string{host},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
}

// clientTLSSecrets adds the client certificates' Secrets of the client-tls
// values: the user's downloads-example-com-tls, and the one cert-manager
// would write for the chart's Certificate.
func clientTLSSecrets(t *testing.T, m manifest) manifest {
	t.Helper()
	cert := m.get("Certificate", "shoal-client-0")
	if cert == nil {
		t.Fatal("no Certificate shoal-client-0")
	}
	for _, sh := range []struct{ secret, host string }{
		{"downloads-example-com-tls", "downloads.example.com"},
		{cert.Certificate.Spec.SecretName, cert.Certificate.Spec.DNSNames[0]},
	} {
		c, k := selfSigned(t, sh.host, 1)
		s := &corev1.Secret{Type: corev1.SecretTypeTLS, Data: map[string][]byte{"tls.crt": c, "tls.key": k}}
		s.Name = sh.secret
		m = append(m, object{Kind: "Secret", Name: s.Name, Obj: s})
	}
	return m
}

// checkClientTLSRuns: the edge the chart configures serves clients over
// HTTPS (HTTP/1.1 and HTTP/2) and HTTP/3 with the certificate SNI names,
// advertises HTTP/3 at the Service's port, and picks up a renewed
// certificate written into the mounted Secret without a restart.
func checkClientTLSRuns(t *testing.T, m manifest, edgeDir string, httpsPort int) {
	t.Helper()
	const body = "Hello from the Shoal reference origin.\n"
	addr := fmt.Sprintf("127.0.0.1:%d", httpsPort)
	// serial fetches /hello.txt over proto with SNI host and returns the
	// serial number of the certificate the edge presented.
	serial := func(host, proto string) int64 {
		t.Helper()
		tc := &tls.Config{ServerName: host, InsecureSkipVerify: true} // self-signed: the name is checked below
		var rt http.RoundTripper
		switch proto {
		case "h3":
			h3 := &http3.Transport{TLSClientConfig: tc}
			defer h3.Close()
			rt = h3
		default:
			tr := &http.Transport{TLSClientConfig: tc, Protocols: new(http.Protocols)}
			tr.Protocols.SetHTTP1(proto == "h1")
			tr.Protocols.SetHTTP2(proto == "h2")
			defer tr.CloseIdleConnections()
			rt = tr
		}
		c := &http.Client{Transport: rt, Timeout: 30 * time.Second}
		resp, err := c.Get("https://" + addr + "/hello.txt")
		if err != nil {
			t.Fatalf("%s %s: %v", proto, host, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || string(b) != body {
			t.Fatalf("%s %s: %d %q", proto, host, resp.StatusCode, b)
		}
		if want := map[string]int{"h1": 1, "h2": 2, "h3": 3}[proto]; resp.ProtoMajor != want {
			t.Errorf("%s %s: answered over %s", proto, host, resp.Proto)
		}
		if proto != "h3" {
			if got := resp.Header.Get("Alt-Svc"); got != `h3=":443"; ma=86400` {
				t.Errorf("%s %s: Alt-Svc %q, want the Service's port 443", proto, host, got)
			}
		}
		leaf := resp.TLS.PeerCertificates[0]
		if !slices.Contains(leaf.DNSNames, host) {
			t.Errorf("%s %s: certificate for %v", proto, host, leaf.DNSNames)
		}
		return leaf.SerialNumber.Int64()
	}
	for _, host := range []string{"downloads.example.com", "media.example.com"} {
		for _, proto := range []string{"h1", "h2", "h3"} {
			serial(host, proto)
		}
	}
	// cert-manager renews media.example.com's certificate: the kubelet
	// rewrites the mounted files, and the edge serves the new one.
	var vol string
	p, c := m.edge(t)
	for _, vm := range c.VolumeMounts {
		if v := volume(&p.Template.Spec, vm.Name); v != nil && v.Secret != nil && v.Secret.SecretName == "media-example-com-tls" {
			vol = filepath.Join(edgeDir, "volumes", vm.Name)
		}
	}
	if vol == "" {
		t.Fatal("no volume of the Secret media-example-com-tls")
	}
	cp, kp := selfSigned(t, "media.example.com", 2)
	if err := os.WriteFile(filepath.Join(vol, "tls.key"), kp, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(vol, "tls.crt"), cp, 0o600); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for serial("media.example.com", "h2") != 2 {
		if time.Now().After(deadline) {
			t.Fatal("the renewed certificate was not served within 20 s")
		}
		time.Sleep(200 * time.Millisecond)
	}
	if got := serial("downloads.example.com", "h1"); got != 1 {
		t.Errorf("downloads.example.com after media's renewal: serial %d, want 1", got)
	}
}
