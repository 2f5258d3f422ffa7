package swarm

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// File names inside a TLS directory, as `shoal certs` writes them.
const (
	CACertFile   = "ca.crt"
	CAKeyFile    = "ca.key"
	NodeCertFile = "node.crt"
	NodeKeyFile  = "node.key"
)

// Credentials are what a node needs for mutual TLS with its fleet: the
// fleet CA and this node's certificate. Peers are not authenticated by name:
// membership of the fleet is holding a certificate the fleet CA signed, so
// one certificate may serve every node.
type Credentials struct {
	// CA holds the fleet CA certificates that peers' chains must end in.
	CA *x509.CertPool
	// Cert is this node's certificate and key.
	Cert tls.Certificate
}

// LoadCredentials reads dir/ca.crt, dir/node.crt and dir/node.key.
func LoadCredentials(dir string) (*Credentials, error) {
	if dir == "" {
		return nil, errors.New("swarm: no TLS directory: peers authenticate with a certificate from the fleet CA (create one with `shoal certs --dir D`)")
	}
	ca, err := os.ReadFile(filepath.Join(dir, CACertFile))
	if err != nil {
		return nil, fmt.Errorf("swarm: fleet CA: %w (create one with `shoal certs --dir %s`)", err, dir)
	}
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, NodeCertFile), filepath.Join(dir, NodeKeyFile))
	if err != nil {
		return nil, fmt.Errorf("swarm: node certificate: %w", err)
	}
	return NewCredentials(ca, cert)
}

// NewCredentials builds Credentials from the fleet CA in PEM and a node
// certificate.
func NewCredentials(caPEM []byte, cert tls.Certificate) (*Credentials, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("swarm: fleet CA: no certificate found in PEM")
	}
	return &Credentials{CA: pool, Cert: cert}, nil
}

// ServerConfig returns the TLS configuration of the listening side: it
// requires a client certificate that chains to the fleet CA.
func (c *Credentials) ServerConfig() *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		NextProtos:   []string{ALPN},
		Certificates: []tls.Certificate{c.Cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    c.CA,
	}
}

// ClientConfig returns the TLS configuration of the dialling side: it
// presents this node's certificate and accepts a server whose chain ends in
// the fleet CA, whatever name or address it has.
func (c *Credentials) ClientConfig() *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		NextProtos:   []string{ALPN},
		Certificates: []tls.Certificate{c.Cert},
		// InsecureSkipVerify turns off only the standard name check;
		// VerifyConnection still rejects any chain not from the fleet CA.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("swarm: peer sent no certificate")
			}
			inter := x509.NewCertPool()
			for _, ic := range cs.PeerCertificates[1:] {
				inter.AddCert(ic)
			}
			_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{
				Roots: c.CA, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			})
			if err != nil {
				return fmt.Errorf("swarm: peer certificate not from the fleet CA: %w", err)
			}
			return nil
		},
	}
}

// WriteCerts creates the fleet CA in dir (ca.crt, ca.key) unless it exists,
// and a node certificate (node.crt, node.key) signed by it, valid for hosts
// (IP addresses or DNS names) and for both server and client use. Keys are
// ECDSA P-256, written with mode 0600.
func WriteCerts(dir string, hosts []string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("swarm: certs: %w", err)
	}
	caCert, caKey, err := loadOrCreateCA(dir)
	if err != nil {
		return err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("swarm: certs: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: "shoal node"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().AddDate(2, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		return fmt.Errorf("swarm: certs: %w", err)
	}
	if err := writePEM(filepath.Join(dir, NodeKeyFile), "EC PRIVATE KEY", mustMarshalEC(key), 0o600); err != nil {
		return err
	}
	return writePEM(filepath.Join(dir, NodeCertFile), "CERTIFICATE", der, 0o644)
}

func loadOrCreateCA(dir string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	certPath, keyPath := filepath.Join(dir, CACertFile), filepath.Join(dir, CAKeyFile)
	certPEM, err1 := os.ReadFile(certPath)
	keyPEM, err2 := os.ReadFile(keyPath)
	if err1 == nil && err2 == nil {
		pair, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return nil, nil, fmt.Errorf("swarm: existing fleet CA in %s: %w", dir, err)
		}
		key, ok := pair.PrivateKey.(*ecdsa.PrivateKey)
		if !ok {
			return nil, nil, fmt.Errorf("swarm: existing fleet CA key in %s is not ECDSA", dir)
		}
		cert, err := x509.ParseCertificate(pair.Certificate[0])
		if err != nil {
			return nil, nil, fmt.Errorf("swarm: existing fleet CA in %s: %w", dir, err)
		}
		return cert, key, nil
	}
	// Only a missing file may be created: a CA key that exists but cannot
	// be read (permissions) must not be overwritten by a new CA.
	for _, err := range []error{err1, err2} {
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, nil, fmt.Errorf("swarm: fleet CA: %w", err)
		}
	}
	if err1 == nil || err2 == nil {
		return nil, nil, fmt.Errorf("swarm: %s holds only half of the fleet CA (%s, %s)", dir, CACertFile, CAKeyFile)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("swarm: certs: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "shoal fleet CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("swarm: certs: %w", err)
	}
	if err := writePEM(keyPath, "EC PRIVATE KEY", mustMarshalEC(key), 0o600); err != nil {
		return nil, nil, err
	}
	if err := writePEM(certPath, "CERTIFICATE", der, 0o644); err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	return cert, key, err
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return n
}

func mustMarshalEC(k *ecdsa.PrivateKey) []byte {
	b, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		panic(err) // a P-256 key always marshals
	}
	return b
}

func writePEM(path, typ string, der []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), mode); err != nil {
		return fmt.Errorf("swarm: certs: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("swarm: certs: %w", err)
	}
	return nil
}
