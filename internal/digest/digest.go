// Package digest knows content that origins name by its digest, as far
// as a cache needs it: which request targets of the OCI distribution API
// (the registry protocol of Docker, containerd and skopeo) name a blob or
// manifest by digest, how a Hugging Face hub's resolve answer names a
// file's SHA-256 (X-Linked-Etag), the fleet-wide keys such content is kept
// under whatever repository, revision or mirror query it was asked for
// with (a name space no client request can reach), and the checks of
// bytes against their digest: Verifier, Writer (a response that holds its
// last byte until its body matches), Pins and Whole (segment hashes of
// checked content). Answers remembers an origin's permission per
// credential; Follow follows the redirects of a fill to storage on another
// host. The edge (edge/registry.go) puts them together.
package digest

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"hash"
	"strings"
)

// Kind is what a digest names in the API: a blob (a layer, a config) or a
// manifest (an image manifest or an index).
type Kind string

const (
	Blob     Kind = "blobs"
	Manifest Kind = "manifests"
)

// Ref is a GET or HEAD target of the API that names content by digest:
// /v2/<repository>/blobs/<digest> or /v2/<repository>/manifests/<digest>.
type Ref struct {
	Repository string // e.g. "library/alpine"
	Kind       Kind
	Algorithm  string // "sha256" or "sha512"
	Hex        string // the digest's encoded part, lower-case hex
}

// Digest returns the digest as the API writes it, "sha256:<hex>".
func (r Ref) Digest() string { return r.Algorithm + ":" + r.Hex }

// Key returns the target the fleet keeps r's content under: the same for
// every repository and every query (containerd sends a mirror "?ns=<the
// registry>"), since a digest names the same bytes wherever it appears.
// It is a path of the API that no repository can have ("_" is not a valid
// repository name).
func (r Ref) Key() string { return KeyPrefix + string(r.Kind) + "/" + r.Digest() }

// KeyPrefix starts every key Key makes.
const KeyPrefix = "/v2/_/"

// HubPrefix starts every key HubKey makes, and is reserved with it.
const HubPrefix = "/.well-known/shoal/"

// HubKey returns the target the fleet keeps a file of a model hub under:
// by its SHA-256 (hex), whatever repository, revision and path name it.
func HubKey(hex string) string { return HubPrefix + "sha256/" + hex }

// IsKey reports whether target is in the reserved name space of the keys
// Key and HubKey make.
func IsKey(target string) bool {
	return strings.HasPrefix(target, KeyPrefix) || strings.HasPrefix(target, HubPrefix)
}

// TargetOfKey returns the request target of a cache key: the key, less
// the "//<site>" of an edge that fronts several sites.
func TargetOfKey(key string) string {
	if rest, ok := strings.CutPrefix(key, "//"); ok {
		i := strings.IndexByte(rest, '/')
		if i < 0 {
			return ""
		}
		return rest[i:]
	}
	return key
}

// KeyVerifier returns a verifier of the digest a cache key made of Key or
// HubKey names (TargetOfKey), or nil.
func KeyVerifier(key string) *Verifier {
	alg, hex, ok := KeyDigest(TargetOfKey(key))
	if !ok {
		return nil
	}
	return NewVerifier(alg, hex)
}

// IsTagManifest reports whether target is /v2/<repository>/manifests/<tag>.
func IsTagManifest(target string) bool {
	path, _, _ := strings.Cut(target, "?")
	rest, ok := strings.CutPrefix(path, "/v2/")
	if !ok {
		return false
	}
	i := strings.LastIndex(rest, "/manifests/")
	return i > 0 && !strings.Contains(rest[i+len("/manifests/"):], "/")
}

// KeyDigest returns the algorithm and hex digest a key made by Key or
// HubKey names.
func KeyDigest(key string) (alg, hex string, ok bool) {
	switch {
	case strings.HasPrefix(key, KeyPrefix):
		_, d, _ := strings.Cut(key[len(KeyPrefix):], "/")
		alg, hex, ok = strings.Cut(d, ":")
	case strings.HasPrefix(key, HubPrefix):
		alg, hex, ok = strings.Cut(key[len(HubPrefix):], "/")
	}
	if !ok || !validHex(alg, hex) {
		return "", "", false
	}
	return alg, hex, true
}

// IsHubResolve reports whether target is a Hugging Face hub file download,
// /[datasets/|spaces/]<repository>/resolve/<revision>/<path>, where a
// repository is <name> or <namespace>/<name>.
func IsHubResolve(target string) bool {
	path, _, _ := strings.Cut(target, "?")
	if !strings.Contains(path, "/resolve/") {
		return false // every other request, without allocating
	}
	path = strings.TrimPrefix(path, "/")
	if rest, ok := strings.CutPrefix(path, "datasets/"); ok {
		path = rest
	} else if rest, ok := strings.CutPrefix(path, "spaces/"); ok {
		path = rest
	}
	parts := strings.SplitN(path, "/", 6)
	for i := 1; i <= 2 && i+2 < len(parts); i++ {
		if parts[i] == "resolve" && parts[i+1] != "" && parts[i+2] != "" && parts[0] != "" && (i == 1 || parts[1] != "") {
			return true
		}
	}
	return false
}

// HubCommit reports whether a hub resolve target names its revision by a
// commit (40 hex digits), which never moves, rather than a branch or tag.
func HubCommit(target string) bool {
	path, _, _ := strings.Cut(target, "?")
	_, rest, ok := strings.Cut(path, "/resolve/")
	if !ok {
		return false
	}
	rev, _, _ := strings.Cut(rest, "/")
	return len(rev) == 40 && strings.Trim(rev, "0123456789abcdef") == ""
}

// LinkedSHA256 returns the SHA-256 a hub's resolve answer names in its
// X-Linked-Etag field ("<64 hex>", quoted or not), the file's content
// address; ok is false when the field holds no SHA-256 (a file kept in
// git, not in large-file storage).
func LinkedSHA256(field string) (hex string, ok bool) {
	field = strings.TrimPrefix(strings.TrimSpace(field), "W/")
	field = strings.Trim(field, `"`)
	if !validHex("sha256", field) {
		return "", false
	}
	return field, true
}

// Parse returns the digest reference a request target (path and optional
// query) names, and whether it names one. Tags, uploads, catalog and tag
// lists, and malformed digests are not references.
func Parse(target string) (Ref, bool) {
	path, _, _ := strings.Cut(target, "?")
	rest, ok := strings.CutPrefix(path, "/v2/")
	if !ok {
		return Ref{}, false
	}
	// The repository may itself contain "/": the kind is the next-to-last
	// element.
	i := strings.LastIndexByte(rest, '/')
	if i < 0 {
		return Ref{}, false
	}
	digest := rest[i+1:]
	rest = rest[:i]
	j := strings.LastIndexByte(rest, '/')
	if j <= 0 {
		return Ref{}, false
	}
	repo, kind := rest[:j], Kind(rest[j+1:])
	if kind != Blob && kind != Manifest || !validRepository(repo) {
		return Ref{}, false
	}
	alg, enc, ok := strings.Cut(digest, ":")
	if !ok || !validHex(alg, enc) {
		return Ref{}, false
	}
	return Ref{Repository: repo, Kind: kind, Algorithm: alg, Hex: enc}, true
}

// validHex checks a digest's encoded part for its algorithm: the OCI image
// spec's registered algorithms, lower-case hex of the hash's length.
func validHex(alg, enc string) bool {
	var n int
	switch alg {
	case "sha256":
		n = 64
	case "sha512":
		n = 128
	default:
		return false
	}
	if len(enc) != n {
		return false
	}
	for i := 0; i < len(enc); i++ {
		c := enc[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// validRepository checks a repository name against the distribution
// spec's grammar: path components of [a-z0-9] separated by ".", "_", "__"
// or runs of "-", joined by "/".
func validRepository(name string) bool {
	if name == "" || len(name) > 255 {
		return false
	}
	for _, comp := range strings.Split(name, "/") {
		if comp == "" {
			return false
		}
		alnum := func(c byte) bool { return '0' <= c && c <= '9' || 'a' <= c && c <= 'z' }
		if !alnum(comp[0]) || !alnum(comp[len(comp)-1]) {
			return false
		}
		for i := 0; i < len(comp); i++ {
			if c := comp[i]; !alnum(c) && c != '.' && c != '_' && c != '-' {
				return false
			}
		}
		if strings.Contains(comp, "___") || strings.Contains(comp, "..") || strings.Contains(comp, "._") || strings.Contains(comp, "_.") {
			return false
		}
	}
	return true
}

// Verifier hashes bytes as they pass and says whether they are the content
// a digest names.
type Verifier struct {
	h    hash.Hash
	want []byte
}

// NewVerifier returns a verifier of the digest alg:hexDigest, or nil when
// that is no digest Parse, KeyDigest or LinkedSHA256 accept.
func NewVerifier(alg, hexDigest string) *Verifier {
	if !validHex(alg, hexDigest) {
		return nil
	}
	want, _ := hex.DecodeString(hexDigest)
	v := &Verifier{want: want}
	if alg == "sha512" {
		v.h = sha512.New()
	} else {
		v.h = sha256.New()
	}
	return v
}

// Write hashes p; it never fails.
func (v *Verifier) Write(p []byte) (int, error) { return v.h.Write(p) }

// Match reports whether the bytes written so far are the digest's content.
func (v *Verifier) Match() bool { return string(v.h.Sum(nil)) == string(v.want) }
