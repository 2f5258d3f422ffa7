package manifest

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"lukechampine.com/blake3"
)

// Suffix is appended to an object's path to name its manifest.
const Suffix = ".shoal-manifest"

// Limits every parser enforces.
const (
	// MaxLen bounds an encoded manifest: about 240 000 segments, a 1 TiB
	// object in 4 MiB segments.
	MaxLen = 16 << 20
	// MaxPathLen bounds the path line.
	MaxPathLen = 8 << 10
	// MinSegmentSize and MaxSegmentSize bound the segment size.
	MinSegmentSize = 4 << 10
	MaxSegmentSize = 256 << 20
	// maxSize bounds the object size so that segment counts stay ints.
	maxSize = 1 << 50
)

// HashSize is the length of a BLAKE3-256 hash.
const HashSize = 32

// Hash is a BLAKE3-256 hash.
type Hash = [HashSize]byte

// Manifest describes one object as its publisher signed it.
type Manifest struct {
	// Path is the object's URL path, escaped, beginning with "/".
	Path string
	// Size is the object's length in bytes.
	Size int64
	// SegmentSize is the length of every segment but the last.
	SegmentSize int64
	// ETag is the origin's strong ETag when the manifest was made, or "".
	ETag string
	// Object is the BLAKE3-256 of the whole object.
	Object Hash
	// Segments holds the BLAKE3-256 of each segment, in order.
	Segments []Hash
	// KeyID names the key that signed it (set by Sign and Parse).
	KeyID string
	// Signature is the Ed25519 signature over the encoding before the sig
	// line (set by Sign and Parse).
	Signature []byte
}

// Errors. Every parse error wraps ErrMalformed; every failed check wraps
// ErrSignature or ErrMismatch, so callers can count them apart.
var (
	ErrMalformed = errors.New("manifest: malformed")
	ErrSignature = errors.New("manifest: bad signature")
	ErrUntrusted = errors.New("manifest: signed by an untrusted key")
	ErrMismatch  = errors.New("manifest: content does not match")
)

// Segment returns the offset and length of segment i.
func (m *Manifest) Segment(i int) (off, n int64) {
	off = int64(i) * m.SegmentSize
	return off, min(m.SegmentSize, m.Size-off)
}

// Build reads an object of size bytes from r and returns its unsigned
// manifest for path.
func Build(r io.Reader, path string, size, segmentSize int64) (*Manifest, error) {
	if err := checkHeader(path, size, segmentSize); err != nil {
		return nil, err
	}
	m := &Manifest{Path: path, Size: size, SegmentSize: segmentSize}
	whole := blake3.New(HashSize, nil)
	buf := make([]byte, min(segmentSize, max(size, 1)))
	for off := int64(0); off < size; off += segmentSize {
		seg := buf[:min(segmentSize, size-off)]
		if _, err := io.ReadFull(r, seg); err != nil {
			return nil, fmt.Errorf("manifest: reading %s at %d: %w", path, off, err)
		}
		whole.Write(seg)
		m.Segments = append(m.Segments, blake3.Sum256(seg))
	}
	// The object must end where its size says.
	if n, err := r.Read(buf[:1]); n > 0 || (err != nil && err != io.EOF) {
		if err == nil {
			err = errors.New("longer than its size")
		}
		return nil, fmt.Errorf("manifest: reading %s: %w", path, err)
	}
	copy(m.Object[:], whole.Sum(nil))
	return m, nil
}

func checkHeader(path string, size, segmentSize int64) error {
	switch {
	case !strings.HasPrefix(path, "/") || len(path) > MaxPathLen || strings.ContainsFunc(path, badPathRune):
		return fmt.Errorf("%w: path %q", ErrMalformed, path)
	case size < 0 || size > maxSize:
		return fmt.Errorf("%w: size %d", ErrMalformed, size)
	case segmentSize < MinSegmentSize || segmentSize > MaxSegmentSize:
		return fmt.Errorf("%w: segment size %d outside %d..%d", ErrMalformed, segmentSize, MinSegmentSize, MaxSegmentSize)
	}
	return nil
}

// badPathRune rejects what an escaped URL path never holds: controls and
// spaces, which would also break the line format.
func badPathRune(r rune) bool { return r <= ' ' || r == 0x7f || r > 0x7e }

// segmentCount returns ceil(size / segmentSize).
func segmentCount(size, segmentSize int64) int {
	return int((size + segmentSize - 1) / segmentSize)
}

// body appends the signed part of the encoding: everything before "sig".
func (m *Manifest) body(b []byte) []byte {
	b = append(b, "shoal-manifest 1\npath "...)
	b = append(b, m.Path...)
	b = append(b, "\nsize "...)
	b = strconv.AppendInt(b, m.Size, 10)
	b = append(b, "\nsegment-size "...)
	b = strconv.AppendInt(b, m.SegmentSize, 10)
	if m.ETag != "" {
		b = append(b, "\netag "...)
		b = append(b, m.ETag...)
	}
	b = append(b, "\nblake3 "...)
	b = hex.AppendEncode(b, m.Object[:])
	b = append(b, "\nsegments "...)
	b = strconv.AppendInt(b, int64(len(m.Segments)), 10)
	b = append(b, '\n')
	for _, h := range m.Segments {
		b = hex.AppendEncode(b, h[:])
		b = append(b, '\n')
	}
	return b
}

// Sign signs m with key and returns its encoding.
func (m *Manifest) Sign(key ed25519.PrivateKey) ([]byte, error) {
	if err := checkHeader(m.Path, m.Size, m.SegmentSize); err != nil {
		return nil, err
	}
	if len(m.Segments) != segmentCount(m.Size, m.SegmentSize) {
		return nil, fmt.Errorf("%w: %d segment hashes for %d segments", ErrMalformed, len(m.Segments), segmentCount(m.Size, m.SegmentSize))
	}
	if !validETag(m.ETag) {
		return nil, fmt.Errorf("%w: etag %q", ErrMalformed, m.ETag)
	}
	pub, ok := key.Public().(ed25519.PublicKey)
	if !ok || len(key) != ed25519.PrivateKeySize {
		return nil, errors.New("manifest: not an ed25519 private key")
	}
	b := m.body(nil)
	m.Signature = ed25519.Sign(key, b)
	m.KeyID = KeyID(pub)
	b = append(b, "sig ed25519 "...)
	b = append(b, m.KeyID...)
	b = append(b, ' ')
	b = base64.StdEncoding.AppendEncode(b, m.Signature)
	return append(b, '\n'), nil
}

// validETag accepts "" or a strong entity tag: a quoted string of etagc.
func validETag(s string) bool {
	if s == "" {
		return true
	}
	if len(s) < 2 || len(s) > 1024 || s[0] != '"' || s[len(s)-1] != '"' {
		return false
	}
	for _, c := range []byte(s[1 : len(s)-1]) {
		if c == '"' || c < 0x21 || c == 0x7f {
			return false
		}
	}
	return true
}

// Parse decodes a manifest and checks its shape, not its signature: use a
// Verifier for that. Its error wraps ErrMalformed.
func Parse(data []byte) (*Manifest, error) {
	if len(data) > MaxLen {
		return nil, fmt.Errorf("%w: %d bytes, over %d", ErrMalformed, len(data), MaxLen)
	}
	p := parser{s: bufio.NewScanner(bytes.NewReader(data))}
	p.s.Buffer(make([]byte, 0, 4096), MaxPathLen+64)
	m := &Manifest{}
	if line := p.line(); line != "shoal-manifest 1" {
		return nil, p.fail("first line %q, want \"shoal-manifest 1\"", trunc(line))
	}
	m.Path = p.field("path")
	m.Size = p.int("size")
	m.SegmentSize = p.int("segment-size")
	if p.err != nil {
		return nil, p.err
	}
	if err := checkHeader(m.Path, m.Size, m.SegmentSize); err != nil {
		return nil, err
	}
	key, val := p.pair()
	if key == "etag" {
		if m.ETag = val; !validETag(val) || val == "" {
			return nil, p.fail("etag %q", trunc(val))
		}
		key, val = p.pair()
	}
	if key != "blake3" || !p.hash(&m.Object, val) {
		return nil, p.fail("want the blake3 line, got %q", trunc(key+" "+val))
	}
	n := p.int("segments")
	if p.err != nil {
		return nil, p.err
	}
	if want := segmentCount(m.Size, m.SegmentSize); n != int64(want) {
		return nil, p.fail("segments %d, want %d for size %d", n, want, m.Size)
	}
	m.Segments = make([]Hash, n)
	for i := range m.Segments {
		if !p.hash(&m.Segments[i], p.line()) {
			return nil, p.fail("segment %d: not a hash", i)
		}
	}
	if p.err != nil {
		return nil, p.err
	}
	signed := p.off
	sig := strings.Fields(p.line())
	if len(sig) != 4 || sig[0] != "sig" || sig[1] != "ed25519" || len(sig[2]) != 16 {
		return nil, p.fail("want the sig line")
	}
	if _, err := hex.DecodeString(sig[2]); err != nil {
		return nil, p.fail("key id %q", trunc(sig[2]))
	}
	s, err := base64.StdEncoding.Strict().DecodeString(sig[3])
	if err != nil || len(s) != ed25519.SignatureSize {
		return nil, p.fail("signature is not %d bytes of base64", ed25519.SignatureSize)
	}
	if p.err != nil {
		return nil, p.err
	}
	if p.off != len(data) {
		return nil, p.fail("data after the sig line")
	}
	// Only the canonical encoding is accepted, so that one manifest has one
	// spelling (no leading zeros, no upper-case hex, no spaces).
	if !bytes.Equal(m.body(nil), data[:signed]) {
		return nil, fmt.Errorf("%w: not in canonical form", ErrMalformed)
	}
	m.KeyID, m.Signature = sig[2], s
	return m, nil
}

type parser struct {
	s   *bufio.Scanner
	n   int // lines read
	off int // bytes consumed, through the last newline
	err error
}

func (p *parser) line() string {
	if p.err != nil {
		return ""
	}
	if !p.s.Scan() {
		if p.err = p.s.Err(); p.err == nil {
			p.err = fmt.Errorf("%w: ends after line %d", ErrMalformed, p.n)
		} else {
			p.err = fmt.Errorf("%w: line %d: %v", ErrMalformed, p.n+1, p.err)
		}
		return ""
	}
	p.n++
	t := p.s.Text()
	p.off += len(t) + 1
	return t
}

func (p *parser) pair() (key, val string) {
	k, v, _ := strings.Cut(p.line(), " ")
	return k, v
}

func (p *parser) field(name string) string {
	k, v := p.pair()
	if p.err == nil && k != name {
		p.err = p.fail("want the %s line, got %q", name, trunc(k))
	}
	return v
}

func (p *parser) int(name string) int64 {
	v := p.field(name)
	if p.err != nil {
		return 0
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		p.err = p.fail("%s %q", name, trunc(v))
	}
	return n
}

func (p *parser) hash(h *Hash, s string) bool {
	if len(s) != 2*HashSize {
		return false
	}
	_, err := hex.Decode(h[:], []byte(s))
	return err == nil
}

func (p *parser) fail(format string, args ...any) error {
	if p.err != nil {
		return p.err
	}
	return fmt.Errorf("%w: line %d: %s", ErrMalformed, p.n, fmt.Sprintf(format, args...))
}

func trunc(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// VerifySegment reports whether data is segment i of the object, with an
// error wrapping ErrMismatch when it is not.
func (m *Manifest) VerifySegment(i int, data []byte) error {
	if i < 0 || i >= len(m.Segments) {
		return fmt.Errorf("%w: %s has no segment %d", ErrMismatch, m.Path, i)
	}
	if _, n := m.Segment(i); int64(len(data)) != n {
		return fmt.Errorf("%w: %s segment %d is %d bytes, want %d", ErrMismatch, m.Path, i, len(data), n)
	}
	got := blake3.Sum256(data)
	if subtle.ConstantTimeCompare(got[:], m.Segments[i][:]) != 1 {
		return fmt.Errorf("%w: %s segment %d hash", ErrMismatch, m.Path, i)
	}
	return nil
}
