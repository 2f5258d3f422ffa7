package edge

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestRFC9111Freshness: how long a stored response is fresh, end to end: a
// fleet of two edges in front of a real origin on loopback; the first
// request stores the response, the second (on the other edge) is answered
// from the fleet without the origin while the response is fresh, and
// revalidated with the origin (a conditional request) once it is not.
// newRecord's arithmetic is unit-tested in TestTargetedFreshness and
// TestNewRecord; this is the behaviour a client sees.
func TestRFC9111Freshness(t *testing.T) {
	c, o := newScriptedCluster(t, 2, func(cfg *Config) { cfg.MaxHeuristicFreshness = 2 * time.Hour })
	now := time.Now().UTC()
	ago := func(d time.Duration) string { return now.Add(-d).Format(http.TimeFormat) }
	in := func(d time.Duration) string { return now.Add(d).Format(http.TimeFormat) }
	tests := []struct {
		name   string
		header []string
		fresh  bool
	}{
		{"RFC9111-5.2.2.1/max-age-fresh", []string{"Cache-Control", "max-age=3600"}, true},
		{"RFC9111-5.2.2.1/max-age-0-stale", []string{"Cache-Control", "max-age=0"}, false},
		{"RFC9111-5.2.2.10/s-maxage-over-max-age-stale", []string{"Cache-Control", "max-age=3600, s-maxage=0"}, false},
		{"RFC9111-5.2.2.10/s-maxage-over-max-age-fresh", []string{"Cache-Control", "max-age=0, s-maxage=3600"}, true},
		{"RFC9111-5.3/expires-future-fresh", []string{"Expires", in(time.Hour)}, true},
		{"RFC9111-5.3/expires-past-stale", []string{"Expires", ago(time.Hour)}, false},
		{"RFC9111-5.3/invalid-expires-stale", []string{"Expires", "0"}, false},
		{"RFC9111-5.3/max-age-over-expires", []string{"Expires", ago(time.Hour), "Cache-Control", "max-age=3600"}, true},
		{"RFC9111-4.2.2/heuristic-from-last-modified", []string{"Last-Modified", ago(10 * 24 * time.Hour)}, true},
		{"RFC9111-4.2.2/heuristic-10-percent", []string{"Last-Modified", ago(10 * time.Hour), "Age", "3700"}, false},
		{"RFC9111-4.2.2/heuristic-capped-by-config", []string{"Last-Modified", ago(10 * 24 * time.Hour), "Age", "7300"}, false},
		{"RFC9111-4.2.3/upstream-age-counted", []string{"Cache-Control", "max-age=60", "Age", "120"}, false},
		{"RFC9111-4.2.3/apparent-age-from-date", []string{"Cache-Control", "max-age=60", "Date", ago(time.Hour)}, false},
		{"RFC9111-5.2.2.4/no-cache-always-revalidated", []string{"Cache-Control", "max-age=3600, no-cache"}, false},
		{"RFC9213-2.1/cdn-cache-control-over-cache-control", []string{"Cache-Control", "max-age=0", "CDN-Cache-Control", "max-age=3600"}, true},
		{"RFC9213-2.1/shoal-cache-control-over-cdn-cache-control", []string{"CDN-Cache-Control", "max-age=3600", "Shoal-Cache-Control", "max-age=0"}, false},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target := fmt.Sprintf("/fresh/%d", i)
			want := body(700 + i)
			o.set(target, 200, want, append([]string{"ETag", fmt.Sprintf(`"f%d"`, i)}, tt.header...)...)
			c.get(0, target)
			before := len(o.seenFor(target))
			resp, got := c.get(1, target)
			if resp.StatusCode != 200 {
				t.Fatalf("status %d", resp.StatusCode)
			}
			sameBytes(t, "body", got, want)
			asked := o.seenFor(target)[before:]
			cs := resp.Header.Get("Cache-Status")
			if tt.fresh {
				if len(asked) > 0 || !strings.HasPrefix(cs, "shoal; hit") {
					t.Errorf("fresh: the origin saw %d more requests (Cache-Status %q), want a hit", len(asked), cs)
				}
				if resp.Header.Get("Age") == "" {
					t.Errorf("a hit without Age")
				}
				return
			}
			conditional := 0
			for _, s := range asked {
				if s.header.Get("If-None-Match") == fmt.Sprintf(`"f%d"`, i) {
					conditional++
				}
			}
			if conditional != 1 {
				t.Errorf("stale: %d conditional requests with the stored ETag among the %d the origin saw, want 1 (Cache-Status %q)", conditional, len(asked), cs)
			}
		})
	}
}

// seenFor returns the requests the origin saw for target, in order.
func (o *scriptedOrigin) seenFor(target string) []seenRequest {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []seenRequest
	for _, s := range o.seen {
		if s.target == target {
			out = append(out, s)
		}
	}
	return out
}

// TestRFC9111CacheKey: the key is the request target as sent (RFC 9111 §2:
// the target URI), with no normalisation that could merge two resources the
// origin tells apart; with one origin the client's Host is not part of it
// (every Host names that origin's resource; TestSeveralSites covers keys
// per site).
func TestRFC9111CacheKey(t *testing.T) {
	c, o := newScriptedCluster(t, 2, nil)
	tests := []struct {
		name string
		a, b string // two targets
		same bool   // one object
	}{
		{"RFC9111-2/query-in-key", "/key?a=1", "/key?a=2", false},
		{"RFC9111-2/query-order-kept", "/key?a=1&b=2", "/key?b=2&a=1", false},
		{"RFC9111-2/empty-query-kept", "/key2?", "/key2", false},
		{"RFC3986-6.2.2.2/percent-encoding-kept", "/key%41", "/keyA", false},
		{"RFC3986-6.2.2.1/percent-case-kept", "/key%2a", "/key%2A", false},
		{"RFC9111-2/same-target-one-object", "/key3?x=1", "/key3?x=1", true},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wa, wb := body(300+i), body(400+i)
			o.set(tt.a, 200, wa, "ETag", fmt.Sprintf(`"a%d"`, i), "Cache-Control", "max-age=3600")
			if !tt.same {
				o.set(tt.b, 200, wb, "ETag", fmt.Sprintf(`"b%d"`, i), "Cache-Control", "max-age=3600")
			} else {
				wb = wa
			}
			for round := range 2 {
				_, got := c.get(round, tt.a)
				sameBytes(t, tt.a, got, wa)
				_, got = c.get(1-round, tt.b)
				sameBytes(t, tt.b, got, wb)
			}
			gets := o.count(http.MethodGet, tt.a, "")
			if !tt.same {
				gets += o.count(http.MethodGet, tt.b, "")
			}
			if want := map[bool]int{true: 1, false: 2}[tt.same]; gets != want {
				t.Errorf("origin saw %d GETs, want %d", gets, want)
			}
		})
	}
	t.Run("RFC9110-7.2/host-not-in-key-with-one-origin", func(t *testing.T) {
		want := body(999)
		o.set("/host", 200, want, "ETag", `"h"`, "Cache-Control", "max-age=3600")
		for i, host := range []string{"a.example", "B.example:8080"} {
			req, _ := http.NewRequest(http.MethodGet, c.edges[i].url+"/host", nil)
			req.Host = host
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			sameBytes(t, host, got, want)
		}
		if n := o.count(http.MethodGet, "/host", ""); n != 1 {
			t.Errorf("origin saw %d GETs, want 1: two Hosts of one origin name one resource", n)
		}
	})
}
