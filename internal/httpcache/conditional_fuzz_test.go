package httpcache

import (
	"net/http"
	"testing"
	"time"
)

// FuzzPreconditions (RFC 9110 §13.2.2, §13.1.5): conditional headers of any shape give one of the
// three answers, never a panic, and the answers agree with the simple
// cases they must.
func FuzzPreconditions(f *testing.F) {
	lm := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	f.Add(`"v1"`, `"v1"`, "", "", "", "")
	f.Add(`"v1"`, "", `W/"v1", "v2"`, "", "", "")
	f.Add(`"v1"`, "", "*", lm.Format(http.TimeFormat), "", `"v1"`)
	f.Add("", `"a", garbage`, "", "", lm.Format(http.TimeFormat), lm.Format(http.TimeFormat))
	f.Add(`W/"x"`, `W/"x"`, `W/"x"`, "Mon, 02 Jan 2006", "", `W/"x"`)
	f.Fuzz(func(t *testing.T, etag, ifMatch, ifNoneMatch, ifModSince, ifUnmodSince, ifRange string) {
		r, _ := http.NewRequest("GET", "http://x/", nil)
		for k, v := range map[string]string{"If-Match": ifMatch, "If-None-Match": ifNoneMatch,
			"If-Modified-Since": ifModSince, "If-Unmodified-Since": ifUnmodSince, "If-Range": ifRange} {
			if v != "" {
				r.Header.Set(k, v)
			}
		}
		got := CheckPreconditions(r, etag, lm)
		switch got {
		case 0, http.StatusNotModified, http.StatusPreconditionFailed:
		default:
			t.Fatalf("CheckPreconditions = %d", got)
		}
		if ifNoneMatch == "*" && ifMatch == "" && ifUnmodSince == "" && got != http.StatusNotModified {
			t.Fatalf("If-None-Match: * on an existing representation gave %d, want 304", got)
		}
		ok := IfRangeHolds(r.Header.Get("If-Range"), etag, lm)
		if ifRange == "" && !ok {
			t.Fatal("no If-Range, yet the range is not honoured")
		}
		if _, weak, rest, isTag := scanETag(etag); isTag && rest == "" && !weak && ifRange == etag && !ok {
			t.Fatalf("If-Range %q, the current strong tag, not honoured", ifRange)
		}
	})
}
