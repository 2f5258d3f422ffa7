package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/shoalcdn/shoal/edge"
	"github.com/shoalcdn/shoal/front"
)

// frontFlags are the flags of the client-facing listeners and their limits
// (package front).
type frontFlags struct {
	tlsListen, h3Listen *string
	h3Port              *int
	certs, keys         listFlag
	h2c                 *bool
	maxHeader           int64
	readHeader, idle    *time.Duration
	maxConns            *int
	minSendRate         int64
	sendWindow          *time.Duration
	rateLimit           *float64
	rateBurst           *int
	trustedProxies      *string
}

func addFrontFlags(fs *flag.FlagSet) *frontFlags {
	f := &frontFlags{
		tlsListen:      fs.String("tls-listen", "", "client HTTPS listen address (HTTP/1.1 and HTTP/2); empty disables"),
		h3Listen:       fs.String("h3-listen", "", "client HTTP/3 listen address (UDP), with the --tls-cert certificates, advertised by Alt-Svc; empty disables"),
		h3Port:         fs.Int("h3-advertise-port", 0, "the UDP port Alt-Svc names for HTTP/3, when clients reach --h3-listen on another port (a Kubernetes Service, NAT); 0: the --h3-listen port"),
		h2c:            fs.Bool("h2c", false, "also accept cleartext HTTP/2 (prior knowledge) on --listen, for a load balancer in front"),
		readHeader:     fs.Duration("read-header-timeout", 10*time.Second, "how long a client has to send a request header"),
		idle:           fs.Duration("idle-timeout", 120*time.Second, "how long a keep-alive client connection may sit without a request"),
		maxConns:       fs.Int("max-conns", 10000, "open client TCP connections at most, and QUIC ones apart; at the cap a new one evicts the oldest idle one; 0 means no cap"),
		sendWindow:     fs.Duration("min-send-window", 30*time.Second, "the window over which --min-send-rate is measured"),
		rateLimit:      fs.Float64("rate-limit", 0, "requests per second one client IP address may send on average (429 beyond); 0 disables"),
		rateBurst:      fs.Int("rate-burst", 0, "requests one client IP may send at once (default twice --rate-limit)"),
		trustedProxies: fs.String("trusted-proxies", "", "comma-separated CIDR prefixes of load balancers in front: for a peer in one, the client IP (for --rate-limit and logs) is the rightmost X-Forwarded-For (or Forwarded) address outside them; empty: the headers are ignored"),
		maxHeader:      64 << 10,
		minSendRate:    1 << 10,
	}
	fs.Var(&f.certs, "tls-cert", "PEM certificate chain for clients; repeat or comma-separate for several hosts (chosen by SNI, the first is the default); reloaded when the file changes")
	fs.Var(&f.keys, "tls-key", "PEM private key of each --tls-cert, in the same order")
	fs.Var(sizeFlag{&f.maxHeader}, "max-header-bytes", "largest request header (431 beyond)")
	fs.Var(sizeFlag{&f.minSendRate}, "min-send-rate", "slowest a client may take a response or send a request body, in bytes per second averaged over --min-send-window; 0 disables")
	return f
}

// serve makes the front of e, opens the HTTPS and HTTP/3 sockets, attaches
// the front to e (whose Shutdown stops it) and serves ln and those sockets,
// each Serve sending its end to errc. The function it returns closes the
// UDP socket once the edge has shut down.
func (f *frontFlags) serve(e *edge.Edge, ln net.Listener, log *slog.Logger, errc chan<- error) (func(), error) {
	var certs *front.Certs
	if len(f.certs) != len(f.keys) {
		return nil, fmt.Errorf("%d --tls-cert but %d --tls-key: give one key per certificate, in the same order", len(f.certs), len(f.keys))
	}
	if len(f.certs) > 0 {
		files := make([]front.CertFile, len(f.certs))
		for i := range f.certs {
			files[i] = front.CertFile{Cert: f.certs[i], Key: f.keys[i]}
		}
		var err error
		if certs, err = front.LoadCerts(files, 0, log); err != nil {
			return nil, fmt.Errorf("--tls-cert: %w", err)
		}
	}
	if certs == nil && (*f.tlsListen != "" || *f.h3Listen != "") {
		return nil, errors.New("--tls-listen and --h3-listen need --tls-cert and --tls-key")
	}
	trusted, err := front.ParseTrustedProxies(*f.trustedProxies)
	if err != nil {
		return nil, fmt.Errorf("--trusted-proxies: %w", err)
	}
	srv, err := front.New(front.Config{
		Handler:           e,
		Certs:             certs,
		H2C:               *f.h2c,
		H3Port:            *f.h3Port,
		MaxHeaderBytes:    int(min(f.maxHeader, 1<<30)),
		ReadHeaderTimeout: *f.readHeader,
		IdleTimeout:       *f.idle,
		MaxConns:          *f.maxConns,
		MinSendRate:       f.minSendRate,
		SendWindow:        *f.sendWindow,
		RateLimit:         *f.rateLimit,
		RateBurst:         *f.rateBurst,
		TrustedProxies:    trusted,
		Logger:            log,
		Registerer:        e.Registerer(),
	})
	if err != nil {
		return nil, err
	}
	var tlsLn net.Listener
	var h3 net.PacketConn
	closeAll := func() {
		if tlsLn != nil {
			tlsLn.Close()
		}
		if h3 != nil {
			h3.Close()
		}
	}
	if *f.tlsListen != "" {
		if tlsLn, err = net.Listen("tcp", *f.tlsListen); err != nil {
			return nil, fmt.Errorf("--tls-listen: %w", err)
		}
	}
	if *f.h3Listen != "" {
		if h3, err = net.ListenPacket("udp", *f.h3Listen); err != nil {
			closeAll()
			return nil, fmt.Errorf("--h3-listen: %w", err)
		}
	}
	if err := e.Attach(srv); err != nil {
		closeAll()
		return nil, err
	}
	go func() { errc <- srv.Serve(ln) }()
	attrs := []any{"listen", ln.Addr().String(), "h2c", *f.h2c}
	if tlsLn != nil {
		go func() { errc <- srv.ServeTLS(tlsLn) }()
		attrs = append(attrs, "tls_listen", tlsLn.Addr().String())
	}
	if h3 != nil {
		go func() { errc <- srv.ServeHTTP3(h3) }()
		attrs = append(attrs, "h3_listen", h3.LocalAddr().String())
	}
	log.Info("serving clients", attrs...)
	return func() {
		if h3 != nil {
			h3.Close()
		}
	}, nil
}

// listFlag is a list flag: each use appends, and a use may be a
// comma-separated list (as SHOAL_TLS_CERT=a.crt,b.crt is).
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(s string) error {
	*l = append(*l, splitList(s)...)
	return nil
}
