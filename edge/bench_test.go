package edge

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/shoalcdn/shoal/erasure"
)

// The figures these report are in bench/README.md. Segments are the
// production default (4 MiB, 4+2) so the per-request overheads are the
// real ones.

func benchCluster(b *testing.B, n int) (*cluster, int) {
	o := newTestOrigin(b, "public, max-age=3600")
	c := newCluster(b, o, n, func(cfg *Config) {
		cfg.Layout = erasure.Layout{}
		cfg.MemoryCache = 256 << 20
		cfg.Store.Limit = 512 << 20
	})
	const size = 64 << 20
	o.put(b, "/obj", size, 42)
	return c, size
}

func fetch(b *testing.B, url string, want int) {
	resp, err := http.Get(url)
	if err != nil {
		b.Fatal(err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || n != int64(want) || resp.StatusCode != 200 {
		b.Fatalf("GET %s: status %d, %d bytes, %v", url, resp.StatusCode, n, err)
	}
}

// BenchmarkServeMemory: a hot object from the memory tier over HTTP.
func BenchmarkServeMemory(b *testing.B) {
	c, size := benchCluster(b, 1)
	fetch(b, c.edges[0].url+"/obj", size)
	b.SetBytes(int64(size))
	b.ReportAllocs()
	for b.Loop() {
		fetch(b, c.edges[0].url+"/obj", size)
	}
}

// BenchmarkServePeers: every segment rebuilt from shards fetched over QUIC
// from three peers (the memory tier is emptied before each fetch).
func BenchmarkServePeers(b *testing.B) {
	c, size := benchCluster(b, 4)
	fetch(b, c.edges[0].url+"/obj", size)
	waitFor(b, func() bool { return storedShards(c) >= 16*6 })
	b.SetBytes(int64(size))
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		clearMemory(c)
		b.StartTimer()
		fetch(b, c.edges[1].url+"/obj", size)
	}
}

// BenchmarkServeOrigin: a new object each time, through the coordinator
// fills: origin fetch, encode, shard pushes, segment back to the reader.
func BenchmarkServeOrigin(b *testing.B) {
	c, size := benchCluster(b, 4)
	i := 0
	b.SetBytes(int64(size))
	b.ReportAllocs()
	for b.Loop() {
		i++
		fetch(b, fmt.Sprintf("%s/obj?v=%d", c.edges[1].url, i), size)
	}
}

// hotCluster is one edge holding a hot object of size bytes in its memory
// tier (production layout: one 4 MiB segment holds it).
func hotCluster(b *testing.B, size int) (*cluster, string) {
	o := newTestOrigin(b, "public, max-age=3600")
	c := newCluster(b, o, 1, func(cfg *Config) {
		cfg.Layout = erasure.Layout{}
		cfg.MemoryCache = 64 << 20
	})
	o.put(b, "/hot", size, 7)
	url := c.edges[0].url + "/hot"
	fetch(b, url, size)
	return c, url
}

// benchHot fetches a hot object of size bytes over HTTP/1.1 keep-alive
// connections: one at a time, or with parallel clients (32 on two cores,
// as bench/hot.sh's wrk -c32; the client's CPU is in the figure too).
func benchHot(b *testing.B, size, parallel int) {
	_, url := hotCluster(b, size)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	defer client.CloseIdleConnections()
	get := func() error {
		resp, err := client.Get(url)
		if err != nil {
			return err
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || n != int64(size) || resp.StatusCode != 200 {
			return fmt.Errorf("GET %s: status %d, %d bytes, %v", url, resp.StatusCode, n, err)
		}
		return nil
	}
	b.SetBytes(int64(size))
	b.ReportAllocs()
	if parallel <= 1 {
		for b.Loop() {
			if err := get(); err != nil {
				b.Fatal(err)
			}
		}
		return
	}
	b.SetParallelism(max(1, parallel/runtime.GOMAXPROCS(0)))
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := get(); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkServeMemory1KiB: a hot 1 KiB object, one request at a time on
// a keep-alive connection: the per-request cost of the serving path.
func BenchmarkServeMemory1KiB(b *testing.B) { benchHot(b, 1<<10, 1) }

// BenchmarkServeMemory1KiBParallel: the same with 32 clients.
func BenchmarkServeMemory1KiBParallel(b *testing.B) { benchHot(b, 1<<10, 32) }

// BenchmarkServeMemory1MiBParallel: a hot 1 MiB object, 32 clients.
func BenchmarkServeMemory1MiBParallel(b *testing.B) { benchHot(b, 1<<20, 32) }

// discardWriter is a ResponseWriter that keeps nothing: the handler's
// own cost, without net/http's.
type discardWriter struct {
	h    http.Header
	code int
	n    int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) WriteHeader(code int)        { w.code = code }
func (w *discardWriter) Write(p []byte) (int, error) { w.n += len(p); return len(p), nil }

// SetWriteDeadline is there as net/http's is: the edge sets one per chunk.
func (w *discardWriter) SetWriteDeadline(time.Time) error { return nil }

// BenchmarkServeHandler1KiB: Edge.ServeHTTP alone answering a hot 1 KiB
// object: its allocations and time per request, net/http left out.
func BenchmarkServeHandler1KiB(b *testing.B) {
	c, url := hotCluster(b, 1<<10)
	e := c.edges[0].Edge
	req := httptest.NewRequest(http.MethodGet, url, nil)
	req.Host = strings.TrimPrefix(c.edges[0].url, "http://")
	w := &discardWriter{h: http.Header{}}
	b.SetBytes(1 << 10)
	b.ReportAllocs()
	for b.Loop() {
		clear(w.h)
		w.code, w.n = 0, 0
		e.ServeHTTP(w, req)
		if w.code != http.StatusOK || w.n != 1<<10 {
			b.Fatalf("status %d, %d bytes", w.code, w.n)
		}
	}
}
