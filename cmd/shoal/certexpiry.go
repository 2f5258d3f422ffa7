package main

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shoalcdn/shoal/swarm"
)

// expiryWarning is how long before a certificate expires an edge starts
// to say so: two weeks leaves time for a renewal that needs a person.
const expiryWarning = 14 * 24 * time.Hour

// expiringCert is one certificate an edge presents: the fleet (peer)
// certificate, or a client (front TLS) certificate read from its file at
// each look, as the front reloads it when it changes.
type expiringCert struct {
	name string
	leaf func() (*x509.Certificate, error)
}

// edgeCerts lists the certificates of an edge: "peer" for the fleet
// certificate, and each --tls-cert by its name (clientCertName).
func edgeCerts(creds *swarm.Credentials, clientCerts []string) []expiringCert {
	out := []expiringCert{{name: "peer", leaf: func() (*x509.Certificate, error) {
		if l := creds.Leaf(); l != nil {
			return l, nil
		}
		return nil, fmt.Errorf("the node certificate does not parse")
	}}}
	for _, path := range clientCerts {
		leaf, err := readLeaf(path)
		name := filepath.Base(path)
		if err == nil {
			name = clientCertName(leaf, path)
		}
		out = append(out, expiringCert{name: name, leaf: func() (*x509.Certificate, error) { return readLeaf(path) }})
	}
	return out
}

// clientCertName names a client certificate for the metric's cert label
// and the log: its first DNS name, else its subject's common name, else
// its file's name.
func clientCertName(c *x509.Certificate, path string) string {
	switch {
	case len(c.DNSNames) > 0:
		return c.DNSNames[0]
	case c.Subject.CommonName != "":
		return c.Subject.CommonName
	}
	return filepath.Base(path)
}

// readLeaf reads the first certificate of a PEM file.
func readLeaf(path string) (*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	for {
		var blk *pem.Block
		if blk, b = pem.Decode(b); blk == nil {
			return nil, fmt.Errorf("%s: no certificate in PEM", path)
		}
		if blk.Type == "CERTIFICATE" {
			return x509.ParseCertificate(blk.Bytes)
		}
	}
}

// expiryWords says how a certificate's expiry stands at now, and whether
// it deserves a warning.
func expiryWords(c *x509.Certificate, now time.Time) (string, bool) {
	left := c.NotAfter.Sub(now)
	when := c.NotAfter.UTC().Format(time.RFC3339)
	switch {
	case left <= 0:
		return fmt.Sprintf("expired at %s", when), true
	case left < expiryWarning:
		return fmt.Sprintf("expires in %s, at %s: renew it", roundDays(left), when), true
	}
	return fmt.Sprintf("valid until %s (%s)", when, roundDays(left)), false
}

func roundDays(d time.Duration) string {
	if d < 48*time.Hour {
		return d.Round(time.Minute).String()
	}
	return fmt.Sprintf("%d days", int(d.Hours()/24))
}

var certExpiryDesc = prometheus.NewDesc("shoal_certificate_expiry_seconds",
	"Seconds until each certificate this edge presents expires (negative once expired): cert=\"peer\" for the fleet certificate, else a client (front TLS) certificate by its first DNS name.",
	[]string{"cert"}, nil)

// certCollector reports shoal_certificate_expiry_seconds at scrape time.
type certCollector struct{ certs []expiringCert }

func (c certCollector) Describe(ch chan<- *prometheus.Desc) { ch <- certExpiryDesc }

func (c certCollector) Collect(ch chan<- prometheus.Metric) {
	now := time.Now()
	for _, ec := range c.certs {
		if leaf, err := ec.leaf(); err == nil {
			ch <- prometheus.MustNewConstMetric(certExpiryDesc, prometheus.GaugeValue, leaf.NotAfter.Sub(now).Seconds(), ec.name)
		}
	}
}

// watchCertificates registers the expiry metric of an edge's
// certificates on reg and warns, now and twice a day until ctx ends, of
// each that expires within two weeks.
func watchCertificates(ctx context.Context, log *slog.Logger, reg prometheus.Registerer, creds *swarm.Credentials, clientCerts []string) {
	certs := edgeCerts(creds, clientCerts)
	if err := reg.Register(certCollector{certs}); err != nil {
		log.Warn("registering the certificate expiry metric", "err", err)
	}
	check := func() {
		now := time.Now()
		for _, ec := range certs {
			leaf, err := ec.leaf()
			if err != nil {
				continue // the front reports a file it cannot read
			}
			if words, warn := expiryWords(leaf, now); warn {
				kind := "client certificate"
				if ec.name == "peer" {
					kind = "fleet (peer) certificate"
				}
				log.Warn(fmt.Sprintf("%s %s", kind, words), "cert", ec.name, "subject", leaf.Subject.String(),
					"not_after", leaf.NotAfter.UTC(), "days_left", strings.TrimSuffix(fmt.Sprintf("%.1f", leaf.NotAfter.Sub(now).Hours()/24), ".0"))
			}
		}
	}
	check()
	go func() {
		t := time.NewTicker(12 * time.Hour)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				check()
			}
		}
	}()
}
