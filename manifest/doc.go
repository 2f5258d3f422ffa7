// Package manifest is Shoal's end-to-end integrity: a publisher signs, for
// every object it serves, a manifest that lists the hash of each of the
// object's segments, and edges started with trusted public keys check every
// segment against it before a byte reaches a client. An edge, a peer or a
// disk that alters a shard can make a download fail; it cannot make one
// wrong. This is what a .torrent file or TUF gives; no CDN does it.
//
// # Format
//
// A manifest is UTF-8 text of LF-terminated lines, served next to its object
// with the suffix ".shoal-manifest" (/r/app.tar → /r/app.tar.shoal-manifest),
// so that any web server can serve it. Fields come in this order, each once:
//
//	shoal-manifest 1
//	path /r/app.tar                  the object's URL path, escaped as in a URL
//	size 10485760                    the object's length in bytes
//	segment-size 4194304             the length of every segment but the last
//	etag "3b1f…"                     optional: the origin's strong ETag when signed
//	blake3 9a0c…                     BLAKE3-256 of the whole object, hex
//	segments 3                       = ceil(size / segment-size)
//	1f2e…                            BLAKE3-256 of segment 0, hex
//	…                                one line per segment
//	sig ed25519 <key-id> <base64>    signature, last line
//
// The signature is Ed25519 over every byte before the "sig" line. The key
// ID is the first 8 bytes of the SHA-256 of the public key's 32 bytes, in
// hex; it selects among several trusted keys (for rotation). Keys are PEM:
// "PRIVATE KEY" (PKCS #8) and "PUBLIC KEY" (PKIX), as openssl writes them
// for ed25519, so either tool can make them.
//
// An object of size 0 has no segment lines. The path binds the manifest to
// its URL: a valid manifest of another object is rejected. The segment size
// must match the edges' --segment-size for an edge to verify the segments it
// rebuilds; shoal sign defaults to the edges' default, 4 MiB.
package manifest
