package edge

import (
	"fmt"
	"io"
	"net/http"
	"testing"

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
