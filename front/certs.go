package front

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// CertFile names a PEM certificate chain and its private key.
type CertFile struct {
	Cert, Key string
}

// Certs holds the certificates clients see, loaded from files and reloaded
// when the files change (cert-manager and ACME clients rotate them in place
// or by swapping symlinks). A handshake picks the first certificate whose
// names match the client's SNI, else the first one. A file that changes
// into something that does not load leaves the last good certificate in
// place and is logged; the next good version is taken up.
type Certs struct {
	files []CertFile
	every time.Duration
	log   *slog.Logger

	mu      sync.Mutex
	checked time.Time
	loaded  []loadedCert
}

type loadedCert struct {
	certPEM, keyPEM []byte
	cert            *tls.Certificate
	bad             []byte // the last certificate and key PEM that failed to load, so they are logged once
}

// DefaultReloadEvery is how often, at most, Certs looks at its files.
const DefaultReloadEvery = 2 * time.Second

// LoadCerts loads files, the first being the default certificate. The files
// are read again at most every `every` (zero means DefaultReloadEvery),
// when a handshake needs a certificate. log may be nil.
func LoadCerts(files []CertFile, every time.Duration, log *slog.Logger) (*Certs, error) {
	if len(files) == 0 {
		return nil, errors.New("front: no certificate")
	}
	if every <= 0 {
		every = DefaultReloadEvery
	}
	if log == nil {
		log = slog.Default()
	}
	c := &Certs{files: files, every: every, log: log, loaded: make([]loadedCert, len(files)), checked: time.Now()}
	for i, f := range files {
		lc, err := loadCert(f)
		if err != nil {
			return nil, err
		}
		c.loaded[i] = lc
	}
	return c, nil
}

func loadCert(f CertFile) (loadedCert, error) {
	certPEM, err := os.ReadFile(f.Cert)
	if err != nil {
		return loadedCert{}, fmt.Errorf("front: certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(f.Key)
	if err != nil {
		return loadedCert{}, fmt.Errorf("front: key: %w", err)
	}
	lc := loadedCert{certPEM: certPEM, keyPEM: keyPEM}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return lc, fmt.Errorf("front: %s with %s: %w", f.Cert, f.Key, err)
	}
	if cert.Leaf == nil {
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return lc, fmt.Errorf("front: %s: %w", f.Cert, err)
		}
	}
	lc.cert = &cert
	return lc, nil
}

// reload reads the files again if `every` has passed since the last look.
// Files are compared by content, not modification time, so a rewrite in
// the same second or a symlink swap is seen.
func (c *Certs) reload(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if now.Sub(c.checked) < c.every {
		return
	}
	c.checked = now
	for i, f := range c.files {
		old := &c.loaded[i]
		certPEM, err1 := os.ReadFile(f.Cert)
		keyPEM, err2 := os.ReadFile(f.Key)
		if err := errors.Join(err1, err2); err != nil {
			if old.bad == nil {
				c.log.Error("cannot read a rotated certificate; keeping the one loaded", "cert", f.Cert, "key", f.Key, "err", err)
				old.bad = []byte{}
			}
			continue
		}
		if bytes.Equal(certPEM, old.certPEM) && bytes.Equal(keyPEM, old.keyPEM) {
			old.bad = nil // back to what is loaded: a later breakage is news again
			continue
		}
		pair := append(append(append([]byte(nil), certPEM...), 0), keyPEM...)
		if old.bad != nil && bytes.Equal(pair, old.bad) {
			continue // already said; the next change of either file is tried
		}
		lc, err := loadCert(f)
		if err != nil || lc.cert == nil {
			c.log.Error("a changed certificate does not load; keeping the one loaded", "cert", f.Cert, "key", f.Key, "err", err)
			old.bad = pair // a certificate and its key may land a moment apart
			continue
		}
		c.log.Info("certificate reloaded", "cert", f.Cert, "names", lc.cert.Leaf.DNSNames, "not_after", lc.cert.Leaf.NotAfter)
		*old = lc
	}
}

// GetCertificate is tls.Config.GetCertificate: the first certificate that
// fits the client's SNI and signature algorithms, else the first one.
func (c *Certs) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	c.reload(time.Now())
	c.mu.Lock()
	defer c.mu.Unlock()
	if hello.ServerName != "" {
		for _, lc := range c.loaded {
			if lc.cert.Leaf.VerifyHostname(hello.ServerName) == nil && hello.SupportsCertificate(lc.cert) == nil {
				return lc.cert, nil
			}
		}
	}
	return c.loaded[0].cert, nil
}

// Current returns the certificates in use, in the order of the files.
func (c *Certs) Current() []*tls.Certificate {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]*tls.Certificate, len(c.loaded))
	for i, lc := range c.loaded {
		out[i] = lc.cert
	}
	return out
}

// TLSConfig returns a server configuration for clients: TLS 1.2 or newer
// with Go's default cipher suites and curves, certificates from c, and
// ALPN for HTTP/2 and HTTP/1.1.
func (c *Certs) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: c.GetCertificate,
		NextProtos:     []string{"h2", "http/1.1"},
	}
}
