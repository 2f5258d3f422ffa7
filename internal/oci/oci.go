// Package oci knows the shape of the OCI distribution API (the registry
// protocol of Docker, containerd, skopeo and every container registry) as
// far as a cache needs it: which request targets name content by digest,
// the fleet-wide key such content is kept under whatever repository or
// mirror query it was asked for with, and the check of bytes against
// their digest. Pure computation, standard library only.
package oci

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

// IsKey reports whether target is a key Key made.
func IsKey(target string) bool { return strings.HasPrefix(target, KeyPrefix) }

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

// NewVerifier returns a verifier of r's digest.
func NewVerifier(r Ref) *Verifier {
	want, err := hex.DecodeString(r.Hex)
	if err != nil {
		panic("oci: NewVerifier of an unparsed Ref") // Parse checked the hex
	}
	v := &Verifier{want: want}
	if r.Algorithm == "sha512" {
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
