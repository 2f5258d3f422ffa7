package origin

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/shoalcdn/shoal/erasure"
	"github.com/shoalcdn/shoal/manifest"
)

// maxManifests bounds the signer's cache of manifests made on the fly.
const maxManifests = 4096

// signer makes and caches the manifests of files, for ServerConfig.SignKey.
type signer struct {
	key     ed25519.PrivateKey
	segSize int64
	group   singleflight.Group

	mu    sync.Mutex
	cache map[etagKey][]byte
}

func newSigner(key ed25519.PrivateKey, segSize int64) (*signer, error) {
	if len(key) != ed25519.PrivateKeySize {
		return nil, errors.New("origin: SignKey is not an ed25519 private key")
	}
	if segSize == 0 {
		segSize = erasure.DefaultSegmentSize
	}
	if segSize < manifest.MinSegmentSize || segSize > manifest.MaxSegmentSize {
		return nil, errors.New("origin: SignSegmentSize out of range")
	}
	return &signer{key: key, segSize: segSize, cache: make(map[etagKey][]byte)}, nil
}

// serveManifest answers a request for name (FILE.shoal-manifest, absent on
// disk) with FILE's manifest, signed on the fly.
func (s *Server) serveManifest(w http.ResponseWriter, r *http.Request, name string) {
	base := strings.TrimSuffix(name, manifest.Suffix)
	f, err := s.root.OpenFile(base, openFlags, 0)
	if err != nil {
		s.openFailed(w, r, base, err)
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		http.NotFound(w, r)
		return
	}
	k := etagKey{name: base, size: fi.Size(), mtime: fi.ModTime().UnixNano()}
	sg := s.signer
	sg.mu.Lock()
	enc, ok := sg.cache[k]
	sg.mu.Unlock()
	if !ok {
		v, err, _ := sg.group.Do(base, func() (any, error) {
			etag, err := s.etag(context.WithoutCancel(r.Context()), base, f, fi)
			if err != nil {
				return nil, err
			}
			u := url.URL{Path: "/" + base}
			m, err := manifest.Build(io.NewSectionReader(f, 0, fi.Size()), u.EscapedPath(), fi.Size(), sg.segSize)
			if err != nil {
				return nil, err
			}
			m.ETag = etag
			enc, err := m.Sign(sg.key)
			if err != nil {
				return nil, err
			}
			// Cache only what describes the file as it still is.
			if fi2, err := f.Stat(); err == nil && fi2.Size() == fi.Size() && fi2.ModTime().Equal(fi.ModTime()) {
				sg.mu.Lock()
				if len(sg.cache) >= maxManifests {
					for old := range sg.cache { // evict one, any
						delete(sg.cache, old)
						break
					}
				}
				sg.cache[k] = enc
				sg.mu.Unlock()
			}
			return enc, nil
		})
		if err != nil {
			s.log.LogAttrs(r.Context(), slog.LevelError, "origin: sign", slog.String("name", base), slog.Any("err", err))
			http.Error(w, "internal error", http.StatusInternalServerError)
			return
		}
		enc = v.([]byte)
	}
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	if s.cacheControl != "" {
		h.Set("Cache-Control", s.cacheControl)
	}
	sum := erasure.Sum(enc)
	h.Set("ETag", `"m`+hex.EncodeToString(sum[:16])+`"`)
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(enc))
}
