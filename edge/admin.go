package edge

import (
	"crypto/subtle"
	"fmt"
	"net/http"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Admin returns the handler of the admin listener: /healthz (the process
// is up), /readyz (it serves clients and peers), /metrics (Prometheus
// text), and the status page at / with its data at /status.json (see
// status.go), and POST /admin/purge (purge.go). When token is not empty,
// /metrics, /status.json and /admin/purge require
// "Authorization: Bearer <token>"; the probes and the page's static files
// do not. POST /admin/prefetch and GET /admin/prefetch/{id} start and
// report prefetch jobs (prefetch.go); they need the token, or without one
// a loopback client. Never expose it on the client port.
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
	mux.Handle("POST /admin/purge", requireToken(token, http.HandlerFunc(e.purger.servePurge)))
	newStatusPage(e.status).routes(mux, token)
	newPrefetcher(e.prefetch).routes(mux, token)
	return mux
}

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
