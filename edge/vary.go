package edge

import (
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/shoalcdn/shoal/internal/sizedlru"
	"github.com/shoalcdn/shoal/swarm"
	"golang.org/x/net/http/httpguts"
)

// Vary (RFC 9111 §4.1). A variant is stored under its own key: the
// request target, then, when the request sends any of the fields the
// response's Vary names, a newline and one "Name=value" line per field
// sent (names canonical and sorted, list values joined by "," with the
// whitespace around commas removed: the normalisation §4.1 allows). A
// newline cannot occur in a request target, so variant keys never clash
// with targets.
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

// varyFields returns the canonical names a Vary field lists, sorted and
// unique, and whether it lists "*".
func varyFields(h http.Header) (fields []string, star bool) {
	for _, line := range h.Values("Vary") {
		for f := range strings.SplitSeq(line, ",") {
			f = strings.TrimSpace(f)
			switch {
			case f == "":
			case f == "*":
				star = true
			default:
				fields = append(fields, http.CanonicalHeaderKey(f))
			}
		}
	}
	slices.Sort(fields)
	return slices.Compact(fields), star
}

// caseless are the fields whose values compare case-insensitively:
// language ranges, content codings and charsets (RFC 9110 §12.5.4,
// §8.4.1, §12.5.2); their variant keys are lower-cased, so "eN, De"
// selects the variant of "en, de".
var caseless = map[string]bool{"Accept-Language": true, "Accept-Encoding": true, "Accept-Charset": true}

// variantKey is the key of the variant a request with header h selects
// among the responses of target that vary on fields.
func variantKey(target string, fields []string, h http.Header) string {
	var b strings.Builder
	b.WriteString(target)
	for _, f := range fields {
		vs := h.Values(f)
		if len(vs) == 0 {
			continue
		}
		var parts []string
		for _, v := range vs {
			for p := range strings.SplitSeq(v, ",") {
				parts = append(parts, strings.TrimSpace(p))
			}
		}
		v := strings.Join(parts, ",")
		if caseless[f] {
			v = strings.ToLower(v)
		}
		b.WriteByte('\n')
		b.WriteString(f)
		b.WriteByte('=')
		b.WriteString(v)
	}
	return b.String()
}

// variantFields returns the request fields a variant key names, as the
// fleet's fetches send them; nil for a plain target.
func variantFields(key string) http.Header {
	i := strings.IndexByte(key, '\n')
	if i < 0 {
		return nil
	}
	h := http.Header{}
	for line := range strings.SplitSeq(key[i+1:], "\n") {
		name, value, _ := strings.Cut(line, "=")
		h[name] = []string{value}
	}
	return h
}

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
	for name, vs := range variantFields(key) {
		// A key made here is canonical and valid; one from a peer must be
		// too, so that the deny list above cannot be dodged by spelling.
		if unfetchedVary[name] || hopByHop[name] || name != http.CanonicalHeaderKey(name) ||
			!httpguts.ValidHeaderFieldName(name) || !httpguts.ValidHeaderFieldValue(vs[0]) {
			return false
		}
	}
	return true
}

// targetOf returns the request target of a cache key.
func targetOf(key string) string {
	if i := strings.IndexByte(key, '\n'); i >= 0 {
		return key[:i]
	}
	return key
}

// selects reports whether a request with header h may be answered by
// rec: the variant it selects is the one rec holds.
func selects(rec *Record, h http.Header) bool {
	fields, star := varyFields(rec.Header)
	return !star && variantKey(targetOf(rec.Key), fields, h) == rec.Key
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
	return variantKey(target, fields, h)
}

// learnVary records how target varies, from a response header.
func (e *Edge) learnVary(target string, h http.Header) []string {
	fields, star := varyFields(h)
	if len(fields) == 0 || star {
		e.vary.get().Remove(target)
		return nil
	}
	e.vary.get().Add(target, fields)
	return fields
}
