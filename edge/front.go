package edge

import (
	"context"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
)

// clientServer is a server of clients that Shutdown and Close stop: what
// Attach is given (a front.Server, with its plain, HTTPS and HTTP/3
// listeners). The edge does not import package front: front serves any
// http.Handler, and the one way to serve an Edge to clients is a
// front.Server whose handler is the Edge, attached to it.
type clientServer interface {
	Shutdown(ctx context.Context) error
	Close() error
}

// Attach hands the edge a server that serves it to clients on listeners
// of its own (a front.Server): from then on /readyz counts the edge as
// serving clients, and Shutdown and Close stop srv before the peer
// protocol. It returns http.ErrServerClosed once the edge is shutting
// down.
func (e *Edge) Attach(srv interface {
	Shutdown(ctx context.Context) error
	Close() error
}) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.draining.Load() {
		return http.ErrServerClosed
	}
	e.httpSrv = append(e.httpSrv, srv)
	e.serving.Store(true)
	return nil
}

// Registerer is where the edge's metrics live (the admin listener's
// /metrics): a server attached to the edge registers its own there.
func (e *Edge) Registerer() prometheus.Registerer { return e.m.reg }
