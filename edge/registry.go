package edge

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/singleflight"

	"github.com/shoalcdn/shoal/internal/oci"
)

// Registry origins (OCI distribution: Docker Hub, GHCR, Harbor, a
// docker-registry) hold content by digest: a blob or manifest named
// /v2/<repository>/blobs/sha256:<hex> is the same bytes under any
// repository name and any mirror query (containerd sends a mirror
// "?ns=<registry>"). On such a site the edge
//
//   - keeps content by digest under one key (oci.Ref.Key), so that the
//     fleet holds one copy of a layer however many repositories and
//     mirror configurations name it, as a version of the fleet's own that
//     never expires (a digest's content cannot change) and is fetched
//     again by a client's own request when lost (the key is no path of
//     the origin's);
//   - lets the origin decide who may read it: every GET or HEAD of a
//     digest is preceded by a HEAD of the client's own target with the
//     client's own credentials (none, Basic or a registry token),
//     remembered per credential, repository and digest for
//     registryAuthTTL. A client the origin does not answer 2xx or 3xx is
//     forwarded to the origin, which sends it its 401, 403 or 404 and no
//     byte of the content, whoever put the content in the fleet;
//   - checks every full response against its digest: the body streams,
//     and its last byte is held until the digest of all it sent matches,
//     so no client ever receives the whole of a body that is not the
//     content its digest names; one that does not match is cut, dropped
//     from the fleet, and counted;
//   - sends a tag's manifest request to the origin as it came (tags move,
//     and their answer depends on the client's Accept).
//
// Whether a site is a registry: RegistryOn says so; RegistryAuto (the
// default) asks the origin's /v2/ once (a registry answers with
// Docker-Distribution-API-Version, 200 or 401), again after
// registryProbeTTL.

// RegistryMode says whether the edge treats its origins as OCI registries.
type RegistryMode string

const (
	// RegistryAuto (also "") detects registries from their /v2/ answer.
	RegistryAuto RegistryMode = "auto"
	// RegistryOn treats every origin as a registry.
	RegistryOn RegistryMode = "on"
	// RegistryOff never does.
	RegistryOff RegistryMode = "off"
)

const (
	// registryAuthTTL is how long an origin's yes to a credential for a
	// digest is used before it is asked again.
	registryAuthTTL = time.Minute
	// registryProbeTTL is how long a site is known (not) to be a registry.
	registryProbeTTL = 10 * time.Minute
	// registryImmutable is how long a digest's content stays fresh.
	registryImmutable = 365 * 24 * time.Hour
)

// registry is the role of registry origins (above).
type registry struct {
	mode  RegistryMode
	names []string // Config.RegistryNames
	log   *slog.Logger
	probe sync.Map // *site → *registryProbe
	allow *lru.Cache[string, time.Time]
	group singleflight.Group
	// forget drops a record found not to match its digest, here and at
	// its coordinator (streamer.lost).
	forget func(ctx context.Context, key string)

	auths      *prometheus.CounterVec // shoal_registry_authorizations_total{result}
	mismatches prometheus.Counter     // shoal_registry_digest_mismatches_total
}

type registryProbe struct {
	yes   bool
	until time.Time
}

func newRegistry(mode RegistryMode, names []string, reg *prometheus.Registry, log *slog.Logger, forget func(context.Context, string)) *registry {
	c, _ := lru.New[string, time.Time](16384)
	g := &registry{
		mode: mode, names: names, log: log, allow: c, forget: forget,
		auths: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_registry_authorizations_total",
			Help: "Reads of registry content by digest, by how the origin's permission was known: cached, allowed (asked now), denied (forwarded to the origin), failed (the origin did not answer; 502).",
		}, []string{"result"}),
		mismatches: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shoal_registry_digest_mismatches_total",
			Help: "Responses of registry content whose bytes did not match their digest: cut before their last byte, and the content dropped from the fleet.",
		}),
	}
	for _, r := range []string{"cached", "allowed", "denied", "failed"} {
		g.auths.WithLabelValues(r)
	}
	reg.MustRegister(g.auths, g.mismatches)
	return g
}

// validRegistryMode checks a configured mode; "" is auto.
func validRegistryMode(m RegistryMode) error {
	switch m {
	case "", RegistryAuto, RegistryOn, RegistryOff:
		return nil
	}
	return fmt.Errorf("edge: registry mode %q: want auto, on or off", m)
}

// registryAuthorized marks the context of a request whose credentials the
// origin accepted for the digest it asks for.
type registryAuthorized struct{}

// sentCredentials reports whether r carries credentials that decide what
// the fleet may answer it with (RFC 9111 §3.5): a registry client's the
// origin has accepted do not (above).
func sentCredentials(r *http.Request) bool {
	return r.Header.Get("Authorization") != "" && r.Context().Value(registryAuthorized{}) == nil
}

// digestKey reports whether key is one a registry's digest is kept under.
func digestKey(key string) bool {
	if rest, ok := strings.CutPrefix(key, "//"); ok {
		i := strings.IndexByte(rest, '/')
		if i < 0 {
			return false
		}
		key = rest[i:]
	}
	return oci.IsKey(key)
}

// isRegistry reports whether s is a registry's site.
func (g *registry) isRegistry(ctx context.Context, s *site) bool {
	switch g.mode {
	case RegistryOn:
		return true
	case RegistryOff:
		return false
	}
	if p, ok := g.probe.Load(s); ok && time.Now().Before(p.(*registryProbe).until) {
		return p.(*registryProbe).yes
	}
	v, _, _ := g.group.Do("probe\x00"+s.name, func() (any, error) {
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		info, err := s.client.Head(pctx, "/v2/", nil)
		p := &registryProbe{until: time.Now().Add(registryProbeTTL)}
		switch {
		case err != nil:
			p.until = time.Now().Add(10 * time.Second) // asked again soon
		case info.Header.Get("Docker-Distribution-Api-Version") != "" && (info.StatusCode == http.StatusOK || info.StatusCode == http.StatusUnauthorized):
			p.yes = true
			g.log.Info("the origin is an OCI registry: its content by digest is kept by digest", "site", s.name)
		}
		g.probe.Store(s, p)
		return p, nil
	})
	return v.(*registryProbe).yes
}

// errRegistryAuth: the origin could not be asked whether a client may read
// a digest; nothing is served without its answer.
var errRegistryAuth = errors.New("edge: the registry did not say whether this client may read it")

// authorize asks the origin (or remembers) whether r's credentials may
// read ref: a HEAD of r's own target with r's Authorization and Accept.
func (g *registry) authorize(ctx context.Context, s *site, r *http.Request, ref oci.Ref) (bool, error) {
	cred := sha256.Sum256([]byte(r.Header.Get("Authorization")))
	k := string(cred[:]) + "\x00" + s.name + "\x00" + ref.Repository + "\x00" + string(ref.Kind) + "\x00" + ref.Digest()
	if until, ok := g.allow.Get(k); ok && time.Now().Before(until) {
		g.auths.WithLabelValues("cached").Inc()
		return true, nil
	}
	v, err, _ := g.group.Do(k, func() (any, error) {
		h := http.Header{}
		for _, f := range []string{"Authorization", "Accept"} {
			if vs := r.Header.Values(f); len(vs) > 0 {
				h[f] = vs
			}
		}
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		info, err := s.client.Head(actx, r.URL.RequestURI(), h)
		if err != nil {
			return false, fmt.Errorf("%w: %w", errRegistryAuth, err)
		}
		ok := info.StatusCode >= 200 && info.StatusCode < 400
		if ok {
			g.allow.Add(k, time.Now().Add(registryAuthTTL))
		}
		return ok, nil
	})
	switch {
	case err != nil:
		g.auths.WithLabelValues("failed").Inc()
		return false, err
	case v.(bool):
		g.auths.WithLabelValues("allowed").Inc()
		return true, nil
	}
	g.auths.WithLabelValues("denied").Inc()
	return false, nil
}

// route decides how the edge answers r, a GET or HEAD of target on site s
// with cache key key: it returns the key to serve r under and the request
// and writer to serve it with, or done when it answered r itself.
func (g *registry) route(w http.ResponseWriter, r *http.Request, s *site, target, key string, forward func(http.ResponseWriter, *http.Request, string)) (string, *http.Request, http.ResponseWriter, *digestWriter, bool) {
	ref, isRef := oci.Parse(target)
	tag := !isRef && isTagManifest(target)
	if !isRef && !tag && !oci.IsKey(target) || !g.isRegistry(r.Context(), s) {
		return key, r, w, nil, false
	}
	switch {
	case tag && r.URL.Query().Get("ns") != "" && !g.mirrors(s, r.URL.Query().Get("ns")):
		httpError(w, http.StatusNotFound, "this edge is no mirror of "+r.URL.Query().Get("ns"))
		return key, r, w, nil, true
	case tag:
		forward(w, r, "shoal; fwd=bypass; detail=registry-tag")
		return key, r, w, nil, true
	case !isRef:
		// A target in the fleet's own name space of digests: no client's.
		forward(w, r, "shoal; fwd=bypass; detail=registry-reserved")
		return key, r, w, nil, true
	}
	if ns := r.URL.Query().Get("ns"); ns != "" && !g.mirrors(s, ns) {
		// containerd names the registry it wants in a mirror request:
		// another registry's digest is not this origin's to answer for
		// (its tags even less), and containerd asks the next host on a 404.
		httpError(w, http.StatusNotFound, "this edge is no mirror of "+ns)
		return key, r, w, nil, true
	}
	ok, err := g.authorize(r.Context(), s, r, ref)
	switch {
	case err != nil:
		g.log.WarnContext(r.Context(), "registry authorization failed", "target", target, "err", err)
		httpError(w, http.StatusBadGateway, "the registry did not answer")
		return key, r, w, nil, true
	case !ok:
		forward(w, r, "shoal; fwd=bypass; detail=registry-authorization")
		return key, r, w, nil, true
	}
	key = s.key(ref.Key())
	r = r.WithContext(context.WithValue(r.Context(), registryAuthorized{}, ref))
	if r.Method != http.MethodGet || r.Header.Get("Range") != "" {
		return key, r, w, nil, false
	}
	dw := &digestWriter{ResponseWriter: w, v: oci.NewVerifier(ref), fail: func() {
		g.mismatches.Inc()
		g.log.ErrorContext(r.Context(), "registry content does not match its digest: response cut, content dropped", "target", target, "digest", ref.Digest())
		g.forget(r.Context(), key)
	}}
	return key, r, dw, dw, false
}

// mirrors reports whether a mirror request's ns (the registry containerd
// asks for) is s's origin: its host, or one of Config.RegistryNames.
func (g *registry) mirrors(s *site, ns string) bool {
	ns = strings.ToLower(ns)
	if strings.EqualFold(s.client.Base().Host, ns) {
		return true
	}
	for _, n := range g.names {
		if strings.EqualFold(n, ns) {
			return true
		}
	}
	return false
}

// isTagManifest reports whether target is /v2/<repository>/manifests/<tag>.
func isTagManifest(target string) bool {
	path, _, _ := strings.Cut(target, "?")
	rest, ok := strings.CutPrefix(path, "/v2/")
	if !ok {
		return false
	}
	i := strings.LastIndex(rest, "/manifests/")
	return i > 0 && !strings.Contains(rest[i+len("/manifests/"):], "/")
}

// digestWriter passes a response through and checks a 200's body against
// its digest: it holds the last byte written until finish, which sends it
// if the body matches and otherwise cuts the response.
type digestWriter struct {
	http.ResponseWriter
	v        *oci.Verifier
	fail     func()
	checking bool  // a 200: its body is the content
	length   int64 // its Content-Length, or -1
	written  int64
	held     [1]byte
	holding  bool
	started  bool
}

func (w *digestWriter) WriteHeader(code int) {
	if !w.started && code >= 200 {
		w.started = true
		w.checking = code == http.StatusOK
		w.length = -1
		if cl := w.Header().Get("Content-Length"); cl != "" {
			fmt.Sscan(cl, &w.length)
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *digestWriter) Write(b []byte) (int, error) {
	if !w.started {
		w.WriteHeader(http.StatusOK)
	}
	if !w.checking || len(b) == 0 {
		return w.ResponseWriter.Write(b)
	}
	w.v.Write(b)
	w.written += int64(len(b))
	if w.holding {
		if _, err := w.ResponseWriter.Write(w.held[:]); err != nil {
			return 0, err
		}
		w.holding = false
	}
	n, err := w.ResponseWriter.Write(b[:len(b)-1])
	if err != nil {
		return n, err
	}
	w.held[0], w.holding = b[len(b)-1], true
	return len(b), nil
}

func (w *digestWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// finish ends a checked response: the held byte goes out if the body
// matches its digest; a complete body that does not is reported and the
// connection cut (a client never holds a whole body that fails its digest).
func (w *digestWriter) finish() {
	if !w.checking || !w.holding {
		return
	}
	if w.v.Match() {
		w.ResponseWriter.Write(w.held[:])
		return
	}
	if w.length < 0 || w.written == w.length {
		w.fail()
	}
	// The body was cut short, or is not the content: either way the
	// client must not get its last byte, and the connection ends.
	panic(http.ErrAbortHandler)
}
