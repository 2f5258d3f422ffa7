// Package origin talks HTTP to the origin web server that Shoal fronts.
//
// It holds two things:
//
//   - [Client], what an edge uses to learn about an object ([Client.Head]) and to
//     fetch one segment-sized window of it ([Client.FetchRange]) with a ranged,
//     conditional GET. Requests are bounded in number, each attempt has its own
//     timeout, and idempotent reads are retried with jittered exponential backoff.
//     A fetch names the object version it expects (a strong ETag, or a
//     Last-Modified date, plus the total size); when the origin holds another
//     version, the fetch fails with [ErrChanged] instead of returning bytes of a
//     mix of versions.
//     Its default transport also accepts, on plain-HTTP origins, a response of
//     an unknown transfer coding, framed by the connection's close (RFC 9112
//     §6.3), which Go's client refuses; see framing.go.
//   - [Server], a reference origin that serves the regular files of one directory
//     with strong content-hash ETags, single byte ranges and the RFC 9110
//     conditional requests. `shoal origin`, the demo and the tests run it.
//
// # Validators
//
// The server's ETag is `"` + hex(first 16 bytes of SHA-256(content)) + `"`: two
// servers holding the same bytes agree on it, and it changes whenever the bytes
// do. Hashes are cached by (name, size, modification time), so a file is hashed
// once per version, not per request; a file rewritten in place with the same size
// and modification time keeps its old tag. Replace files by rename (write
// elsewhere, then rename into place): a reader then never sees a half-written
// version, and an open file keeps serving the version it opened.
//
// # Ranges
//
// The server answers one satisfiable range with 206 and a Content-Range. A Range
// with several satisfiable ranges is answered with 200 and the whole body, which
// RFC 9110 §14.2 permits; it never produces multipart/byteranges. A malformed Range
// or one in another unit is ignored (200). Range is only honoured on GET, and it is
// ignored for an empty file.
//
// The rules themselves (Range and Content-Range parsing, entity-tag comparison,
// the order of preconditions, If-Range) are package internal/httpcache's, which
// the edge applies to its cache as well.
package origin
