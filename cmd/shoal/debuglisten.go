package main

import (
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// debugAddr is the address --debug-listen binds: a port alone (":6060")
// means loopback, since profiles and goroutine dumps name objects and
// peers, and a CPU profile costs the edge CPU; another host only when
// the operator writes it.
func debugAddr(addr string) string {
	if host, port, err := net.SplitHostPort(addr); err == nil && host == "" {
		return net.JoinHostPort("127.0.0.1", port)
	}
	return addr
}

// debugHandler serves net/http/pprof under /debug/pprof/, on a mux of its
// own: the pprof package also registers on http.DefaultServeMux, which
// nothing here serves.
func debugHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// serveDebug serves debugHandler on its own listener at addr (see
// debugAddr), apart from the admin listener and its token. A failure of
// this listener once it serves is logged, not fatal: profiling is not
// what the edge is for. Close the server to stop it.
func serveDebug(addr string, log *slog.Logger) (*http.Server, error) {
	ln, err := net.Listen("tcp", debugAddr(addr))
	if err != nil {
		return nil, err
	}
	// No write timeout: a CPU profile or trace takes as long as it asks.
	srv := &http.Server{Handler: debugHandler(), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("debug listener stopped", "addr", ln.Addr().String(), "err", err)
		}
	}()
	log.Info("debug listener (net/http/pprof) started", "addr", ln.Addr().String())
	return srv, nil
}
