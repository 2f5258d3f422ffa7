package edge

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// testRegistry is a small OCI distribution origin for the edge's unit
// tests (the end-to-end tests in cmd/shoal use Debian's docker-registry):
// blobs by digest under any repository, one of which it serves wrong.
type testRegistry struct {
	mu    sync.Mutex
	blobs map[string][]byte // digest → what is served for it
	gets  map[string]int    // digest → GETs
}

func (g *testRegistry) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Docker-Distribution-Api-Version", "registry/2.0")
	if r.URL.Path == "/v2/" {
		return
	}
	i := strings.LastIndex(r.URL.Path, "/blobs/")
	if i < 0 {
		http.NotFound(w, r)
		return
	}
	d := r.URL.Path[i+len("/blobs/"):]
	g.mu.Lock()
	b, ok := g.blobs[d]
	if ok && r.Method == http.MethodGet {
		g.gets[d]++
	}
	g.mu.Unlock()
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Docker-Content-Digest", d)
	w.Header().Set("ETag", `"`+d+`"`)
	w.Header().Set("Cache-Control", "max-age=31536000")
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(b))
}

func (g *testRegistry) getsOf(d string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.gets[d]
}

func sha256Digest(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// TestRegistryDigestChecked: content by digest is kept once whatever the
// repository and mirror query, and a body that does not match its digest
// is cut before its last byte, dropped, and fetched again by the next
// request rather than served from the fleet.
func TestRegistryDigestChecked(t *testing.T) {
	t.Parallel()
	good := make([]byte, 3*testLayout.SegmentSize+1234)
	rand.NewChaCha8([32]byte{7}).Read(good)
	bad := bytes.Clone(good)
	bad[len(bad)/2] ^= 1
	goodD := sha256Digest(good)
	badD := sha256Digest(append([]byte("not this"), good...))
	reg := &testRegistry{blobs: map[string][]byte{goodD: good, badD: bad}, gets: map[string]int{}}
	o := &testOrigin{srv: httptest.NewServer(reg)}
	t.Cleanup(o.srv.Close)
	c := newCluster(t, o, 3, nil)

	ns := strings.TrimPrefix(o.srv.URL, "http://")
	for i, path := range []string{"/v2/team/app/blobs/" + goodD, "/v2/other/name/blobs/" + goodD + "?ns=" + ns, "/v2/team/app/blobs/" + goodD} {
		resp, body := c.get(i, path)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d", path, resp.StatusCode)
		}
		sameBytes(t, path, body, good)
	}
	if n := reg.getsOf(goodD); n != 1 {
		t.Fatalf("the registry sent the blob %d times to three repositories' readers, want once", n)
	}
	// A mirror request for another registry (containerd's ns=) is not
	// this origin's to answer, whatever the fleet holds.
	for _, path := range []string{"/v2/team/app/blobs/" + goodD + "?ns=docker.io", "/v2/team/app/manifests/latest?ns=docker.io"} {
		if resp, body := c.get(0, path); resp.StatusCode != http.StatusNotFound || bytes.Contains(body, good[:64]) {
			t.Fatalf("GET %s: %d, want 404", path, resp.StatusCode)
		}
	}

	for i := range 2 {
		resp, err := http.Get(c.edges[i].url + "/v2/team/app/blobs/" + badD)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil || len(got) >= len(bad) {
			t.Fatalf("a body that does not match its digest: read %d of %d bytes, err %v; want it cut before its end", len(got), len(bad), err)
		}
	}
	if n := reg.getsOf(badD); n != 2 {
		t.Fatalf("the registry was asked %d times for the content that did not match, want 2 (dropped after the first)", n)
	}
	var mismatches float64
	for _, e := range c.edges {
		mismatches += counterValue(t, e.Edge, "shoal_registry_digest_mismatches_total")
	}
	if mismatches != 2 {
		t.Fatalf("shoal_registry_digest_mismatches_total %v over the fleet, want 2", mismatches)
	}
}
