package swarm

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE" {
		t.Fatalf("%s: no PEM certificate", path)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestWriteCerts(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls") // WriteCerts creates it
	if err := WriteCerts(dir, []string{"127.0.0.1", "node-a.example", ""}); err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct {
		name string
		mode fs.FileMode
	}{
		{CACertFile, 0o644},
		{CAKeyFile, 0o600},
		{NodeCertFile, 0o644},
		{NodeKeyFile, 0o600},
	} {
		fi, err := os.Stat(filepath.Join(dir, f.name))
		if err != nil {
			t.Fatal(err)
		}
		// The umask may take permissions away, never add them.
		if got := fi.Mode().Perm(); got&^f.mode != 0 {
			t.Errorf("%s: got mode %v, want at most %v", f.name, got, f.mode)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 4 {
		t.Errorf("got %d files in %s, want 4", len(entries), dir)
	}

	ca := readCert(t, filepath.Join(dir, CACertFile))
	node := readCert(t, filepath.Join(dir, NodeCertFile))
	if !ca.IsCA {
		t.Error("ca.crt is not a CA")
	}
	if len(node.IPAddresses) != 1 || !node.IPAddresses[0].Equal(net.ParseIP("127.0.0.1")) {
		t.Errorf("got IP SANs %v, want [127.0.0.1]", node.IPAddresses)
	}
	if !slices.Equal(node.DNSNames, []string{"node-a.example"}) {
		t.Errorf("got DNS SANs %v, want [node-a.example]", node.DNSNames)
	}
	verify(t, ca, node)

	// A second call keeps the fleet CA and signs a new node certificate.
	caPEM, _ := os.ReadFile(filepath.Join(dir, CACertFile))
	caKey, _ := os.ReadFile(filepath.Join(dir, CAKeyFile))
	if err := WriteCerts(dir, []string{"10.0.0.2"}); err != nil {
		t.Fatal(err)
	}
	caPEM2, _ := os.ReadFile(filepath.Join(dir, CACertFile))
	caKey2, _ := os.ReadFile(filepath.Join(dir, CAKeyFile))
	if !bytes.Equal(caPEM, caPEM2) || !bytes.Equal(caKey, caKey2) {
		t.Error("second WriteCerts replaced the fleet CA")
	}
	node2 := readCert(t, filepath.Join(dir, NodeCertFile))
	if node2.Equal(node) {
		t.Error("second WriteCerts kept the old node certificate")
	}
	verify(t, ca, node2)

	if _, err := LoadCredentials(dir); err != nil {
		t.Errorf("LoadCredentials: %v", err)
	}
}

func verify(t *testing.T, ca, node *x509.Certificate) {
	t.Helper()
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if _, err := node.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
			t.Errorf("node certificate for usage %v: %v", usage, err)
		}
	}
}

func TestWriteCertsHalfCA(t *testing.T) {
	for _, keep := range []string{CACertFile, CAKeyFile} {
		t.Run(keep, func(t *testing.T) {
			dir := t.TempDir()
			if err := WriteCerts(dir, nil); err != nil {
				t.Fatal(err)
			}
			for _, f := range []string{CACertFile, CAKeyFile} {
				if f != keep {
					os.Remove(filepath.Join(dir, f))
				}
			}
			kept, _ := os.ReadFile(filepath.Join(dir, keep))
			err := WriteCerts(dir, nil)
			if err == nil || !strings.Contains(err.Error(), "half") {
				t.Errorf("got %v, want an error about half a CA", err)
			}
			if now, _ := os.ReadFile(filepath.Join(dir, keep)); !bytes.Equal(now, kept) {
				t.Errorf("WriteCerts overwrote %s", keep)
			}
		})
	}
}

func TestLoadCredentialsErrors(t *testing.T) {
	t.Run("no dir", func(t *testing.T) {
		_, err := LoadCredentials("")
		if err == nil || !strings.Contains(err.Error(), "shoal certs") {
			t.Errorf("got %v, want an error that says how to create certificates", err)
		}
	})
	t.Run("empty dir", func(t *testing.T) {
		dir := t.TempDir()
		_, err := LoadCredentials(dir)
		if !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("got %v, want fs.ErrNotExist", err)
		}
		if err == nil || !strings.Contains(err.Error(), "shoal certs --dir "+dir) {
			t.Errorf("got %v, want an error that says how to create certificates", err)
		}
	})
	t.Run("no node certificate", func(t *testing.T) {
		dir := t.TempDir()
		if err := WriteCerts(dir, nil); err != nil {
			t.Fatal(err)
		}
		os.Remove(filepath.Join(dir, NodeKeyFile))
		if _, err := LoadCredentials(dir); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("got %v, want fs.ErrNotExist", err)
		}
	})
	t.Run("garbage CA", func(t *testing.T) {
		dir := t.TempDir()
		if err := WriteCerts(dir, nil); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, CACertFile), []byte("not PEM"), 0o644)
		if _, err := LoadCredentials(dir); err == nil {
			t.Error("got nil error for a CA file without a certificate")
		}
	})
}

func TestWriteCertsUnreadableCAKey(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root reads any file")
	}
	dir := t.TempDir()
	if err := WriteCerts(dir, nil); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(dir, CACertFile))
	keyPath := filepath.Join(dir, CAKeyFile)
	key, _ := os.ReadFile(keyPath)
	os.Chmod(keyPath, 0)
	if err := WriteCerts(dir, nil); err == nil {
		t.Error("got nil error with an unreadable CA key")
	}
	os.Chmod(keyPath, 0o600)
	if now, _ := os.ReadFile(keyPath); !bytes.Equal(now, key) {
		t.Error("WriteCerts replaced a CA key it could not read")
	}
}
