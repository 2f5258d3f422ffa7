package origin

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"mime"
	"net/http"
	"os"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/shoalcdn/shoal/internal/httpcache"
	"github.com/shoalcdn/shoal/manifest"
)

// maxETags bounds the server's ETag cache. Past it, the oldest entry goes.
const maxETags = 4096

// ServerConfig configures a Server.
type ServerConfig struct {
	// Dir is the directory served. Required; must exist and be a directory.
	Dir string
	// CacheControl is sent as Cache-Control on 200, 206 and 304 responses.
	// Empty sends none.
	CacheControl string
	// Logger receives structured logs. Nil means slog.Default().
	Logger *slog.Logger
	// SignKey, when set, makes the server sign manifests on the fly: a
	// request for FILE.shoal-manifest that names no file on disk gets
	// FILE's manifest, signed with this key (see package manifest). A
	// manifest file on disk is served as it is.
	SignKey ed25519.PrivateKey
	// SignSegmentSize is the segment size of manifests made on the fly.
	// Zero means erasure.DefaultSegmentSize, the edges' default.
	SignSegmentSize int64
}

// Server is a reference origin: an http.Handler that serves the regular files
// under one directory with GET and HEAD, strong content-hash ETags,
// Last-Modified, single byte ranges and conditional requests (RFC 9110 §13).
//
// It never leaves the directory: the URL path is cleaned, ".." segments,
// backslashes and NUL bytes are refused, and files are opened through an
// [os.Root], so a symbolic link that points outside the directory is not
// followed. Directories, devices and other non-regular files are 404; there are
// no listings and no index files.
//
// A Server is safe for concurrent use.
type Server struct {
	root         *os.Root
	cacheControl string
	log          *slog.Logger
	etags        etagCache
	signer       *signer // nil unless ServerConfig.SignKey is set
}

// NewServer returns a Server for cfg.Dir. The directory handle it opens is
// released by Close.
func NewServer(cfg ServerConfig) (*Server, error) {
	if cfg.Dir == "" {
		return nil, errors.New("origin: ServerConfig.Dir is required")
	}
	fi, err := os.Stat(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("origin: server dir: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("origin: server dir %s: not a directory", cfg.Dir)
	}
	root, err := os.OpenRoot(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("origin: server dir: %w", err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	srv := &Server{
		root:         root,
		cacheControl: cfg.CacheControl,
		log:          log,
		etags: etagCache{
			m:        make(map[etagKey]string),
			inflight: make(map[etagKey]*etagCall),
		},
	}
	if cfg.SignKey != nil {
		if srv.signer, err = newSigner(cfg.SignKey, cfg.SignSegmentSize); err != nil {
			root.Close()
			return nil, err
		}
	}
	return srv, nil
}

// Close releases the directory handle. Requests served after Close fail with
// 404; callers stop the http.Server first.
func (s *Server) Close() error {
	return s.root.Close()
}

// ServeHTTP serves GET and HEAD for the file named by the URL path; other
// methods get 405.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	name, ok := cleanName(r.URL.Path)
	if !ok {
		http.Error(w, "bad path", http.StatusBadRequest)
		return
	}
	if strings.HasSuffix(r.URL.Path, "/") {
		// Only a directory has such a name, and directories are not served;
		// refusing early also keeps "/f/" from aliasing "/f".
		http.NotFound(w, r)
		return
	}
	// O_NONBLOCK (where the platform has it) keeps a FIFO from blocking the open;
	// it is refused below as a non-regular file.
	f, err := s.root.OpenFile(name, openFlags, 0)
	if err != nil {
		if s.signer != nil && errors.Is(err, fs.ErrNotExist) && strings.HasSuffix(name, manifest.Suffix) {
			s.serveManifest(w, r, name)
			return
		}
		s.openFailed(w, r, name, err)
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		s.log.LogAttrs(r.Context(), slog.LevelError, "origin: stat", slog.String("name", name), slog.Any("err", err))
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	if !fi.Mode().IsRegular() {
		http.NotFound(w, r)
		return
	}
	etag, err := s.etag(r.Context(), name, f, fi)
	if err != nil {
		if r.Context().Err() == nil {
			s.log.LogAttrs(r.Context(), slog.LevelError, "origin: hash", slog.String("name", name), slog.Any("err", err))
		}
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	size := fi.Size()
	mod := fi.ModTime()
	// The Unix epoch is what many tools leave when they do not know a time;
	// it validates nothing.
	hasMod := !mod.IsZero() && !mod.Equal(time.Unix(0, 0))
	mod = mod.Truncate(time.Second) // HTTP dates have one-second resolution

	// What the precondition rules compare dates with: none when hasMod is
	// false.
	var validMod time.Time
	if hasMod {
		validMod = mod
	}
	switch httpcache.CheckPreconditions(r, etag, validMod) {
	case http.StatusPreconditionFailed:
		http.Error(w, "precondition failed", http.StatusPreconditionFailed)
		return
	case http.StatusNotModified:
		s.writeValidators(w.Header(), etag, mod, hasMod)
		w.WriteHeader(http.StatusNotModified)
		return
	}

	status := http.StatusOK
	body := httpcache.Range{Start: 0, Length: size}
	// Range is defined for GET only (RFC 9110 §14.2), and an empty file has no
	// range we could describe in a Content-Range, so both are served whole.
	if rh := r.Header.Get("Range"); rh != "" && r.Method == http.MethodGet && size > 0 &&
		httpcache.IfRangeHolds(r.Header.Get("If-Range"), etag, validMod) {
		ranges, err := httpcache.ParseRange(rh, size)
		switch {
		case errors.Is(err, httpcache.ErrRangeUnsatisfiable):
			w.Header().Set("Content-Range", httpcache.UnsatisfiedContentRange(size))
			w.Header().Set("Accept-Ranges", "bytes")
			http.Error(w, "range not satisfiable", http.StatusRequestedRangeNotSatisfiable)
			return
		case err != nil:
			// Malformed or in an unknown unit: ignored, the whole body is sent.
		case len(ranges) == 1:
			status, body = http.StatusPartialContent, ranges[0]
			w.Header().Set("Content-Range", string(body.AppendContentRange(nil, size)))
		default:
			// Several ranges: the whole body, which RFC 9110 allows; it is
			// simpler than multipart/byteranges and no Shoal edge asks for it.
		}
	}

	h := w.Header()
	s.writeValidators(h, etag, mod, hasMod)
	h.Set("Accept-Ranges", "bytes")
	h.Set("Content-Type", contentType(name))
	h.Set("Content-Length", strconv.FormatInt(body.Length, 10))
	w.WriteHeader(status)
	if r.Method == http.MethodHead {
		return
	}
	if body.Start != 0 {
		if _, err := f.Seek(body.Start, io.SeekStart); err != nil {
			s.log.LogAttrs(r.Context(), slog.LevelError, "origin: seek", slog.String("name", name), slog.Any("err", err))
			return // the short body makes the server close the connection
		}
	}
	// io.CopyN hands the ResponseWriter an *io.LimitedReader over the *os.File,
	// which net/http passes to the TCP connection's ReadFrom: sendfile. The
	// limit also keeps a file that grew since the Stat from overrunning the
	// Content-Length.
	if _, err := io.CopyN(w, f, body.Length); err != nil {
		s.log.LogAttrs(r.Context(), slog.LevelDebug, "origin: send", slog.String("name", name), slog.Any("err", err))
	}
}

// writeValidators sets the fields shared by 200, 206 and 304.
func (s *Server) writeValidators(h http.Header, etag string, mod time.Time, hasMod bool) {
	h.Set("ETag", etag)
	if hasMod {
		h.Set("Last-Modified", mod.UTC().Format(http.TimeFormat))
	}
	if s.cacheControl != "" {
		h.Set("Cache-Control", s.cacheControl)
	}
}

func (s *Server) openFailed(w http.ResponseWriter, r *http.Request, name string, err error) {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		http.NotFound(w, r)
	case errors.Is(err, fs.ErrPermission):
		http.Error(w, "forbidden", http.StatusForbidden)
	default:
		// Escapes from the root, symlink loops, "not a directory" on the way:
		// all just absent to the client.
		s.log.LogAttrs(r.Context(), slog.LevelDebug, "origin: open", slog.String("name", name), slog.Any("err", err))
		http.NotFound(w, r)
	}
}

// cleanName maps a URL path to a name relative to the root, refusing anything
// that could name a file outside it. os.Root enforces the same on its own; this
// turns such requests into a plain 400 before any file system call.
func cleanName(p string) (string, bool) {
	if p == "" {
		p = "/"
	}
	if p[0] != '/' || strings.ContainsAny(p, "\\\x00") {
		return "", false
	}
	for seg := range strings.SplitSeq(p, "/") {
		if seg == ".." {
			return "", false
		}
	}
	name := path.Clean(p)[1:]
	if name == "" {
		name = "."
	}
	return name, true
}

func contentType(name string) string {
	if t := mime.TypeByExtension(path.Ext(name)); t != "" {
		return t
	}
	return "application/octet-stream"
}

// etagKey names one version of a file, as far as the file system tells.
type etagKey struct {
	name  string
	size  int64
	mtime int64 // UnixNano
}

// etagCache remembers content hashes so each file version is hashed once.
// Concurrent requests for a version being hashed wait for that hash.
type etagCache struct {
	mu       sync.Mutex
	m        map[etagKey]string
	order    []etagKey // insertion order, a ring once it holds maxETags
	next     int       // the slot of order to overwrite next when full
	inflight map[etagKey]*etagCall
}

type etagCall struct {
	done chan struct{}
	etag string
	ok   bool // the result was cached; waiters may use it
}

// etag returns the strong ETag of the file f, opened as name, described by fi.
func (s *Server) etag(ctx context.Context, name string, f *os.File, fi fs.FileInfo) (string, error) {
	k := etagKey{name: name, size: fi.Size(), mtime: fi.ModTime().UnixNano()}
	c := &s.etags
	var call *etagCall
	for call == nil {
		c.mu.Lock()
		if e, ok := c.m[k]; ok {
			c.mu.Unlock()
			return e, nil
		}
		other, busy := c.inflight[k]
		if !busy {
			call = &etagCall{done: make(chan struct{})}
			c.inflight[k] = call
			c.mu.Unlock()
			break
		}
		c.mu.Unlock()
		select {
		case <-other.done:
		case <-ctx.Done():
			return "", ctx.Err()
		}
		if other.ok {
			return other.etag, nil
		}
		// The hasher failed or saw the file change; look again, and hash
		// ourselves if nobody else is.
	}

	e, err := hashFile(f, fi.Size())
	// Cache only if the file did not change while it was read: otherwise the
	// hash may describe a mix of versions.
	if err == nil {
		fi2, err2 := f.Stat()
		call.ok = err2 == nil && fi2.Size() == fi.Size() && fi2.ModTime().Equal(fi.ModTime())
	}
	call.etag = e
	c.mu.Lock()
	delete(c.inflight, k)
	if call.ok {
		c.putLocked(k, e)
	}
	c.mu.Unlock()
	close(call.done) // publishes call.etag and call.ok to the waiters
	return e, err
}

func (c *etagCache) putLocked(k etagKey, e string) {
	if _, ok := c.m[k]; ok {
		return
	}
	if len(c.order) < maxETags {
		c.order = append(c.order, k)
	} else {
		delete(c.m, c.order[c.next])
		c.order[c.next] = k
		c.next = (c.next + 1) % maxETags
	}
	c.m[k] = e
}

func hashFile(f *os.File, size int64) (string, error) {
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, 0, size)); err != nil {
		return "", err
	}
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	var b [2 + 32]byte
	b[0] = '"'
	hex.Encode(b[1:33], sum[:16])
	b[33] = '"'
	return string(b[:]), nil
}
