package edge

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoalcdn/shoal/internal/purgelog"
	"github.com/shoalcdn/shoal/origin"
	"github.com/shoalcdn/shoal/store"
	"github.com/shoalcdn/shoal/swarm"
)

// scriptedOrigin is a real HTTP origin on loopback whose objects carry the
// header fields a test scripts. GET and HEAD of an object are answered by
// http.ServeContent (ranges, If-Range, If-None-Match, If-Modified-Since);
// any other method is answered 200 with what it received echoed back.
type scriptedOrigin struct {
	t    testing.TB
	srv  *httptest.Server
	mu   sync.Mutex
	objs map[string]*scriptedObject
	seen []seenRequest
	down bool
	// now, when set, dates the responses (their Date field) instead of
	// the wall clock: set to the edges' testClock, it keeps the age of
	// what the origin sends at zero when the test moves time on.
	now func() time.Time
}

type scriptedObject struct {
	status int // 0 means 200
	header http.Header
	body   []byte
	raw    string // when set, GET is answered with these bytes, then a close
}

type seenRequest struct {
	method, target string
	header         http.Header
	body           []byte
}

func newScriptedOrigin(t testing.TB) *scriptedOrigin {
	o := &scriptedOrigin{t: t, objs: map[string]*scriptedObject{}}
	o.srv = httptest.NewServer(http.HandlerFunc(o.serve))
	t.Cleanup(o.srv.Close)
	return o
}

func (o *scriptedOrigin) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	o.mu.Lock()
	o.seen = append(o.seen, seenRequest{r.Method, r.URL.RequestURI(), r.Header.Clone(), body})
	obj, down, now := o.objs[r.URL.RequestURI()], o.down, o.now
	o.mu.Unlock()
	if now != nil {
		w.Header().Set("Date", now().UTC().Format(http.TimeFormat)) // a scripted Date, copied below, wins
	}
	if down {
		http.Error(w, "down for the test", http.StatusServiceUnavailable)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("X-Origin-Method", r.Method)
		if obj != nil {
			for k, vs := range obj.header {
				w.Header()[k] = vs
			}
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		code := http.StatusOK
		if obj != nil && obj.status != 0 {
			code = obj.status
		}
		w.WriteHeader(code)
		w.Write(body)
		return
	}
	if obj == nil {
		http.NotFound(w, r)
		return
	}
	if obj.raw != "" && r.Method == http.MethodGet {
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			o.t.Errorf("hijack: %v", err)
			return
		}
		io.WriteString(conn, obj.raw)
		conn.Close()
		return
	}
	for k, vs := range obj.header {
		w.Header()[k] = vs
	}
	if obj.status != 0 && obj.status != http.StatusOK {
		w.WriteHeader(obj.status)
		w.Write(obj.body)
		return
	}
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(obj.body))
}

// set scripts the object at target: header fields as name, value pairs.
func (o *scriptedOrigin) set(target string, status int, body []byte, kv ...string) {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	o.mu.Lock()
	o.objs[target] = &scriptedObject{status: status, header: h, body: body}
	o.mu.Unlock()
}

// count returns how many requests for target with method the origin saw,
// those whose header has the field cond when cond is not empty.
func (o *scriptedOrigin) count(method, target, cond string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := 0
	for _, s := range o.seen {
		if s.method == method && s.target == target && (cond == "" || s.header.Get(cond) != "") {
			n++
		}
	}
	return n
}

func (o *scriptedOrigin) last(target string) seenRequest {
	o.mu.Lock()
	defer o.mu.Unlock()
	for i := len(o.seen) - 1; i >= 0; i-- {
		if o.seen[i].target == target {
			return o.seen[i]
		}
	}
	o.t.Fatalf("the origin saw no request for %s", target)
	return seenRequest{}
}

// setClock makes the origin date its responses by now.
func (o *scriptedOrigin) setClock(now func() time.Time) {
	o.mu.Lock()
	o.now = now
	o.mu.Unlock()
}

func (o *scriptedOrigin) setDown(down bool) {
	o.mu.Lock()
	o.down = down
	o.mu.Unlock()
}

// newScriptedCluster starts n edges in front of a scripted origin. A
// lone edge forwards its misses (Config.ForwardMisses), as
// scripts/cache-tests.sh runs it: the single-edge cases test that path.
func newScriptedCluster(t *testing.T, n int, tweak func(*Config)) (*cluster, *scriptedOrigin) {
	so := newScriptedOrigin(t)
	return newCluster(t, &testOrigin{srv: so.srv}, n, func(cfg *Config) {
		cfg.ForwardMisses = n == 1
		if tweak != nil {
			tweak(cfg)
		}
	}), so
}

func body(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('a' + i%26)
	}
	return b
}

var oldDate = time.Now().Add(-48 * time.Hour).UTC().Format(http.TimeFormat)

func TestRFC9111Storing(t *testing.T) {
	c, o := newScriptedCluster(t, 2, nil)
	tests := []struct {
		name   string
		status int
		header []string
		req    []string
		stored bool
		absent []string // fields a cached response must not carry
	}{
		{"RFC9111-3/max-age-stored", 200, []string{"Cache-Control", "max-age=3600"}, nil, true, nil},
		{"RFC9111-5.2.2.5/no-store", 200, []string{"Cache-Control", "max-age=3600, no-store"}, nil, false, nil},
		{"RFC9111-5.2.2.7/private", 200, []string{"Cache-Control", "private, max-age=3600"}, nil, false, nil},
		{"RFC9111-5.2.2.7/private-qualified-drops-field", 200, []string{"Cache-Control", `max-age=3600, private="X-Secret"`, "X-Secret", "s"}, nil, true, []string{"X-Secret"}},
		{"RFC9111-5.2.2.4/no-cache-qualified-drops-field", 200, []string{"Cache-Control", `max-age=3600, no-cache="X-Secret"`, "X-Secret", "s"}, nil, true, []string{"X-Secret"}},
		{"RFC9111-3.1/connection-named-not-stored", 200, []string{"Cache-Control", "max-age=3600", "Connection", "X-Hop", "X-Hop", "1"}, nil, true, []string{"X-Hop"}},
		{"RFC9111-4.1/vary-star-not-stored", 200, []string{"Cache-Control", "max-age=3600", "Vary", "*"}, nil, false, nil},
		{"RFC9111-4.1/vary-variant-without-field-stored", 200, []string{"Cache-Control", "max-age=3600", "Vary", "Accept-Language"}, nil, true, nil},
		{"RFC9111-4.1/vary-fleet-stores-variant-with-field", 200, []string{"Cache-Control", "max-age=3600", "Vary", "Accept-Language"}, []string{"Accept-Language", "fr"}, true, nil},
		{"RFC9111-3.5/authorization-max-age-bypassed", 200, []string{"Cache-Control", "max-age=3600"}, []string{"Authorization", "Bearer x"}, false, nil},
		{"RFC9111-3.5/authorization-public", 200, []string{"Cache-Control", "public, max-age=3600"}, []string{"Authorization", "Bearer x"}, true, nil},
		{"RFC9111-3.5/authorization-s-maxage", 200, []string{"Cache-Control", "s-maxage=3600"}, []string{"Authorization", "Bearer x"}, true, nil},
		{"RFC9111-3.5/authorization-must-revalidate", 200, []string{"Cache-Control", "max-age=3600, must-revalidate"}, []string{"Authorization", "Bearer x"}, true, nil},
		{"RFC9111-7.3/set-cookie-not-stored", 200, []string{"Cache-Control", "max-age=3600", "Set-Cookie", "id=1"}, nil, false, nil},
		{"RFC9213-2.1/cdn-cache-control-overrides-private", 200, []string{"Cache-Control", "private", "CDN-Cache-Control", "max-age=3600"}, nil, true, nil},
		{"RFC9213-2.1/shoal-cache-control-overrides-no-store", 200, []string{"Cache-Control", "no-store", "Shoal-Cache-Control", "max-age=3600"}, nil, true, []string{"Shoal-Cache-Control"}},
		{"RFC9213-2.1/shoal-cache-control-no-store-wins", 200, []string{"Cache-Control", "max-age=3600", "Shoal-Cache-Control", "no-store"}, nil, false, nil},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target := fmt.Sprintf("/store/%d", i)
			want := body(1000 + i)
			o.set(target, tt.status, want, append([]string{"ETag", fmt.Sprintf(`"s%d"`, i)}, tt.header...)...)
			for round := range 2 {
				resp, got := c.get(round, target, tt.req...)
				if resp.StatusCode != tt.status {
					t.Fatalf("round %d: status %d, want %d", round, resp.StatusCode, tt.status)
				}
				sameBytes(t, "body", got, want)
				cs := resp.Header.Get("Cache-Status")
				if round == 1 && tt.stored != strings.HasPrefix(cs, "shoal; hit") {
					t.Errorf("second request: Cache-Status %q, stored %v", cs, tt.stored)
				}
				if round == 1 && tt.stored {
					for _, f := range tt.absent {
						if v := resp.Header.Get(f); v != "" {
							t.Errorf("cached response carries %s: %q", f, v)
						}
					}
				}
			}
			if got, wantGets := o.count(http.MethodGet, target, ""), map[bool]int{true: 1, false: 2}[tt.stored]; got != wantGets {
				t.Errorf("origin saw %d GETs of %s, want %d", got, target, wantGets)
			}
		})
	}
}

func TestRFC9111HeadersOut(t *testing.T) {
	c, o := newScriptedCluster(t, 2, nil)
	o.set("/h", 200, body(500), "ETag", `"h"`, "Cache-Control", "max-age=3600", "Date", oldDate, "Age", "100",
		"CDN-Cache-Control", "max-age=7200", "Shoal-Cache-Control", "max-age=7200", "X-Custom", "kept", "Via", "1.1 upstream")
	o.set("/fwd", 200, body(10), "Cache-Control", "no-store", "Shoal-Cache-Control", "no-store", "X-Custom", "kept")
	t.Run("RFC9111-5.1/age-counts-upstream-age-and-date", func(t *testing.T) {
		for i := range 2 {
			resp, _ := c.get(i, "/h")
			age, err := strconv.Atoi(resp.Header.Get("Age"))
			// The origin's Date is 48 hours old: the apparent age wins.
			if err != nil || age < 48*3600 {
				t.Errorf("edge %d: Age %q, want at least %d", i, resp.Header.Get("Age"), 48*3600)
			}
		}
	})
	t.Run("RFC9110-6.6.1/date-not-rewritten", func(t *testing.T) {
		resp, _ := c.get(1, "/h")
		if got := resp.Header.Get("Date"); got != oldDate {
			t.Errorf("Date %q, want the origin's %q", got, oldDate)
		}
	})
	t.Run("RFC9110-7.6.3/via", func(t *testing.T) {
		for range 2 {
			for _, p := range []string{"/h", "/fwd"} {
				resp, _ := c.get(0, p)
				vias := resp.Header.Values("Via")
				if len(vias) == 0 || vias[len(vias)-1] != "1.1 shoal" {
					t.Errorf("%s: Via %q, want this edge last", p, vias)
				}
				if p == "/h" && (len(vias) != 2 || vias[0] != "1.1 upstream") {
					t.Errorf("%s: Via %q, want the origin's kept first", p, vias)
				}
			}
		}
		if got := o.last("/fwd").header.Get("Via"); got != "1.1 shoal" {
			t.Errorf("forwarded request: Via %q", got)
		}
	})
	t.Run("RFC9211-2/cache-status", func(t *testing.T) {
		o.set("/cs", 200, body(100), "ETag", `"cs"`, "Cache-Control", "max-age=60")
		resp, _ := c.get(0, "/cs")
		if got := resp.Header.Get("Cache-Status"); !strings.HasPrefix(got, "shoal; fwd=miss; stored; fwd-status=200; ttl=") {
			t.Errorf("miss: Cache-Status %q", got)
		}
		resp, _ = c.get(1, "/cs")
		if got := resp.Header.Get("Cache-Status"); !strings.HasPrefix(got, "shoal; hit; ttl=") {
			t.Errorf("hit: Cache-Status %q", got)
		}
		resp, _ = c.get(1, "/fwd")
		if got := resp.Header.Get("Cache-Status"); got != "shoal; fwd=uri-miss" {
			t.Errorf("not stored: Cache-Status %q", got)
		}
	})
	t.Run("RFC9213-2.1/targeted-fields", func(t *testing.T) {
		for _, p := range []string{"/h", "/fwd"} {
			resp, _ := c.get(0, p)
			if v := resp.Header.Get("Shoal-Cache-Control"); v != "" {
				t.Errorf("%s: Shoal-Cache-Control sent to the client: %q", p, v)
			}
			if resp.Header.Get("X-Custom") != "kept" {
				t.Errorf("%s: X-Custom lost", p)
			}
		}
		resp, _ := c.get(0, "/h")
		if resp.Header.Get("CDN-Cache-Control") != "max-age=7200" || resp.Header.Get("Cache-Control") != "max-age=3600" {
			t.Errorf("Cache-Control %q, CDN-Cache-Control %q: want the origin's", resp.Header.Get("Cache-Control"), resp.Header.Get("CDN-Cache-Control"))
		}
	})
}

func TestRFC9110ForwardsUnchanged(t *testing.T) {
	c, o := newScriptedCluster(t, 2, nil)
	for _, m := range []string{http.MethodPut, http.MethodPost, http.MethodDelete, http.MethodPatch, http.MethodOptions, "PROPFIND"} {
		t.Run("RFC9110-9.3/"+m, func(t *testing.T) {
			target := "/m/" + strings.ToLower(m) + "?q=1"
			payload := []byte("payload of " + m)
			req, _ := http.NewRequest(m, c.edges[0].url+target, bytes.NewReader(payload))
			req.Header.Set("X-Client", "c1")
			req.Header.Set("Content-Type", "text/x-test")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			seen := o.last(target)
			if seen.method != m || !bytes.Equal(seen.body, payload) || seen.header.Get("X-Client") != "c1" || seen.header.Get("Content-Type") != "text/x-test" {
				t.Errorf("origin saw %s with body %q, X-Client %q, Content-Type %q", seen.method, seen.body, seen.header.Get("X-Client"), seen.header.Get("Content-Type"))
			}
			if resp.StatusCode != 200 || resp.Header.Get("X-Origin-Method") != m || !bytes.Equal(got, payload) {
				t.Errorf("client got %d, X-Origin-Method %q, body %q", resp.StatusCode, resp.Header.Get("X-Origin-Method"), got)
			}
		})
	}
}

func TestRFC9111Validation(t *testing.T) {
	var clock testClock
	c, o := newScriptedCluster(t, 3, func(cfg *Config) { cfg.Now = clock.Now })
	o.setClock(clock.Now)
	lm := time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat)
	o.set("/v", 200, body(2000), "ETag", `"v1"`, "Last-Modified", lm, "Cache-Control", "max-age=3600")
	c.get(0, "/v")
	tests := []struct {
		name string
		req  []string
		code int
	}{
		{"RFC9110-13.1.2/if-none-match-304", []string{"If-None-Match", `"v1"`}, 304},
		{"RFC9110-13.1.2/if-none-match-list-304", []string{"If-None-Match", `"x", W/"v1"`}, 304},
		{"RFC9110-13.1.2/if-none-match-star-304", []string{"If-None-Match", `*`}, 304},
		{"RFC9110-13.1.2/if-none-match-other-200", []string{"If-None-Match", `"v0"`}, 200},
		{"RFC9110-13.1.3/if-modified-since-304", []string{"If-Modified-Since", lm}, 304},
		{"RFC9110-13.1.3/if-modified-since-older-200", []string{"If-Modified-Since", oldDate}, 200},
		{"RFC9110-13.2.2/inm-wins-over-ims", []string{"If-None-Match", `"v0"`, "If-Modified-Since", lm}, 200},
		{"RFC9110-13.1.1/if-match-fails-412", []string{"If-Match", `"v0"`}, 412},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for i := range c.edges {
				resp, b := c.get(i, "/v", tt.req...)
				if resp.StatusCode != tt.code {
					t.Errorf("edge %d: status %d, want %d", i, resp.StatusCode, tt.code)
				}
				if tt.code == 304 && (len(b) != 0 || resp.Header.Get("ETag") != `"v1"`) {
					t.Errorf("edge %d: 304 with %d body bytes, ETag %q", i, len(b), resp.Header.Get("ETag"))
				}
			}
		})
	}
	// The object was fetched once (c.get above): the conditional requests
	// were answered from the fleet, without the origin and without a HEAD.
	if n, h := o.count(http.MethodGet, "/v", ""), o.count(http.MethodHead, "/v", ""); n != 1 || h != 0 {
		t.Errorf("conditional requests answered from cache: the origin saw %d GETs and %d HEADs, want 1 GET (the fill), no HEAD", n, h)
	}
	t.Run("RFC9111-5.2.1.7/only-if-cached", func(t *testing.T) {
		resp, b := c.get(0, "/v", "Cache-Control", "only-if-cached")
		if resp.StatusCode != 200 {
			t.Errorf("stored: status %d, want 200", resp.StatusCode)
		}
		sameBytes(t, "only-if-cached", b, body(2000))
		o.set("/never", 200, body(10), "Cache-Control", "max-age=60")
		if resp, _ := c.get(0, "/never", "Cache-Control", "only-if-cached"); resp.StatusCode != 504 {
			t.Errorf("not stored: status %d, want 504", resp.StatusCode)
		}
		if n := o.count(http.MethodHead, "/never", "") + o.count(http.MethodGet, "/never", ""); n != 0 {
			t.Errorf("only-if-cached reached the origin %d times", n)
		}
	})

	t.Run("RFC9111-4.3.4/revalidated-304-updates-headers", func(t *testing.T) {
		// max-age=0: stored, but stale at once, so every use revalidates.
		o.set("/r", 200, body(3000), "ETag", `"r1"`, "Cache-Control", "max-age=0", "X-Version", "1")
		_, b := c.get(0, "/r")
		sameBytes(t, "first", b, body(3000))
		o.set("/r", 200, body(3000), "ETag", `"r1"`, "Cache-Control", "max-age=0", "X-Version", "2")
		resp, b := c.get(1, "/r")
		sameBytes(t, "revalidated", b, body(3000))
		if resp.Header.Get("X-Version") != "2" {
			t.Errorf("X-Version %q after a 304 that carried 2", resp.Header.Get("X-Version"))
		}
		if cs := resp.Header.Get("Cache-Status"); !strings.Contains(cs, "fwd=stale; fwd-status=304") {
			t.Errorf("Cache-Status %q, want fwd=stale; fwd-status=304", cs)
		}
		if n := o.count(http.MethodGet, "/r", "If-None-Match"); n != 1 {
			t.Errorf("origin saw %d conditional GETs, want 1", n)
		}
		if n := o.count(http.MethodGet, "/r", "") - o.count(http.MethodGet, "/r", "If-None-Match"); n != 1 {
			t.Errorf("origin sent the body %d times, want once", n)
		}
		if n := o.count(http.MethodHead, "/r", ""); n != 0 {
			t.Errorf("origin saw %d HEADs, want none", n)
		}
	})

	t.Run("RFC9111-4.3.1/one-revalidation-per-fleet", func(t *testing.T) {
		o.set("/f", 200, body(100), "ETag", `"f1"`, "Cache-Control", "max-age=2")
		for i := range c.edges {
			c.get(i, "/f")
		}
		clock.Advance(3 * time.Second) // every edge's record is stale now
		var wg sync.WaitGroup
		for i := range c.edges {
			for range 3 {
				wg.Go(func() {
					resp, err := http.Get(c.edges[i].url + "/f")
					if err == nil {
						io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
					}
				})
			}
		}
		wg.Wait()
		if n := o.count(http.MethodGet, "/f", "If-None-Match"); n != 1 {
			t.Errorf("9 requests on 3 edges after expiry made %d conditional GETs, want 1", n)
		}
	})
}

func TestRFC5861Stale(t *testing.T) {
	// Both fleets share one clock, moved past max-age=1 below.
	var clock testClock
	c, o := newScriptedCluster(t, 2, func(cfg *Config) {
		cfg.Origin.Attempts = 1
		cfg.Origin.Timeout = time.Second
		cfg.Now = clock.Now
	})
	cs, ob := newScriptedCluster(t, 1, func(cfg *Config) {
		cfg.Origin.Attempts = 1
		cfg.ServeStaleOnError = time.Minute
		cfg.Now = clock.Now
	})
	o.setClock(clock.Now)
	ob.setClock(clock.Now)
	tests := []struct {
		name      string
		c         *cluster
		o         *scriptedOrigin
		cc        string
		staleCode int // when the origin is down after expiry
	}{
		// An edge revalidates with a conditional GET of the client's
		// request (streamed.go): when it may not serve stale, the
		// origin's own 503 comes back, as nginx relays it.
		{"RFC5861-4/stale-if-error", c, o, "max-age=1, stale-if-error=60", 200},
		{"RFC5861-4/stale-if-error-expired-window", c, o, "max-age=1, stale-if-error=0", 503},
		{"RFC9111-4.2.4/no-stale-by-default", c, o, "max-age=1", 503},
		{"RFC9111-5.2.2.2/must-revalidate-never-stale", c, o, "max-age=1, must-revalidate, stale-if-error=60", 503},
		{"RFC9111-5.2.2.8/proxy-revalidate-never-stale", c, o, "max-age=1, proxy-revalidate, stale-if-error=60", 503},
		{"RFC9111-5.2.2.4/no-cache-never-stale", c, o, "no-cache, stale-if-error=60", 503},
		{"RFC9111-4.2.4/serve-stale-on-error-flag", cs, ob, "max-age=1", 200},
		// A single edge revalidates with the client's GET: the origin's
		// own 503 comes back.
		{"RFC9111-5.2.2.10/s-maxage-implies-proxy-revalidate", cs, ob, "s-maxage=1", 503},
		{"RFC9111-5.2.2.2/must-revalidate-beats-flag", cs, ob, "max-age=1, must-revalidate", 503},
	}
	for i, tt := range tests {
		tt.o.set(fmt.Sprintf("/s/%d", i), 200, body(100+i), "ETag", fmt.Sprintf(`"s%d"`, i), "Cache-Control", tt.cc)
		tt.c.get(0, fmt.Sprintf("/s/%d", i))
	}
	o.set("/swr", 200, body(50), "ETag", `"w1"`, "Cache-Control", "max-age=1, stale-while-revalidate=60", "X-Version", "1")
	c.get(0, "/swr")
	clock.Advance(2 * time.Second) // all stale now, well within the 60 s windows

	t.Run("RFC5861-3/stale-while-revalidate", func(t *testing.T) {
		o.set("/swr", 200, body(50), "ETag", `"w1"`, "Cache-Control", "max-age=1, stale-while-revalidate=60", "X-Version", "2")
		resp, b := c.get(0, "/swr")
		sameBytes(t, "stale", b, body(50))
		if resp.Header.Get("X-Version") != "1" || !strings.HasPrefix(resp.Header.Get("Cache-Status"), "shoal; hit; ttl=-") {
			t.Errorf("served X-Version %q, Cache-Status %q: want the stale 1 as a hit with a negative ttl", resp.Header.Get("X-Version"), resp.Header.Get("Cache-Status"))
		}
		waitFor(t, func() bool {
			resp, _ := c.get(0, "/swr")
			return resp.Header.Get("X-Version") == "2"
		})
		// The revalidation is a conditional GET (a 304: no body again).
		if n := o.count(http.MethodGet, "/swr", "") - o.count(http.MethodGet, "/swr", "If-None-Match"); n != 1 {
			t.Errorf("origin sent the body %d times, want once", n)
		}
		if n := o.count(http.MethodGet, "/swr", "If-None-Match"); n != 1 {
			t.Errorf("origin saw %d conditional GETs, want 1 (the background revalidation)", n)
		}
	})

	o.setDown(true)
	ob.setDown(true)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, b := tt.c.get(0, fmt.Sprintf("/s/%d", i))
			if resp.StatusCode != tt.staleCode {
				t.Fatalf("origin down: status %d, want %d", resp.StatusCode, tt.staleCode)
			}
			if tt.staleCode == 200 {
				sameBytes(t, "stale", b, body(100+i))
				if cs := resp.Header.Get("Cache-Status"); !strings.Contains(cs, "ttl=-") {
					t.Errorf("Cache-Status %q: want a negative ttl", cs)
				}
			}
		})
	}
}

func TestRFC9110Ranges(t *testing.T) {
	c, o := newScriptedCluster(t, 2, nil)
	const size = 600 << 10
	want := body(size)
	lm := time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat)
	o.set("/r", 200, want, "ETag", `"r"`, "Last-Modified", lm, "Cache-Control", "max-age=3600", "Content-Type", "application/x-test")
	tests := []struct {
		name  string
		req   []string
		code  int
		parts []rangePart // nil for a whole 200
	}{
		{"RFC9110-14.1.2/single", []string{"Range", "bytes=10-19"}, 206, []rangePart{{10, 19}}},
		{"RFC9110-14.1.2/suffix", []string{"Range", "bytes=-5"}, 206, []rangePart{{size - 5, size - 1}}},
		{"RFC9110-14.1.2/open-ended", []string{"Range", fmt.Sprintf("bytes=%d-", size-7)}, 206, []rangePart{{size - 7, size - 1}}},
		{"RFC9110-14.6/multipart", []string{"Range", "bytes=0-9,300000-300009"}, 206, []rangePart{{0, 9}, {300000, 300009}}},
		{"RFC9110-14.6/multipart-sorted", []string{"Range", "bytes=500000-500001,-3,100-101"}, 206, []rangePart{{100, 101}, {500000, 500001}, {size - 3, size - 1}}},
		{"RFC9110-14.2/overlapping-merged", []string{"Range", "bytes=0-99,50-149"}, 206, []rangePart{{0, 149}}},
		{"RFC9110-14.2/no-amplification", []string{"Range", "bytes=" + strings.Repeat("0-,", 40) + "0-"}, 206, []rangePart{{0, size - 1}}},
		{"RFC9110-14.2/too-many-ranges-ignored", []string{"Range", "bytes=" + manyRanges(17, 1000)}, 200, nil},
		{"RFC9110-14.2/max-ranges-honoured", []string{"Range", "bytes=" + manyRanges(16, 1000)}, 206, rangesParts(16, 1000)},
		{"RFC9110-13.1.5/if-range-etag", []string{"Range", "bytes=0-9", "If-Range", `"r"`}, 206, []rangePart{{0, 9}}},
		{"RFC9110-13.1.5/if-range-etag-other", []string{"Range", "bytes=0-9", "If-Range", `"old"`}, 200, nil},
		{"RFC9110-13.1.5/if-range-date", []string{"Range", "bytes=0-9", "If-Range", lm}, 206, []rangePart{{0, 9}}},
		{"RFC9110-13.1.5/if-range-date-other", []string{"Range", "bytes=0-9", "If-Range", oldDate}, 200, nil},
		{"RFC9110-14.2/other-unit-ignored", []string{"Range", "lines=1-2"}, 200, nil},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, b := c.get(i%2, "/r", tt.req...)
			if resp.StatusCode != tt.code {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.code)
			}
			if tt.parts == nil {
				sameBytes(t, "whole", b, want)
				return
			}
			if len(b) > size+len(tt.parts)*200 {
				t.Errorf("%d bytes sent for a %d-byte object", len(b), size)
			}
			if len(tt.parts) == 1 {
				p := tt.parts[0]
				if got := resp.Header.Get("Content-Range"); got != fmt.Sprintf("bytes %d-%d/%d", p.first, p.last, size) {
					t.Errorf("Content-Range %q", got)
				}
				sameBytes(t, "range", b, want[p.first:p.last+1])
				return
			}
			mt, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
			if err != nil || mt != "multipart/byteranges" {
				t.Fatalf("Content-Type %q", resp.Header.Get("Content-Type"))
			}
			if cl := resp.Header.Get("Content-Length"); cl != strconv.Itoa(len(b)) {
				t.Errorf("Content-Length %s for %d bytes", cl, len(b))
			}
			mr := multipart.NewReader(bytes.NewReader(b), params["boundary"])
			for j, p := range tt.parts {
				pr, err := mr.NextPart()
				if err != nil {
					t.Fatalf("part %d: %v", j, err)
				}
				if got := pr.Header.Get("Content-Range"); got != fmt.Sprintf("bytes %d-%d/%d", p.first, p.last, size) {
					t.Errorf("part %d: Content-Range %q", j, got)
				}
				if got := pr.Header.Get("Content-Type"); got != "application/x-test" {
					t.Errorf("part %d: Content-Type %q", j, got)
				}
				pb, _ := io.ReadAll(pr)
				sameBytes(t, fmt.Sprintf("part %d", j), pb, want[p.first:p.last+1])
			}
			if _, err := mr.NextPart(); err != io.EOF {
				t.Errorf("after the last part: %v, want EOF", err)
			}
		})
	}
	t.Run("RFC9110-15.5.17/unsatisfiable-416", func(t *testing.T) {
		resp, _ := c.get(0, "/r", "Range", fmt.Sprintf("bytes=%d-", size))
		if resp.StatusCode != 416 || resp.Header.Get("Content-Range") != fmt.Sprintf("bytes */%d", size) {
			t.Errorf("status %d, Content-Range %q", resp.StatusCode, resp.Header.Get("Content-Range"))
		}
	})
	t.Run("RFC9110-9.3.2/head-from-cache", func(t *testing.T) {
		before := o.count(http.MethodGet, "/r", "")
		resp, b := c.do(1, http.MethodHead, "/r")
		if resp.StatusCode != 200 || len(b) != 0 || resp.ContentLength != size || !strings.HasPrefix(resp.Header.Get("Cache-Status"), "shoal; hit") {
			t.Errorf("HEAD: %d, %d bytes, Content-Length %d, Cache-Status %q", resp.StatusCode, len(b), resp.ContentLength, resp.Header.Get("Cache-Status"))
		}
		o.set("/cold", 200, want, "ETag", `"c"`, "Cache-Control", "max-age=3600")
		c.do(0, http.MethodHead, "/cold")
		if n := o.count(http.MethodGet, "/cold", "") + o.count(http.MethodGet, "/r", "") - before; n != 0 {
			t.Errorf("HEADs made the origin send %d GETs", n)
		}
	})
}

func manyRanges(n, step int) string {
	var parts []string
	for i := range n {
		parts = append(parts, fmt.Sprintf("%d-%d", i*step, i*step+9))
	}
	return strings.Join(parts, ",")
}

// rangePart is one expected part of a 206: first and last byte.
type rangePart struct{ first, last int }

func rangesParts(n, step int) []rangePart {
	var out []rangePart
	for i := range n {
		out = append(out, rangePart{i * step, i*step + 9})
	}
	return out
}

func TestRFC9111Invalidation(t *testing.T) {
	c, o := newScriptedCluster(t, 3, nil)
	get := func(t *testing.T, target string) {
		t.Helper()
		for i := range c.edges {
			if resp, _ := c.get(i, target); resp.StatusCode != 200 {
				t.Fatalf("GET %s via edge %d: %d", target, i, resp.StatusCode)
			}
		}
	}
	// An object is fetched with a GET (streamed.go); a HEAD would be a
	// probe, and counts too.
	heads := func(target string) int {
		return o.count(http.MethodGet, target, "") + o.count(http.MethodHead, target, "")
	}
	for _, p := range []string{"/a", "/b", "/c", "/d", "/e", "/dir/1", "/dir/2", "/other"} {
		o.set(p, 200, body(300), "ETag", `"x"`, "Cache-Control", "max-age=3600")
		get(t, p)
	}
	tests := []struct {
		name        string
		method      string
		target      string
		status      int
		respHdr     []string
		invalidated []string
		kept        []string
	}{
		{"RFC9111-4.4/put-invalidates-target", http.MethodPut, "/a", 200, nil, []string{"/a"}, nil},
		{"RFC9111-4.4/post-invalidates-location", http.MethodPost, "/b", 201, []string{"Location", "/c"}, []string{"/b", "/c"}, nil},
		{"RFC9111-4.4/content-location-same-host", http.MethodPatch, "/d", 200, []string{"Content-Location", "http://" + strings.TrimPrefix(c.edges[1].url, "http://") + "/e"}, []string{"/d", "/e"}, nil},
		{"RFC9111-4.4/other-host-location-kept", http.MethodDelete, "/dir/1", 200, []string{"Location", "http://elsewhere.example/other"}, []string{"/dir/1"}, []string{"/other"}},
		{"RFC9111-4.4/error-status-does-not-invalidate", http.MethodPost, "/dir/2", 500, nil, nil, []string{"/dir/2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o.set(tt.target, tt.status, body(300), append([]string{"ETag", `"x"`, "Cache-Control", "max-age=3600"}, tt.respHdr...)...)
			before := map[string]int{}
			for _, p := range append(tt.invalidated, tt.kept...) {
				before[p] = heads(p)
			}
			resp, _ := c.do(1, tt.method, tt.target)
			if resp.StatusCode != tt.status {
				t.Fatalf("%s: %d", tt.method, resp.StatusCode)
			}
			o.set(tt.target, 200, body(300), "ETag", `"x"`, "Cache-Control", "max-age=3600")
			for _, p := range tt.invalidated {
				waitFor(t, func() bool {
					for _, e := range c.edges {
						if _, ok := e.records.Get(p); ok {
							return false
						}
					}
					return true
				})
				get(t, p)
				if n := heads(p) - before[p]; n != 1 {
					t.Errorf("%s: %d origin requests after invalidation, want 1 for the fleet", p, n)
				}
			}
			for _, p := range tt.kept {
				get(t, p)
				if n := heads(p) - before[p]; n != 0 {
					t.Errorf("%s: %d origin requests, want it still cached", p, n)
				}
			}
		})
	}
}

func TestPurge(t *testing.T) {
	c, o := newScriptedCluster(t, 3, nil)
	for _, p := range []string{"/p/1", "/p/2", "/q"} {
		o.set(p, 200, body(100), "ETag", `"p"`, "Cache-Control", "max-age=3600")
		for i := range c.edges {
			c.get(i, p)
		}
	}
	admin := httptest.NewServer(c.edges[2].Admin("tok"))
	defer admin.Close()
	purge := func(token, form string) (int, PurgeResult) {
		req, _ := http.NewRequest(http.MethodPost, admin.URL+"/admin/purge", strings.NewReader(form))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var res PurgeResult
		json.NewDecoder(resp.Body).Decode(&res)
		return resp.StatusCode, res
	}
	held := func(key string) int {
		n := 0
		for _, e := range c.edges {
			if _, ok := e.records.Get(key); ok {
				n++
			}
		}
		return n
	}
	tests := []struct {
		name, token, form string
		code              int
		gone, kept        []string
	}{
		{"purge/needs-token", "", "url=/q", 401, nil, []string{"/q"}},
		{"purge/wrong-token", "nope", "url=/q", 401, nil, []string{"/q"}},
		{"purge/bad-request", "tok", "url=q", 400, nil, []string{"/q"}},
		{"purge/url", "tok", "url=http://example.com/q", 200, []string{"/q"}, []string{"/p/1"}},
		{"purge/prefix", "tok", "prefix=/p/", 200, []string{"/p/1", "/p/2"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, res := purge(tt.token, tt.form)
			if code != tt.code {
				t.Fatalf("status %d, want %d", code, tt.code)
			}
			if code == 200 && (res.Members != 2 || len(res.Failed) != 0) {
				t.Errorf("result %+v: want 2 members told, none failed", res)
			}
			// Purge waits for every member: no polling needed.
			for _, k := range tt.gone {
				if n := held(k); n != 0 {
					t.Errorf("%s still held by %d edges", k, n)
				}
			}
			for _, k := range tt.kept {
				if n := held(k); n == 0 {
					t.Errorf("%s purged too", k)
				}
			}
		})
	}
	fetches := func() int { return o.count(http.MethodGet, "/q", "") + o.count(http.MethodHead, "/q", "") }
	before := fetches()
	c.get(0, "/q")
	c.get(1, "/q")
	if n := fetches() - before; n != 1 {
		t.Errorf("after the purge: %d origin requests for /q, want 1 for the fleet", n)
	}
}

func TestSingleEdgeMissIsForwarded(t *testing.T) {
	c, o := newScriptedCluster(t, 1, func(cfg *Config) { cfg.Origin.Timeout = 500 * time.Millisecond })
	large := body(int(testLayout.SegmentSize)*2 + 17)
	o.set("/small", 200, body(1000), "ETag", `"s"`, "Cache-Control", "max-age=3600")
	o.set("/large", 200, large, "ETag", `"l"`, "Cache-Control", "max-age=3600")
	o.set("/nostore", 200, body(10), "ETag", `"n"`, "Cache-Control", "no-store")
	o.set("/cond", 200, body(10), "ETag", `"c"`, "Cache-Control", "max-age=3600")
	o.set("/authz", 200, body(10), "ETag", `"a"`, "Cache-Control", "max-age=3600")
	tests := []struct {
		name     string
		target   string
		req      []string
		code     int
		want     []byte
		status   string // Cache-Status prefix of the first response
		requests int    // origin requests after both GETs
		hit      bool   // the second GET (plain) is a hit
	}{
		{"RFC9111-3/cold-miss-one-request-small", "/small", []string{"X-Client", "c"}, 200, body(1000), "shoal; fwd=miss; stored", 1, true},
		{"RFC9111-3/cold-miss-large-from-fleet", "/large", nil, 200, large, "shoal; fwd=miss; stored", 0, true},
		{"RFC9111-5.2.2.5/cold-miss-no-store-relayed", "/nostore", nil, 200, body(10), "shoal; fwd=uri-miss", 2, false},
		{"RFC9110-13.1.2/cold-miss-conditional-relayed", "/cond", []string{"If-None-Match", `"c"`}, 304, nil, "shoal; fwd=miss; fwd-status=304", 2, false},
		{"RFC9111-3.5/cold-miss-authorization-relayed", "/authz", []string{"Authorization", "Bearer x"}, 200, body(10), "shoal; fwd=miss; fwd-status=200", 2, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, b := c.get(0, tt.target, tt.req...)
			if resp.StatusCode != tt.code {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.code)
			}
			if tt.want != nil {
				sameBytes(t, "first", b, tt.want)
			}
			if cs := resp.Header.Get("Cache-Status"); !strings.HasPrefix(cs, tt.status) {
				t.Errorf("Cache-Status %q, want %q", cs, tt.status)
			}
			if o.count(http.MethodHead, tt.target, "") != 0 {
				t.Errorf("a HEAD was sent for a GET miss")
			}
			if len(tt.req) > 0 && o.last(tt.target).header.Get(tt.req[0]) != tt.req[1] {
				t.Errorf("the origin did not get %s", tt.req[0])
			}
			resp, b = c.get(0, tt.target)
			sameBytes(t, "second", b, o.objs[tt.target].body)
			if hit := strings.HasPrefix(resp.Header.Get("Cache-Status"), "shoal; hit"); hit != tt.hit {
				t.Errorf("second GET: Cache-Status %q, want hit %v", resp.Header.Get("Cache-Status"), tt.hit)
			}
			if tt.requests > 0 {
				if n := o.count(http.MethodGet, tt.target, ""); n != tt.requests {
					t.Errorf("origin saw %d GETs, want %d", n, tt.requests)
				}
			}
		})
	}
	t.Run("RFC9111-3/status-codes", func(t *testing.T) {
		for _, tt := range []struct {
			name   string
			status int
			header []string
			stored bool
		}{
			{"RFC9110-15.1/404-heuristic", 404, []string{"Last-Modified", oldDate}, true},
			{"RFC9111-3/404-max-age", 404, []string{"Cache-Control", "max-age=60"}, true},
			{"RFC9110-15.1/301-heuristic", 301, []string{"Location", "/elsewhere", "Last-Modified", oldDate}, true},
			{"RFC9111-3/302-max-age", 302, []string{"Location", "/elsewhere", "Cache-Control", "max-age=60"}, true},
			{"RFC9111-3/204-max-age", 204, []string{"Cache-Control", "max-age=60"}, true},
			{"RFC9111-3/302-no-freshness-not-stored", 302, []string{"Location", "/elsewhere", "Last-Modified", oldDate}, false},
			{"RFC9111-3/500-no-freshness-not-stored", 500, nil, false},
			{"RFC9111-5.2.2.5/404-no-store", 404, []string{"Cache-Control", "max-age=60, no-store"}, false},
			{"RFC9111-5.2.2.3/599-must-understand-not-stored", 599, []string{"Cache-Control", "max-age=60, must-understand"}, false},
			{"RFC9111-3/599-max-age", 599, []string{"Cache-Control", "max-age=60"}, true},
		} {
			t.Run(tt.name, func(t *testing.T) {
				target := "/st/" + strings.ReplaceAll(tt.name, "/", "-")
				want := body(33)
				if tt.status == 204 {
					want = nil
				}
				o.set(target, tt.status, want, tt.header...)
				for round := range 2 {
					req, _ := http.NewRequest(http.MethodGet, c.edges[0].url+target, nil)
					resp, err := http.DefaultTransport.RoundTrip(req) // no redirects followed
					if err != nil {
						t.Fatal(err)
					}
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if resp.StatusCode != tt.status || !bytes.Equal(b, want) {
						t.Fatalf("round %d: status %d with %d bytes, want %d with %d", round, resp.StatusCode, len(b), tt.status, len(want))
					}
					if loc := o.objs[target].header.Get("Location"); loc != "" && resp.Header.Get("Location") != loc {
						t.Errorf("round %d: Location %q", round, resp.Header.Get("Location"))
					}
					if hit := strings.HasPrefix(resp.Header.Get("Cache-Status"), "shoal; hit"); round == 1 && hit != tt.stored {
						t.Errorf("second request: Cache-Status %q, want stored %v", resp.Header.Get("Cache-Status"), tt.stored)
					}
				}
			})
		}
	})
	t.Run("RFC9111-4.1/vary-variants-kept-apart", func(t *testing.T) {
		o.set("/vary", 200, body(20), "ETag", `"v"`, "Cache-Control", "max-age=3600", "Vary", "Accept-Language")
		resp, _ := c.get(0, "/vary", "Accept-Language", "fr")
		if cs := resp.Header.Get("Cache-Status"); !strings.HasPrefix(cs, "shoal; fwd=miss; stored") {
			t.Errorf("first request for fr: Cache-Status %q, want a stored miss", cs)
		}
		resp, _ = c.get(0, "/vary")
		if cs := resp.Header.Get("Cache-Status"); !strings.HasPrefix(cs, "shoal; fwd=miss; stored") {
			t.Errorf("first request without the field: Cache-Status %q, want a stored miss", cs)
		}
		resp, _ = c.get(0, "/vary")
		if cs := resp.Header.Get("Cache-Status"); !strings.HasPrefix(cs, "shoal; hit") {
			t.Errorf("second request without the field: Cache-Status %q, want a hit", cs)
		}
		resp, _ = c.get(0, "/vary", "Accept-Language", "de")
		if cs := resp.Header.Get("Cache-Status"); strings.Contains(cs, "hit") {
			t.Errorf("first request for de: Cache-Status %q, want a miss", cs)
		}
		for _, lang := range []string{"fr", "de", " de "} {
			resp, _ = c.get(0, "/vary", "Accept-Language", lang)
			if cs := resp.Header.Get("Cache-Status"); !strings.HasPrefix(cs, "shoal; hit") {
				t.Errorf("request for %q again: Cache-Status %q, want a hit", lang, cs)
			}
			if got := o.last("/vary").header.Get("Accept-Language"); got != "de" {
				t.Errorf("the origin's last request had Accept-Language %q", got)
			}
		}
		if n := o.count(http.MethodGet, "/vary", ""); n != 3 {
			t.Errorf("origin saw %d GETs for 3 variants, want 3", n)
		}
		// A fleet stores only the variant of requests without the field.
		resp, _ = c.get(0, "/vary", "Accept-Language", "it")
		if cs := resp.Header.Get("Cache-Status"); strings.Contains(cs, "hit") {
			t.Errorf("an unseen variant: Cache-Status %q", cs)
		}
	})
	t.Run("RFC9110-15.6.5/slow-origin-504", func(t *testing.T) {
		slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-time.After(3 * time.Second):
			case <-r.Context().Done():
			}
		}))
		defer slow.Close()
		cs := newCluster(t, &testOrigin{srv: slow}, 1, func(cfg *Config) {
			cfg.Origin.Timeout = 300 * time.Millisecond
			cfg.ForwardMisses = true
		})
		if resp, _ := cs.get(0, "/x"); resp.StatusCode != http.StatusGatewayTimeout {
			t.Errorf("status %d, want 504", resp.StatusCode)
		}
	})
}

func TestSingleEdgeRevalidatesWithTheClientsRequest(t *testing.T) {
	c, o := newScriptedCluster(t, 1, nil)
	lm := time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat)
	tests := []struct {
		name   string
		req    []string
		code   int
		status string
	}{
		{"RFC9111-4.3.1/validators-added-304-served-from-cache", []string{"X-Client", "1"}, 200, "shoal; fwd=stale; fwd-status=304"},
		// The edge revalidates its stale copy with its own validators
		// (here the client's too), refreshes it with the 304 and answers
		// the client's conditional from it.
		{"RFC9111-4.3.2/client-conditional-answered-after-revalidation", []string{"If-None-Match", `"e"`}, 304, "shoal; fwd=stale; fwd-status=304"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target := fmt.Sprintf("/reval/%d", i)
			o.set(target, 200, body(40), "ETag", `"e"`, "Last-Modified", lm, "Cache-Control", "max-age=0", "X-Version", "1")
			c.get(0, target)
			o.set(target, 200, body(40), "ETag", `"e"`, "Last-Modified", lm, "Cache-Control", "max-age=0", "X-Version", "2")
			resp, b := c.get(0, target, tt.req...)
			if resp.StatusCode != tt.code {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.code)
			}
			if cs := resp.Header.Get("Cache-Status"); !strings.HasPrefix(cs, tt.status) {
				t.Errorf("Cache-Status %q, want %q", cs, tt.status)
			}
			seen := o.last(target)
			// The client's own request went, with If-None-Match either way.
			if seen.method != http.MethodGet || seen.header.Get("If-None-Match") != `"e"` || seen.header.Get(tt.req[0]) != tt.req[1] {
				t.Errorf("origin saw %s with If-None-Match %q, %s %q", seen.method, seen.header.Get("If-None-Match"), tt.req[0], seen.header.Get(tt.req[0]))
			}
			if tt.code == 200 {
				sameBytes(t, "revalidated", b, body(40))
				if resp.Header.Get("X-Version") != "2" {
					t.Errorf("X-Version %q: the 304's fields were not taken", resp.Header.Get("X-Version"))
				}
			}
			if n := o.count(http.MethodGet, target, "") + o.count(http.MethodHead, target, ""); n != 2 {
				t.Errorf("origin saw %d requests for 2 client requests, want 2", n)
			}
		})
	}
}

func TestSingleEdgeCollapsesConcurrentMisses(t *testing.T) {
	c, o := newScriptedCluster(t, 1, nil)
	large := body(int(testLayout.SegmentSize)*3 + 5)
	o.set("/c/small", 200, body(5000), "ETag", `"s"`, "Cache-Control", "max-age=3600")
	o.set("/c/large", 200, large, "ETag", `"l"`, "Cache-Control", "max-age=3600")
	for _, tt := range []struct {
		name   string
		target string
		want   []byte
		most   int // origin GETs at most
	}{
		{"RFC9111-4/collapsed-small", "/c/small", body(5000), 1},
		// One forwarded GET, cut after its header, then one per segment.
		{"RFC9111-4/collapsed-large", "/c/large", large, 1 + 4},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var wg sync.WaitGroup
			for range 12 {
				wg.Go(func() {
					resp, err := http.Get(c.edges[0].url + tt.target)
					if err != nil {
						t.Error(err)
						return
					}
					defer resp.Body.Close()
					b, _ := io.ReadAll(resp.Body)
					if !bytes.Equal(b, tt.want) {
						t.Errorf("wrong bytes: %d", len(b))
					}
				})
			}
			wg.Wait()
			if n := o.count(http.MethodGet, tt.target, ""); n > tt.most {
				t.Errorf("12 concurrent misses made %d origin GETs, want at most %d", n, tt.most)
			}
		})
	}
}

// TestLoneEdgeMissCostsTheObjectOnce: without ForwardMisses (the default),
// a lone edge's cold miss of a large object is a HEAD and ranged GETs, and
// the origin sends its bytes exactly once; a forwarded GET cut after its
// header would send more.
func TestLoneEdgeMissCostsTheObjectOnce(t *testing.T) {
	o := newTestOrigin(t, "public, max-age=600")
	want := o.put(t, "big.bin", 6*int(testLayout.SegmentSize)+99, 3)
	c := newCluster(t, o, 1, nil)
	for range 3 {
		_, got := c.get(0, "/big.bin")
		sameBytes(t, "lone edge", got, want)
	}
	if n := o.bytes.Load(); n != int64(len(want)) {
		t.Fatalf("origin sent %d bytes for a %d-byte object", n, len(want))
	}
}

// TestRFC9111AgeParsing checks how an upstream Age is read (RFC 9111
// §5.1): a list's first member counts, the rest is discarded; a first
// member that is not a non-negative integer makes the response stale (a
// deliberate choice where §5.1 says SHOULD ignore: see httpcache.Age).
func TestRFC9111AgeParsing(t *testing.T) {
	c, o := newScriptedCluster(t, 1, nil)
	tests := []struct {
		name  string
		ages  []string // Age field lines
		fresh bool
	}{
		{"RFC9111-5.1/integer-fresh", []string{"10"}, true},
		{"RFC9111-5.1/integer-old", []string{"7200"}, false},
		{"RFC9111-5.1/list-first-member-fresh", []string{"0,7200"}, true},
		{"RFC9111-5.1/list-first-member-fresh-ows", []string{"0, 7200"}, true},
		{"RFC9111-5.1/list-first-member-old", []string{"7200,0"}, false},
		{"RFC9111-5.1/lines-first-fresh", []string{"0", "7200"}, true},
		{"RFC9111-5.1/lines-first-old", []string{"7200", "0"}, false},
		{"RFC9111-5.1/invalid-float-stale", []string{"7200.0"}, false},
		{"RFC9111-5.1/invalid-negative-stale", []string{"-7200"}, false},
		{"RFC9111-5.1/invalid-nonnumeric-stale", []string{"abc"}, false},
		{"RFC9111-5.1/invalid-parameter-stale", []string{"7200;foo=bar"}, false},
		{"RFC9111-1.2.2/overflow-stale", []string{"2147483648"}, false},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target := fmt.Sprintf("/age/%d", i)
			kv := []string{"ETag", fmt.Sprintf(`"a%d"`, i), "Cache-Control", "max-age=3600", "Date", time.Now().UTC().Format(http.TimeFormat)}
			for _, a := range tt.ages {
				kv = append(kv, "Age", a)
			}
			o.set(target, 200, body(100+i), kv...)
			c.get(0, target)
			resp, b := c.get(0, target)
			sameBytes(t, "second response", b, body(100+i))
			hit := strings.HasPrefix(resp.Header.Get("Cache-Status"), "shoal; hit")
			if hit != tt.fresh {
				t.Errorf("Age %q: second response Cache-Status %q, want fresh %v", tt.ages, resp.Header.Get("Cache-Status"), tt.fresh)
			}
			if n := o.count(http.MethodGet, target, ""); n != map[bool]int{true: 1, false: 2}[tt.fresh] {
				t.Errorf("Age %q: origin saw %d GETs", tt.ages, n)
			}
		})
	}
}

// TestRFC9112TransferCodingFromOrigin: an origin response whose transfer
// coding is unknown is framed by the connection's close (RFC 9112 §6.3),
// served, and stored when small; its Transfer-Encoding is never stored or
// sent on. One that would be ambiguous (with Content-Length) or whose
// coding changes the bytes is refused (502).
func TestRFC9112TransferCodingFromOrigin(t *testing.T) {
	c, o := newScriptedCluster(t, 1, nil)
	date := time.Now().UTC().Format(http.TimeFormat)
	tests := []struct {
		name   string
		te     string
		extra  string
		code   int
		stored bool
	}{
		{"RFC9112-6.3/unknown-coding-stored", "ABCDEFGHIJKLMNO", "", 200, true},
		{"RFC9112-6.3/identity-stored", "identity", "", 200, true},
		{"RFC9112-6.3/with-content-length-refused", "foo", "Content-Length: 9\r\n", 502, false},
		{"RFC9112-6.1/gzip-transfer-coding-refused", "gzip", "", 502, false},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target := fmt.Sprintf("/te/%d", i)
			payload := fmt.Sprintf("body of %d", i)
			o.mu.Lock()
			o.objs[target] = &scriptedObject{raw: "HTTP/1.1 200 OK\r\nDate: " + date + "\r\nCache-Control: max-age=3600\r\nTransfer-Encoding: " + tt.te + "\r\n" + tt.extra + "\r\n" + payload}
			o.mu.Unlock()
			for round := range 2 {
				resp, got := c.get(0, target)
				if resp.StatusCode != tt.code {
					t.Fatalf("round %d: status %d, want %d", round, resp.StatusCode, tt.code)
				}
				if tt.code == 200 && string(got) != payload {
					t.Errorf("round %d: body %q, want %q", round, got, payload)
				}
				if len(resp.TransferEncoding) > 0 || resp.Header.Get("Transfer-Encoding") != "" {
					t.Errorf("round %d: the origin's Transfer-Encoding reached the client: %q", round, resp.TransferEncoding)
				}
			}
			if n, want := o.count(http.MethodGet, target, ""), map[bool]int{true: 1, false: 2}[tt.stored]; n != want {
				t.Errorf("origin saw %d GETs, want %d (stored %v)", n, want, tt.stored)
			}
		})
	}
}

// TestPurgeReachesMembersThatWereAway: a purge told while a member was
// down reaches it when it comes back (its records on disk wait for a
// peer's purge log), and one a member missed while cut off reaches it at
// its next purge log sync. Neither serves the purged bytes.
func TestPurgeReachesMembersThatWereAway(t *testing.T) {
	var dirs []string
	c, o := newScriptedCluster(t, 3, func(cfg *Config) {
		dirs = append(dirs, t.TempDir())
		cfg.Store.Dir = dirs[len(dirs)-1]
	})
	ctx := t.Context()
	old, fresh := body(3000), body(3001)
	for _, p := range []string{"/pg/a", "/pg/b/1"} {
		o.set(p, 200, old, "ETag", `"v1"`, "Cache-Control", "max-age=3600")
		for i := range c.edges {
			if _, b := c.get(i, p); !bytes.Equal(b, old) {
				t.Fatalf("%s via edge %d: wrong bytes", p, i)
			}
		}
	}
	// Edge 2 keeps its records on disk.
	waitFor(t, func() bool { return len(storedRecords(c.edges[2].store)) == 2 })
	outer := t // the restarted edge lives as long as the test

	t.Run("purge/down-member-learns-on-restart", func(t *testing.T) {
		self := c.edges[2].Node().Self()
		c.kill(2)
		o.set("/pg/a", 200, fresh, "ETag", `"v2"`, "Cache-Control", "max-age=3600")
		res := c.edges[0].Purge(ctx, "/pg/a", false)
		if _, failed := res.Failed[self]; !failed || res.Members != 2 {
			t.Fatalf("purge result %+v: want edge 2 failed", res)
		}
		c.restartEdge(outer, 2, self, o.srv.URL, dirs[2])
		// Edge 2 first: the others' lookups would replicate the new record to it.
		for _, i := range []int{2, 0, 1} {
			if _, b := c.get(i, "/pg/a"); !bytes.Equal(b, fresh) {
				t.Errorf("edge %d served the purged bytes of /pg/a", i)
			}
		}
		// Its other record, not purged, is used again once the log is merged.
		waitFor(t, func() bool { _, ok := c.edges[2].records.Get("/pg/b/1"); return ok })
		if _, b := c.get(2, "/pg/b/1"); !bytes.Equal(b, old) {
			t.Errorf("/pg/b/1 not served")
		}
	})

	t.Run("purge/cut-off-member-learns-on-sync", func(t *testing.T) {
		// Edge 0 takes a prefix purge that edge 1 and 2 do not hear of (as
		// behind a partition): it only logs and applies it itself.
		o.set("/pg/b/1", 200, fresh, "ETag", `"v2"`, "Cache-Control", "max-age=3600")
		c.edges[0].purger.applyPurge(purgeEntry{Pattern: "/pg/b/", Prefix: true, At: time.Now()})
		if _, ok := c.edges[1].records.Get("/pg/b/1"); !ok {
			t.Fatal("edge 1 should still hold /pg/b/1 before its sync")
		}
		// The partition heals: edge 1's next sync (every
		// purgeSyncInterval; here at once) merges edge 0's log.
		if err := c.edges[1].purger.syncPurgeLog(ctx, c.edges[0].Node().Self()); err != nil {
			t.Fatal(err)
		}
		if _, ok := c.edges[1].records.Get("/pg/b/1"); ok {
			t.Error("edge 1 still holds /pg/b/1 after the sync")
		}
		// Edge 2 has not synced yet; if it is asked as coordinator, its
		// outdated record is refused by edges that know the purge.
		for _, i := range []int{0, 1} {
			if _, b := c.get(i, "/pg/b/1"); !bytes.Equal(b, fresh) {
				t.Errorf("edge %d served the purged bytes of /pg/b/1", i)
			}
		}
		if err := c.edges[2].purger.syncPurgeLog(ctx, c.edges[1].Node().Self()); err != nil {
			t.Fatal(err)
		}
		if _, b := c.get(2, "/pg/b/1"); !bytes.Equal(b, fresh) {
			t.Error("edge 2 served the purged bytes of /pg/b/1 after its sync")
		}
		// Logs that agree are not sent again.
		if b, err := c.edges[2].Node().Stat(ctx, c.edges[1].Node().Self(), binary.BigEndian.AppendUint64(swarm.AppendStat(nil, swarm.StatPurgeLog), c.edges[2].purges.Digest())); err != nil || len(b) != 0 {
			t.Errorf("equal logs: answer of %d bytes (err %v), want none", len(b), err)
		}
	})
}

// restartEdge starts edge i again after a kill, with its peer address
// and store directory, as a restarted process would.
func (c *cluster) restartEdge(t *testing.T, i int, self, originURL, dir string) {
	t.Helper()
	creds, err := testCreds()
	if err != nil {
		t.Fatal(err)
	}
	var peers []string
	for _, e := range c.edges {
		peers = append(peers, e.Node().Self())
	}
	var pc net.PacketConn
	waitFor(t, func() bool {
		pc, err = net.ListenPacket("udp", self)
		return err == nil
	})
	e, err := New(Config{
		Origin:      origin.ClientConfig{Base: originURL, Attempts: 2, Backoff: 10 * time.Millisecond, Timeout: 5 * time.Second},
		Swarm:       swarm.Config{Self: self, Peers: peers, Credentials: creds, DialTimeout: 500 * time.Millisecond},
		Layout:      testLayout,
		MemoryCache: 64 << 20,
		Store:       store.Config{Dir: dir, Limit: 64 << 20},
		PeerTimeout: 2 * time.Second,
		Logger:      quietLogger().With("edge", i),
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go e.ServePeers(pc)
	c.edges[i] = &testEdge{Edge: e, url: serveClients(t, e, ln), pc: pc}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		e.Shutdown(ctx)
		pc.Close()
	})
}

// TestPurgeLogOutdated: a record is outdated by a purge that covers it
// (its key, a variant of it, a prefix) when fetched before the purge.
// The log itself is internal/purgelog's (tested there).
func TestPurgeLogOutdated(t *testing.T) {
	at := time.Unix(1_700_000_000, 123)
	l := purgelog.New("")
	l.Add(purgeEntry{Pattern: "/a", At: at})
	l.Add(purgeEntry{Pattern: "/p/", Prefix: true, At: at.Add(time.Second)})
	for _, tt := range []struct {
		key  string
		when time.Time
		want bool
	}{
		{"/a", at.Add(-time.Hour), true},
		{"/a\nAccept-Language=fr", at.Add(-time.Hour), true},
		{"/a", at.Add(time.Hour), false},
		{"/ab", at.Add(-time.Hour), false},
		{"/p/x", at, true},
	} {
		if got := outdated(l, &Record{Key: tt.key, Fetched: tt.when}); got != tt.want {
			t.Errorf("outdated(%q, %v) = %v, want %v", tt.key, tt.when.Sub(at), got, tt.want)
		}
	}
}

// TestRFC9110ViaOnceOnHits: a response stored from a forwarded miss (an
// edge alone) or refreshed by a forwarded 304 carries this edge's Via
// entry once when served from the cache, after the origin's own.
func TestRFC9110ViaOnceOnHits(t *testing.T) {
	c, o := newScriptedCluster(t, 1, nil)
	tests := []struct {
		name, cc string
	}{
		{"RFC9110-7.6.3/hit-after-forwarded-miss", "max-age=3600"},
		{"RFC9110-7.6.3/hit-after-forwarded-304", "max-age=0"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target := fmt.Sprintf("/via/%d", i)
			o.set(target, 200, body(64), "ETag", `"via"`, "Cache-Control", tt.cc, "Via", "1.1 upstream")
			for round := range 3 {
				resp, _ := c.get(0, target)
				if got := resp.Header.Values("Via"); len(got) != 2 || got[0] != "1.1 upstream" || got[1] != "1.1 shoal" {
					t.Errorf("round %d (%s): Via %q, want the origin's then this edge's, once", round, resp.Header.Get("Cache-Status"), got)
				}
			}
		})
	}
}

// TestRFC9111CacheNormalisations: If-Modified-Since against a stored
// response without Last-Modified, and Vary'd fields whose values compare
// case-insensitively.
func TestRFC9111CacheNormalisations(t *testing.T) {
	c, o := newScriptedCluster(t, 1, nil)
	date := time.Now().Add(-time.Minute).UTC().Format(http.TimeFormat)
	o.set("/nolm", 200, body(40), "ETag", `"n"`, "Cache-Control", "max-age=3600", "Date", date)
	o.set("/lang", 200, body(41), "ETag", `"l"`, "Cache-Control", "max-age=3600", "Vary", "Accept-Language")
	c.get(0, "/nolm")
	c.get(0, "/lang", "Accept-Language", "en, de")
	tests := []struct {
		name, target string
		req          []string
		code         int
		hit          bool
	}{
		{"RFC9111-4.3.2/ims-without-last-modified-uses-date", "/nolm", []string{"If-Modified-Since", date}, 304, true},
		{"RFC9111-4.3.2/ims-before-date-200", "/nolm", []string{"If-Modified-Since", oldDate}, 200, true},
		{"RFC9110-13.1.4/ius-without-last-modified-ignored", "/nolm", []string{"If-Unmodified-Since", oldDate}, 200, true},
		{"RFC9110-12.5.4/vary-language-case-insensitive", "/lang", []string{"Accept-Language", "eN, De"}, 200, true},
		{"RFC9111-4.1/vary-other-language-not-selected", "/lang", []string{"Accept-Language", "fr"}, 200, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, _ := c.get(0, tt.target, tt.req...)
			if resp.StatusCode != tt.code {
				t.Errorf("status %d, want %d", resp.StatusCode, tt.code)
			}
			if hit := strings.HasPrefix(resp.Header.Get("Cache-Status"), "shoal; hit"); hit != tt.hit {
				t.Errorf("Cache-Status %q, want a hit: %v", resp.Header.Get("Cache-Status"), tt.hit)
			}
		})
	}
}

// TestRFC9111FleetStoresOtherStatuses: in a fleet, a final status other
// than 200 that may be stored (RFC 9111 §3: cacheable by default with
// freshness, or any with explicit freshness) is stored whole on the edge
// that forwarded it, and its next request there is a hit; what may not
// be stored is forwarded every time.
func TestRFC9111FleetStoresOtherStatuses(t *testing.T) {
	c, o := newScriptedCluster(t, 3, nil)
	lm := time.Now().Add(-100 * time.Hour).UTC().Format(http.TimeFormat)
	tests := []struct {
		name   string
		status int
		header []string
		req    []string
		stored bool
	}{
		{"RFC9111-3/404-max-age-stored", 404, []string{"Cache-Control", "max-age=60"}, nil, true},
		{"RFC9110-15.4.1/300-heuristic-stored", 300, []string{"Last-Modified", lm}, nil, true},
		{"RFC9111-3/410-s-maxage-stored", 410, []string{"Cache-Control", "s-maxage=60"}, nil, true},
		{"RFC9111-3/404-no-freshness-not-stored", 404, nil, nil, false},
		{"RFC9111-5.2.2.5/404-no-store-not-stored", 404, []string{"Cache-Control", "max-age=60, no-store"}, nil, false},
		{"RFC9111-4.1/404-vary-not-stored", 404, []string{"Cache-Control", "max-age=60", "Vary", "Accept-Language"}, nil, false},
		{"RFC9111-3.5/404-authorization-not-stored", 404, []string{"Cache-Control", "max-age=60"}, []string{"Authorization", "Bearer x"}, false},
		{"RFC9111-3/402-no-freshness-not-stored", 402, []string{"Last-Modified", lm}, nil, false},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target := fmt.Sprintf("/status/%d", i)
			want := body(200 + i)
			o.set(target, tt.status, want, tt.header...)
			for round := range 3 {
				resp, got := c.get(0, target, tt.req...)
				if resp.StatusCode != tt.status {
					t.Fatalf("round %d: status %d, want %d", round, resp.StatusCode, tt.status)
				}
				sameBytes(t, "body", got, want)
				hit := strings.HasPrefix(resp.Header.Get("Cache-Status"), "shoal; hit")
				if round > 0 && hit != tt.stored {
					t.Errorf("round %d: Cache-Status %q, want stored %v", round, resp.Header.Get("Cache-Status"), tt.stored)
				}
			}
			if n, want := o.count(http.MethodGet, target, ""), map[bool]int{true: 1, false: 3}[tt.stored]; n != want {
				t.Errorf("origin saw %d GETs, want %d", n, want)
			}
			// Another edge has no copy: it forwards.
			if resp, got := c.get(1, target, tt.req...); resp.StatusCode != tt.status || !bytes.Equal(got, want) {
				t.Errorf("edge 1: status %d, %d bytes", resp.StatusCode, len(got))
			}
		})
	}
}
