package bench

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestFetchVerifiesBodies(t *testing.T) {
	body := bytes.Repeat([]byte("shoal"), 100_000)
	sum := sha256.Sum256(body)
	rel := release{Path: "/r.bin", Size: int64(len(body)), SHA256: hex.EncodeToString(sum[:])}
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

	res, err := fetch(context.Background(), srv.Client(), srv.URL+rel.Path, time.Now(), rel, buf)
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
		_, err := fetch(context.Background(), srv.Client(), srv.URL+rel.Path, time.Now(), rel, buf)
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

func TestFetchStatus(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()
	_, err := fetch(context.Background(), srv.Client(), srv.URL, time.Now(), release{}, make([]byte, 1024))
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
	c := newClient()
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
