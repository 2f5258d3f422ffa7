package edge

import (
	"net/http"
	"sync"

	"golang.org/x/net/http/httpguts"

	"github.com/shoalcdn/shoal/internal/httpcache"
	"github.com/shoalcdn/shoal/internal/sizedlru"
	"github.com/shoalcdn/shoal/swarm"
)

// Vary (RFC 9111 §4.1). A variant is stored under its own key
// (httpcache.VariantKey: the request target, then the values of the
// fields the response's Vary names that the request sends).
//
// An edge learns which fields a target varies on from the responses (the
// record of the target, or a forwarded miss's response) and keys later
// requests by them. The fleet fetches a variant with requests of its own
// (the coordinator's HEAD, the segment coordinators' ranged GETs) that
// carry the fields its key names, so a variant is looked up, stored,
// placed and collapsed like any object, under its own key (fleetVariant).
// Variants selected by credentials, cookies or fields that steer a fetch
// (Authorization, Cookie, conditionals, Range, hop-by-hop fields) are not
// fetched by the fleet: their values would travel between members and
// into records, and the fleet's fetches set some of them itself; such a
// request is forwarded, and an edge alone (miss.go) stores the variant of
// one segment from the forwarded response. "Vary: *" is never stored.

// unfetchedVary are the fields whose variants the fleet does not fetch
// (see above).
var unfetchedVary = map[string]bool{
	"Authorization": true, "Proxy-Authorization": true, "Cookie": true,
	"Range": true, "If-Range": true, "If-Match": true, "If-None-Match": true,
	"If-Modified-Since": true, "If-Unmodified-Since": true,
	"Host": true, "Content-Length": true, "Expect": true, "Max-Forwards": true,
}

// fleetVariant reports whether the fleet can look up and fetch the
// variant key with requests of its own. Not with --trust-key: a
// publisher's manifest signs a file's bytes, not its other variants.
func (e *Edge) fleetVariant(key string) bool {
	if e.signed != nil || len(key) > swarm.MaxKey-1 {
		return false
	}
	for name, vs := range httpcache.VariantFields(key) {
		// A key made here is canonical and valid; one from a peer must be
		// too, so that the deny list above cannot be dodged by spelling.
		if unfetchedVary[name] || httpcache.IsHopByHop(name) || name != http.CanonicalHeaderKey(name) ||
			!httpguts.ValidHeaderFieldName(name) || !httpguts.ValidHeaderFieldValue(vs[0]) {
			return false
		}
	}
	return true
}

// varyIndex remembers, for the targets whose responses vary, the fields
// they vary on, so that a request finds its variant's key.
type varyIndex struct {
	once sync.Once
	lru  *sizedlru.Cache[string, []string]
}

func (v *varyIndex) get() *sizedlru.Cache[string, []string] {
	v.once.Do(func() {
		v.lru = sizedlru.New[string](4<<20, func(fs []string) int64 {
			n := int64(64)
			for _, f := range fs {
				n += int64(len(f))
			}
			return n
		})
	})
	return v.lru
}

// requestKey returns the cache key of the variant r selects for target,
// as far as this edge has learned how target varies.
func (e *Edge) requestKey(target string, h http.Header) string {
	fields, ok := e.vary.get().Get(target)
	if !ok {
		return target
	}
	return httpcache.VariantKey(target, fields, h)
}

// learnVary records how target varies, from a response header.
func (e *Edge) learnVary(target string, h http.Header) []string {
	fields, star := httpcache.VaryFields(h)
	if len(fields) == 0 || star {
		e.vary.get().Remove(target)
		return nil
	}
	e.vary.get().Add(target, fields)
	return fields
}
