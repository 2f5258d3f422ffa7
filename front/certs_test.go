package front

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// selfSigned writes a self-signed certificate for names with serial to
// dir/name.crt and dir/name.key and returns the file pair.
func selfSigned(t testing.TB, dir, name string, serial int64, names ...string) CertFile {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: names[0]},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), DNSNames: names}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	f := CertFile{Cert: filepath.Join(dir, name+".crt"), Key: filepath.Join(dir, name+".key")}
	os.WriteFile(f.Key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	os.WriteFile(f.Cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	return f
}

func serialFor(t *testing.T, c *Certs, sni string) int64 {
	t.Helper()
	cert, err := c.GetCertificate(&tls.ClientHelloInfo{ServerName: sni, SignatureSchemes: []tls.SignatureScheme{tls.ECDSAWithP256AndSHA256},
		SupportedVersions: []uint16{tls.VersionTLS13}, SupportedCurves: []tls.CurveID{tls.CurveP256}})
	if err != nil {
		t.Fatal(err)
	}
	return cert.Leaf.SerialNumber.Int64()
}

func TestCertsSNIAndReload(t *testing.T) {
	dir := t.TempDir()
	a := selfSigned(t, dir, "a", 1, "a.test")
	b := selfSigned(t, dir, "b", 2, "*.b.test")
	var logs bytes.Buffer
	c, err := LoadCerts([]CertFile{a, b}, time.Millisecond, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	for sni, want := range map[string]int64{"a.test": 1, "x.b.test": 2, "b.test": 1, "": 1, "other": 1} {
		if got := serialFor(t, c, sni); got != want {
			t.Errorf("SNI %q: serial %d, want %d", sni, got, want)
		}
	}
	time.Sleep(2 * time.Millisecond)
	selfSigned(t, dir, "b", 3, "*.b.test")
	if got := serialFor(t, c, "x.b.test"); got != 3 {
		t.Errorf("after rewriting b: serial %d, want 3", got)
	}
	os.WriteFile(b.Cert, []byte("not a certificate"), 0o644)
	time.Sleep(2 * time.Millisecond)
	if got := serialFor(t, c, "x.b.test"); got != 3 {
		t.Errorf("after breaking b: serial %d, want the last good 3", got)
	}
	os.Remove(a.Key)
	time.Sleep(2 * time.Millisecond)
	if got := serialFor(t, c, "a.test"); got != 1 {
		t.Errorf("after removing a's key: serial %d, want the last good 1", got)
	}
	for _, want := range []string{"does not load; keeping the one loaded", "cannot read a rotated certificate"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logs.String())
		}
	}
}

// TestCertsRenewalCertFirst: a renewal that writes the new certificate
// before its key is taken up once the key lands (the pair that failed to
// load in between is not remembered as bad for good).
func TestCertsRenewalCertFirst(t *testing.T) {
	dir := t.TempDir()
	a := selfSigned(t, dir, "a", 1, "a.test")
	c, err := LoadCerts([]CertFile{a}, time.Millisecond, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	next := selfSigned(t, t.TempDir(), "a", 2, "a.test")
	newCert, _ := os.ReadFile(next.Cert)
	newKey, _ := os.ReadFile(next.Key)
	os.WriteFile(a.Cert, newCert, 0o644) // the key still the old one
	for range 3 {
		time.Sleep(2 * time.Millisecond)
		if got := serialFor(t, c, "a.test"); got != 1 {
			t.Fatalf("new certificate with the old key: serial %d, want the old 1", got)
		}
	}
	os.WriteFile(a.Key, newKey, 0o600)
	time.Sleep(2 * time.Millisecond)
	if got := serialFor(t, c, "a.test"); got != 2 {
		t.Errorf("after the key landed too: serial %d, want 2", got)
	}
}

func TestLoadCertsErrors(t *testing.T) {
	dir := t.TempDir()
	a := selfSigned(t, dir, "a", 1, "a.test")
	b := selfSigned(t, dir, "b", 2, "b.test")
	for name, files := range map[string][]CertFile{
		"none":       nil,
		"no file":    {{Cert: filepath.Join(dir, "nope.crt"), Key: a.Key}},
		"wrong key":  {{Cert: a.Cert, Key: b.Key}},
		"key as crt": {{Cert: a.Key, Key: a.Key}},
	} {
		if _, err := LoadCerts(files, 0, nil); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
