package origin

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/shoalcdn/shoal/manifest"
)

func TestServerSignsManifests(t *testing.T) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	v, err := manifest.NewVerifier(pub)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	body := strings.Repeat("shoal ", 3000) // 18000 bytes: 5 segments of 4 KiB
	writeFile(t, dir, "rel/a b.bin", body, testMod)
	writeFile(t, dir, "signed.txt", "x", testMod)
	writeFile(t, dir, "signed.txt"+manifest.Suffix, "from disk", testMod)
	s, err := NewServer(ServerConfig{Dir: dir, SignKey: priv, SignSegmentSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	defer ts.Close()
	defer s.Close()

	get := func(p string) (int, string, http.Header) {
		t.Helper()
		resp, err := http.Get(ts.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, string(b), resp.Header
	}
	for range 2 { // made, then from the cache
		code, enc, h := get("/rel/a%20b.bin" + manifest.Suffix)
		if code != http.StatusOK {
			t.Fatalf("manifest: %d %s", code, enc)
		}
		m, err := v.Verify([]byte(enc), "/rel/a%20b.bin")
		if err != nil {
			t.Fatal(err)
		}
		if m.Size != int64(len(body)) || len(m.Segments) != 5 || m.ETag != wantETag(body) {
			t.Fatalf("manifest %+v", m)
		}
		for i := range m.Segments {
			off, n := m.Segment(i)
			if err := m.VerifySegment(i, []byte(body[off:off+n])); err != nil {
				t.Fatal(err)
			}
		}
		if h.Get("ETag") == "" || h.Get("Content-Type") != "text/plain; charset=utf-8" {
			t.Fatalf("headers %v", h)
		}
	}
	// A manifest for another path does not verify for this one.
	_, enc, _ := get("/rel/a%20b.bin" + manifest.Suffix)
	if _, err := v.Verify([]byte(enc), "/signed.txt"); !errors.Is(err, manifest.ErrMismatch) {
		t.Fatalf("manifest of another path: %v", err)
	}
	if code, got, _ := get("/signed.txt" + manifest.Suffix); code != http.StatusOK || got != "from disk" {
		t.Fatalf("a manifest on disk: %d %q", code, got)
	}
	if code, _, _ := get("/missing" + manifest.Suffix); code != http.StatusNotFound {
		t.Fatalf("manifest of a missing file: %d", code)
	}
	if code, _, _ := get("/rel" + manifest.Suffix); code != http.StatusNotFound {
		t.Fatalf("manifest of a directory: %d", code)
	}

	// Without a key, a missing manifest is a plain 404.
	unsigned := newTestServer(t, dir)
	resp, err := http.Get(unsigned.URL + "/rel/a%20b.bin" + manifest.Suffix)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("unsigned server: %d", resp.StatusCode)
	}
}
