package edge

import (
	"crypto/subtle"
	"fmt"
	"net/http"
	"net/netip"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Admin returns the handler of the admin listener: /healthz (the process
// is up), /readyz (it serves clients and peers), /metrics (Prometheus
// text), the status page at / with its data at /status.json (see
// status.go), GET /admin/peers, POST /admin/purge (purge.go), and POST
// /admin/prefetch and GET /admin/prefetch/{id}, which start and report
// prefetch jobs (prefetch.go). Never expose it on the client port.
//
// One policy, whatever the endpoint: what changes the fleet's state
// (purge, prefetch) needs "Authorization: Bearer <token>", or, when token
// is empty, a loopback client (requireTokenOrLoopback); what only reads
// (/metrics, /status.json, /admin/peers) needs the token when there is one
// (requireToken); the probes and the page's static files need nothing.
func (e *Edge) Admin(token string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		switch {
		case e.draining.Load():
			http.Error(w, "draining", http.StatusServiceUnavailable)
		case !e.serving.Load():
			http.Error(w, "not serving clients yet", http.StatusServiceUnavailable)
		case !e.peersUp.Load():
			http.Error(w, "peer protocol not listening", http.StatusServiceUnavailable)
		default:
			// A store that cannot write does not make the edge unready: it
			// serves from peers and the origin. It is said here for people.
			fmt.Fprintln(w, "ready")
			if st := e.store.Stats(); !st.Writable {
				fmt.Fprintf(w, "store: not storing (%s)\n", st.Reason)
			}
		}
	})
	metrics := promhttp.HandlerFor(e.m.reg, promhttp.HandlerOpts{})
	mux.Handle("GET /metrics", requireToken(token, metrics))
	mux.Handle("GET /admin/peers", requireToken(token, servePeers(e.node, e.cfg.Swarm.Gossip != nil)))
	mux.Handle("POST /admin/purge", requireTokenOrLoopback(token, http.HandlerFunc(e.purger.servePurge)))
	newStatusPage(e.status).routes(mux, token)
	newPrefetcher(e.prefetch).routes(mux, token)
	return mux
}

// requireToken guards a read-only endpoint: with a token, requests must
// carry it; without one, the endpoint is open to whoever reaches the
// admin listener (Prometheus scrapes from another host).
func requireToken(token string, next http.Handler) http.Handler {
	if token == "" {
		return next
	}
	want := []byte("Bearer " + token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="shoal admin"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// requireTokenOrLoopback guards an endpoint that changes the fleet's state
// (purge, prefetch): with a token, requests must carry it; without one,
// only a loopback client may call it, so that an admin listener bound to
// a routable address without --admin-token does not let the network purge
// the cache or make the fleet fetch from the origin. (GET
// /admin/prefetch/{id} is guarded the same way: a job's URLs are the
// operator's business.)
func requireTokenOrLoopback(token string, next http.Handler) http.Handler {
	if token != "" {
		return requireToken(token, next)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !loopbackClient(r) {
			http.Error(w, "forbidden: set --admin-token to use this endpoint from another host", http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// loopbackClient reports whether r came from a loopback address (an
// IPv4-mapped one included). RemoteAddr is the connection's peer:
// forwarding headers are not trusted here.
func loopbackClient(r *http.Request) bool {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	return ap.Addr().Unmap().IsLoopback()
}
