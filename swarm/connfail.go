package swarm

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/quic-go/quic-go"
)

// Reasons a connection with a peer failed: ConnectError.Reason, and the
// reason label of shoal_peer_connect_failures_total. An operator reads
// them in the log and on /admin/peers; each says what to fix.
const (
	// ReasonUnknownAuthority: the peer's certificate is not from this
	// fleet's CA (two `shoal certs` runs, a copied --tls-dir).
	ReasonUnknownAuthority = "unknown_authority"
	// ReasonExpired: a certificate of the chain has expired.
	ReasonExpired = "expired"
	// ReasonNotYetValid: a certificate of the chain is not valid yet (a
	// clock behind, or a certificate from the future).
	ReasonNotYetValid = "not_yet_valid"
	// ReasonPeerRejected: the peer refused this node's certificate; its
	// own log says why.
	ReasonPeerRejected = "peer_rejected"
	// ReasonALPN: the two sides share no TLS application protocol (not a
	// shoal peer port, or another protocol).
	ReasonALPN = "alpn"
	// ReasonProtocolVersion: the two sides share no QUIC or peer protocol
	// version.
	ReasonProtocolVersion = "protocol_version"
	// ReasonTimeout: no handshake within the dial timeout (nothing
	// listening, a firewall, a peer down).
	ReasonTimeout = "timeout"
	// ReasonRefused: the peer's host refused the datagrams (ICMP port
	// unreachable: nothing listens there).
	ReasonRefused = "refused"
	// ReasonResolve: the peer's name did not resolve.
	ReasonResolve = "resolve"
	// ReasonOther: anything else; the message says what.
	ReasonOther = "other"
)

// ConnectError is a failed connection with a peer, classified.
type ConnectError struct {
	// Peer is the peer's address: as dialled, or the remote address of a
	// connection accepted.
	Peer string
	// Side is "dial" when this node dialled, "accept" when the peer did.
	Side string
	// Reason is one of the Reason constants.
	Reason string
	// Detail says it in words: for certificates, whose and which CA.
	Detail string
	// Err is the underlying error.
	Err error
}

func (e *ConnectError) Error() string {
	verb := "dial"
	if e.Side == "accept" {
		verb = "accepting"
	}
	return fmt.Sprintf("swarm: %s %s: %s: %s", verb, e.Peer, strings.ReplaceAll(e.Reason, "_", " "), e.Detail)
}

// Unwrap returns the underlying error.
func (e *ConnectError) Unwrap() error { return e.Err }

// certError is a peer chain that failed verification, classified.
type certError struct {
	reason, detail string
	err            error
}

func (e *certError) Error() string { return "swarm: peer certificate: " + e.detail }
func (e *certError) Unwrap() error { return e.err }

// Fingerprint returns the SHA-256 fingerprint of c as openssl prints it
// (`openssl x509 -noout -fingerprint -sha256`): upper-case hex pairs
// separated by colons.
func Fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	var b strings.Builder
	for i, x := range sum {
		if i > 0 {
			b.WriteByte(':')
		}
		fmt.Fprintf(&b, "%02X", x)
	}
	return b.String()
}

// describeCA names a CA certificate for a log line: subject and fingerprint.
func describeCA(c *x509.Certificate) string {
	return fmt.Sprintf("%q (SHA-256 %s)", c.Subject.String(), Fingerprint(c))
}

// verifyChain verifies a peer's presented chain (leaf first) against the
// fleet CA for usage at now, and says what is wrong when it does not.
func (c *Credentials) verifyChain(certs []*x509.Certificate, usage x509.ExtKeyUsage, now time.Time) error {
	if len(certs) == 0 {
		return &certError{reason: ReasonOther, detail: "the peer sent no certificate", err: errors.New("no certificate")}
	}
	inter := x509.NewCertPool()
	for _, ic := range certs[1:] {
		inter.AddCert(ic)
	}
	leaf := certs[0]
	_, err := leaf.Verify(x509.VerifyOptions{
		Roots: c.CA, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{usage}, CurrentTime: now,
	})
	if err == nil {
		return nil
	}
	var ua x509.UnknownAuthorityError
	var ci x509.CertificateInvalidError
	switch {
	case errors.As(err, &ua):
		return &certError{reason: ReasonUnknownAuthority, detail: c.unknownAuthority(certs), err: err}
	case errors.As(err, &ci) && ci.Reason == x509.Expired:
		for _, pc := range certs {
			if now.After(pc.NotAfter) {
				return &certError{reason: ReasonExpired, err: err,
					detail: fmt.Sprintf("certificate %q expired at %s", pc.Subject.String(), pc.NotAfter.UTC().Format(time.RFC3339))}
			}
			if now.Before(pc.NotBefore) {
				return &certError{reason: ReasonNotYetValid, err: err,
					detail: fmt.Sprintf("certificate %q is not valid before %s (is a clock wrong?)", pc.Subject.String(), pc.NotBefore.UTC().Format(time.RFC3339))}
			}
		}
		return &certError{reason: ReasonExpired, detail: err.Error(), err: err}
	}
	return &certError{reason: ReasonOther, detail: err.Error(), err: err}
}

// unknownAuthority says which CA issued the peer's certificate and which
// this node trusts: the fix is to give both the same --tls-dir CA.
func (c *Credentials) unknownAuthority(certs []*x509.Certificate) string {
	leaf := certs[0]
	theirs := fmt.Sprintf("%q", leaf.Issuer.String())
	for _, ic := range certs[1:] {
		if ic.Subject.String() == leaf.Issuer.String() && leaf.CheckSignatureFrom(ic) == nil {
			theirs = describeCA(ic)
			break
		}
	}
	if theirs == fmt.Sprintf("%q", leaf.Issuer.String()) && len(leaf.AuthorityKeyId) > 0 {
		theirs += fmt.Sprintf(" (authority key ID %X)", leaf.AuthorityKeyId)
	}
	ours := "none"
	if len(c.CACerts) > 0 {
		parts := make([]string, len(c.CACerts))
		for i, ca := range c.CACerts {
			parts[i] = describeCA(ca)
		}
		ours = strings.Join(parts, ", ")
	}
	return fmt.Sprintf("the peer's certificate is signed by CA %s, this node trusts CA %s: give every edge the ca.crt of one `shoal certs` run", theirs, ours)
}

// classifyDial turns the error of a failed dial into a ConnectError;
// verifyErr is what this node's own check of the peer's chain said, if
// it ran and failed.
func classifyDial(peer string, err error, verifyErr error) *ConnectError {
	ce := &ConnectError{Peer: peer, Side: "dial", Err: err}
	var cerr *certError
	var te *quic.TransportError
	var hto *quic.HandshakeTimeoutError
	var ito *quic.IdleTimeoutError
	var vne *quic.VersionNegotiationError
	var dns *net.DNSError
	switch {
	case errors.As(verifyErr, &cerr), errors.As(err, &cerr):
		ce.Reason, ce.Detail = cerr.reason, cerr.detail
	case errors.As(err, &dns):
		ce.Reason, ce.Detail = ReasonResolve, err.Error()
	case errors.As(err, &vne):
		ce.Reason, ce.Detail = ReasonProtocolVersion, fmt.Sprintf("no common QUIC version: %v", err)
	case errors.As(err, &te) && te.ErrorCode.IsCryptoError() && te.Remote:
		ce.Reason, ce.Detail = alertReason(uint8(te.ErrorCode - 0x100))
	case errors.As(err, &te) && te.ErrorCode.IsCryptoError():
		// This side's TLS failed: the only cases are ALPN and the
		// certificate (above).
		if strings.Contains(te.Error(), "application protocol") {
			ce.Reason, ce.Detail = ReasonALPN, fmt.Sprintf("the peer does not speak %s: %v", ALPN, err)
		} else {
			ce.Reason, ce.Detail = ReasonOther, err.Error()
		}
	case errors.As(err, &hto), errors.As(err, &ito), errors.Is(err, context.DeadlineExceeded):
		ce.Reason, ce.Detail = ReasonTimeout, "no handshake within the dial timeout (nothing listening there, a firewall, or the peer is down)"
	case errors.Is(err, syscall.ECONNREFUSED):
		ce.Reason, ce.Detail = ReasonRefused, "the host refused the connection: nothing listens on that UDP port"
	default:
		ce.Reason, ce.Detail = ReasonOther, err.Error()
	}
	return ce
}

// alertReason classifies a TLS alert the peer sent.
func alertReason(alert uint8) (reason, detail string) {
	const (
		badCertificate       = 42
		certificateExpired   = 45
		unknownCA            = 48
		protocolVersion      = 70
		noApplicationProtocl = 120
	)
	switch alert {
	case noApplicationProtocl:
		return ReasonALPN, fmt.Sprintf("the peer does not speak %s (TLS alert no_application_protocol)", ALPN)
	case protocolVersion:
		return ReasonProtocolVersion, "the peer refused the TLS version (TLS alert protocol_version)"
	case badCertificate, unknownCA, certificateExpired:
		return ReasonPeerRejected, fmt.Sprintf("the peer rejected this node's certificate (TLS alert %s): its log says why; most often its CA differs", tls.AlertError(alert).Error())
	}
	return ReasonOther, fmt.Sprintf("the peer ended the handshake (TLS alert %s)", tls.AlertError(alert).Error())
}
