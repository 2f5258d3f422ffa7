package edge

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoalcdn/shoal/internal/httpcache"
)

// varyOrigin is a real origin on loopback whose object /v has one
// representation per Accept-Language it knows (en, fr, and the default for
// requests without the field), each with its own strong ETag, several
// segments long, served with ranges by http.ServeContent; "Vary" is
// whatever the test sets. It counts the requests of each variant.
type varyOrigin struct {
	srv    *httptest.Server
	vary   string
	bodies map[string][]byte
	mu     sync.Mutex
	seen   map[string]int // method + " " + Accept-Language
}

func newVaryOrigin(t *testing.T, vary string, size int) *varyOrigin {
	o := &varyOrigin{vary: vary, bodies: map[string][]byte{}, seen: map[string]int{}}
	for i, lang := range []string{"", "en", "fr"} {
		b := make([]byte, size)
		for j := range b {
			b[j] = byte(j*7 + i*31 + j>>11)
		}
		o.bodies[lang] = b
	}
	o.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		lang := r.Header.Get("Accept-Language")
		o.mu.Lock()
		o.seen[r.Method+" "+lang]++
		o.mu.Unlock()
		b, ok := o.bodies[lang]
		if !ok {
			b, lang = o.bodies[""], "default"
		}
		w.Header().Set("Vary", o.vary)
		w.Header().Set("Cache-Control", "max-age=3600")
		w.Header().Set("ETag", fmt.Sprintf("%q", "v-"+lang))
		w.Header().Set("Content-Language", lang)
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(b))
	}))
	t.Cleanup(o.srv.Close)
	return o
}

func (o *varyOrigin) count(method, lang string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.seen[method+" "+lang]
}

// TestRFC9111FleetVariants: a fleet stores every variant a response's Vary
// selects, each under its own key, filled by one origin GET for the fleet
// (the client's, streamed: no HEAD), then served by every member, ranges
// and HEAD included.
func TestRFC9111FleetVariants(t *testing.T) {
	size := 3*int(testLayout.SegmentSize) + 1000
	o := newVaryOrigin(t, "Accept-Language", size)
	c := newCluster(t, &testOrigin{srv: o.srv}, 3, nil)
	const gets = 1 // one streamed GET per variant for the fleet

	t.Run("RFC9111-4.1/variant-with-field-stored-fleet-wide", func(t *testing.T) {
		for i := range 3 {
			resp, got := c.get(i, "/v", "Accept-Language", "fr")
			if resp.StatusCode != 200 {
				t.Fatalf("edge %d: status %d", i, resp.StatusCode)
			}
			sameBytes(t, fmt.Sprintf("edge %d body", i), got, o.bodies["fr"])
			if cl := resp.Header.Get("Content-Language"); cl != "fr" {
				t.Errorf("edge %d: Content-Language %q, want fr", i, cl)
			}
			if cs := resp.Header.Get("Cache-Status"); i > 0 && !strings.HasPrefix(cs, "shoal; hit") {
				t.Errorf("edge %d: Cache-Status %q, want a hit", i, cs)
			}
		}
		if n := o.count(http.MethodGet, "fr"); n != gets {
			t.Errorf("origin saw %d GETs of the fr variant, want %d for the fleet", n, gets)
		}
		if n := o.count(http.MethodHead, "fr"); n != 0 {
			t.Errorf("origin saw %d HEADs of the fr variant, want none", n)
		}
	})
	t.Run("RFC9111-4.1/variants-kept-apart", func(t *testing.T) {
		for round := range 2 {
			for i, lang := range []string{"", "en", "fr"} {
				var hdr []string
				if lang != "" {
					hdr = []string{"Accept-Language", lang}
				}
				_, got := c.get((i+round)%3, "/v", hdr...)
				sameBytes(t, fmt.Sprintf("round %d, %q", round, lang), got, o.bodies[lang])
			}
		}
		for _, lang := range []string{"", "en", "fr"} {
			if n := o.count(http.MethodGet, lang); n != gets {
				t.Errorf("origin saw %d GETs of the %q variant, want %d", n, lang, gets)
			}
		}
	})
	t.Run("RFC9110-14.2/range-of-a-variant", func(t *testing.T) {
		resp, got := c.get(2, "/v", "Accept-Language", "en", "Range", "bytes=300000-600000")
		if resp.StatusCode != http.StatusPartialContent {
			t.Fatalf("status %d, want 206", resp.StatusCode)
		}
		sameBytes(t, "range", got, o.bodies["en"][300000:600001])
	})
	t.Run("RFC9110-9.3.2/head-of-a-variant-from-cache", func(t *testing.T) {
		heads := o.count(http.MethodHead, "en")
		resp, _ := c.do(1, http.MethodHead, "/v", "Accept-Language", "en")
		if resp.StatusCode != 200 || resp.Header.Get("ETag") != `"v-en"` || resp.ContentLength != int64(size) {
			t.Errorf("HEAD: status %d, ETag %q, length %d", resp.StatusCode, resp.Header.Get("ETag"), resp.ContentLength)
		}
		if n := o.count(http.MethodHead, "en"); n != heads {
			t.Errorf("a HEAD of a stored variant reached the origin")
		}
	})
	t.Run("RFC9111-4.1/unknown-value-is-its-own-variant", func(t *testing.T) {
		// The origin answers "de" with its default representation: it is
		// the "de" variant all the same, stored apart from the field-less one.
		_, got := c.get(0, "/v", "Accept-Language", "de")
		sameBytes(t, "de", got, o.bodies[""])
		resp, got := c.get(1, "/v", "Accept-Language", "de")
		sameBytes(t, "de again", got, o.bodies[""])
		if cs := resp.Header.Get("Cache-Status"); !strings.HasPrefix(cs, "shoal; hit") {
			t.Errorf("Cache-Status %q, want a hit", cs)
		}
		if n := o.count(http.MethodGet, "de"); n != gets {
			t.Errorf("origin saw %d GETs of the de variant, want %d", n, gets)
		}
	})
	t.Run("RFC9111-4.1/purge-drops-every-variant", func(t *testing.T) {
		before := o.count(http.MethodGet, "fr")
		res := c.edges[0].Purge(t.Context(), "/v", false)
		if len(res.Failed) > 0 {
			t.Fatalf("purge failed on %v", res.Failed)
		}
		_, got := c.get(2, "/v", "Accept-Language", "fr")
		sameBytes(t, "after purge", got, o.bodies["fr"])
		if n := o.count(http.MethodGet, "fr"); n != before+1 {
			t.Errorf("origin saw %d GETs of the fr variant after the purge, want %d", n, before+1)
		}
	})
}

// TestRFC9111FleetVariantsCollapse: concurrent misses of one variant on
// every member cost the origin one GET (a lease on the variant's key).
func TestRFC9111FleetVariantsCollapse(t *testing.T) {
	size := 2*int(testLayout.SegmentSize) + 10
	o := newVaryOrigin(t, "Accept-Language", size)
	c := newCluster(t, &testOrigin{srv: o.srv}, 3, nil)
	// Learn the target's Vary first (a request without the field), so that
	// the crowd below asks for its variant straight away.
	c.get(0, "/v")
	var wg sync.WaitGroup
	for i := range 9 {
		wg.Go(func() {
			req, _ := http.NewRequest(http.MethodGet, c.edges[i%3].url+"/v", nil)
			req.Header.Set("Accept-Language", "fr")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			var b bytes.Buffer
			if _, err := b.ReadFrom(resp.Body); err != nil {
				t.Error(err)
				return
			}
			if !bytes.Equal(b.Bytes(), o.bodies["fr"]) {
				t.Errorf("client %d: wrong bytes (%d)", i, b.Len())
			}
		})
	}
	wg.Wait()
	if n := o.count(http.MethodHead, "fr"); n != 0 {
		t.Errorf("origin saw %d HEADs of the fr variant, want none", n)
	}
	if n := o.count(http.MethodGet, "fr"); n != 1 {
		t.Errorf("origin saw %d GETs of the fr variant, want 1", n)
	}
}

// TestRFC9111FleetVariantsNotFetched: variants selected by credentials or
// cookies are not fetched by the fleet (their values would travel between
// members): such requests are forwarded as they came.
func TestRFC9111FleetVariantsNotFetched(t *testing.T) {
	o := newVaryOrigin(t, "Cookie", 5000)
	c := newCluster(t, &testOrigin{srv: o.srv}, 2, nil)
	for i := range 2 {
		resp, got := c.get(i, "/v", "Cookie", "id=1", "Accept-Language", "fr")
		sameBytes(t, "body", got, o.bodies["fr"])
		if cs := resp.Header.Get("Cache-Status"); !strings.Contains(cs, "detail=vary") {
			t.Errorf("request %d: Cache-Status %q, want it forwarded (detail=vary)", i, cs)
		}
	}
	if n := o.count(http.MethodGet, "fr"); n != 2 {
		t.Errorf("origin saw %d GETs with the cookie, want 2 (both forwarded)", n)
	}
	// A request without the cookie is the field-less variant, stored.
	for i := range 2 {
		_, got := c.get(i, "/v")
		sameBytes(t, "no cookie", got, o.bodies[""])
	}
	if n := o.count(http.MethodGet, ""); n != 1 {
		t.Errorf("origin saw %d GETs without the cookie, want 1", n)
	}
}

func TestFleetVariantKeys(t *testing.T) {
	e := &Edge{}
	tests := []struct {
		key  string
		want bool
	}{
		{"/a", true},
		{"/a\nAccept-Language=fr", true},
		{"//h/a\nAccept-Encoding=gzip,br\nAccept-Language=", true},
		{"/a\nCookie=id=1", false},
		{"/a\ncookie=id=1", false}, // not canonical: a peer's spelling
		{"/a\nAuthorization=Bearer x", false},
		{"/a\nIf-None-Match=\"x\"", false},
		{"/a\nRange=bytes=0-1", false},
		{"/a\nConnection=close", false},
		{"/a\nTe=trailers", false},
		{"/a\nX-Bad Name=1", false},
		{"/a\nX-Ctl=a\rb", false},
		{"/a\n=1", false},
		{"/a\n" + strings.Repeat("X", 70000), false},
	}
	for _, tt := range tests {
		if got := e.fleetVariant(tt.key); got != tt.want {
			t.Errorf("fleetVariant(%.40q) = %v, want %v", tt.key, got, tt.want)
		}
	}
	h := httpcache.VariantFields("/a\nAccept-Encoding=gzip,br\nAccept-Language=fr")
	if h.Get("Accept-Encoding") != "gzip,br" || h.Get("Accept-Language") != "fr" || len(h) != 2 {
		t.Errorf("variantFields = %v", h)
	}
	if httpcache.VariantFields("/a?x=1") != nil {
		t.Error("a target has variant fields")
	}
}
