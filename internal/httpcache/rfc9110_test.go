package httpcache

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The tests in this file are tables of RFC 9110 rules, one case per rule,
// named by its section.

func request(kv ...string) *http.Request {
	r, _ := http.NewRequest(http.MethodGet, "http://x/", nil)
	r.Header = hdr(kv...)
	return r
}

func TestRFC9110Preconditions_Section13_2_2(t *testing.T) {
	lm := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	before, at, after := lm.Add(-time.Hour).Format(http.TimeFormat), lm.Format(http.TimeFormat), lm.Add(time.Hour).Format(http.TimeFormat)
	tests := []struct {
		name    string
		r       *http.Request
		etag    string
		lastMod time.Time
		want    int
	}{
		{"13.2.2/none", request(), `"a"`, lm, 0},
		{"13.1.1/if-match", request("If-Match", `"b", "a"`), `"a"`, lm, 0},
		{"13.1.1/if-match-fails", request("If-Match", `"b"`), `"a"`, lm, 412},
		{"13.1.1/if-match-strong-comparison", request("If-Match", `W/"a"`), `"a"`, lm, 412},
		{"13.1.1/if-match-star", request("If-Match", "*"), `"a"`, lm, 0},
		{"13.1.1/if-match-several-lines", request("If-Match", `"b"`, "If-Match", `"a"`), `"a"`, lm, 0},
		{"13.1.4/if-unmodified-since-holds", request("If-Unmodified-Since", at), `"a"`, lm, 0},
		{"13.1.4/if-unmodified-since-fails", request("If-Unmodified-Since", before), `"a"`, lm, 412},
		{"13.1.4/if-unmodified-since-no-date", request("If-Unmodified-Since", before), `"a"`, time.Time{}, 0},
		{"13.1.4/if-unmodified-since-invalid", request("If-Unmodified-Since", "yesterday"), `"a"`, lm, 0},
		{"13.2.2/if-match-over-if-unmodified-since", request("If-Match", `"a"`, "If-Unmodified-Since", before), `"a"`, lm, 0},
		{"13.1.2/if-none-match", request("If-None-Match", `"a"`), `"a"`, lm, 304},
		{"13.1.2/if-none-match-weak-comparison", request("If-None-Match", `W/"a"`), `"a"`, lm, 304},
		{"13.1.2/if-none-match-other", request("If-None-Match", `"b"`), `"a"`, lm, 0},
		{"13.1.2/if-none-match-star", request("If-None-Match", "*"), `"a"`, lm, 304},
		{"13.1.3/if-modified-since-not-modified", request("If-Modified-Since", at), `"a"`, lm, 304},
		{"13.1.3/if-modified-since-modified", request("If-Modified-Since", before), `"a"`, lm, 0},
		{"13.1.3/if-modified-since-later", request("If-Modified-Since", after), `"a"`, lm, 304},
		{"13.1.3/if-modified-since-second-resolution", request("If-Modified-Since", at), `"a"`, lm.Add(900 * time.Millisecond), 304},
		{"13.1.3/if-modified-since-no-date", request("If-Modified-Since", after), `"a"`, time.Time{}, 0},
		{"13.2.2/if-none-match-over-if-modified-since", request("If-None-Match", `"b"`, "If-Modified-Since", after), `"a"`, lm, 0},
		{"13.2.2/if-match-before-if-none-match", request("If-Match", `"b"`, "If-None-Match", `"a"`), `"a"`, lm, 412},
		{"13.2.2/both-hold", request("If-Match", `"a"`, "If-None-Match", `"a"`), `"a"`, lm, 304},
		{"8.8.3/no-etag", request("If-None-Match", `"a"`), "", lm, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := CheckPreconditions(tt.r, tt.etag, tt.lastMod); got != tt.want {
				t.Errorf("got %d, want %d", got, tt.want)
			}
		})
	}
}

func TestRFC9110IfRange_Section13_1_5(t *testing.T) {
	lm := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		v, etag string
		lastMod time.Time
		want    bool
	}{
		{"13.1.5/absent", "", `"a"`, lm, true},
		{"13.1.5/strong-match", ` "a" `, `"a"`, lm, true},
		{"13.1.5/other-tag", `"b"`, `"a"`, lm, false},
		{"13.1.5/weak-never-matches", `W/"a"`, `W/"a"`, lm, false},
		{"13.1.5/date-equal", lm.Format(http.TimeFormat), `"a"`, lm.Add(500 * time.Millisecond), true},
		{"13.1.5/date-not-equal", lm.Add(time.Second).Format(http.TimeFormat), `"a"`, lm, false},
		{"13.1.5/date-without-last-modified", lm.Format(http.TimeFormat), `"a"`, time.Time{}, false},
		{"13.1.5/garbage", "yesterday", `"a"`, lm, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := IfRangeHolds(tt.v, tt.etag, tt.lastMod); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestRFC9110HasConditionals_Section13_1(t *testing.T) {
	for _, f := range []string{"If-None-Match", "If-Modified-Since", "If-Match", "If-Unmodified-Since", "If-Range"} {
		t.Run("13.1/"+f, func(t *testing.T) {
			if !HasConditionals(hdr(f, "x")) {
				t.Errorf("%s not seen", f)
			}
		})
	}
	if HasConditionals(hdr("Range", "bytes=0-1", "Cache-Control", "no-cache")) {
		t.Error("13.1/none: conditionals seen")
	}
}

func TestRFC9110ParseETag_Section8_8_3(t *testing.T) {
	tests := []struct {
		name     string
		s        string
		weak, ok bool
	}{
		{"8.8.3/strong", `"abc"`, false, true},
		{"8.8.3/weak", `W/"abc"`, true, true},
		{"8.8.3/empty-tag", `""`, false, true},
		{"8.8.3/unquoted", `abc`, false, false},
		{"8.8.3/trailing-bytes", `"a" `, false, false},
		{"8.8.3/lower-case-weak-prefix", `w/"a"`, false, false},
		{"8.8.3/space-inside", `"a b"`, false, false},
		{"8.8.3/obs-text", "\"caf\xe9\"", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			weak, ok := ParseETag(tt.s)
			if ok != tt.ok || ok && weak != tt.weak {
				t.Errorf("got weak %v ok %v, want weak %v ok %v", weak, ok, tt.weak, tt.ok)
			}
		})
	}
}

func TestRFC9110PlanRanges_Section14_2(t *testing.T) {
	tests := []struct {
		name string
		s    string
		max  int
		want []Range
		err  error
	}{
		{"14.2/one", "bytes=0-9", 4, []Range{{0, 10}}, nil},
		{"14.2/sorted", "bytes=500-509,0-9", 4, []Range{{0, 10}, {500, 10}}, nil},
		{"14.2/overlapping-merged", "bytes=0-9,5-19", 4, []Range{{0, 20}}, nil},
		{"14.2/near-merged", "bytes=0-9,90-99", 4, []Range{{0, 100}}, nil},
		{"14.2/far-kept", "bytes=0-9,91-99", 4, []Range{{0, 10}, {91, 9}}, nil},
		{"14.2/same-range-repeated", "bytes=0-,0-,0-", 4, []Range{{0, 1000}}, nil},
		{"14.2/too-many", "bytes=0-0,200-200,400-400", 2, nil, ErrTooManyRanges},
		{"14.2/unsatisfiable", "bytes=1000-", 4, nil, ErrRangeUnsatisfiable},
		{"14.2/malformed", "bytes=9-0", 4, nil, ErrRangeSyntax},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := PlanRanges(tt.s, 1000, tt.max)
			if !errors.Is(err, tt.err) || len(got) != len(tt.want) {
				t.Fatalf("got %v, %v, want %v, %v", got, err, tt.want, tt.err)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("got %v, want %v", got, tt.want)
				}
			}
		})
	}
}

func TestRFC9110Multipart_Section14_6(t *testing.T) {
	ranges := []Range{{0, 10}, {100, 5}}
	m := NewMultipart(ranges, 1000, "text/plain")
	var b strings.Builder
	for i, r := range ranges {
		b.WriteString(m.Heads[i])
		b.WriteString(strings.Repeat("x", int(r.Length)))
	}
	b.WriteString(m.Tail)
	body := b.String()
	if m.Length(ranges) != strconv.Itoa(len(body)) {
		t.Errorf("14.6/length: Length %s, body %d bytes", m.Length(ranges), len(body))
	}
	for _, want := range []string{"--" + m.Boundary + "\r\nContent-Type: text/plain\r\nContent-Range: bytes 0-9/1000\r\n\r\n",
		"\r\n--" + m.Boundary + "\r\nContent-Type: text/plain\r\nContent-Range: bytes 100-104/1000\r\n\r\n",
		"\r\n--" + m.Boundary + "--\r\n"} {
		if !strings.Contains(body, want) {
			t.Errorf("14.6/framing: body lacks %q", want)
		}
	}
	if m.ContentType() != "multipart/byteranges; boundary="+m.Boundary {
		t.Errorf("14.6/content-type: %q", m.ContentType())
	}
	if NewMultipart(ranges, 1000, "").Boundary == m.Boundary {
		t.Error("14.6/boundary: two bodies share a boundary")
	}
	if UnsatisfiedContentRange(1000) != "bytes */1000" {
		t.Errorf("14.4/unsatisfied: %q", UnsatisfiedContentRange(1000))
	}
}

func TestRFC9110Via_Section7_6_3(t *testing.T) {
	tests := []struct {
		name         string
		major, minor int
		want         string
	}{
		{"7.6.3/http-1.1", 1, 1, "1.1 shoal"},
		{"7.6.3/http-1.0", 1, 0, "1.0 shoal"},
		{"7.6.3/http-2-major-only", 2, 0, "2 shoal"},
		{"7.6.3/http-3-major-only", 3, 0, "3 shoal"},
		{"7.6.3/other", 0, 9, "0.9 shoal"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Via(tt.major, tt.minor); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestRFC9110HopByHop_Section7_6_1(t *testing.T) {
	for name, want := range map[string]bool{"Connection": true, "Keep-Alive": true, "Te": true, "Transfer-Encoding": true,
		"Upgrade": true, "Proxy-Authorization": true, "Content-Type": false, "Cache-Control": false} {
		if got := IsHopByHop(name); got != want {
			t.Errorf("7.6.1/%s: got %v, want %v", name, got, want)
		}
	}
}
