package origin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// randomContent returns n reproducible pseudo-random bytes.
func randomContent(n int) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{1})
	r.Read(b)
	return b
}

// newTestClient returns a Client for base with fast retries, closing its idle
// connections when the test ends.
func newTestClient(t testing.TB, base string, mod func(*ClientConfig)) *Client {
	t.Helper()
	cfg := ClientConfig{Base: base, Backoff: time.Millisecond, Timeout: 5 * time.Second}
	if mod != nil {
		mod(&cfg)
	}
	c, err := NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if tr, ok := c.Transport().(interface{ CloseIdleConnections() }); ok {
			tr.CloseIdleConnections()
		}
	})
	return c
}

// newFileOrigin serves one file, "/f.bin", holding content, with a Server.
func newFileOrigin(t testing.TB, content []byte) (dir string, ts *httptest.Server) {
	t.Helper()
	dir = t.TempDir()
	writeFile(t, dir, "f.bin", string(content), testMod)
	return dir, newTestServer(t, dir)
}

// countingHandler fails the first fail requests with status, then passes to next.
func countingHandler(n *atomic.Int32, fail int32, status int, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) <= fail {
			http.Error(w, "try later", status)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func TestHead(t *testing.T) {
	content := randomContent(10_000)
	_, ts := newFileOrigin(t, content)
	c := newTestClient(t, ts.URL, nil)
	ctx := t.Context()

	info, err := c.Head(ctx, "/f.bin", http.Header{"X-Test": {"1"}})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := info.StatusCode, 200; got != want {
		t.Errorf("StatusCode: got %v, want %v", got, want)
	}
	if got, want := info.Size, int64(len(content)); got != want {
		t.Errorf("Size: got %v, want %v", got, want)
	}
	if got, want := info.ETag, wantETag(string(content)); got != want {
		t.Errorf("ETag: got %v, want %v", got, want)
	}
	if !info.StrongETag() {
		t.Errorf("StrongETag: got false, want true")
	}
	if got, want := info.Validator(), info.ETag; got != want {
		t.Errorf("Validator: got %v, want %v", got, want)
	}
	if !info.LastModified.Equal(testMod) {
		t.Errorf("LastModified: got %v, want %v", info.LastModified, testMod)
	}
	if got, want := info.Header.Get("Cache-Control"), "max-age=60"; got != want {
		t.Errorf("Cache-Control: got %v, want %v", got, want)
	}

	info, err = c.Head(ctx, "/missing", nil)
	if err != nil {
		t.Fatalf("404: got %v, want no error", err)
	}
	if got, want := info.StatusCode, 404; got != want {
		t.Errorf("StatusCode: got %v, want %v", got, want)
	}
}

func TestHeadRetries(t *testing.T) {
	_, files := newFileOrigin(t, []byte("hello"))
	var n atomic.Int32
	ts := httptest.NewServer(countingHandler(&n, 2, http.StatusServiceUnavailable, files.Config.Handler))
	t.Cleanup(ts.Close)
	c := newTestClient(t, ts.URL, nil)

	info, err := c.Head(t.Context(), "/f.bin", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := info.StatusCode, 200; got != want {
		t.Errorf("StatusCode: got %v, want %v", got, want)
	}
	if got, want := n.Load(), int32(3); got != want {
		t.Errorf("attempts: got %v, want %v", got, want)
	}

	var m atomic.Int32
	bad := httptest.NewServer(countingHandler(&m, 1000, http.StatusBadGateway, nil))
	t.Cleanup(bad.Close)
	c = newTestClient(t, bad.URL, nil)
	_, err = c.Head(t.Context(), "/f.bin", nil)
	var se *StatusError
	if !errors.As(err, &se) {
		t.Fatalf("got %v, want a *StatusError", err)
	}
	if got, want := *se, (StatusError{Op: "HEAD", Target: "/f.bin", Code: 502}); got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if got, want := se.Error(), "origin: HEAD /f.bin: status 502"; got != want {
		t.Errorf("Error(): got %q, want %q", got, want)
	}
	if got, want := m.Load(), int32(3); got != want {
		t.Errorf("attempts: got %v, want %v", got, want)
	}
}

func TestFetchRange(t *testing.T) {
	content := randomContent(1 << 20)
	_, ts := newFileOrigin(t, content)
	c := newTestClient(t, ts.URL, nil)
	ctx := t.Context()
	info, err := c.Head(ctx, "/f.bin", nil)
	if err != nil {
		t.Fatal(err)
	}
	size := int64(len(content))
	tests := []struct {
		name   string
		off, n int64
	}{
		{"first byte", 0, 1},
		{"head", 0, 4096},
		{"middle", 123_457, 65_536},
		{"unaligned tail", size - 1000, 1000},
		{"last byte", size - 1, 1},
		{"whole", 0, size},
		{"empty", 10, 0},
	}
	validators := map[string]string{
		"etag": info.Validator(),
		"date": testMod.Format(http.TimeFormat),
		"none": "",
	}
	for vname, v := range validators {
		for _, tt := range tests {
			t.Run(vname+"/"+tt.name, func(t *testing.T) {
				dst := make([]byte, tt.n)
				if err := c.FetchRange(ctx, "/f.bin", v, size, tt.off, dst); err != nil {
					t.Fatal(err)
				}
				if want := content[tt.off : tt.off+tt.n]; !bytes.Equal(dst, want) {
					t.Errorf("bytes [%d, %d) differ", tt.off, tt.off+tt.n)
				}
			})
		}
	}
}

func TestFetchRangeBadArguments(t *testing.T) {
	c := newTestClient(t, "http://127.0.0.1:1", nil)
	tests := []struct {
		name         string
		target, v    string
		size, off, n int64
	}{
		{"past end", "/f", "", 10, 5, 6},
		{"negative offset", "/f", "", 10, -1, 1},
		{"offset past size", "/f", "", 10, 11, 0},
		{"weak validator", "/f", `W/"x"`, 10, 0, 1},
		{"bad validator", "/f", "yesterday", 10, 0, 1},
		{"relative target", "f", "", 10, 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := c.FetchRange(t.Context(), tt.target, tt.v, tt.size, tt.off, make([]byte, tt.n))
			if err == nil {
				t.Fatalf("got %v, want an error", err)
			}
		})
	}
}

func TestFetchRangeRetries503(t *testing.T) {
	content := randomContent(100_000)
	_, files := newFileOrigin(t, content)
	var n atomic.Int32
	ts := httptest.NewServer(countingHandler(&n, 1, http.StatusServiceUnavailable, files.Config.Handler))
	t.Cleanup(ts.Close)
	c := newTestClient(t, ts.URL, nil)

	dst := make([]byte, 5000)
	if err := c.FetchRange(t.Context(), "/f.bin", wantETag(string(content)), int64(len(content)), 777, dst); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(dst, content[777:5777]) {
		t.Errorf("bytes differ")
	}
	if got, want := n.Load(), int32(2); got != want {
		t.Errorf("attempts: got %v, want %v", got, want)
	}
}

func TestFetchRangeStatusNotRetried(t *testing.T) {
	for _, code := range []int{400, 403, 404, 429, 301} {
		t.Run(strconv.Itoa(code), func(t *testing.T) {
			var n atomic.Int32
			ts := httptest.NewServer(countingHandler(&n, 100, code, http.NotFoundHandler()))
			t.Cleanup(ts.Close)
			c := newTestClient(t, ts.URL, nil)
			err := c.FetchRange(t.Context(), "/x", "", 10, 0, make([]byte, 5))
			var se *StatusError
			if !errors.As(err, &se) || se.Code != code || se.Op != "GET" {
				t.Fatalf("got %v, want a *StatusError for GET, %d", err, code)
			}
			if got, want := n.Load(), int32(1); got != want {
				t.Errorf("attempts: got %v, want %v", got, want)
			}
		})
	}
}

func TestFetchRange5xxExhausted(t *testing.T) {
	var n atomic.Int32
	ts := httptest.NewServer(countingHandler(&n, 100, http.StatusInternalServerError, nil))
	t.Cleanup(ts.Close)
	c := newTestClient(t, ts.URL, func(cfg *ClientConfig) { cfg.Attempts = 4 })
	err := c.FetchRange(t.Context(), "/x", "", 10, 0, make([]byte, 5))
	var se *StatusError
	if !errors.As(err, &se) || se.Code != 500 {
		t.Fatalf("got %v, want a *StatusError with 500", err)
	}
	if got, want := n.Load(), int32(4); got != want {
		t.Errorf("attempts: got %v, want %v", got, want)
	}
}

// roundTripFunc is a hand-written fake RoundTripper.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestFetchRangeTransportErrorRetried(t *testing.T) {
	content := randomContent(10_000)
	_, ts := newFileOrigin(t, content)
	inner := &http.Transport{}
	t.Cleanup(inner.CloseIdleConnections)
	var n atomic.Int32
	flaky := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if n.Add(1) <= 2 {
			return nil, &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
		}
		return inner.RoundTrip(r)
	})
	c := newTestClient(t, ts.URL, func(cfg *ClientConfig) { cfg.Transport = flaky })

	dst := make([]byte, 100)
	if err := c.FetchRange(t.Context(), "/f.bin", "", int64(len(content)), 50, dst); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(dst, content[50:150]) {
		t.Errorf("bytes differ")
	}
	if got, want := n.Load(), int32(3); got != want {
		t.Errorf("attempts: got %v, want %v", got, want)
	}

	// Out of attempts: the transport error comes back, wrapped.
	n.Store(-100)
	err := c.FetchRange(t.Context(), "/f.bin", "", int64(len(content)), 50, dst)
	var oe *net.OpError
	if !errors.As(err, &oe) {
		t.Fatalf("got %v, want a *net.OpError inside", err)
	}
}

func TestFetchRangeShortBodyRetried(t *testing.T) {
	content := randomContent(10_000)
	_, files := newFileOrigin(t, content)
	var n atomic.Int32
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			w.Header().Set("Content-Range", "bytes 0-999/10000")
			w.Header().Set("Content-Length", "1000")
			w.WriteHeader(http.StatusPartialContent)
			w.Write(content[:10])
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler) // drops the connection mid-body
		}
		files.Config.Handler.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	c := newTestClient(t, ts.URL, nil)

	dst := make([]byte, 1000)
	if err := c.FetchRange(t.Context(), "/f.bin", "", int64(len(content)), 0, dst); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(dst, content[:1000]) {
		t.Errorf("bytes differ")
	}
	if got, want := n.Load(), int32(2); got != want {
		t.Errorf("attempts: got %v, want %v", got, want)
	}
}

func TestFetchRangeChanged(t *testing.T) {
	content := randomContent(50_000)
	dir, ts := newFileOrigin(t, content)
	c := newTestClient(t, ts.URL, nil)
	ctx := t.Context()
	info, err := c.Head(ctx, "/f.bin", nil)
	if err != nil {
		t.Fatal(err)
	}
	size := info.Size
	dateValidator := testMod.Format(http.TimeFormat)

	// A new version, same length.
	changed := bytes.Clone(content)
	changed[0] ^= 0xff
	writeFile(t, dir, "f.bin", string(changed), testMod.Add(time.Hour))

	for name, v := range map[string]string{"etag": info.Validator(), "date": dateValidator} {
		t.Run(name, func(t *testing.T) {
			err := c.FetchRange(ctx, "/f.bin", v, size, 100, make([]byte, 100))
			if !errors.Is(err, ErrChanged) {
				t.Fatalf("got %v, want %v", err, ErrChanged)
			}
		})
	}

	// Shrunk below the requested range, no validator: 416.
	writeFile(t, dir, "f.bin", string(content[:1000]), testMod.Add(2*time.Hour))
	err = c.FetchRange(ctx, "/f.bin", "", size, 2000, make([]byte, 100))
	if !errors.Is(err, ErrChanged) {
		t.Fatalf("416: got %v, want %v", err, ErrChanged)
	}
	// Shrunk, range still inside: the complete-length differs.
	err = c.FetchRange(ctx, "/f.bin", "", size, 0, make([]byte, 100))
	if !errors.Is(err, ErrChanged) {
		t.Fatalf("complete-length: got %v, want %v", err, ErrChanged)
	}
}

func TestFetchRangeOddOrigins(t *testing.T) {
	content := randomContent(30_000)
	etag := wantETag(string(content))
	size := int64(len(content))
	lm := testMod.Format(http.TimeFormat)
	tests := []struct {
		name      string
		validator string
		handler   http.HandlerFunc
		wantErr   error // nil: success with the right bytes
		anyErr    bool
	}{
		{name: "ignores Range, same ETag", validator: etag, handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("ETag", etag)
			w.Write(content)
		}},
		{name: "ignores Range, same date", validator: lm, handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Last-Modified", lm)
			w.Write(content)
		}},
		{name: "ignores Range, chunked", validator: etag, handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("ETag", etag)
			w.Write(content[:100])
			w.(http.Flusher).Flush()
			w.Write(content[100:])
		}},
		{name: "ignores Range, other ETag", validator: etag, wantErr: ErrChanged, handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("ETag", `"other"`)
			w.Write(content)
		}},
		{name: "ignores Range, no ETag", validator: etag, wantErr: ErrChanged, handler: func(w http.ResponseWriter, r *http.Request) {
			w.Write(content)
		}},
		{name: "ignores Range, other length", validator: etag, wantErr: ErrChanged, handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("ETag", etag)
			w.Header().Set("Content-Length", strconv.Itoa(len(content)-1))
			w.Write(content[:size-1])
		}},
		{name: "412", validator: etag, wantErr: ErrChanged, handler: func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusPreconditionFailed)
		}},
		{name: "206 other complete-length", validator: etag, wantErr: ErrChanged, handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Range", fmt.Sprintf("bytes 1000-1099/%d", size+1))
			w.WriteHeader(http.StatusPartialContent)
			w.Write(content[1000:1100])
		}},
		{name: "206 other ETag", validator: etag, wantErr: ErrChanged, handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("ETag", `"other"`)
			w.Header().Set("Content-Range", fmt.Sprintf("bytes 1000-1099/%d", size))
			w.WriteHeader(http.StatusPartialContent)
			w.Write(content[1000:1100])
		}},
		{name: "206 other range", validator: etag, anyErr: true, handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Range", fmt.Sprintf("bytes 1000-1098/%d", size))
			w.WriteHeader(http.StatusPartialContent)
			w.Write(content[1000:1099])
		}},
		{name: "206 without Content-Range", validator: etag, anyErr: true, handler: func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusPartialContent)
			w.Write(content[1000:1100])
		}},
		{name: "206 unknown length", validator: etag, anyErr: true, handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Range", "bytes 1000-1099/*")
			w.WriteHeader(http.StatusPartialContent)
			w.Write(content[1000:1100])
		}},
		{name: "checks request", validator: etag, handler: func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Range") != "bytes=1000-1099" || r.Header.Get("If-Range") != etag ||
				r.Header.Get("Accept-Encoding") != "identity" || r.Method != "GET" {
				http.Error(w, fmt.Sprint(r.Header), http.StatusBadRequest)
				return
			}
			w.Header().Set("Content-Range", fmt.Sprintf("bytes 1000-1099/%d", size))
			w.WriteHeader(http.StatusPartialContent)
			w.Write(content[1000:1100])
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := httptest.NewServer(tt.handler)
			t.Cleanup(ts.Close)
			c := newTestClient(t, ts.URL, nil)
			dst := make([]byte, 100)
			err := c.FetchRange(t.Context(), "/x", tt.validator, size, 1000, dst)
			switch {
			case tt.anyErr:
				if err == nil {
					t.Fatalf("got %v, want an error", err)
				}
				if errors.Is(err, ErrChanged) {
					t.Errorf("got %v, want an error other than ErrChanged", err)
				}
			case tt.wantErr != nil:
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("got %v, want %v", err, tt.wantErr)
				}
			default:
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(dst, content[1000:1100]) {
					t.Errorf("bytes differ")
				}
			}
		})
	}
}

// TestFetchVariantRange: a variant's fields go with the range request, an
// Accept-Encoding among them replaces identity, and the fields that pick
// the bytes and the version stay the fetch's own.
func TestFetchVariantRange(t *testing.T) {
	content := randomContent(10_000)
	etag := `"v1"`
	var got http.Header
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Clone()
		w.Header().Set("ETag", etag)
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(content))
	}))
	t.Cleanup(ts.Close)
	c := newTestClient(t, ts.URL, nil)
	variant := http.Header{
		"Accept-Language": {"fr"},
		"Accept-Encoding": {"gzip"},
		"Range":           {"bytes=0-0"},
		"If-Range":        {`"other"`},
		"If-None-Match":   {etag},
	}
	dst := make([]byte, 100)
	if err := c.FetchVariantRange(t.Context(), "/x", variant, etag, int64(len(content)), 1000, dst); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(dst, content[1000:1100]) {
		t.Errorf("bytes differ")
	}
	for name, want := range map[string]string{"Accept-Language": "fr", "Accept-Encoding": "gzip", "Range": "bytes=1000-1099", "If-Range": etag, "If-None-Match": ""} {
		if v := got.Get(name); v != want {
			t.Errorf("request %s %q, want %q", name, v, want)
		}
	}
	if variant.Get("Range") != "bytes=0-0" {
		t.Errorf("the caller's header was modified")
	}
}

func TestMaxConcurrent(t *testing.T) {
	const limit = 3
	var inflight, peak atomic.Int32
	gate := make(chan struct{})
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cur := inflight.Add(1)
		defer inflight.Add(-1)
		for {
			p := peak.Load()
			if cur <= p || peak.CompareAndSwap(p, cur) {
				break
			}
		}
		select {
		case <-gate:
		case <-r.Context().Done():
			return
		}
		w.Header().Set("Content-Range", "bytes 0-0/1")
		w.WriteHeader(http.StatusPartialContent)
		w.Write([]byte("x"))
	}))
	t.Cleanup(ts.Close)
	c := newTestClient(t, ts.URL, func(cfg *ClientConfig) { cfg.MaxConcurrent = limit })

	const calls = 10
	errs := make(chan error, calls)
	for range calls {
		go func() { errs <- c.FetchRange(t.Context(), "/x", "", 1, 0, make([]byte, 1)) }()
	}
	deadline := time.Now().Add(5 * time.Second)
	for inflight.Load() < limit && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // room for a request that should not be there
	if got, want := peak.Load(), int32(limit); got != want {
		t.Errorf("peak before release: got %v, want %v", got, want)
	}
	close(gate)
	for range calls {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if got := peak.Load(); got > limit {
		t.Errorf("peak: got %v, want <= %v", got, limit)
	}
}

// stallServer starts a server whose handler blocks until the request ends or
// the test does. With headers set, it sends a 206 header and part of the body
// first.
func stallServer(t *testing.T, headers bool) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var n atomic.Int32
	done := make(chan struct{})
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		if headers {
			w.Header().Set("Content-Range", "bytes 0-99/100")
			w.Header().Set("Content-Length", "100")
			w.WriteHeader(http.StatusPartialContent)
			w.Write(make([]byte, 10))
			w.(http.Flusher).Flush()
		}
		select {
		case <-r.Context().Done():
		case <-done:
		}
	}))
	t.Cleanup(ts.Close)
	t.Cleanup(func() { close(done) }) // runs before ts.Close
	return ts, &n
}

func TestFetchRangeTimeout(t *testing.T) {
	for _, headers := range []bool{false, true} {
		t.Run(fmt.Sprintf("headers=%v", headers), func(t *testing.T) {
			ts, n := stallServer(t, headers)
			c := newTestClient(t, ts.URL, func(cfg *ClientConfig) {
				cfg.Timeout = 50 * time.Millisecond
				cfg.Attempts = 2
			})
			start := time.Now()
			err := c.FetchRange(t.Context(), "/x", "", 100, 0, make([]byte, 100))
			elapsed := time.Since(start)
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("got %v, want %v", err, context.DeadlineExceeded)
			}
			if elapsed < 100*time.Millisecond || elapsed > 3*time.Second {
				t.Errorf("elapsed: got %v, want about 2 × 50ms", elapsed)
			}
			if got, want := n.Load(), int32(2); got != want {
				t.Errorf("attempts: got %v, want %v", got, want)
			}
		})
	}
}

func TestHeadTimeout(t *testing.T) {
	ts, _ := stallServer(t, false)
	c := newTestClient(t, ts.URL, func(cfg *ClientConfig) {
		cfg.Timeout = 30 * time.Millisecond
		cfg.Attempts = 1
	})
	if _, err := c.Head(t.Context(), "/x", nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want %v", err, context.DeadlineExceeded)
	}
}

func TestCancel(t *testing.T) {
	stalled, _ := stallServer(t, false)
	stalledBody, _ := stallServer(t, true)
	var n atomic.Int32
	failing := httptest.NewServer(countingHandler(&n, 1000, http.StatusServiceUnavailable, nil))
	t.Cleanup(failing.Close)

	tests := []struct {
		name string
		base string
		cfg  func(*ClientConfig)
		busy bool // fill the only concurrency slot first
		body bool // the stall is in the body, which a HEAD has none of
	}{
		{name: "waiting for headers", base: stalled.URL},
		{name: "reading the body", base: stalledBody.URL, body: true},
		{name: "in backoff", base: failing.URL, cfg: func(cfg *ClientConfig) { cfg.Backoff = time.Minute }},
		{name: "waiting for a slot", base: stalled.URL, busy: true, cfg: func(cfg *ClientConfig) { cfg.MaxConcurrent = 1 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newTestClient(t, tt.base, func(cfg *ClientConfig) {
				cfg.Timeout = time.Minute
				if tt.cfg != nil {
					tt.cfg(cfg)
				}
			})
			if tt.busy {
				bctx, bcancel := context.WithCancel(t.Context())
				defer bcancel()
				go c.FetchRange(bctx, "/x", "", 100, 0, make([]byte, 100))
				time.Sleep(20 * time.Millisecond)
			}
			ctx, cancel := context.WithCancel(t.Context())
			time.AfterFunc(30*time.Millisecond, cancel)
			start := time.Now()
			err := c.FetchRange(ctx, "/x", "", 100, 0, make([]byte, 100))
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("got %v, want %v", err, context.Canceled)
			}
			if elapsed := time.Since(start); elapsed > 2*time.Second {
				t.Errorf("elapsed: got %v, want promptly after 30ms", elapsed)
			}
			if tt.body {
				return
			}
			ctx, cancel = context.WithCancel(t.Context())
			time.AfterFunc(30*time.Millisecond, cancel)
			if _, err := c.Head(ctx, "/x", nil); !errors.Is(err, context.Canceled) {
				t.Fatalf("Head: got %v, want %v", err, context.Canceled)
			}
		})
	}
}

func TestConnectionReuse(t *testing.T) {
	content := randomContent(1 << 20)
	dir := t.TempDir()
	writeFile(t, dir, "f.bin", string(content), testMod)
	s, err := NewServer(ServerConfig{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	var conns atomic.Int32
	ts := httptest.NewUnstartedServer(s)
	ts.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			conns.Add(1)
		}
	}
	ts.Start()
	t.Cleanup(ts.Close)
	c := newTestClient(t, ts.URL, nil)
	etag := wantETag(string(content))
	dst := make([]byte, 64<<10)
	for off := int64(0); off < int64(len(content)); off += int64(len(dst)) {
		if err := c.FetchRange(t.Context(), "/f.bin", etag, int64(len(content)), off, dst); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(dst, content[off:off+int64(len(dst))]) {
			t.Fatalf("bytes at %d differ", off)
		}
	}
	if got, want := conns.Load(), int32(1); got != want {
		t.Errorf("connections: got %v, want %v", got, want)
	}
}

func TestNewClientErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  ClientConfig
	}{
		{"no base", ClientConfig{}},
		{"bad scheme", ClientConfig{Base: "ftp://x"}},
		{"no scheme", ClientConfig{Base: "127.0.0.1:9000"}},
		{"no host", ClientConfig{Base: "http:///x"}},
		{"query", ClientConfig{Base: "http://x/?a=1"}},
		{"fragment", ClientConfig{Base: "http://x/#f"}},
		{"negative MaxConcurrent", ClientConfig{Base: "http://x", MaxConcurrent: -1}},
		{"negative Attempts", ClientConfig{Base: "http://x", Attempts: -1}},
		{"negative Timeout", ClientConfig{Base: "http://x", Timeout: -1}},
		{"negative Backoff", ClientConfig{Base: "http://x", Backoff: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewClient(tt.cfg); err == nil {
				t.Fatalf("got %v, want an error", err)
			}
		})
	}
}

func TestClientDefaults(t *testing.T) {
	c, err := NewClient(ClientConfig{Base: "https://origin.example:8443/pub"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := cap(c.sem), 32; got != want {
		t.Errorf("MaxConcurrent: got %v, want %v", got, want)
	}
	if got, want := c.attempts, 3; got != want {
		t.Errorf("Attempts: got %v, want %v", got, want)
	}
	if got, want := c.timeout, 30*time.Second; got != want {
		t.Errorf("Timeout: got %v, want %v", got, want)
	}
	if got, want := c.backoff, 100*time.Millisecond; got != want {
		t.Errorf("Backoff: got %v, want %v", got, want)
	}
	ft, ok := c.Transport().(framingTransport)
	tr := ft.Transport
	if !ok || tr == http.DefaultTransport {
		t.Fatalf("Transport: got %T, want a *http.Transport of our own", c.Transport())
	}
	if !tr.DisableCompression {
		t.Errorf("DisableCompression: got false, want true")
	}
	b := c.Base()
	if got, want := b.String(), "https://origin.example:8443/pub"; got != want {
		t.Errorf("Base: got %v, want %v", got, want)
	}
	b.Path = "/changed"
	if got, want := c.Base().Path, "/pub"; got != want {
		t.Errorf("Base after change of the copy: got %v, want %v", got, want)
	}
}

func TestResolve(t *testing.T) {
	tests := []struct {
		base, target, want string
	}{
		{"http://o", "/a/b.iso", "http://o/a/b.iso"},
		{"http://o/", "/a/b.iso?x=1", "http://o/a/b.iso?x=1"},
		{"http://o/pub", "/a/b.iso?x=1&y=%20", "http://o/pub/a/b.iso?x=1&y=%20"},
		{"http://o/pub/", "/a", "http://o/pub/a"},
		{"http://o/p%2Fq", "/a%20b", "http://o/p%2Fq/a%20b"},
		{"http://o", "/a%2Fb", "http://o/a%2Fb"},
		{"http://o", "//evil.example/x", "http://o//evil.example/x"},
		{"http://o", "/", "http://o/"},
		{"http://o", "/a?", "http://o/a?"},
	}
	for _, tt := range tests {
		t.Run(tt.base+" "+tt.target, func(t *testing.T) {
			c := newTestClient(t, tt.base, nil)
			u, err := c.resolve(tt.target)
			if err != nil {
				t.Fatal(err)
			}
			if got := u.String(); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
			if got, want := u.Host, "o"; got != want {
				t.Errorf("host: got %v, want %v", got, want)
			}
		})
	}
}

func TestInfoValidator(t *testing.T) {
	old := testMod
	tests := []struct {
		name string
		info Info
		want string
	}{
		{"strong etag", Info{ETag: `"abc"`, LastModified: old}, `"abc"`},
		{"weak etag, date", Info{ETag: `W/"abc"`, LastModified: old}, old.Format(http.TimeFormat)},
		{"bad etag, date", Info{ETag: `abc`, LastModified: old}, old.Format(http.TimeFormat)},
		{"date, old enough", Info{LastModified: old, Header: http.Header{"Date": {old.Add(time.Hour).Format(http.TimeFormat)}}}, old.Format(http.TimeFormat)},
		{"date, too recent", Info{LastModified: old, Header: http.Header{"Date": {old.Format(http.TimeFormat)}}}, ""},
		{"nothing", Info{ETag: `W/"abc"`}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.info.Validator(); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestBackoffDelay(t *testing.T) {
	c := &Client{backoff: 100 * time.Millisecond}
	for retry, nominal := range []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond} {
		for range 20 {
			d := c.backoffDelay(retry)
			if d < nominal/2 || d >= nominal*3/2 {
				t.Fatalf("retry %d: got %v, want in [%v, %v)", retry, d, nominal/2, nominal*3/2)
			}
		}
	}
	if d := c.backoffDelay(1000); d >= maxBackoff*3/2 {
		t.Errorf("retry 1000: got %v, want < %v", d, maxBackoff*3/2)
	}
}

func BenchmarkFetchRange(b *testing.B) {
	const window = 4 << 20
	content := randomContent(4 * window)
	_, ts := newFileOrigin(b, content)
	c := newTestClient(b, ts.URL, nil)
	etag := wantETag(string(content))
	dst := make([]byte, window)
	size := int64(len(content))
	b.SetBytes(window)
	b.ReportAllocs()
	var off int64
	for b.Loop() {
		if err := c.FetchRange(b.Context(), "/f.bin", etag, size, off, dst); err != nil {
			b.Fatal(err)
		}
		off = (off + window) % size
	}
}

// Keep the interface check honest: a Server is an http.Handler.
var _ http.Handler = (*Server)(nil)
