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
	"slices"
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
	// CACerts are the same CA certificates, parsed: a failed handshake
	// names them (subject and fingerprint), and `shoal check` checks the
	// node certificate against them. Nil only in Credentials made by hand.
	CACerts []*x509.Certificate
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
// certificate. When the node certificate comes alone and a fleet CA signed
// it, the CA is presented after it: a peer of another fleet can then name
// the CA this node's certificate comes from (subject and fingerprint),
// which is what an operator compares. Verification does not depend on it:
// a peer trusts only its own roots.
func NewCredentials(caPEM []byte, cert tls.Certificate) (*Credentials, error) {
	pool := x509.NewCertPool()
	var cas []*x509.Certificate
	for rest := caPEM; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("swarm: fleet CA: %w", err)
		}
		pool.AddCert(c)
		cas = append(cas, c)
	}
	if len(cas) == 0 {
		return nil, errors.New("swarm: fleet CA: no certificate found in PEM")
	}
	if len(cert.Certificate) == 1 {
		if leaf, err := x509.ParseCertificate(cert.Certificate[0]); err == nil {
			for _, ca := range cas {
				if leaf.CheckSignatureFrom(ca) == nil {
					cert.Certificate = append(cert.Certificate[:1:1], ca.Raw)
					break
				}
			}
		}
	}
	return &Credentials{CA: pool, CACerts: cas, Cert: cert}, nil
}

// Leaf returns this node's certificate, parsed, or nil when it does not
// parse.
func (c *Credentials) Leaf() *x509.Certificate {
	if c.Cert.Leaf != nil {
		return c.Cert.Leaf
	}
	if len(c.Cert.Certificate) == 0 {
		return nil
	}
	leaf, err := x509.ParseCertificate(c.Cert.Certificate[0])
	if err != nil {
		return nil
	}
	return leaf
}

// ServerConfig returns the TLS configuration of the listening side: it
// requires a client certificate that chains to the fleet CA.
func (c *Credentials) ServerConfig() *tls.Config { return c.serverConfig(nil) }

// serverConfig is ServerConfig reporting every client it refuses to
// onFail (nil: to no one), with the client's address and why. The chain is
// verified here rather than by crypto/tls (RequireAnyClientCert, then
// VerifyConnection) so that the failure can be named.
func (c *Credentials) serverConfig(onFail func(*ConnectError)) *tls.Config {
	base := &tls.Config{
		MinVersion:   tls.VersionTLS13,
		NextProtos:   []string{ALPN},
		Certificates: []tls.Certificate{c.Cert},
		ClientAuth:   tls.RequireAnyClientCert,
	}
	verify := func(peer string) func(cs tls.ConnectionState) error {
		return func(cs tls.ConnectionState) error {
			err := c.verifyChain(cs.PeerCertificates, x509.ExtKeyUsageClientAuth, time.Now())
			if err != nil && onFail != nil {
				ce := err.(*certError)
				onFail(&ConnectError{Peer: peer, Side: "accept", Reason: ce.reason, Detail: ce.detail, Err: err})
			}
			return err
		}
	}
	base.VerifyConnection = verify("")
	base.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		peer := ""
		if hello.Conn != nil {
			peer = hello.Conn.RemoteAddr().String()
		}
		if onFail != nil && !slices.Contains(hello.SupportedProtos, ALPN) {
			onFail(&ConnectError{Peer: peer, Side: "accept", Reason: ReasonALPN,
				Detail: fmt.Sprintf("the client offered ALPN %q, a shoal peer offers %q: is it a shoal edge of this version?", hello.SupportedProtos, ALPN),
				Err:    errors.New("no common application protocol")})
		}
		cfg := base.Clone()
		cfg.GetConfigForClient = nil
		cfg.VerifyConnection = verify(peer)
		return cfg, nil
	}
	return base
}

// ClientConfig returns the TLS configuration of the dialling side: it
// presents this node's certificate and accepts a server whose chain ends in
// the fleet CA, whatever name or address it has.
func (c *Credentials) ClientConfig() *tls.Config { return c.clientConfig(nil) }

// clientConfig is ClientConfig telling verified what the check of the
// server's chain found (nil: it passed), when verified is not nil.
func (c *Credentials) clientConfig(verified func(error)) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		NextProtos:   []string{ALPN},
		Certificates: []tls.Certificate{c.Cert},
		// InsecureSkipVerify turns off only the standard name check;
		// VerifyConnection still rejects any chain not from the fleet CA.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			err := c.verifyChain(cs.PeerCertificates, x509.ExtKeyUsageServerAuth, time.Now())
			if verified != nil {
				verified(err)
			}
			return err
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
