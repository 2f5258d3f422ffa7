package edge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/singleflight"

	"github.com/shoalcdn/shoal/erasure"
	"github.com/shoalcdn/shoal/internal/sizedlru"
	"github.com/shoalcdn/shoal/manifest"
	"github.com/shoalcdn/shoal/origin"
	"github.com/shoalcdn/shoal/swarm"
)

// ErrUnsigned reports an object without a valid manifest on an edge that
// requires one, or a segment that matches neither its manifest nor, fetched
// again from the origin, still. Nothing of such an object is served.
var ErrUnsigned = errors.New("edge: no valid signed manifest")

// signed checks objects against their publisher's manifests (package
// manifest) for Config.Trust. Each edge fetches and verifies the manifest
// itself, from the origin: it trusts no peer, coordinator or record for it.
type signed struct {
	signedConfig
	group singleflight.Group
	cache *lru.Cache[erasure.ObjectID, *signedEntry]

	failures *prometheus.CounterVec // shoal_manifest_failures_total{reason}
	verified prometheus.Counter     // shoal_manifest_verified_segments_total
}

type signedEntry struct {
	m     *manifest.Manifest // nil: unsigned, allowed (no --require-signed)
	err   error              // why the object may not be served
	until time.Time          // when to look again (after errors and absences)
}

// Manifests are looked for again this long after a failure or an absence;
// a verified manifest is kept as long as its object version.
const signedRetry = 10 * time.Second

// refetcher fetches a segment from the origin again and places its
// shards over those there (filler.fetchAndPlace).
type refetcher interface {
	fetchAndPlace(ctx context.Context, r *Record, idx uint32) (*swarm.Segment, *placement, error)
}

// signedConfig is what signed checks are made of.
type signedConfig struct {
	// trust and require are Config.Trust and Config.RequireSigned.
	trust   *manifest.Verifier
	require bool
	sites   *sites
	mem     *sizedlru.Cache[erasure.SegmentID, *memSegment]
	refetch refetcher
	reg     *prometheus.Registry // where its metrics are registered
	log     *slog.Logger
}

func newSigned(cfg signedConfig) *signed {
	c, _ := lru.New[erasure.ObjectID, *signedEntry](4096)
	s := &signed{
		signedConfig: cfg, cache: c,
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_manifest_failures_total",
			Help: "Signed-manifest checks that failed, by reason: missing, fetch, invalid (bad signature, untrusted key, other object), mismatch (a segment that does not match; refetched from the origin), origin (the origin's own bytes do not match).",
		}, []string{"reason"}),
		verified: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shoal_manifest_verified_segments_total", Help: "Segments checked against their signed manifest before being served.",
		}),
	}
	for _, r := range []string{"missing", "fetch", "invalid", "mismatch", "origin"} {
		s.failures.WithLabelValues(r)
	}
	cfg.reg.MustRegister(s.failures, s.verified)
	return s
}

// manifestFor returns the verified manifest of r's object, nil when it has
// none and none is required, or an error wrapping ErrUnsigned.
func (s *signed) manifestFor(ctx context.Context, r *Record) (*manifest.Manifest, error) {
	id := r.ID()
	if ent, ok := s.cache.Get(id); ok && (ent.until.IsZero() || time.Now().Before(ent.until)) {
		return ent.m, ent.err
	}
	v, _, _ := s.group.Do(string(id[:]), func() (any, error) {
		ent := s.fetchManifest(ctx, r)
		s.cache.Add(id, ent)
		return ent, nil
	})
	ent := v.(*signedEntry)
	return ent.m, ent.err
}

func (s *signed) fetchManifest(ctx context.Context, r *Record) *signedEntry {
	o, target, err := s.sites.split(r.Key)
	var u *url.URL
	if err == nil {
		u, err = url.ParseRequestURI(target)
	}
	if err != nil {
		return &signedEntry{err: fmt.Errorf("%w: %s: %v", ErrUnsigned, r.Key, err), until: time.Now().Add(signedRetry)}
	}
	path := u.EscapedPath()
	// Detached from the asking client: the answer serves every request.
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	body, _, err := o.client.Get(fctx, path+manifest.Suffix, manifest.MaxLen)
	var se *origin.StatusError
	switch {
	case errors.As(err, &se) && (se.Code == 404 || se.Code == 410):
		s.failures.WithLabelValues("missing").Inc()
		if s.require {
			s.log.WarnContext(ctx, "refusing an unsigned object (--require-signed)", "key", r.Key)
			return &signedEntry{err: fmt.Errorf("%w: %s has no manifest", ErrUnsigned, r.Key), until: time.Now().Add(signedRetry)}
		}
		s.log.WarnContext(ctx, "serving an object without a signed manifest", "key", r.Key)
		return &signedEntry{until: time.Now().Add(signedRetry)}
	case err != nil:
		s.failures.WithLabelValues("fetch").Inc()
		if s.require {
			return &signedEntry{err: fmt.Errorf("%w: %s: fetching its manifest: %w", ErrUnsigned, r.Key, err), until: time.Now().Add(time.Second)}
		}
		s.log.WarnContext(ctx, "could not fetch a manifest, serving unverified", "key", r.Key, "err", err)
		return &signedEntry{until: time.Now().Add(time.Second)}
	}
	m, err := s.trust.Verify(body, path)
	if err == nil {
		switch {
		case m.Size != r.Size:
			err = fmt.Errorf("manifest says %d bytes, the origin %d", m.Size, r.Size)
		case m.SegmentSize != r.Layout.SegmentSize:
			err = fmt.Errorf("manifest segments are %d bytes, this fleet's %d (--segment-size)", m.SegmentSize, r.Layout.SegmentSize)
		case m.ETag != "" && r.ETag != "" && m.ETag != r.ETag:
			err = fmt.Errorf("manifest is for version %s, the origin has %s", m.ETag, r.ETag)
		}
	}
	if err != nil {
		// A manifest that is there and wrong is an attack or a mistake:
		// refused even without --require-signed.
		s.failures.WithLabelValues("invalid").Inc()
		s.log.ErrorContext(ctx, "refusing an object whose manifest does not verify", "key", r.Key, "err", err)
		return &signedEntry{err: fmt.Errorf("%w: %s: %w", ErrUnsigned, r.Key, err), until: time.Now().Add(signedRetry)}
	}
	return &signedEntry{m: m}
}

// checkSigned verifies segment idx of r, read from src, against r's
// manifest. A segment that does not match is dropped from memory and
// fetched again from the origin (which also places fresh shards over the
// bad ones); if that does not match either, it is an error. Segments
// verified once are marked in the memory tier and not hashed again.
func (s *signed) checkSigned(ctx context.Context, r *Record, idx uint32, data []byte, src string) ([]byte, string, error) {
	m, err := s.manifestFor(ctx, r)
	if err != nil || m == nil {
		return data, src, err
	}
	id := erasure.SegmentID{Object: r.ID(), Index: idx}
	if ms, ok := s.mem.Get(id); ok && ms.verified.Load() && sameArray(ms.data, data) {
		return data, src, nil
	}
	err = m.VerifySegment(int(idx), data)
	if err == nil {
		s.verified.Inc()
		s.markVerified(id, data)
		return data, src, nil
	}
	s.failures.WithLabelValues("mismatch").Inc()
	s.log.ErrorContext(ctx, "a segment does not match its signed manifest; fetching it from the origin", "key", r.Key, "segment", idx, "source", src, "err", err)
	s.mem.Remove(id)
	seg, _, err := s.refetch.fetchAndPlace(ctx, r, idx)
	if err != nil {
		return nil, "", err
	}
	if err := m.VerifySegment(int(idx), seg.Data); err != nil {
		s.mem.Remove(id)
		s.failures.WithLabelValues("origin").Inc()
		return nil, "", fmt.Errorf("%w: %s segment %d from the origin: %w", ErrUnsigned, r.Key, idx, err)
	}
	s.verified.Inc()
	s.markVerified(id, seg.Data)
	return seg.Data, srcOrigin, nil
}

func (s *signed) markVerified(id erasure.SegmentID, data []byte) {
	if ms, ok := s.mem.Get(id); ok && sameArray(ms.data, data) {
		ms.verified.Store(true)
	}
}

// sameArray reports whether a and b are the same slice of the same array.
func sameArray(a, b []byte) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}
