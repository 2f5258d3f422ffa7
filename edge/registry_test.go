package edge

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoalcdn/shoal/erasure"
	"github.com/shoalcdn/shoal/internal/digest"
)

// testRegistry is a small OCI distribution origin for the edge's unit
// tests (the end-to-end tests in cmd/shoal use Debian's docker-registry):
// blobs by digest under any repository, one of which it serves wrong.
type testRegistry struct {
	mu    sync.Mutex
	blobs map[string][]byte // digest → what is served for it
	gets  map[string]int    // digest → GETs
	// storage, when set, is the URL of another host (serving this
	// handler too) that GETs of blobs are redirected to.
	storage string
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
	if g.storage != "" && r.Method == http.MethodGet && !strings.HasPrefix(r.URL.Path, "/storage/") {
		// Blob storage on another host, as S3-backed registries answer.
		http.Redirect(w, r, g.storage+"/storage/blobs/"+d, http.StatusTemporaryRedirect)
		return
	}
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
	// GETs of blobs are redirected to storage on another host (whose
	// answer the fleet keeps by digest, followed at the edge).
	storage := httptest.NewServer(reg)
	t.Cleanup(storage.Close)
	reg.storage = storage.URL
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

	// Content that does not match its digest: every response is cut
	// before its end, and the content is dropped, so that a later request
	// fills it again (a request while the failed fill's lease is still
	// being ended may read from it, and is cut too).
	getBad := func(i int) {
		resp, err := http.Get(c.edges[i].url + "/v2/team/app/blobs/" + badD)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil && resp.StatusCode == http.StatusOK && len(got) >= len(bad) {
			t.Fatalf("a body that does not match its digest was served whole (%d bytes) through edge %d", len(got), i)
		}
	}
	getBad(0)
	waitFor(t, func() bool {
		getBad(1)
		return reg.getsOf(badD) >= 2
	})
	var fills, responses float64
	for _, e := range c.edges {
		fills += counterValueLabel(t, e.Edge, "shoal_registry_digest_mismatches_total", "at", "fill")
		responses += counterValueLabel(t, e.Edge, "shoal_registry_digest_mismatches_total", "at", "response")
	}
	if n := reg.getsOf(badD); fills < 1 || fills > float64(n) || responses < 1 {
		t.Fatalf("shoal_registry_digest_mismatches_total: fill %v (the registry was asked %d times), response %v", fills, n, responses)
	}
}

// testHub is a model hub as Hugging Face's documented API behaves, for the
// edge's unit tests: a download of a file in large-file storage is a 302
// to a storage host with the file's SHA-256 in X-Linked-Etag; a private
// repository wants a Bearer token; a small file is served from git.
type testHub struct {
	cdn   *httptest.Server
	files map[string][]byte // path under the hub → content
	mu    sync.Mutex
	sigs  map[string]bool // signatures the hub handed out
	gets  int             // storage GETs
	seq   int
}

func (h *testHub) hub(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	if strings.HasPrefix(path, "/org/private/") && r.Header.Get("Authorization") != "Bearer hf_right" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="hub"`)
		http.Error(w, "Invalid credentials", http.StatusUnauthorized)
		return
	}
	i := strings.Index(path, "/resolve/")
	if i < 0 {
		http.NotFound(w, r)
		return
	}
	_, file, _ := strings.Cut(path[i+len("/resolve/"):], "/") // after the revision
	b, ok := h.files[path[:i]+"/"+file]
	if !ok {
		w.Header().Set("X-Error-Code", "EntryNotFound")
		http.NotFound(w, r)
		return
	}
	w.Header().Set("X-Repo-Commit", "0123456789abcdef0123456789abcdef01234567")
	if len(b) < 1024 { // kept in git
		w.Header().Set("ETag", `"a1b2c3"`)
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(b))
		return
	}
	sum := sha256.Sum256(b)
	hexSum := hex.EncodeToString(sum[:])
	h.mu.Lock()
	h.seq++
	sig := strings.Repeat("s", 8) + string(rune('a'+h.seq%26)) + hexSum[:8] + time.Now().Format("150405.000000")
	h.sigs[sig] = true
	h.mu.Unlock()
	w.Header().Set("X-Linked-Etag", `"`+hexSum+`"`)
	w.Header().Set("X-Linked-Size", strconv.Itoa(len(b)))
	w.Header().Set("ETag", `"`+hexSum+`"`)
	w.Header().Set("Location", h.cdn.URL+"/lfs/"+hexSum+"?X-Amz-Signature="+sig)
	w.WriteHeader(http.StatusFound)
}

func (h *testHub) storage(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	signed := h.sigs[r.URL.Query().Get("X-Amz-Signature")]
	h.mu.Unlock()
	switch {
	case r.Method != http.MethodGet: // presigned for GET only
		http.Error(w, "SignatureDoesNotMatch", http.StatusForbidden)
		return
	case r.Header.Get("Authorization") != "":
		http.Error(w, "Only one auth mechanism allowed", http.StatusBadRequest)
		return
	case !signed:
		http.Error(w, "AccessDenied", http.StatusForbidden)
		return
	}
	want := strings.TrimPrefix(r.URL.Path, "/lfs/")
	for _, b := range h.files {
		if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) == want {
			h.mu.Lock()
			h.gets++
			h.mu.Unlock()
			w.Header().Set("Content-Type", "application/octet-stream")
			http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(b))
			return
		}
	}
	http.NotFound(w, r)
}

func (h *testHub) storageGets() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.gets
}

// TestHubFilesByLinkedSHA256: a hub's large files are filled once for the
// fleet by the SHA-256 the hub names, whatever the revision, through the
// redirect the edge follows (to storage that refuses HEAD and credentials);
// ranges are served from the fleet, from segments checked against the
// digest; a private repository's file reaches no client without the
// token, even once in the fleet; a small file from git is cached as usual.
func TestHubFilesByLinkedSHA256(t *testing.T) {
	t.Parallel()
	weights := make([]byte, 5*testLayout.SegmentSize+777)
	rand.NewChaCha8([32]byte{9}).Read(weights)
	h := &testHub{sigs: map[string]bool{}, files: map[string][]byte{
		"/org/model/model.safetensors": weights,
		"/org/model/config.json":       []byte(`{"model_type": "test"}`),
		"/org/private/w.bin":           weights[:2*testLayout.SegmentSize+5],
	}}
	h.cdn = httptest.NewServer(http.HandlerFunc(h.storage))
	t.Cleanup(h.cdn.Close)
	o := &testOrigin{srv: httptest.NewServer(http.HandlerFunc(h.hub))}
	t.Cleanup(o.srv.Close)
	c := newCluster(t, o, 3, nil)

	resp, body := c.get(0, "/org/model/resolve/main/model.safetensors")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("download: %d %s", resp.StatusCode, body)
	}
	sameBytes(t, "download", body, weights)
	if got := resp.Header.Get("X-Linked-Etag"); !strings.Contains(got, sha256Digest(weights)[7:]) {
		t.Fatalf("X-Linked-Etag %q", got)
	}
	resp, body = c.get(1, "/org/model/resolve/0123456789abcdef0123456789abcdef01234567/model.safetensors", "Range", "bytes=300000-900000")
	if resp.StatusCode != http.StatusPartialContent {
		t.Fatalf("range: %d", resp.StatusCode)
	}
	sameBytes(t, "range", body, weights[300000:900001])
	resp, body = c.get(2, "/org/model/resolve/main/model.safetensors", "Range", "bytes=0-0")
	if resp.StatusCode != http.StatusPartialContent || resp.Header.Get("Content-Range") != "bytes 0-0/"+strconv.Itoa(len(weights)) {
		t.Fatalf("probe: %d %q", resp.StatusCode, resp.Header.Get("Content-Range"))
	}
	if n := h.storageGets(); n != 1 {
		t.Fatalf("storage sent the file %d times, want once", n)
	}

	// A segment that changes in an edge's memory after its digest was
	// checked is never served.
	e := c.edges[1]
	rec, ok := e.records.Get(digest.HubKey(sha256Digest(weights)[7:]))
	if !ok {
		t.Fatal("edge 1 has no record of the file")
	}
	ms, ok := e.mem.Get(erasure.SegmentID{Object: rec.ID(), Index: 1})
	if !ok {
		t.Fatal("edge 1 has no segment 1 in memory")
	}
	ms.data[10] ^= 0xff
	before := counterValueLabel(t, e.Edge, "shoal_registry_digest_mismatches_total", "at", "segment")
	req, _ := http.NewRequest(http.MethodGet, e.url+"/org/model/resolve/main/model.safetensors", nil)
	req.Header.Set("Range", "bytes=262144-262200")
	if resp, err := http.DefaultClient.Do(req); err == nil {
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil && resp.StatusCode == http.StatusPartialContent && !bytes.Equal(got, weights[262144:262201]) {
			t.Fatalf("a segment changed after its check was served: %q", got)
		}
	}
	if counterValueLabel(t, e.Edge, "shoal_registry_digest_mismatches_total", "at", "segment") != before+1 {
		t.Fatal("the changed segment was not caught by its pinned hash")
	}
	ms.data[10] ^= 0xff

	// The private file: the token's holder reads it; no one else, from
	// any edge.
	resp, body = c.get(0, "/org/private/resolve/main/w.bin", "Authorization", "Bearer hf_right")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("private download with the token: %d", resp.StatusCode)
	}
	sameBytes(t, "private", body, weights[:2*testLayout.SegmentSize+5])
	for i := range c.edges {
		for _, auth := range []string{"", "Bearer hf_wrong"} {
			resp, body := c.get(i, "/org/private/resolve/main/w.bin", "Authorization", auth, "Range", "bytes=0-99")
			if resp.StatusCode != http.StatusUnauthorized || bytes.Contains(body, weights[:32]) {
				t.Fatalf("private file with %q through edge %d: %d", auth, i, resp.StatusCode)
			}
		}
	}

	// The fleet's own keys are no way around the hub's no: a request for
	// one goes to the origin, whatever the fleet holds.
	private := sha256Digest(weights[:2*testLayout.SegmentSize+5])[7:]
	for i := range c.edges {
		for _, path := range []string{digest.HubKey(private), "/v2/_/blobs/sha256:" + private} {
			if resp, body := c.get(i, path, "Range", "bytes=0-99"); resp.StatusCode < 400 || bytes.Contains(body, weights[:32]) {
				t.Fatalf("GET %s through edge %d: %d", path, i, resp.StatusCode)
			}
		}
	}

	// A HEAD is answered as the GET is: 200 with the hub's fields, not the
	// redirect to storage.
	resp, _ = c.do(2, http.MethodHead, "/org/model/resolve/main/model.safetensors")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Location") != "" || resp.Header.Get("X-Repo-Commit") == "" ||
		resp.Header.Get("X-Linked-Size") != strconv.Itoa(len(weights)) || resp.ContentLength != int64(len(weights)) {
		t.Fatalf("HEAD: %d, Location %q, X-Repo-Commit %q, X-Linked-Size %q, length %d", resp.StatusCode,
			resp.Header.Get("Location"), resp.Header.Get("X-Repo-Commit"), resp.Header.Get("X-Linked-Size"), resp.ContentLength)
	}

	// A small file from git: cached as any response.
	resp, body = c.get(1, "/org/model/resolve/main/config.json")
	if resp.StatusCode != http.StatusOK || string(body) != `{"model_type": "test"}` {
		t.Fatalf("config.json: %d %q", resp.StatusCode, body)
	}
}
