package httpcache

import (
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"
)

func TestRFC9111Directives_Section5_2(t *testing.T) {
	tests := []struct {
		name  string
		lines []string
		want  map[string]string
		ok    bool
	}{
		{"RFC9111-5.2/basic", []string{"public, max-age=60"}, map[string]string{"public": "", "max-age": "60"}, true},
		{"RFC9111-5.2/case-insensitive-names", []string{"Max-Age=60, NO-STORE"}, map[string]string{"max-age": "60", "no-store": ""}, true},
		{"RFC9111-5.2/quoted-value-with-comma", []string{`private="Set-Cookie, X-A", max-age=5`}, map[string]string{"private": "Set-Cookie, X-A", "max-age": "5"}, true},
		{"RFC9111-5.2/quoted-escape", []string{`x="a\"b"`}, map[string]string{"x": `a"b`}, true},
		{"RFC9111-5.2/several-lines", []string{"max-age=1", "s-maxage=2"}, map[string]string{"max-age": "1", "s-maxage": "2"}, true},
		{"RFC9111-4.2.1/duplicate-first-wins", []string{"max-age=1, max-age=100"}, map[string]string{"max-age": "1"}, true},
		{"RFC9110-5.6.1/empty-elements", []string{" , max-age=1 ,, "}, map[string]string{"max-age": "1"}, true},
		{"RFC9111-5.2/unterminated-quote", []string{`max-age=1, x="abc`}, map[string]string{"max-age": "1"}, false},
		{"RFC9111-5.2/garbage", []string{"max-age=1, =3, a b"}, map[string]string{"max-age": "1"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, ok := ParseCacheControl(tt.lines)
			if ok != tt.ok || len(d) != len(tt.want) {
				t.Fatalf("got %v (ok %v), want %v (ok %v)", d, ok, tt.want, tt.ok)
			}
			for k, v := range tt.want {
				if d[k] != v {
					t.Errorf("%s = %q, want %q", k, d[k], v)
				}
			}
		})
	}
}

func TestRFC9213TargetedFreshness_Section2_1(t *testing.T) {
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	date := now.Format(http.TimeFormat)
	tests := []struct {
		name  string
		kv    []string
		pass  bool
		fresh time.Duration
	}{
		{"RFC9213-2.1/cdn-cache-control-wins", []string{"Cache-Control", "max-age=60", "CDN-Cache-Control", "max-age=600"}, false, 600 * time.Second},
		{"RFC9213-2.1/shoal-cache-control-wins", []string{"Cache-Control", "max-age=60", "CDN-Cache-Control", "max-age=600", "Shoal-Cache-Control", "max-age=6000"}, false, 6000 * time.Second},
		{"RFC9213-2.1/invalid-targeted-ignored", []string{"Cache-Control", "max-age=60", "CDN-Cache-Control", `max-age="6`}, false, 60 * time.Second},
		{"RFC9213-2.1/targeted-replaces-not-adds", []string{"Cache-Control", "no-store", "CDN-Cache-Control", "max-age=10"}, false, 10 * time.Second},
		{"RFC9111-1.2.2/delta-seconds-overflow", []string{"Cache-Control", "max-age=99999999999999999999"}, false, maxDeltaSeconds * time.Second},
		{"RFC9111-4.2.1/invalid-max-age-stale", []string{"Cache-Control", "max-age=-1"}, false, 0},
		{"RFC9111-4.2.1/quoted-max-age", []string{"Cache-Control", `max-age="60"`}, false, 60 * time.Second},
		{"RFC9111-4.2.3/apparent-age", []string{"Cache-Control", "max-age=60", "Date", now.Add(-20 * time.Second).Format(http.TimeFormat)}, false, 40 * time.Second},
		{"RFC9111-4.2.3/age-field-larger", []string{"Cache-Control", "max-age=60", "Age", "30"}, false, 30 * time.Second},
		{"RFC9111-5.1/age-float-stale", []string{"Cache-Control", "max-age=3600", "Age", "7200.0"}, false, -(maxDeltaSeconds - 3600) * time.Second},
		{"RFC9111-5.1/age-list-first-member", []string{"Cache-Control", "max-age=3600", "Age", "0, 7200"}, false, 3600 * time.Second},
		{"RFC9111-5.1/age-list-first-member-old", []string{"Cache-Control", "max-age=3600", "Age", "7200,0"}, false, -3600 * time.Second},
		{"RFC9111-5.1/age-negative-stale", []string{"Cache-Control", "max-age=3600", "Age", "-1"}, false, -(maxDeltaSeconds - 3600) * time.Second},
		{"RFC9111-5.3/expires-without-date", []string{"Expires", now.Add(time.Hour).Format(http.TimeFormat)}, false, time.Hour},
		{"RFC9111-5.2.2.4/qualified-no-cache-not-stale", []string{"Cache-Control", `max-age=60, no-cache="X-A"`}, false, 60 * time.Second},
		{"RFC9111-4.2.2/heuristic-capped", []string{"Last-Modified", now.Add(-1000 * time.Hour).Format(http.TimeFormat)}, false, 24 * time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{"Etag": {`"e"`}}
			if !strings.Contains(strings.Join(tt.kv, " "), "Date") && !strings.HasPrefix(tt.name, "RFC9111-5.3") {
				h.Set("Date", date)
			}
			for i := 0; i+1 < len(tt.kv); i += 2 {
				h.Set(tt.kv[i], tt.kv[i+1])
			}
			if got := Storable(h); got == tt.pass {
				t.Fatalf("storable %v, want %v", got, !tt.pass)
			}
			// What a record's expiry is: the lifetime less the age.
			if got := Freshness(h, now, 24*time.Hour) - time.Duration(Age(h, now))*time.Second; got != tt.fresh {
				t.Errorf("freshness %v, want %v", got, tt.fresh)
			}
		})
	}
}

// formatDirectives writes d back as a field value.
func formatDirectives(d Directives) string {
	names := make([]string, 0, len(d))
	for k := range d {
		names = append(names, k)
	}
	sort.Strings(names)
	var b strings.Builder
	for i, k := range names {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(k)
		if v := d[k]; v != "" {
			b.WriteString(`="`)
			b.WriteString(strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(v))
			b.WriteString(`"`)
		}
	}
	return b.String()
}

func FuzzParseDirectives(f *testing.F) {
	for _, s := range []string{"public, max-age=60", `private="a, b", no-cache`, `x="a\"b"`, ", ,", `a="`, "max-age=1, max-age=2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, _ := ParseCacheControl([]string{s})
		if len(d) > 64 {
			t.Fatalf("%d directives kept", len(d))
		}
		// What was parsed survives a round trip through its formatting.
		back, ok := ParseCacheControl([]string{formatDirectives(d)})
		if !ok || len(back) != len(d) {
			t.Fatalf("%q: parsed %v, round trip %v (ok %v)", s, d, back, ok)
		}
		for k, v := range d {
			if back[k] != v {
				t.Fatalf("%q: %s=%q came back as %q", s, k, v, back[k])
			}
		}
	})
}
