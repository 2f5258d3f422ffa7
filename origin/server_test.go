package origin

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testMod is the modification time of the test files, well in the past so that
// date validators are strong.
var testMod = time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)

const testBody = "0123456789abcdefghij" // 20 bytes

// writeFile writes content to dir/name with modification time mod.
func writeFile(t testing.TB, dir, name, content string, mod time.Time) {
	t.Helper()
	p := filepath.Join(dir, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, mod, mod); err != nil {
		t.Fatal(err)
	}
}

func wantETag(content string) string {
	sum := sha256.Sum256([]byte(content))
	return `"` + hex.EncodeToString(sum[:16]) + `"`
}

// newTestServer serves dir with a Server on 127.0.0.1:0.
func newTestServer(t testing.TB, dir string) *httptest.Server {
	t.Helper()
	s, err := NewServer(ServerConfig{Dir: dir, CacheControl: "max-age=60"})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	t.Cleanup(func() {
		ts.Close()
		s.Close()
	})
	return ts
}

// rawRequest sends target exactly as given, without any client-side cleaning.
func rawRequest(t *testing.T, addr, method, target string) (*http.Response, string) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(conn, "%s %s HTTP/1.1\r\nHost: origin\r\nConnection: close\r\n\r\n", method, target)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: body: %v", method, target, err)
	}
	return resp, string(b)
}

func TestServer(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "a.txt", testBody, testMod)
	writeFile(t, dir, "sub/inner.json", `{"x":1}`, testMod)
	writeFile(t, dir, "empty.nosuchext", "", testMod)
	ts := newTestServer(t, dir)

	etag := wantETag(testBody)
	lm := testMod.Format(http.TimeFormat)
	before := testMod.Add(-time.Second).Format(http.TimeFormat)
	after := testMod.Add(time.Second).Format(http.TimeFormat)

	tests := []struct {
		name     string
		method   string
		path     string
		header   map[string]string
		status   int
		body     string            // checked unless status is an error
		wantHdr  map[string]string // "" means must be absent
		notFound bool
	}{
		{name: "full GET", path: "/a.txt", status: 200, body: testBody,
			wantHdr: map[string]string{"ETag": etag, "Last-Modified": lm, "Content-Length": "20",
				"Accept-Ranges": "bytes", "Cache-Control": "max-age=60", "Content-Range": ""}},
		{name: "HEAD", method: "HEAD", path: "/a.txt", status: 200, body: "",
			wantHdr: map[string]string{"ETag": etag, "Content-Length": "20", "Last-Modified": lm}},
		{name: "range a-b", path: "/a.txt", header: map[string]string{"Range": "bytes=2-5"}, status: 206, body: "2345",
			wantHdr: map[string]string{"Content-Range": "bytes 2-5/20", "Content-Length": "4", "ETag": etag, "Cache-Control": "max-age=60"}},
		{name: "range a-", path: "/a.txt", header: map[string]string{"Range": "bytes=15-"}, status: 206, body: "fghij",
			wantHdr: map[string]string{"Content-Range": "bytes 15-19/20"}},
		{name: "suffix", path: "/a.txt", header: map[string]string{"Range": "bytes=-3"}, status: 206, body: "hij",
			wantHdr: map[string]string{"Content-Range": "bytes 17-19/20"}},
		{name: "end clamped", path: "/a.txt", header: map[string]string{"Range": "bytes=5-100"}, status: 206, body: testBody[5:],
			wantHdr: map[string]string{"Content-Range": "bytes 5-19/20"}},
		{name: "suffix longer than file", path: "/a.txt", header: map[string]string{"Range": "bytes=-100"}, status: 206, body: testBody,
			wantHdr: map[string]string{"Content-Range": "bytes 0-19/20"}},
		{name: "last byte", path: "/a.txt", header: map[string]string{"Range": "bytes=19-19"}, status: 206, body: "j",
			wantHdr: map[string]string{"Content-Range": "bytes 19-19/20"}},
		{name: "unsatisfiable", path: "/a.txt", header: map[string]string{"Range": "bytes=20-"}, status: 416,
			wantHdr: map[string]string{"Content-Range": "bytes */20", "Cache-Control": ""}},
		{name: "zero suffix unsatisfiable", path: "/a.txt", header: map[string]string{"Range": "bytes=-0"}, status: 416,
			wantHdr: map[string]string{"Content-Range": "bytes */20"}},
		{name: "multiple ranges whole body", path: "/a.txt", header: map[string]string{"Range": "bytes=0-1,4-5"}, status: 200, body: testBody,
			wantHdr: map[string]string{"Content-Range": "", "Content-Length": "20"}},
		{name: "one of two satisfiable", path: "/a.txt", header: map[string]string{"Range": "bytes=0-1, 30-40"}, status: 206, body: "01",
			wantHdr: map[string]string{"Content-Range": "bytes 0-1/20"}},
		{name: "malformed range ignored", path: "/a.txt", header: map[string]string{"Range": "bytes=5-2"}, status: 200, body: testBody},
		{name: "other unit ignored", path: "/a.txt", header: map[string]string{"Range": "items=0-1"}, status: 200, body: testBody},
		{name: "HEAD ignores range", method: "HEAD", path: "/a.txt", header: map[string]string{"Range": "bytes=0-1"}, status: 200,
			wantHdr: map[string]string{"Content-Length": "20", "Content-Range": ""}},
		{name: "empty file ignores range", path: "/empty.nosuchext", header: map[string]string{"Range": "bytes=0-"}, status: 200, body: "",
			wantHdr: map[string]string{"Content-Length": "0", "Content-Type": "application/octet-stream"}},
		{name: "content type", path: "/sub/inner.json", status: 200, body: `{"x":1}`,
			wantHdr: map[string]string{"Content-Type": "application/json"}},

		{name: "INM match", path: "/a.txt", header: map[string]string{"If-None-Match": etag}, status: 304, body: "",
			wantHdr: map[string]string{"ETag": etag, "Last-Modified": lm, "Cache-Control": "max-age=60", "Content-Type": "", "Content-Length": ""}},
		{name: "INM HEAD", method: "HEAD", path: "/a.txt", header: map[string]string{"If-None-Match": etag}, status: 304},
		{name: "INM weak comparison", path: "/a.txt", header: map[string]string{"If-None-Match": `"x", W/` + etag}, status: 304},
		{name: "INM star", path: "/a.txt", header: map[string]string{"If-None-Match": "*"}, status: 304},
		{name: "INM other", path: "/a.txt", header: map[string]string{"If-None-Match": `"other"`}, status: 200, body: testBody},
		{name: "INM other beats IMS", path: "/a.txt", header: map[string]string{"If-None-Match": `"other"`, "If-Modified-Since": after}, status: 200, body: testBody},
		{name: "IMS equal", path: "/a.txt", header: map[string]string{"If-Modified-Since": lm}, status: 304,
			wantHdr: map[string]string{"ETag": etag}},
		{name: "IMS later", path: "/a.txt", header: map[string]string{"If-Modified-Since": after}, status: 304},
		{name: "IMS earlier", path: "/a.txt", header: map[string]string{"If-Modified-Since": before}, status: 200, body: testBody},
		{name: "IMS garbage", path: "/a.txt", header: map[string]string{"If-Modified-Since": "yesterday"}, status: 200, body: testBody},
		{name: "If-Match match", path: "/a.txt", header: map[string]string{"If-Match": `"x", ` + etag}, status: 200, body: testBody},
		{name: "If-Match star", path: "/a.txt", header: map[string]string{"If-Match": "*"}, status: 200, body: testBody},
		{name: "If-Match other", path: "/a.txt", header: map[string]string{"If-Match": `"other"`}, status: 412,
			wantHdr: map[string]string{"Cache-Control": ""}},
		{name: "If-Match weak is strong comparison", path: "/a.txt", header: map[string]string{"If-Match": "W/" + etag}, status: 412},
		{name: "If-Match beats IUS", path: "/a.txt", header: map[string]string{"If-Match": etag, "If-Unmodified-Since": before}, status: 200, body: testBody},
		{name: "IUS earlier", path: "/a.txt", header: map[string]string{"If-Unmodified-Since": before}, status: 412},
		{name: "IUS equal", path: "/a.txt", header: map[string]string{"If-Unmodified-Since": lm}, status: 200, body: testBody},
		{name: "If-Match then INM", path: "/a.txt", header: map[string]string{"If-Match": etag, "If-None-Match": etag}, status: 304},
		{name: "If-Match fails before INM", path: "/a.txt", header: map[string]string{"If-Match": `"x"`, "If-None-Match": etag}, status: 412},
		{name: "If-Range etag", path: "/a.txt", header: map[string]string{"Range": "bytes=1-2", "If-Range": etag}, status: 206, body: "12"},
		{name: "If-Range other etag", path: "/a.txt", header: map[string]string{"Range": "bytes=1-2", "If-Range": `"other"`}, status: 200, body: testBody},
		{name: "If-Range weak etag", path: "/a.txt", header: map[string]string{"Range": "bytes=1-2", "If-Range": "W/" + etag}, status: 200, body: testBody},
		{name: "If-Range date", path: "/a.txt", header: map[string]string{"Range": "bytes=1-2", "If-Range": lm}, status: 206, body: "12"},
		{name: "If-Range later date", path: "/a.txt", header: map[string]string{"Range": "bytes=1-2", "If-Range": after}, status: 200, body: testBody},
		{name: "If-Range without Range", path: "/a.txt", header: map[string]string{"If-Range": `"other"`}, status: 200, body: testBody},
		{name: "If-Range other 416 skipped", path: "/a.txt", header: map[string]string{"Range": "bytes=50-", "If-Range": `"other"`}, status: 200, body: testBody},

		{name: "POST", method: "POST", path: "/a.txt", status: 405, wantHdr: map[string]string{"Allow": "GET, HEAD"}},
		{name: "PUT", method: "PUT", path: "/a.txt", status: 405, wantHdr: map[string]string{"Allow": "GET, HEAD"}},
		{name: "directory", path: "/sub", status: 404},
		{name: "directory slash", path: "/sub/", status: 404},
		{name: "root", path: "/", status: 404},
		{name: "missing", path: "/nope.txt", status: 404},
		{name: "file as directory", path: "/a.txt/x", status: 404},
		{name: "file with slash", path: "/a.txt/", status: 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method := tt.method
			if method == "" {
				method = "GET"
			}
			req, err := http.NewRequest(method, ts.URL+tt.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			resp, err := ts.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tt.status {
				t.Fatalf("status: got %v, want %v (body %q)", resp.StatusCode, tt.status, b)
			}
			if tt.status < 400 && string(b) != tt.body {
				t.Errorf("body: got %q, want %q", b, tt.body)
			}
			for k, want := range tt.wantHdr {
				if got := resp.Header.Get(k); got != want {
					t.Errorf("%s: got %q, want %q", k, got, want)
				}
			}
			if resp.StatusCode < 300 && resp.Header.Get("Date") == "" {
				t.Errorf("no Date")
			}
		})
	}
}

func TestServerETagChanges(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "f", "version one", testMod)
	ts := newTestServer(t, dir)
	get := func() string {
		t.Helper()
		resp, err := ts.Client().Get(ts.URL + "/f")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.Header.Get("ETag")
	}
	if got, want := get(), wantETag("version one"); got != want {
		t.Fatalf("ETag: got %v, want %v", got, want)
	}
	if got, want := get(), wantETag("version one"); got != want {
		t.Fatalf("ETag again: got %v, want %v", got, want)
	}
	// Same size and mtime: the cache answers, which shows the file is not
	// hashed per request (and why files should be replaced, not rewritten).
	writeFile(t, dir, "f", "version two", testMod)
	if got, want := get(), wantETag("version one"); got != want {
		t.Fatalf("ETag, same size and mtime: got %v, want %v", got, want)
	}
	writeFile(t, dir, "f", "version two", testMod.Add(time.Second))
	if got, want := get(), wantETag("version two"); got != want {
		t.Fatalf("ETag after change: got %v, want %v", got, want)
	}
	writeFile(t, dir, "f", "version three!", testMod.Add(time.Second))
	if got, want := get(), wantETag("version three!"); got != want {
		t.Fatalf("ETag after size change: got %v, want %v", got, want)
	}
}

func TestETagCacheBounded(t *testing.T) {
	c := etagCache{m: make(map[etagKey]string), inflight: make(map[etagKey]*etagCall)}
	for i := range maxETags + 100 {
		c.putLocked(etagKey{name: "f", size: int64(i)}, "x")
	}
	if got, want := len(c.m), maxETags; got != want {
		t.Fatalf("entries: got %v, want %v", got, want)
	}
	if _, ok := c.m[etagKey{name: "f", size: 0}]; ok {
		t.Errorf("oldest entry kept")
	}
	if _, ok := c.m[etagKey{name: "f", size: maxETags + 99}]; !ok {
		t.Errorf("newest entry dropped")
	}
}

func TestServerConcurrentHash(t *testing.T) {
	dir := t.TempDir()
	content := strings.Repeat("shoal", 200_000)
	writeFile(t, dir, "big", content, testMod)
	ts := newTestServer(t, dir)
	errs := make(chan error, 8)
	for range 8 {
		go func() {
			resp, err := ts.Client().Head(ts.URL + "/big")
			if err != nil {
				errs <- err
				return
			}
			resp.Body.Close()
			if got, want := resp.Header.Get("ETag"), wantETag(content); got != want {
				errs <- fmt.Errorf("ETag: got %v, want %v", got, want)
				return
			}
			errs <- nil
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

func TestServerTraversal(t *testing.T) {
	base := t.TempDir()
	const secret = "TOP SECRET"
	writeFile(t, base, "secret.txt", secret, testMod)
	writeFile(t, base, "outside/secret.txt", secret, testMod)
	dir := filepath.Join(base, "www")
	writeFile(t, dir, "a/ok.txt", "fine", testMod)
	symlinks := map[string]string{
		"link-abs":     filepath.Join(base, "secret.txt"),
		"link-rel":     "../secret.txt",
		"linkdir":      "../outside",
		"a/link-deep":  "../../secret.txt",
		"a/link-good":  "ok.txt",
		"a/link-loop1": "link-loop2",
		"a/link-loop2": "link-loop1",
	}
	for name, target := range symlinks {
		if err := os.Symlink(target, filepath.Join(dir, filepath.FromSlash(name))); err != nil {
			t.Skipf("symlinks: %v", err)
		}
	}
	ts := newTestServer(t, dir)
	addr := ts.Listener.Addr().String()

	tests := []struct {
		target string
		status int // 0: 400 or 404
	}{
		{"/../secret.txt", 400},
		{"/../../../../../../etc/passwd", 400},
		{"/%2e%2e/secret.txt", 400},
		{"/%2E%2E/secret.txt", 400},
		{"/a/..%2f..%2fsecret.txt", 400},
		{"/a/%2e%2e%2f%2e%2e%2fsecret.txt", 400},
		{"/..\\secret.txt", 400},
		{"/a\\..\\..\\secret.txt", 400},
		{"/a/%5c..%5c..%5csecret.txt", 400},
		{"/a/ok.txt%00", 400},
		{"/link-abs", 404},
		{"/link-rel", 404},
		{"/linkdir/secret.txt", 404},
		{"/a/link-deep", 404},
		{"/a/link-loop1", 404},
		{"//secret.txt", 404},
		{"/a//../secret.txt", 400},
		{"/./../secret.txt", 400},
	}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			resp, body := rawRequest(t, addr, "GET", tt.target)
			if strings.Contains(body, secret) {
				t.Fatalf("served data from outside Dir: status %d, body %q", resp.StatusCode, body)
			}
			if tt.status != 0 && resp.StatusCode != tt.status {
				t.Errorf("status: got %v, want %v", resp.StatusCode, tt.status)
			}
			if resp.StatusCode != 400 && resp.StatusCode != 404 {
				t.Errorf("status: got %v, want 400 or 404", resp.StatusCode)
			}
		})
	}

	// Inside the root, symlinks work and clean paths are served.
	for _, target := range []string{"/a/ok.txt", "/a/link-good", "/a/./ok.txt", "/a//ok.txt"} {
		resp, body := rawRequest(t, addr, "GET", target)
		if resp.StatusCode != 200 || body != "fine" {
			t.Errorf("GET %s: got %v %q, want 200 %q", target, resp.StatusCode, body, "fine")
		}
	}
}

func TestNewServerErrors(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "file", "x", testMod)
	tests := []struct {
		name string
		cfg  ServerConfig
	}{
		{"no dir", ServerConfig{}},
		{"missing", ServerConfig{Dir: filepath.Join(dir, "missing")}},
		{"not a dir", ServerConfig{Dir: filepath.Join(dir, "file")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := NewServer(tt.cfg)
			if err == nil {
				s.Close()
				t.Fatalf("got %v, want an error", err)
			}
		})
	}
}

func TestServerRangeMatchesBody(t *testing.T) {
	// Every single range of a small file against the bytes it names.
	dir := t.TempDir()
	writeFile(t, dir, "f", testBody, testMod)
	ts := newTestServer(t, dir)
	for a := 0; a < len(testBody); a += 3 {
		for b := a; b < len(testBody)+2; b += 4 {
			req, _ := http.NewRequest("GET", ts.URL+"/f", nil)
			req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", a, b))
			resp, err := ts.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			end := min(b, len(testBody)-1)
			if want := testBody[a : end+1]; resp.StatusCode != 206 || string(got) != want {
				t.Errorf("bytes=%d-%d: got %v %q, want 206 %q", a, b, resp.StatusCode, got, want)
			}
		}
	}
}
