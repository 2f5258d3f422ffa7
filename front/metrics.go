package front

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the front's collectors. The handler's own (an edge's
// shoal_requests_total and the rest) count every protocol alike.
type metrics struct {
	reg      prometheus.Registerer
	requests *prometheus.CounterVec
	rejected *prometheus.CounterVec
	byProto  map[string]prometheus.Counter // the usual protocols, resolved once
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		reg: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_client_requests_total", Help: "Client requests, by protocol (HTTP/1.1, HTTP/2.0, HTTP/3.0).",
		}, []string{"proto"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_client_rejected_total", Help: "Client requests and connections refused by a limit, by reason (uri_too_long, bad_path, bad_framing, rate_limited, conn_limit, conn_evicted).",
		}, []string{"reason"}),
	}
	m.byProto = map[string]prometheus.Counter{}
	for _, p := range []string{"HTTP/1.0", "HTTP/1.1", "HTTP/2.0", "HTTP/3.0"} {
		m.byProto[p] = m.requests.WithLabelValues(p)
	}
	return m
}

func (m *metrics) request(r *http.Request) {
	c, ok := m.byProto[r.Proto]
	if !ok {
		c = m.requests.WithLabelValues("other")
	}
	c.Inc()
}

func (m *metrics) register(l *connLimiter) {
	if m.reg == nil {
		return
	}
	m.reg.MustRegister(m.requests, m.rejected)
	for _, name := range []string{"http", "https", "h3"} {
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "shoal_client_connections", Help: "Open client connections, by listener (http, https: TCP; h3: QUIC).",
			ConstLabels: prometheus.Labels{"listener": name},
		}, func() float64 { return float64(l.openConns(name)) }))
	}
	for _, r := range []string{"uri_too_long", "bad_path", "bad_framing", "rate_limited", "conn_limit", "conn_evicted"} {
		m.rejected.WithLabelValues(r)
	}
}
