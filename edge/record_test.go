package edge

import (
	"bytes"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/shoalcdn/shoal/erasure"
	"github.com/shoalcdn/shoal/origin"
)

func sampleRecord() *Record {
	return &Record{
		Key:          "/releases/app-1.2.3.tar.gz?arch=amd64",
		Size:         123456789,
		Layout:       erasure.Layout{SegmentSize: 4 << 20, Params: erasure.Params{K: 4, M: 2}},
		ETag:         `"abc123"`,
		LastModified: "Sat, 21 Nov 2026 10:00:00 GMT",
		Validator:    `"abc123"`,
		Header:       http.Header{"Content-Type": {"application/gzip"}, "Cache-Control": {"public, max-age=60"}, "X-Two": {"a", "b"}},
		Fetched:      time.Unix(1790000000, 123),
		Expires:      time.Unix(1790000060, 456),
		Age:          7,
	}
}

func TestRecordRoundTrip(t *testing.T) {
	withStatus := sampleRecord()
	withStatus.Status = http.StatusNotFound
	for _, r := range []*Record{sampleRecord(), withStatus, {Key: "/p", Pass: true, Fetched: time.Unix(5, 0), Expires: time.Unix(10, 0)}} {
		b := r.Append(nil)
		got, err := parseRecord(b)
		if err != nil {
			t.Fatalf("parseRecord(%q): %v", r.Key, err)
		}
		if !got.Same(r) || got.Key != r.Key || !got.Fetched.Equal(r.Fetched) || !got.Expires.Equal(r.Expires) || got.Age != r.Age {
			t.Errorf("round trip: got %+v, want %+v", got, r)
		}
		if !bytes.Equal(got.Append(nil), b) {
			t.Error("re-encoding differs")
		}
		if r.Pass {
			continue
		}
		if got.Header.Get("Content-Type") != "application/gzip" || len(got.Header.Values("X-Two")) != 2 {
			t.Errorf("headers: got %v", got.Header)
		}
		if got.ID() != r.ID() {
			t.Error("ID changed in the round trip")
		}
	}
}

func TestParseRecordRejects(t *testing.T) {
	good := sampleRecord().Append(nil)
	for n := range len(good) {
		if _, err := parseRecord(good[:n]); !errors.Is(err, errRecord) {
			t.Fatalf("truncated to %d bytes: err %v, want errRecord", n, err)
		}
	}
	bad := func(mut func(*Record)) []byte {
		r := sampleRecord()
		mut(r)
		return r.Append(nil)
	}
	cases := map[string][]byte{
		"trailing byte":  append(bytes.Clone(good), 0),
		"version":        append([]byte{9}, good[1:]...),
		"flags":          append([]byte{1, 0x80}, good[2:]...),
		"empty key":      bad(func(r *Record) { r.Key = "" }),
		"no validator":   bad(func(r *Record) { r.Validator = "" }),
		"negative size":  bad(func(r *Record) { r.Size = -1 }),
		"k zero":         bad(func(r *Record) { r.Layout.Params.K = 0 }),
		"tiny segments":  bad(func(r *Record) { r.Layout.SegmentSize = 1 }),
		"header newline": bad(func(r *Record) { r.Header.Set("X-Evil", "a\r\nSet-Cookie: x") }),
		"header name":    bad(func(r *Record) { r.Header["Bad Name"] = []string{"x"} }),
	}
	for name, b := range cases {
		if _, err := parseRecord(b); !errors.Is(err, errRecord) {
			t.Errorf("%s: err %v, want errRecord", name, err)
		}
	}
}

func TestFillRequestRejectsSegmentOutOfRange(t *testing.T) {
	r := sampleRecord()
	n := uint32(r.Layout.Segments(r.Size))
	if _, err := parseFillRequest((&fillRequest{Record: r, Segment: n - 1}).Append(nil)); err != nil {
		t.Fatalf("last segment: %v", err)
	}
	if _, err := parseFillRequest((&fillRequest{Record: r, Segment: n}).Append(nil)); !errors.Is(err, errRecord) {
		t.Fatalf("segment %d of %d: err %v, want errRecord", n, n, err)
	}
}

func FuzzParseRecord(f *testing.F) {
	f.Add(sampleRecord().Append(nil))
	f.Add((&Record{Key: "/p", Pass: true}).Append(nil))
	withStatus := sampleRecord()
	withStatus.Status = 404
	f.Add(withStatus.Append(nil))
	f.Add((&fillRequest{Record: sampleRecord(), Segment: 3}).Append(nil))
	f.Add([]byte{1, 0, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := parseRecord(b)
		if err == nil {
			if !bytes.Equal(r.Append(nil), b) {
				// Header order is canonical in the encoding; an input in
				// another order decodes fine but re-encodes sorted.
				r2, err := parseRecord(r.Append(nil))
				if err != nil || !r2.Same(r) || r2.Key != r.Key {
					t.Fatalf("re-encoding does not decode to the same record: %v", err)
				}
			}
		}
		if f, err := parseFillRequest(b); err == nil && int64(f.Segment) >= f.Record.Layout.Segments(f.Record.Size) {
			t.Fatalf("fill request for segment %d of %d accepted", f.Segment, f.Record.Layout.Segments(f.Record.Size))
		}
	})
}

func TestNewRecord(t *testing.T) {
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	date := now.Format(http.TimeFormat)
	lm := now.Add(-100 * time.Hour).Format(http.TimeFormat)
	base := func(kv ...string) http.Header {
		h := http.Header{"Date": {date}, "Etag": {`"v1"`}, "Content-Type": {"text/plain"}}
		for i := 0; i+1 < len(kv); i += 2 {
			h.Add(kv[i], kv[i+1])
		}
		return h
	}
	big := testLayout.SegmentSize + 1
	tests := []struct {
		name      string
		status    int
		h         http.Header
		size      int64
		pass      bool
		freshness time.Duration
	}{
		{"max-age", 200, base("Cache-Control", "public, max-age=60"), 10, false, 60 * time.Second},
		{"s-maxage wins", 200, base("Cache-Control", "max-age=60, s-maxage=5"), 10, false, 5 * time.Second},
		{"age counts", 200, base("Cache-Control", "max-age=60", "Age", "50"), 10, false, 10 * time.Second},
		{"expires", 200, base("Expires", now.Add(time.Hour).Format(http.TimeFormat)), 10, false, time.Hour},
		{"invalid expires is stale", 200, base("Expires", "0"), 10, false, 0},
		{"heuristic", 200, base("Last-Modified", lm), 10, false, 10 * time.Hour},
		{"no-cache stored but stale", 200, base("Cache-Control", "no-cache"), 10, false, 0},
		{"no-store", 200, base("Cache-Control", "no-store"), 10, true, 0},
		{"private", 200, base("Cache-Control", "private, max-age=60"), 10, true, 0},
		{"vary: the variant without the field is stored", 200, base("Vary", "Accept-Encoding", "Cache-Control", "max-age=60"), 10, false, 60 * time.Second},
		{"vary star", 200, base("Vary", "*"), 10, true, 0},
		{"set-cookie", 200, base("Set-Cookie", "a=b"), 10, true, 0},
		{"404", 404, base(), 10, true, 0},
		{"unknown size", 200, base(), -1, true, 0},
		{"no validator, several segments", 200, http.Header{"Cache-Control": {"max-age=60"}}, big, true, 0},
		{"no validator, one segment", 200, http.Header{"Cache-Control": {"max-age=60"}}, 10, false, 60 * time.Second},
		{"weak etag only", 200, http.Header{"Etag": {`W/"x"`}, "Cache-Control": {"max-age=60"}}, big, true, 0},
		{"unquoted etag", 200, http.Header{"Etag": {`abc123`}, "Cache-Control": {"max-age=60"}}, big, true, 0},
		{"unquoted etag, old date", 200, base("Etag", "abc", "Last-Modified", lm, "Cache-Control", "max-age=60"), 10, false, 60 * time.Second},
		{"date only, modified this second", 200, http.Header{"Date": {date}, "Last-Modified": {date}}, big, true, 0},
		{"header too long", 200, base("Link", strings.Repeat("x", maxRecordField+1)), 10, true, 0},
	}
	for _, tt := range tests {
		r := newRecord("/k", tt.status, tt.h, tt.size, validatorOf(tt.h), testLayout, now, 24*time.Hour)
		if r.Pass != tt.pass {
			t.Errorf("%s: pass %v, want %v", tt.name, r.Pass, tt.pass)
			continue
		}
		if tt.pass {
			continue
		}
		if got := r.Expires.Sub(now); got != tt.freshness {
			t.Errorf("%s: freshness %v, want %v", tt.name, got, tt.freshness)
		}
	}
	r := newRecord("/k", 200, base("Connection", "X-Hop", "X-Hop", "1", "Keep-Alive", "5", "Set-Cookie2", "x"), 10, `"v1"`, testLayout, now, time.Hour)
	for _, f := range []string{"X-Hop", "Keep-Alive", "Connection"} {
		if r.Header.Get(f) != "" {
			t.Errorf("stored %s", f)
		}
	}
	if r.Header.Get("Date") != date {
		t.Errorf("Date %q not stored as sent (%q): a cache passes the origin's Date on", r.Header.Get("Date"), date)
	}
	if r.Header.Get("Content-Type") != "text/plain" {
		t.Error("Content-Type not stored")
	}
}

// validatorOf picks the validator as the origin client does.
func validatorOf(h http.Header) string {
	lm, _ := http.ParseTime(h.Get("Last-Modified"))
	return (&origin.Info{Header: h, ETag: h.Get("Etag"), LastModified: lm}).Validator()
}
