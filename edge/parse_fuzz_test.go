package edge

import (
	"net/http"
	"testing"
	"time"

	"github.com/shoalcdn/shoal/erasure"
	"github.com/shoalcdn/shoal/internal/httpcache"
)

// FuzzNewRecord: whatever the origin's caching headers, a record is built
// without a panic, its lifetime is never negative, and a pass record is one
// for every request.
func FuzzNewRecord(f *testing.F) {
	f.Add("public, max-age=60", "", "Sat, 21 Nov 2026 12:00:00 GMT", "", int64(10))
	f.Add("max-age=60, s-maxage=5", "", "", "", int64(1))
	f.Add("no-store", "", "", "", int64(0))
	f.Add(`private="x", max-age="9"`, "0", "Sat, 21 Nov 2026 12:00:00 GMT", "Fri, 20 Nov 2026 12:00:00 GMT", int64(5))
	f.Add("max-age=-1, no-cache", "Thu, 01 Jan 1970 00:00:00 GMT", "garbage", "", int64(-1))
	f.Add("s-maxage=99999999999999999999", "", "", "", int64(1<<40))
	f.Fuzz(func(t *testing.T, cc, expires, date, lastMod string, size int64) {
		h := http.Header{"Etag": {`"v1"`}}
		for k, v := range map[string]string{"Cache-Control": cc, "Expires": expires, "Date": date, "Last-Modified": lastMod} {
			if v != "" {
				h.Set(k, v)
			}
		}
		now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
		if size < 0 {
			size = -size & (1<<50 - 1)
		}
		r := newRecord("/x", http.StatusOK, h, size, `"v1"`, erasure.Layout{}.WithDefaults(), now, 24*time.Hour)
		if r == nil {
			t.Fatal("no record")
		}
		d := httpcache.Freshness(h, now, 24*time.Hour)
		if d < 0 {
			t.Fatalf("freshness %v", d)
		}
		// A response may arrive already stale (its Age beyond its
		// lifetime), never fresher than its lifetime allows.
		if !r.Pass && r.Expires.After(r.Fetched.Add(d)) {
			t.Fatalf("record fresh until %v, past its lifetime %v from %v", r.Expires, d, r.Fetched)
		}
	})
}
