package edge

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// prefetchJob starts a job through edge's admin handler and waits for it.
func prefetchJob(t *testing.T, admin *httptest.Server, token, body string) PrefetchJob {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, admin.URL+"/admin/prefetch", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var job PrefetchJob
	json.NewDecoder(resp.Body).Decode(&job)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted || job.ID == "" || resp.Header.Get("Location") != "/admin/prefetch/"+job.ID {
		t.Fatalf("POST /admin/prefetch: %d %+v", resp.StatusCode, job)
	}
	deadline := time.Now().Add(30 * time.Second)
	for job.State == "running" {
		if time.Now().After(deadline) {
			t.Fatalf("prefetch job still running: %+v", job)
		}
		time.Sleep(20 * time.Millisecond)
		req, _ := http.NewRequest(http.MethodGet, admin.URL+"/admin/prefetch/"+job.ID, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		job = PrefetchJob{}
		json.NewDecoder(resp.Body).Decode(&job)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET job: %d", resp.StatusCode)
		}
	}
	return job
}

func TestPrefetch(t *testing.T) {
	o := newTestOrigin(t, "public, max-age=600")
	a := o.put(t, "rel/a.bin", 8*int(testLayout.SegmentSize)+1000, 1)
	b := o.put(t, "rel/b.bin", 3000, 2)
	c := newCluster(t, o, 4, nil)
	admin := httptest.NewServer(c.edges[0].Admin("s3cret"))
	defer admin.Close()

	job := prefetchJob(t, admin, "s3cret", `{"urls": ["/rel/a.bin", "http://cdn.example/rel/b.bin", "/missing.bin"]}`)
	if job.State != "failed" || job.Finished == nil || len(job.Objects) != 3 {
		t.Fatalf("job %+v: want failed (one object is missing), finished", job)
	}
	for i, want := range []struct {
		size int64
		segs int
	}{{int64(len(a)), 9}, {int64(len(b)), 1}} {
		got := job.Objects[i]
		if got.Error != "" || got.Size != want.size || got.Segments != want.segs || got.Done != want.segs || got.Bytes != want.size {
			t.Fatalf("object %d: %+v, want %d bytes in %d segments, all done", i, got, want.size, want.segs)
		}
	}
	if job.Objects[2].Error == "" {
		t.Fatalf("missing object: %+v, want its error", job.Objects[2])
	}
	egress := o.bytes.Load()
	if unique := int64(len(a) + len(b)); egress < unique || float64(egress) > 1.02*float64(unique) {
		t.Fatalf("origin egress %d for %d unique bytes, want at most 1.02×", egress, unique)
	}
	// The prefetching edge kept none of it in memory unless it
	// coordinated the segment (it keeps the fills it made).
	if bytes, _, _ := c.edges[0].mem.Stats(); bytes >= int64(len(a)) {
		t.Fatalf("edge 0 holds %d bytes in memory after prefetch", bytes)
	}

	// Every edge now serves both with no origin traffic, even with every
	// memory tier emptied.
	clearMemory(c)
	before := o.bytes.Load()
	for i := range c.edges {
		_, got := c.get(i, "/rel/a.bin")
		sameBytes(t, "a.bin", got, a)
		_, got = c.get(i, "/rel/b.bin")
		sameBytes(t, "b.bin", got, b)
	}
	if n := o.bytes.Load() - before; n != 0 {
		t.Fatalf("origin sent %d bytes after the prefetch", n)
	}

	// Again: the fleet has it all, the origin sends nothing.
	before = o.bytes.Load()
	if job := prefetchJob(t, admin, "s3cret", `{"urls": ["/rel/a.bin"]}`); job.State != "done" {
		t.Fatalf("second prefetch: %+v", job)
	}
	if n := o.bytes.Load() - before; n != 0 {
		t.Fatalf("a second prefetch cost %d origin bytes", n)
	}
}

// TestPrefetchWarmAll: with warm=all every edge ends with the release in
// its memory tier.
func TestPrefetchWarmAll(t *testing.T) {
	o := newTestOrigin(t, "public, max-age=600")
	a := o.put(t, "a.bin", 3*int(testLayout.SegmentSize)+10, 5)
	c := newCluster(t, o, 3, nil)
	admin := httptest.NewServer(c.edges[1].Admin(""))
	defer admin.Close()
	job := prefetchJob(t, admin, "", `{"urls": ["/a.bin"], "warm": "all"}`)
	if got := job.Objects[0]; job.State != "done" || got.WarmTotal != 4*3 || got.Warmed != got.WarmTotal {
		t.Fatalf("job %+v", job)
	}
	for i, e := range c.edges {
		if bytes, n, _ := e.mem.Stats(); n != 4 || bytes < int64(len(a)) {
			t.Fatalf("edge %d memory: %d segments, %d bytes; want all 4", i, n, bytes)
		}
	}
	if n := o.bytes.Load(); n < int64(len(a)) || float64(n) > 1.02*float64(len(a)) {
		t.Fatalf("origin egress %d for %d bytes", n, len(a))
	}
}

func TestPrefetchBadRequests(t *testing.T) {
	o := newTestOrigin(t, "public, max-age=600")
	c := newCluster(t, o, 1, nil)
	admin := httptest.NewServer(c.edges[0].Admin("tok"))
	defer admin.Close()
	cases := []struct {
		name, ct, body, auth string
		want                 int
	}{
		{"no token", "application/json", `{"urls":["/a"]}`, "", http.StatusUnauthorized},
		{"wrong token", "application/json", `{"urls":["/a"]}`, "Bearer nope", http.StatusUnauthorized},
		{"no urls", "application/json", `{"urls":[]}`, "Bearer tok", http.StatusBadRequest},
		{"bad json", "application/json", `{"urls":`, "Bearer tok", http.StatusBadRequest},
		{"unknown field", "application/json", `{"url":["/a"]}`, "Bearer tok", http.StatusBadRequest},
		{"relative", "application/json", `{"urls":["a.bin"]}`, "Bearer tok", http.StatusBadRequest},
		{"ftp", "application/json", `{"urls":["ftp://x/a"]}`, "Bearer tok", http.StatusBadRequest},
		{"warm some", "application/json", `{"urls":["/a"],"warm":"some"}`, "Bearer tok", http.StatusBadRequest},
		{"form", "application/x-www-form-urlencoded", `url=/a&url=/b`, "Bearer tok", http.StatusAccepted},
	}
	for _, tc := range cases {
		req, _ := http.NewRequest(http.MethodPost, admin.URL+"/admin/prefetch", strings.NewReader(tc.body))
		req.Header.Set("Content-Type", tc.ct)
		if tc.auth != "" {
			req.Header.Set("Authorization", tc.auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, resp.StatusCode, tc.want)
		}
	}
	req, _ := http.NewRequest(http.MethodGet, admin.URL+"/admin/prefetch/0123", nil)
	req.Header.Set("Authorization", "Bearer tok")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown job: %d", resp.StatusCode)
	}
}
