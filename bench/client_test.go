package bench

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

func TestFetchVerifiesBodies(t *testing.T) {
	body := bytes.Repeat([]byte("shoal"), 100_000)
	sum := sha256.Sum256(body)
	rel := &object{Path: "/r.bin", Size: int64(len(body)), SHA256: hex.EncodeToString(sum[:])}
	flip := -1 // index of a byte to corrupt; -1 none
	short := false
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b := bytes.Clone(body)
		if flip >= 0 {
			b[flip] ^= 1
		}
		if short {
			b = b[:len(b)-1]
		}
		w.Header().Set("Cache-Status", "shoal; hit")
		w.Write(b)
	}))
	defer srv.Close()
	buf := make([]byte, copyBufferSize)

	res, err := fetch(context.Background(), srv.Client(), []string{srv.URL}, request{}, rel, time.Now(), buf, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Bytes != rel.Size || res.TTFB <= 0 || res.Seconds < res.TTFB || res.CacheStatus != "shoal; hit" {
		t.Errorf("result = %+v", res)
	}

	for _, tc := range []struct {
		name  string
		flip  int
		short bool
	}{{"one flipped bit", 123_457, false}, {"one byte short", -1, true}} {
		flip, short = tc.flip, tc.short
		_, err := fetch(context.Background(), srv.Client(), []string{srv.URL}, request{}, rel, time.Now(), buf, nil)
		var ie *IntegrityError
		if !errors.As(err, &ie) {
			t.Errorf("%s: err = %v, want an *IntegrityError", tc.name, err)
			continue
		}
		if ie.WantSum != rel.SHA256 || ie.Got == rel.SHA256 {
			t.Errorf("%s: %+v", tc.name, ie)
		}
	}
}

// rangeServer serves body with http.ServeContent (ranges included); flip,
// if not negative, corrupts that byte; cut, if positive, closes the
// connection after that many bytes of a response.
func rangeServer(t *testing.T, body []byte, flip *int, cut *int) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b := bytes.Clone(body)
		if *flip >= 0 {
			b[*flip] ^= 1
		}
		if *cut > 0 {
			// Announce the whole length, send part of it, and drop the
			// connection, as a site that dies mid-body does.
			w.Header().Set("Content-Length", strconv.Itoa(len(b)))
			w.WriteHeader(http.StatusOK)
			w.Write(b[:*cut])
			w.(http.Flusher).Flush()
			conn, _, _ := w.(http.Hijacker).Hijack()
			conn.Close()
			return
		}
		http.ServeContent(w, r, "o.bin", time.Time{}, bytes.NewReader(b))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestFetchRangeChecksBytesAgainstTheFile(t *testing.T) {
	body := make([]byte, 300_000)
	for i := range body {
		body[i] = byte(i * 7 / 3)
	}
	path := filepath.Join(t.TempDir(), "o.bin")
	if err := os.WriteFile(path, body, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	obj := &object{Path: "/o.bin", Size: int64(len(body)), file: f}
	flip, cut := -1, 0
	srv := rangeServer(t, body, &flip, &cut)
	buf := make([]byte, 4096) // smaller than the checker's scratch, and than the range
	rq := request{ranged: true, off: 70_000, n: 100_001}

	res, err := fetch(context.Background(), srv.Client(), []string{srv.URL}, rq, obj, time.Now(), buf, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Bytes != rq.n || res.Range != "bytes=70000-170000" {
		t.Errorf("result = %+v", res)
	}
	for _, tc := range []struct {
		flip   int
		wantAt int64
		fails  bool
	}{{70_000, 70_000, true}, {170_000, 170_000, true}, {123_456, 123_456, true}, {69_999, 0, false}, {170_001, 0, false}} {
		flip = tc.flip
		_, err := fetch(context.Background(), srv.Client(), []string{srv.URL}, rq, obj, time.Now(), buf, nil)
		var ie *IntegrityError
		switch {
		case !tc.fails && err != nil:
			t.Errorf("byte %d flipped, outside the range: %v", tc.flip, err)
		case tc.fails && !errors.As(err, &ie):
			t.Errorf("byte %d flipped: err = %v, want an *IntegrityError", tc.flip, err)
		case tc.fails && ie.At != tc.wantAt:
			t.Errorf("byte %d flipped: first wrong byte reported at %d", tc.flip, ie.At)
		}
	}
	// A ranged request needs the file.
	if _, err := fetch(context.Background(), srv.Client(), []string{srv.URL}, rq, &object{Path: "/o.bin", Size: obj.Size}, time.Now(), buf, nil); err == nil {
		t.Error("a ranged request without the origin's file gave no error")
	}
}

func TestFetchResumesAtTheNextSite(t *testing.T) {
	body := bytes.Repeat([]byte("failover"), 50_000)
	sum := sha256.Sum256(body)
	obj := &object{Path: "/r.bin", Size: int64(len(body)), SHA256: hex.EncodeToString(sum[:])}
	noFlip, cut, none := -1, 123_457, 0
	dying := rangeServer(t, body, &noFlip, &cut)
	good := rangeServer(t, body, &noFlip, &none)
	var cnt counters
	res, err := fetch(context.Background(), newClient(nil), []string{dying.URL, good.URL}, request{}, obj, time.Now(), make([]byte, 8192), &cnt)
	if err != nil {
		t.Fatal(err)
	}
	if res.Failovers != 1 || res.Bytes != obj.Size || cnt.failovers.Load() != 1 || cnt.bytes.Load() != obj.Size {
		t.Errorf("result %+v, counted %d bytes, %d failovers", res, cnt.bytes.Load(), cnt.failovers.Load())
	}
	// Resumed from a site that serves other bytes: the joined body fails
	// its hash.
	bad := 200_000
	other := rangeServer(t, body, &bad, &none)
	_, err = fetch(context.Background(), newClient(nil), []string{dying.URL, other.URL}, request{}, obj, time.Now(), make([]byte, 8192), nil)
	var ie *IntegrityError
	if !errors.As(err, &ie) {
		t.Errorf("resumed from a corrupting site: err = %v, want an *IntegrityError", err)
	}
	// One site that keeps failing: an error, not a loop.
	if _, err := fetch(context.Background(), newClient(nil), []string{dying.URL}, request{}, obj, time.Now(), make([]byte, 8192), nil); err == nil {
		t.Error("a site that cuts every body gave no error")
	}
}

func TestFetchStatus(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()
	_, err := fetch(context.Background(), srv.Client(), []string{srv.URL}, request{}, &object{Path: "/x"}, time.Now(), make([]byte, 1024), nil)
	if err == nil {
		t.Fatal("a 404 gave no error")
	}
}

func TestCountingProxy(t *testing.T) {
	body := bytes.Repeat([]byte{7}, 3<<20)
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "x.bin", time.Time{}, bytes.NewReader(body))
	}))
	defer origin.Close()
	p, err := StartCountingProxy(origin.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c := newClient(nil)
	if err := drain(context.Background(), c, p.URL()+"/x.bin"); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, p.URL()+"/x.bin", nil)
	req.Header.Set("Range", "bytes=0-999")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	got.ReadFrom(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusPartialContent || got.Len() != 1000 {
		t.Fatalf("range through the proxy: %s, %d bytes", resp.Status, got.Len())
	}
	if b, n := p.Counts(); b != 3<<20+1000 || n != 2 {
		t.Errorf("counted %d bytes in %d requests, want %d in 2", b, n, 3<<20+1000)
	}
}
