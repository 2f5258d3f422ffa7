package httpcache

import (
	"net/http"
	"reflect"
	"testing"
	"time"
)

// The tests in this file are tables of RFC 9111 (and RFC 5861, RFC 9213)
// rules, one case per rule, named by its section.

var testNow = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)

// hdr makes a header from name, value pairs (Add, so a name may repeat).
func hdr(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

func ago(d time.Duration) string { return testNow.Add(-d).Format(http.TimeFormat) }

func TestRFC9111Freshness_Section4_2_1(t *testing.T) {
	date := ago(0)
	tests := []struct {
		name string
		h    http.Header
		want time.Duration
	}{
		{"4.2.1/s-maxage-over-max-age", hdr("Cache-Control", "max-age=60, s-maxage=5"), 5 * time.Second},
		{"4.2.1/max-age", hdr("Cache-Control", "max-age=60"), 60 * time.Second},
		{"4.2.1/max-age-over-expires", hdr("Cache-Control", "max-age=60", "Date", date, "Expires", ago(-time.Hour)), 60 * time.Second},
		{"4.2.1/expires-minus-date", hdr("Date", ago(10*time.Second), "Expires", ago(-50*time.Second)), time.Minute},
		{"4.2.1/expires-before-date", hdr("Date", date, "Expires", ago(time.Hour)), 0},
		{"5.3/expires-invalid-is-stale", hdr("Date", date, "Expires", "0"), 0},
		{"5.3/expires-without-date-uses-now", hdr("Expires", ago(-time.Hour)), time.Hour},
		{"5.2.2.1/invalid-max-age-is-stale", hdr("Cache-Control", "max-age=1x"), 0},
		{"5.2.2.4/no-cache-is-stale", hdr("Cache-Control", "max-age=60, no-cache"), 0},
		{"5.2.2.4/qualified-no-cache-keeps-lifetime", hdr("Cache-Control", `max-age=60, no-cache="X-A"`), 60 * time.Second},
		{"1.2.2/delta-seconds-saturate", hdr("Cache-Control", "max-age=99999999999999999999"), maxDeltaSeconds * time.Second},
		{"4.2.2/heuristic-ten-percent", hdr("Date", date, "Last-Modified", ago(10*time.Hour)), time.Hour},
		{"4.2.2/heuristic-capped", hdr("Date", date, "Last-Modified", ago(1000*time.Hour)), 24 * time.Hour},
		{"4.2.2/heuristic-future-last-modified", hdr("Date", date, "Last-Modified", ago(-time.Hour)), 0},
		{"4.2.2/no-validator-no-heuristic", hdr("Date", date), 0},
		{"RFC9213-2.1/cdn-cache-control-governs", hdr("Cache-Control", "max-age=60", "CDN-Cache-Control", "max-age=600"), 600 * time.Second},
		{"RFC9213-2.1/shoal-cache-control-governs", hdr("CDN-Cache-Control", "max-age=600", "Shoal-Cache-Control", "max-age=6000"), 6000 * time.Second},
		{"RFC9213-2.1/invalid-targeted-ignored", hdr("Cache-Control", "max-age=60", "CDN-Cache-Control", `max-age="6`), 60 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Freshness(tt.h, testNow, 24*time.Hour); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestRFC9111Age_Section4_2_3(t *testing.T) {
	tests := []struct {
		name string
		h    http.Header
		want int64
	}{
		{"4.2.3/none", hdr(), 0},
		{"4.2.3/age-field", hdr("Age", "30"), 30},
		{"4.2.3/apparent-age", hdr("Date", ago(20*time.Second)), 20},
		{"4.2.3/larger-of-age-and-apparent", hdr("Age", "5", "Date", ago(20*time.Second)), 20},
		{"4.2.3/age-larger-than-apparent", hdr("Age", "50", "Date", ago(20*time.Second)), 50},
		{"4.2.3/date-in-future-no-apparent-age", hdr("Date", ago(-time.Hour)), 0},
		{"5.1/list-first-member", hdr("Age", "0, 7200"), 0},
		{"5.1/several-lines-first", hdr("Age", "7", "Age", "9000"), 7},
		{"5.1/float-is-old", hdr("Age", "7200.0"), maxDeltaSeconds},
		{"5.1/negative-is-old", hdr("Age", "-1"), maxDeltaSeconds},
		{"1.2.2/saturates", hdr("Age", "99999999999999999999"), maxDeltaSeconds},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Age(tt.h, testNow); got != tt.want {
				t.Errorf("got %d, want %d", got, tt.want)
			}
		})
	}
}

func TestRFC9111Storable_Section3(t *testing.T) {
	tests := []struct {
		name string
		h    http.Header
		want bool
	}{
		{"3/plain", hdr("Cache-Control", "max-age=60"), true},
		{"3/no-directives", hdr(), true},
		{"5.2.2.5/no-store", hdr("Cache-Control", "no-store"), false},
		{"5.2.2.7/private", hdr("Cache-Control", "private, max-age=60"), false},
		{"5.2.2.7/qualified-private-stored", hdr("Cache-Control", `private="X-A", max-age=60`), true},
		{"4.1/vary-star", hdr("Vary", "Accept, *"), false},
		{"4.1/vary-fields-stored", hdr("Vary", "Accept-Language"), true},
		{"3/set-cookie", hdr("Set-Cookie", "id=1"), false},
		{"RFC9213-2.1/targeted-no-store", hdr("Cache-Control", "public", "CDN-Cache-Control", "no-store"), false},
		{"RFC9213-2.1/targeted-replaces-no-store", hdr("Cache-Control", "no-store", "CDN-Cache-Control", "max-age=10"), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Storable(tt.h); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestRFC9111StorableStatus_Section3(t *testing.T) {
	tests := []struct {
		name   string
		status int
		h      http.Header
		want   bool
	}{
		{"3/200", 200, hdr(), true},
		{"RFC9110-15.1/404-by-default", 404, hdr(), true},
		{"RFC9110-15.1/204-by-default", 204, hdr(), true},
		{"3/302-not-by-default", 302, hdr(), false},
		{"3/302-explicit-max-age", 302, hdr("Cache-Control", "max-age=60"), true},
		{"3/302-explicit-s-maxage", 302, hdr("Cache-Control", "s-maxage=60"), true},
		{"3/302-explicit-expires", 302, hdr("Expires", ago(-time.Hour)), true},
		{"3/302-public", 302, hdr("Cache-Control", "public"), true},
		{"3/206-partial", 206, hdr("Cache-Control", "max-age=60"), false},
		{"3/304-not-a-response-to-store", 304, hdr("Cache-Control", "max-age=60"), false},
		{"3/1xx-not-final", 103, hdr("Cache-Control", "max-age=60"), false},
		{"3/beyond-599", 600, hdr("Cache-Control", "max-age=60"), false},
		{"5.2.2.3/must-understand-unknown", 299, hdr("Cache-Control", "must-understand, max-age=60"), false},
		{"5.2.2.3/must-understand-known", 404, hdr("Cache-Control", "must-understand, max-age=60"), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := StorableStatus(tt.status, tt.h); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestRFC9111NotStored_Section5_2_2(t *testing.T) {
	tests := []struct {
		name string
		h    http.Header
		want map[string]bool
	}{
		{"5.2.2/none", hdr("Cache-Control", "max-age=60"), map[string]bool{}},
		{"RFC9110-7.6.1/connection-listed", hdr("Connection", "x-hop, close"), map[string]bool{"X-Hop": true, "Close": true}},
		{"5.2.2.7/qualified-private", hdr("Cache-Control", `private="set-cookie2, X-A"`), map[string]bool{"Set-Cookie2": true, "X-A": true}},
		{"5.2.2.4/qualified-no-cache", hdr("Cache-Control", `no-cache="x-b"`), map[string]bool{"X-B": true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := NotStored(tt.h); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestRFC9111UpdateHeaders_Section3_2(t *testing.T) {
	stored := hdr("Content-Type", "text/plain", "Content-Length", "10", "Etag", `"a"`, "Content-Encoding", "gzip",
		"Cache-Control", "max-age=10", "Age", "3", "X-Old", "1")
	tests := []struct {
		name   string
		stored http.Header
		fresh  http.Header
		want   http.Header
	}{
		{"3.2/fields-replaced", stored, hdr("Cache-Control", "max-age=60", "X-New", "2", "Age", "1"),
			hdr("Content-Type", "text/plain", "Content-Length", "10", "Etag", `"a"`, "Content-Encoding", "gzip",
				"Cache-Control", "max-age=60", "Age", "1", "X-Old", "1", "X-New", "2")},
		{"3.2/length-coding-etag-kept", stored, hdr("Content-Length", "0", "Etag", `"b"`, "Content-Encoding", "br", "Content-Range", "bytes 0-1/2"),
			hdr("Content-Type", "text/plain", "Content-Length", "10", "Etag", `"a"`, "Content-Encoding", "gzip",
				"Cache-Control", "max-age=10", "X-Old", "1")},
		{"RFC9110-7.6.1/hop-by-hop-not-stored", stored, hdr("Connection", "close", "Transfer-Encoding", "chunked", "Age", "0"),
			hdr("Content-Type", "text/plain", "Content-Length", "10", "Etag", `"a"`, "Content-Encoding", "gzip",
				"Cache-Control", "max-age=10", "Age", "0", "X-Old", "1")},
		{"4.3.4/nothing-stored", nil, hdr("Date", "x"), hdr("Date", "x")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := tt.stored.Clone()
			if got := UpdateHeaders(tt.stored, tt.fresh); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
			if !reflect.DeepEqual(tt.stored, before) {
				t.Errorf("stored header modified: %v", tt.stored)
			}
		})
	}
}

func TestRFC5861Stale_Section3_4(t *testing.T) {
	expires := testNow.Add(-10 * time.Second) // stale for 10 s
	tests := []struct {
		name          string
		h             http.Header
		fallback      time.Duration
		whileReval    bool
		onOriginError bool
	}{
		{"3/within-swr", hdr("Cache-Control", "max-age=1, stale-while-revalidate=60"), 0, true, false},
		{"3/past-swr", hdr("Cache-Control", "max-age=1, stale-while-revalidate=5"), 0, false, false},
		{"3/swr-invalid", hdr("Cache-Control", "max-age=1, stale-while-revalidate=x"), 0, false, false},
		{"4/within-sie", hdr("Cache-Control", "max-age=1, stale-if-error=60"), 0, false, true},
		{"4/past-sie", hdr("Cache-Control", "max-age=1, stale-if-error=5"), time.Hour, false, false},
		{"4/sie-invalid-no-fallback", hdr("Cache-Control", "max-age=1, stale-if-error=x"), time.Hour, false, false},
		{"4/fallback-without-sie", hdr("Cache-Control", "max-age=1"), time.Minute, false, true},
		{"4/fallback-too-short", hdr("Cache-Control", "max-age=1"), 5 * time.Second, false, false},
		{"RFC9111-5.2.2.10/s-maxage-no-fallback", hdr("Cache-Control", "s-maxage=1"), time.Hour, false, false},
		{"RFC9111-5.2.2.10/s-maxage-with-sie", hdr("Cache-Control", "s-maxage=1, stale-if-error=60"), 0, false, true},
		{"RFC9111-5.2.2.2/must-revalidate", hdr("Cache-Control", "max-age=1, must-revalidate, stale-while-revalidate=60, stale-if-error=60"), time.Hour, false, false},
		{"RFC9111-5.2.2.8/proxy-revalidate", hdr("Cache-Control", "max-age=1, proxy-revalidate, stale-if-error=60"), time.Hour, false, false},
		{"RFC9111-5.2.2.4/no-cache", hdr("Cache-Control", "no-cache, stale-while-revalidate=60"), time.Hour, false, false},
		{"RFC9111-5.2.2.4/qualified-no-cache", hdr("Cache-Control", `no-cache="X", stale-while-revalidate=60`), 0, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := StaleWhileRevalidate(tt.h, expires, testNow); got != tt.whileReval {
				t.Errorf("StaleWhileRevalidate: got %v, want %v", got, tt.whileReval)
			}
			if got := StaleIfError(tt.h, expires, testNow, tt.fallback); got != tt.onOriginError {
				t.Errorf("StaleIfError: got %v, want %v", got, tt.onOriginError)
			}
		})
	}
}

func TestRFC9111Vary_Section4_1(t *testing.T) {
	fieldTests := []struct {
		name   string
		h      http.Header
		fields []string
		star   bool
	}{
		{"4.1/none", hdr(), nil, false},
		{"4.1/canonical-sorted-unique", hdr("Vary", "accept-language, Accept-Encoding", "Vary", " ACCEPT-LANGUAGE ,,"), []string{"Accept-Encoding", "Accept-Language"}, false},
		{"4.1/star", hdr("Vary", "Accept, *"), []string{"Accept"}, true},
	}
	for _, tt := range fieldTests {
		t.Run(tt.name, func(t *testing.T) {
			fields, star := VaryFields(tt.h)
			if !reflect.DeepEqual(fields, tt.fields) && len(fields)+len(tt.fields) > 0 || star != tt.star {
				t.Errorf("got %v %v, want %v %v", fields, star, tt.fields, tt.star)
			}
		})
	}

	fields := []string{"Accept-Language", "X-Tenant"}
	keyTests := []struct {
		name string
		req  http.Header
		want string
	}{
		{"4.1/no-field-sent-is-target", hdr(), "/a"},
		{"4.1/normalised-whitespace", hdr("Accept-Language", "en ,  de"), "/a\nAccept-Language=en,de"},
		{"4.1/several-lines-joined", hdr("Accept-Language", "en", "Accept-Language", "de"), "/a\nAccept-Language=en,de"},
		{"RFC9110-12.5.4/language-caseless", hdr("Accept-Language", "eN, De"), "/a\nAccept-Language=en,de"},
		{"4.1/other-fields-case-kept", hdr("X-Tenant", "Blue"), "/a\nX-Tenant=Blue"},
		{"4.1/fields-in-order", hdr("X-Tenant", "b", "Accept-Language", "fr"), "/a\nAccept-Language=fr\nX-Tenant=b"},
	}
	for _, tt := range keyTests {
		t.Run(tt.name, func(t *testing.T) {
			got := VariantKey("/a", fields, tt.req)
			if got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
			if TargetOf(got) != "/a" {
				t.Errorf("TargetOf(%q) = %q", got, TargetOf(got))
			}
			// The key names the fields a fetch of the variant sends, and
			// such a request selects the variant again.
			back := VariantFields(got)
			if VariantKey("/a", fields, back) != got {
				t.Errorf("VariantFields(%q) = %v selects another variant", got, back)
			}
			stored := hdr("Vary", "Accept-Language, X-Tenant")
			if !Selects(got, stored, tt.req) {
				t.Errorf("the request does not select its own variant")
			}
			if Selects(got, hdr("Vary", "*"), tt.req) {
				t.Errorf("Vary: * selected")
			}
		})
	}
	if VariantFields("/a?x=1") != nil {
		t.Error("a target has variant fields")
	}
	if Selects("/a\nAccept-Language=fr", hdr("Vary", "Accept-Language"), hdr("Accept-Language", "en")) {
		t.Error("4.1/other-value: en selected the fr variant")
	}
}

func TestRFC9111ModifiedDate_Section4_3_2(t *testing.T) {
	received := testNow
	lm := testNow.Add(-time.Hour)
	date := testNow.Add(-time.Minute)
	tests := []struct {
		name    string
		req     http.Header
		stored  http.Header
		lastMod time.Time
		want    time.Time
	}{
		{"4.3.2/last-modified", hdr("If-Modified-Since", "x"), hdr("Date", ago(time.Minute)), lm, lm},
		{"4.3.2/date-without-last-modified", hdr("If-Modified-Since", "x"), hdr("Date", ago(time.Minute)), time.Time{}, date},
		{"4.3.2/date-after-received-ignored", hdr("If-Modified-Since", "x"), hdr("Date", ago(-time.Minute)), time.Time{}, received},
		{"4.3.2/received-without-date", hdr("If-Modified-Since", "x"), hdr(), time.Time{}, received},
		{"4.3.2/no-ims-no-fallback", hdr(), hdr("Date", ago(time.Minute)), time.Time{}, time.Time{}},
		{"RFC9110-13.1.4/ius-without-last-modified-ignored", hdr("If-Modified-Since", "x", "If-Unmodified-Since", "y"), hdr("Date", ago(time.Minute)), time.Time{}, time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ModifiedDate(tt.req, tt.stored, tt.lastMod, received); !got.Equal(tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestRFC9111OnlyIfCached_Section5_2_1_7(t *testing.T) {
	tests := []struct {
		name string
		h    http.Header
		want bool
	}{
		{"5.2.1.7/absent", hdr(), false},
		{"5.2.1.7/present", hdr("Cache-Control", "max-age=0, Only-If-Cached"), true},
		{"5.2.1.7/second-line", hdr("Cache-Control", "no-transform", "Cache-Control", "only-if-cached"), true},
		{"5.2.1.7/other", hdr("Cache-Control", "no-cache"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := OnlyIfCached(tt.h); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestRFC9111ReusableWithAuthorization_Section3_5(t *testing.T) {
	tests := []struct {
		name string
		h    http.Header
		want bool
	}{
		{"3.5/max-age-alone", hdr("Cache-Control", "max-age=60"), false},
		{"3.5/public", hdr("Cache-Control", "public, max-age=60"), true},
		{"3.5/s-maxage", hdr("Cache-Control", "s-maxage=60"), true},
		{"3.5/must-revalidate", hdr("Cache-Control", "max-age=60, must-revalidate"), true},
		{"RFC9213-2.1/targeted-public", hdr("Cache-Control", "max-age=60", "CDN-Cache-Control", "public"), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ReusableWithAuthorization(tt.h); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}
