package front

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
)

// Config configures a Server.
type Config struct {
	// Handler answers every request that passes the checks. Required.
	Handler http.Handler
	// Certs are the certificates of ServeTLS and ServeHTTP3. Nil means
	// neither can be used.
	Certs *Certs
	// H3Port is the UDP port Alt-Svc advertises for HTTP/3. Zero means
	// the port of ServeHTTP3's socket; set it when clients reach that
	// socket on another port (a Kubernetes Service, NAT).
	H3Port int
	// H2C accepts cleartext HTTP/2 with prior knowledge on Serve's
	// listeners, for a load balancer that speaks it to its backends.
	H2C bool
	// MaxHeaderBytes bounds a request's header (and request line). Zero
	// means 64 KiB. Larger headers are answered 431.
	MaxHeaderBytes int
	// MaxURL bounds a request target. Zero means 8 KiB. Longer ones are
	// answered 414.
	MaxURL int
	// ReadHeaderTimeout is how long a client has to send a request's
	// header. Zero means 10s.
	ReadHeaderTimeout time.Duration
	// IdleTimeout closes a keep-alive connection with no request for
	// this long. Zero means 120s.
	IdleTimeout time.Duration
	// MaxConns caps the open client TCP connections of all listeners of
	// Serve and ServeTLS, and apart from those the QUIC connections of
	// ServeHTTP3. At the cap a new connection evicts the oldest one with
	// no request in flight, or is closed when every one is busy (a QUIC
	// one with H3_EXCESSIVE_LOAD). Zero means no cap.
	MaxConns int
	// MinSendRate is the slowest a response may leave, and a request body
	// arrive, in bytes per second, on average over SendWindow. Zero turns
	// it off.
	MinSendRate int64
	// SendWindow is the time over which MinSendRate is measured. Zero
	// means 30s.
	SendWindow time.Duration
	// RateLimit is how many requests per second one client IP address may
	// send, on average. Zero turns rate limiting off.
	RateLimit float64
	// RateBurst is how many requests one IP may send at once. Zero means
	// twice RateLimit, at least 1.
	RateBurst int
	// TrustedProxies are the load balancers in front: when a request's
	// peer is in one of these prefixes, the client address that
	// RateLimit and the logs use is the rightmost address of
	// X-Forwarded-For (or Forwarded) that is not itself trusted (see
	// proxies.go). Empty means every peer is the client and the headers
	// are ignored.
	TrustedProxies []netip.Prefix
	// Logger receives structured logs. Nil means slog.Default().
	Logger *slog.Logger
	// Registerer receives the front's metrics. Nil means none are kept.
	Registerer prometheus.Registerer
}

// Server serves one handler on any number of plain, TLS and QUIC
// listeners, with the limits of its Config. Its zero value is not usable;
// call New.
type Server struct {
	cfg     Config
	log     *slog.Logger
	m       *metrics
	conns   *connLimiter
	rate    *rateLimiter
	handler http.Handler
	altSvc  atomic.Pointer[string]

	mu     sync.Mutex
	closed bool
	h1     []*http.Server
	h3     []*http3.Server
	h3ln   []*quic.EarlyListener // closed by Shutdown and Close: http3 leaves them open
}

// New returns a Server for cfg.
func New(cfg Config) (*Server, error) {
	if cfg.Handler == nil {
		return nil, errors.New("front: no handler")
	}
	if cfg.MaxHeaderBytes <= 0 {
		cfg.MaxHeaderBytes = 64 << 10
	}
	if cfg.MaxURL <= 0 {
		cfg.MaxURL = 8 << 10
	}
	if cfg.ReadHeaderTimeout <= 0 {
		cfg.ReadHeaderTimeout = 10 * time.Second
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 120 * time.Second
	}
	if cfg.SendWindow <= 0 {
		cfg.SendWindow = 30 * time.Second
	}
	if cfg.H3Port < 0 || cfg.H3Port > 65535 {
		return nil, fmt.Errorf("front: H3Port %d out of range", cfg.H3Port)
	}
	if cfg.MinSendRate < 0 || cfg.RateLimit < 0 || cfg.MaxConns < 0 || cfg.RateBurst < 0 {
		return nil, errors.New("front: negative limit")
	}
	if cfg.RateBurst == 0 {
		cfg.RateBurst = max(1, int(2*cfg.RateLimit))
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Server{cfg: cfg, log: cfg.Logger.With("component", "front")}
	s.m = newMetrics(cfg.Registerer)
	s.conns = newConnLimiter(cfg.MaxConns, s.m)
	if cfg.RateLimit > 0 {
		s.rate = newRateLimiter(cfg.RateLimit, cfg.RateBurst)
	}
	s.handler = http.HandlerFunc(s.serveHTTP)
	s.m.register(s.conns)
	return s, nil
}

func (s *Server) httpServer(listener string, protos *http.Protocols) *http.Server {
	return &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		MaxHeaderBytes:    s.cfg.MaxHeaderBytes,
		Protocols:         protos,
		HTTP2:             &http.HTTP2Config{MaxConcurrentStreams: 100},
		ConnState:         s.conns.setState,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if fc, ok := c.(*framedConn); ok {
				ctx = context.WithValue(ctx, framedConnKey{}, fc)
			}
			return ctx
		},
		ErrorLog: slog.NewLogLogger(s.log.With("listener", listener).Handler(), slog.LevelDebug),
	}
}

func (s *Server) track(srv *http.Server) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return http.ErrServerClosed
	}
	s.h1 = append(s.h1, srv)
	return nil
}

// Serve serves plain HTTP/1.1 on ln, and cleartext HTTP/2 if Config.H2C,
// until Shutdown. It returns http.ErrServerClosed after Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(s.cfg.H2C)
	srv := s.httpServer("http", &p)
	if err := s.track(srv); err != nil {
		return err
	}
	return srv.Serve(s.conns.listener(ln, "http", s.maxHead()))
}

// ServeTLS serves HTTPS (HTTP/1.1 and HTTP/2) on ln with Config.Certs,
// until Shutdown.
func (s *Server) ServeTLS(ln net.Listener) error {
	if s.cfg.Certs == nil {
		return errors.New("front: ServeTLS without certificates")
	}
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetHTTP2(true)
	srv := s.httpServer("https", &p)
	srv.TLSConfig = s.cfg.Certs.TLSConfig()
	if err := s.track(srv); err != nil {
		return err
	}
	tl := newTLSListener(s.conns.listener(ln, "https", 0), srv.TLSConfig.Clone(), s.cfg.ReadHeaderTimeout, s.maxHead(), s.log)
	return srv.Serve(tl)
}

// ServeHTTP3 serves HTTP/3 on pc with Config.Certs until Shutdown, and
// makes HTTPS responses advertise it with Alt-Svc. pc stays open after
// Shutdown; closing it is the caller's.
func (s *Server) ServeHTTP3(pc net.PacketConn) error {
	if s.cfg.Certs == nil {
		return errors.New("front: ServeHTTP3 without certificates")
	}
	udp, ok := pc.LocalAddr().(*net.UDPAddr)
	if !ok {
		return fmt.Errorf("front: HTTP/3 needs a UDP socket, not %s", pc.LocalAddr().Network())
	}
	srv := &http3.Server{
		Handler: s.handler,
		TLSConfig: http3.ConfigureTLSConfig(&tls.Config{
			MinVersion:     tls.VersionTLS13,
			GetCertificate: s.cfg.Certs.GetCertificate,
		}),
		QUICConfig: &quic.Config{
			MaxIncomingStreams:    100,
			MaxIncomingUniStreams: 10,
			MaxIdleTimeout:        s.cfg.IdleTimeout,
			HandshakeIdleTimeout:  s.cfg.ReadHeaderTimeout,
		},
		MaxHeaderBytes: s.cfg.MaxHeaderBytes,
		IdleTimeout:    s.cfg.IdleTimeout,
		Logger:         s.log.With("listener", "h3"),
	}
	srv.ConnContext = func(ctx context.Context, c *quic.Conn) context.Context {
		if qc := s.conns.quicConnOf(c); qc != nil {
			ctx = context.WithValue(ctx, quicConnKey{}, qc)
		}
		return ctx
	}
	ln, err := quic.ListenEarly(pc, srv.TLSConfig, srv.QUICConfig)
	if err != nil {
		return fmt.Errorf("front: %w", err)
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		ln.Close()
		return http.ErrServerClosed
	}
	s.h3 = append(s.h3, srv)
	s.h3ln = append(s.h3ln, ln)
	s.mu.Unlock()
	port := udp.Port
	if s.cfg.H3Port > 0 {
		port = s.cfg.H3Port
	}
	v := `h3=":` + strconv.Itoa(port) + `"; ma=86400`
	s.altSvc.Store(&v)
	err = srv.ServeListener(&quicCapListener{EarlyListener: ln, lim: s.conns})
	if errors.Is(err, quic.ErrServerClosed) {
		err = http.ErrServerClosed
	}
	return err
}

type framedConnKey struct{}

// maxHead is the largest request head framing follows: more than net/http
// accepts (MaxHeaderBytes and its 4 KiB of slack), so that net/http
// answers 431 first.
func (s *Server) maxHead() int { return s.cfg.MaxHeaderBytes + 64<<10 }

// Handler returns the handler every listener serves: the checks, then
// Config.Handler.
func (s *Server) Handler() http.Handler { return s.handler }

// Shutdown stops accepting, lets in-flight requests finish until ctx is
// done, then closes what is left.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	h1, h3 := s.h1, s.h3
	s.mu.Unlock()
	var wg sync.WaitGroup
	errs := make([]error, len(h1)+len(h3))
	for i, srv := range h1 {
		wg.Go(func() { errs[i] = srv.Shutdown(ctx) })
	}
	for i, srv := range h3 {
		wg.Go(func() { errs[len(h1)+i] = srv.Shutdown(ctx) })
	}
	wg.Wait()
	s.closeQUIC()
	return errors.Join(errs...)
}

// Close closes every listener and connection at once.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	h1, h3 := s.h1, s.h3
	s.mu.Unlock()
	var errs []error
	for _, srv := range h1 {
		errs = append(errs, srv.Close())
	}
	for _, srv := range h3 {
		errs = append(errs, srv.Close())
	}
	s.closeQUIC()
	return errors.Join(errs...)
}

func (s *Server) closeQUIC() {
	s.mu.Lock()
	lns := s.h3ln
	s.h3ln = nil
	s.mu.Unlock()
	for _, ln := range lns {
		ln.Close()
	}
}
