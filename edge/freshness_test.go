package edge

import (
	"fmt"
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
