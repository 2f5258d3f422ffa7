// Package front is the client-facing side of an edge: the listeners
// clients connect to and the limits that keep them honest. It serves any
// http.Handler (an edge.Edge in Shoal) over
//
//   - plain HTTP/1.1, and cleartext HTTP/2 (h2c, prior knowledge) for a load
//     balancer in front, on a TCP listener (Serve);
//   - HTTPS with HTTP/1.1 and HTTP/2 on a TCP listener (ServeTLS), with
//     certificates chosen by SNI and reloaded when their files change
//     (Certs);
//   - HTTP/3 over QUIC on a UDP socket (ServeHTTP3), with the same
//     certificates, advertised to HTTPS clients with Alt-Svc.
//
// It is the one way an edge.Edge serves clients: shoal edge, shoal demo
// and the edge's test clusters make a Server whose handler is the Edge and
// hand it to Edge.Attach, so that /readyz counts the edge as serving and
// the edge's Shutdown and Close stop the Server. The dependency points
// this way only: front imports nothing of Shoal's.
//
// Peer QUIC (package swarm) is a separate socket with the fleet's mutual
// TLS; nothing here ever presents or accepts the fleet certificates.
//
// Every request goes through the same checks before the handler sees it:
// a request target no longer than MaxURL (414), a path that would not
// surprise the origin (no dot segments, encoded slashes or backslashes,
// NUL or control bytes: 400), and a per-client-IP token bucket (429) when
// RateLimit is set; behind a load balancer listed in TrustedProxies, the
// client IP is the one its X-Forwarded-For or Forwarded names (proxies.go).
// Connections are capped (MaxConns, TCP and QUIC apart: a new connection
// evicts the oldest one that is not in a request, else it is closed), slow
// headers are cut by ReadHeaderTimeout and idle ones by IdleTimeout, and a
// response must leave (and a request body arrive) at MinSendRate bytes per
// second on average over SendWindow, so a client that stops reading is cut
// off while a slow but honest download of any size completes. HTTP/1.x
// requests, plain or over TLS, are also followed by framing, which refuses
// the shapes of request smuggling that net/http would quietly repair.
package front
