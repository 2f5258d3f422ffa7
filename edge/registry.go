package edge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/singleflight"

	"github.com/shoalcdn/shoal/erasure"
	"github.com/shoalcdn/shoal/internal/digest"
)

// Registry origins (OCI distribution: Docker Hub, GHCR, Harbor, a
// docker-registry) hold content by digest: a blob or manifest named
// /v2/<repository>/blobs/sha256:<hex> is the same bytes under any
// repository name and any mirror query (containerd sends a mirror
// "?ns=<registry>"). On such a site the edge
//
//   - keeps content by digest under one key (digest.Ref.Key), so that the
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
// A model hub (Hugging Face: HF_ENDPOINT at the edge) names a file's
// content in its answer rather than in its path: a download,
// /<repository>/resolve/<revision>/<path>, is a redirect to storage on
// another host (a presigned URL that refuses HEAD and expires) with the
// file's SHA-256 in X-Linked-Etag. The same HEAD that asks the origin
// whether the client may read (the redirect is the yes) names the key the
// file is kept under (digest.HubKey), remembered per credential and target
// for registryAuthTTL; a file the hub keeps in git (a 200, no
// X-Linked-Etag) is cached as any response.
//
// The fill of content by digest is the client's own GET, its redirects
// followed at the edge (follow): the storage's answer is cached by the
// digest, never by the signed URL, and the client's credentials do not
// travel to another host.
//
// A range (safetensors readers seek) is served only from segments this
// edge has checked: the first ranged read of an object reads it whole and
// checks its digest once, and the BLAKE3 of each of its segments, pinned
// then, checks every segment read for it after (pins). A full response
// pins them too when its digest matched.
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
	// registryWholeTimeout bounds the read of a whole object an edge
	// checks before its first range.
	registryWholeTimeout = 10 * time.Minute
)

// registry is the role of registry origins (above).
type registry struct {
	mode    RegistryMode
	names   []string // Config.RegistryNames
	log     *slog.Logger
	probe   digest.Probes   // by *site: a registry?
	hubless sync.Map        // *site → time.Time: no hub until then
	allow   *digest.Answers // the origin's yeses (registryAuthTTL)
	group   singleflight.Group
	// forget drops a record found not to match its digest, here and at
	// its coordinator (streamer.lost).
	forget func(ctx context.Context, key string)
	// pins are the segment hashes of objects whose digest this edge has
	// checked, by object version.
	pins *digest.Pins
	// segments reads a segment of an object below the checks
	// (reader.segmentAnySource); segSize is the fleet's segment size.
	segments func(ctx context.Context, r *Record, idx uint32) ([]byte, string, error)
	segSize  int64
	// other reaches the hosts a content fill is redirected to.
	other http.RoundTripper
	// records looks a record up (the edge's).
	records func(key string) (*Record, bool)

	auths      *prometheus.CounterVec // shoal_registry_authorizations_total{result}
	mismatches *prometheus.CounterVec // shoal_registry_digest_mismatches_total{at}
}

func newRegistry(mode RegistryMode, names []string, reg *prometheus.Registry, log *slog.Logger, forget func(context.Context, string)) *registry {
	g := &registry{
		mode: mode, names: names, log: log, forget: forget,
		allow: digest.NewAnswers(16384, registryAuthTTL), pins: digest.NewPins(4096),
		auths: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_registry_authorizations_total",
			Help: "Reads of registry content by digest, by how the origin's permission was known: cached, allowed (asked now), denied (forwarded to the origin), failed (the origin did not answer; 502).",
		}, []string{"result"}),
		mismatches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_registry_digest_mismatches_total",
			Help: "Content by digest found not to match its digest, by where: fill (the origin's bytes: the fill failed), response (a full response: cut before its last byte), segment (a segment read for a range: not served). The content is dropped from the fleet each time.",
		}, []string{"at"}),
	}
	for _, r := range []string{"cached", "allowed", "denied", "failed"} {
		g.auths.WithLabelValues(r)
	}
	for _, at := range []string{"fill", "response", "segment"} {
		g.mismatches.WithLabelValues(at)
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

// digestKey reports whether key is one content by digest is kept under.
func digestKey(key string) bool { return digest.IsKey(digest.TargetOfKey(key)) }

// isRegistry reports whether s is a registry's site.
func (g *registry) isRegistry(ctx context.Context, s *site) bool {
	switch g.mode {
	case RegistryOn:
		return true
	case RegistryOff:
		return false
	}
	return g.probe.Is(s.name, registryProbeTTL, func() (bool, error) {
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		info, err := s.client.Head(pctx, "/v2/", nil)
		if err == nil && digest.IsRegistry(info.StatusCode, info.Header) {
			g.log.Info("the origin is an OCI registry: its content by digest is kept by digest", "site", s.name)
			return true, nil
		}
		return false, err
	})
}

// errRegistryAuth: the origin could not be asked whether a client may read
// a digest; nothing is served without its answer.
var errRegistryAuth = errors.New("edge: the origin did not say whether this client may read it")

// ask asks the origin (or remembers) whether r's credentials may read
// r's target on s: a HEAD of r's own target with r's Authorization and
// Accept, not following redirects.
func (g *registry) ask(ctx context.Context, s *site, r *http.Request) (digest.Answer, error) {
	// A hub's branch (main) moves to other files: only the answer for a
	// commit is remembered.
	remember := !digest.IsHubResolve(r.URL.RequestURI()) || digest.HubCommit(r.URL.RequestURI())
	a, cached, err := g.allow.Ask(r.Header.Get("Authorization"), s.name+"\x00"+r.URL.RequestURI(), remember, func() (digest.Answer, error) {
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
			return digest.Answer{}, fmt.Errorf("%w: %w", errRegistryAuth, err)
		}
		return digest.AnswerOf(info.StatusCode, info.Header), nil
	})
	switch {
	case err != nil:
		g.auths.WithLabelValues("failed").Inc()
	case cached:
		g.auths.WithLabelValues("cached").Inc()
	case a.Allowed:
		g.auths.WithLabelValues("allowed").Inc()
	default:
		g.auths.WithLabelValues("denied").Inc()
	}
	return a, err
}

// digestRoute is how route answers a request for content by digest.
type digestRoute struct {
	key  string              // the key to serve it under
	r    *http.Request       // the request, marked authorized
	w    http.ResponseWriter // the writer, checking a full response
	dw   *digest.Writer      // that writer, or nil
	done bool                // route answered the request itself
}

// route decides how the edge answers r, a GET or HEAD of target on site s
// with cache key key: with the key, request and writer it returns, or not
// at all when done (it answered r itself).
func (g *registry) route(w http.ResponseWriter, r *http.Request, s *site, target, key string, forward func(http.ResponseWriter, *http.Request, string)) digestRoute {
	same := digestRoute{key: key, r: r, w: w}
	if digest.IsKey(target) {
		// The fleet's own name space of digests, in every mode and on
		// every site: its content is only read under a client's own
		// target, with the origin's yes.
		forward(w, r, "shoal; fwd=bypass; detail=reserved")
		return digestRoute{done: true}
	}
	ref, isRef := digest.Parse(target)
	tag := !isRef && digest.IsTagManifest(target)
	switch {
	case !isRef && !tag && digest.IsHubResolve(target):
		return g.routeHub(w, r, s, key, forward)
	case !isRef && !tag, !g.isRegistry(r.Context(), s):
		return same
	case len(r.Header.Values("Authorization")) > 1:
		// The origin and the edge could each read another of them.
		httpError(w, http.StatusBadRequest, "more than one Authorization field")
		return digestRoute{done: true}
	}
	ns := r.URL.Query().Get("ns")
	switch {
	case ns != "" && !g.mirrors(s, ns):
		// containerd names the registry it wants in a mirror request:
		// another registry's content is not this origin's to answer for
		// (its tags even less), and containerd asks the next host on a 404.
		httpError(w, http.StatusNotFound, "this edge is no mirror of "+ns)
		return digestRoute{done: true}
	case tag:
		forward(w, r, "shoal; fwd=bypass; detail=registry-tag")
		return digestRoute{done: true}
	}
	a, err := g.ask(r.Context(), s, r)
	switch {
	case err != nil:
		g.log.WarnContext(r.Context(), "registry authorization failed", "target", target, "err", err)
		httpError(w, http.StatusBadGateway, "the registry did not answer")
		return digestRoute{done: true}
	case !a.Allowed || a.ContentDigest != "" && a.ContentDigest != ref.Digest():
		// A yes names the content asked for when it names one (a login
		// page's redirect does not).
		forward(w, r, "shoal; fwd=bypass; detail=registry-authorization")
		return digestRoute{done: true}
	}
	return g.content(w, r, s.key(ref.Key()), ref.Algorithm, ref.Hex)
}

// routeHub routes a hub's file download (above): by the SHA-256 the
// hub's redirect names, else as any request.
func (g *registry) routeHub(w http.ResponseWriter, r *http.Request, s *site, key string, forward func(http.ResponseWriter, *http.Request, string)) digestRoute {
	if g.mode == RegistryOff || g.notHub(s) {
		return digestRoute{key: key, r: r, w: w}
	}
	if len(r.Header.Values("Authorization")) > 1 {
		httpError(w, http.StatusBadRequest, "more than one Authorization field")
		return digestRoute{done: true}
	}
	a, err := g.ask(r.Context(), s, r)
	if err == nil && !a.FromHub && a.Status >= 200 && a.Status < 300 {
		// An origin that answers as no hub does (a 200 without a hub's
		// fields): its /resolve/ paths are ordinary ones, without a HEAD
		// first, for a while.
		g.hubless.Store(s, time.Now().Add(registryProbeTTL))
		return digestRoute{key: key, r: r, w: w}
	}
	switch {
	case err != nil:
		// Asked again by the usual path, which answers as the origin can.
		g.log.DebugContext(r.Context(), "hub file lookup failed", "target", r.URL.RequestURI(), "err", err)
		return digestRoute{key: key, r: r, w: w}
	case !a.Allowed:
		forward(w, r, "shoal; fwd=bypass; detail=hub-authorization")
		return digestRoute{done: true}
	case a.SHA256 == "":
		return digestRoute{key: key, r: r, w: w} // a file in git: cached as any response
	case r.Method == http.MethodHead:
		// As its GET is answered: with the file (the edge follows the
		// redirect), so with 200 and the hub's fields, not the redirect,
		// which would send a client that reads it (huggingface_hub) to
		// the storage host.
		w.Header().Set("Cache-Status", "shoal; fwd=bypass; detail=hub-head")
		a.WriteHead(w)
		return digestRoute{done: true}
	}
	return g.content(w, r, s.key(digest.HubKey(a.SHA256)), "sha256", a.SHA256)
}

// content routes an authorized request for the content alg:hex under key.
// Its fill, on any path, asks for the bytes the digest names: identity.
func (g *registry) content(w http.ResponseWriter, r *http.Request, key, alg, hex string) digestRoute {
	r = r.Clone(r.Context())
	r.Header.Set("Accept-Encoding", "identity")
	ctx := context.WithValue(r.Context(), registryAuthorized{}, key)
	if r.Method != http.MethodGet || r.Header.Get("Range") != "" {
		return digestRoute{key: key, r: r.WithContext(ctx), w: w}
	}
	// Checked as it streams: its segments need no check beforehand (check).
	r = r.WithContext(context.WithValue(ctx, digestStreaming{}, true))
	dw := digest.NewWriter(w, digest.NewVerifier(alg, hex), g.segSize,
		func(hashes []erasure.Hash) { g.pin(key, hashes) },
		func() {
			g.mismatches.WithLabelValues("response").Inc()
			g.log.ErrorContext(r.Context(), "content does not match its digest: response cut, content dropped", "target", r.URL.RequestURI(), "digest", alg+":"+hex)
			g.forget(r.Context(), key)
		})
	return digestRoute{key: key, r: r, w: dw, dw: dw}
}

// digestStreaming marks the context of a full response a digest.Writer
// checks.
type digestStreaming struct{}

// pin keeps the segment hashes of key's object, checked against its
// digest.
func (g *registry) pin(key string, hashes []erasure.Hash) {
	if rec, ok := g.records(key); ok && !rec.Pass && rec.Layout.SegmentSize == g.segSize && rec.Layout.Segments(rec.Size) == int64(len(hashes)) {
		g.pins.Add(rec.ID(), hashes)
	}
}

// check is the reader's check of segment idx of r, content by digest:
// against the hashes pinned when this edge checked the object's digest,
// which it does now, reading the object whole, if it has not (a range's
// first read). A full response is checked as it streams instead.
func (g *registry) check(ctx context.Context, r *Record, idx uint32, data []byte) error {
	id := r.ID()
	hashes, ok := g.pins.Get(id)
	if !ok && ctx.Value(digestStreaming{}) != nil {
		return nil
	}
	if !ok {
		// Read once for every reader, none of which it depends on.
		ch := g.group.DoChan("pin\x00"+string(id[:]), func() (any, error) {
			v := digest.KeyVerifier(r.Key)
			if v == nil || r.Size < 0 {
				return nil, fmt.Errorf("edge: %s names no digest", r.Key)
			}
			wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), registryWholeTimeout)
			defer cancel()
			hashes, err := digest.Whole(wctx, v, r.Layout.Segments(r.Size), func(ctx context.Context, i uint32) ([]byte, error) {
				data, _, err := g.segments(ctx, r, i)
				return data, err
			})
			if err != nil {
				return nil, g.mismatch(wctx, r, err) // once, for every waiter
			}
			g.pins.Add(id, hashes)
			return hashes, nil
		})
		var res singleflight.Result
		select {
		case res = <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
		if res.Err != nil {
			return res.Err
		}
		hashes = res.Val.([]erasure.Hash)
	}
	if err := digest.Check(hashes, idx, data); err != nil {
		return g.mismatch(ctx, r, err)
	}
	return nil
}

// mismatch drops r when err says it is not its digest's content.
func (g *registry) mismatch(ctx context.Context, r *Record, err error) error {
	if errors.Is(err, digest.ErrMismatch) {
		g.mismatches.WithLabelValues("segment").Inc()
		g.log.ErrorContext(ctx, "content does not match its digest: dropped", "key", r.Key, "err", err)
		g.pins.Remove(r.ID())
		g.forget(ctx, r.Key)
	}
	return fmt.Errorf("edge: %s: %w", r.Key, err)
}

// filled checks the end of a streamed fill of content by digest: the
// body v hashed matches the digest, and r's segment hashes are pinned.
func (g *registry) filled(r *Record, v *digest.Verifier, hashes []erasure.Hash) error {
	if !v.Match() {
		g.mismatches.WithLabelValues("fill").Inc()
		g.log.Error("the origin sent content that does not match its digest: the fill fails", "key", r.Key)
		return fmt.Errorf("edge: the origin's %s: %w", r.Key, digest.ErrMismatch)
	}
	if r.Layout.Segments(r.Size) == int64(len(hashes)) {
		g.pins.Add(r.ID(), hashes)
	}
	return nil
}

// notHub reports whether s was found to be no model hub lately.
func (g *registry) notHub(s *site) bool {
	until, ok := g.hubless.Load(s)
	return ok && time.Now().Before(until.(time.Time))
}

// mirrors reports whether a mirror request's ns (the registry containerd
// asks for) is s's origin: its host, or one of Config.RegistryNames.
func (g *registry) mirrors(s *site, ns string) bool {
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

// follow returns next, following the redirects of content fills (requests
// route marked) to the hosts they name (digest.Follow).
func (g *registry) follow(next http.RoundTripper) http.RoundTripper {
	return digest.Follow(next, g.other, func(r *http.Request) bool { return r.Context().Value(registryAuthorized{}) != nil },
		digest.NoDeeper(lookupNetIP))
}

// lookupNetIP resolves a host name for the checks of digest.NoDeeper.
func lookupNetIP(host string) ([]netip.Addr, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
}
