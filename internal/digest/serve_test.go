package digest

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/shoalcdn/shoal/erasure"
)

func TestWriter(t *testing.T) {
	content := make([]byte, 10000)
	for i := range content {
		content[i] = byte(i * 31)
	}
	sum := sha256.Sum256(content)
	h := hex.EncodeToString(sum[:])
	write := func(body []byte) (rec *httptest.ResponseRecorder, hashes []erasure.Hash, failed, aborted bool) {
		rec = httptest.NewRecorder()
		w := NewWriter(rec, NewVerifier("sha256", h), 4096, func(hs []erasure.Hash) { hashes = hs }, func() { failed = true })
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(http.StatusOK)
		for i := 0; i < len(body); i += 3000 {
			w.Write(body[i:min(i+3000, len(body))])
		}
		func() {
			defer func() { aborted = recover() == http.ErrAbortHandler }()
			w.Finish()
		}()
		return
	}
	rec, hashes, failed, aborted := write(content)
	if string(rec.Body.Bytes()) != string(content) || failed || aborted {
		t.Fatalf("the content: %d bytes sent, failed %v, aborted %v", rec.Body.Len(), failed, aborted)
	}
	want := []erasure.Hash{erasure.Sum(content[:4096]), erasure.Sum(content[4096:8192]), erasure.Sum(content[8192:])}
	if len(hashes) != 3 || hashes[0] != want[0] || hashes[1] != want[1] || hashes[2] != want[2] {
		t.Fatalf("segment hashes %v, want %v", hashes, want)
	}
	other := append([]byte(nil), content...)
	other[9999] ^= 1
	rec, hashes, failed, aborted = write(other)
	if rec.Body.Len() != len(other)-1 || !failed || !aborted || hashes != nil {
		t.Fatalf("other bytes: %d of %d sent, failed %v, aborted %v", rec.Body.Len(), len(other), failed, aborted)
	}
	// Cut short: not the content's fault, but its last byte is not sent.
	failed, aborted = false, false
	w := NewWriter(httptest.NewRecorder(), NewVerifier("sha256", h), 4096, nil, func() { failed = true })
	w.Header().Set("Content-Length", strconv.Itoa(len(content)))
	w.Write(content[:5000])
	func() {
		defer func() { aborted = recover() == http.ErrAbortHandler }()
		w.Finish()
	}()
	if !aborted || failed {
		t.Fatalf("a short body: aborted %v, failed %v (want aborted, not failed)", aborted, failed)
	}
	// An empty 200 for content that is not empty is cut too.
	failed, aborted = false, false
	w = NewWriter(httptest.NewRecorder(), NewVerifier("sha256", h), 4096, nil, func() { failed = true })
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusOK)
	func() {
		defer func() { aborted = recover() == http.ErrAbortHandler }()
		w.Finish()
	}()
	if !aborted || !failed {
		t.Fatalf("an empty 200: aborted %v, failed %v", aborted, failed)
	}
	// Another status passes through unchecked.
	r := httptest.NewRecorder()
	w = NewWriter(r, NewVerifier("sha256", h), 4096, nil, nil)
	w.WriteHeader(http.StatusNotFound)
	w.Write([]byte("not found"))
	w.Finish()
	if r.Body.String() != "not found" {
		t.Fatalf("a 404's body %q", r.Body.String())
	}
}

func TestFollow(t *testing.T) {
	var sawAuth string
	storage := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sawAuth = r.Header.Get("Authorization")
		io.WriteString(w, "the content")
	}))
	defer storage.Close()
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Linked-Etag", `"abc"`)
		http.Redirect(w, r, storage.URL+"/blob?sig=1", http.StatusFound)
	}))
	defer origin.Close()
	rt := Follow(http.DefaultTransport, http.DefaultTransport, func(r *http.Request) bool { return r.Header.Get("X-Follow") != "" }, nil)
	for _, follow := range []bool{true, false} {
		req, _ := http.NewRequest(http.MethodGet, origin.URL+"/file", nil)
		req.Header.Set("Authorization", "Bearer secret")
		if follow {
			req.Header.Set("X-Follow", "1")
		}
		resp, err := rt.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		switch {
		case follow && (resp.StatusCode != 200 || string(b) != "the content" || resp.Header.Get("X-Linked-Etag") != `"abc"` || resp.Request != req):
			t.Fatalf("followed: %d %q, X-Linked-Etag %q", resp.StatusCode, b, resp.Header.Get("X-Linked-Etag"))
		case follow && sawAuth != "":
			t.Fatalf("the credentials went to another host: %q", sawAuth)
		case !follow && resp.StatusCode != http.StatusFound:
			t.Fatalf("not to be followed: %d", resp.StatusCode)
		}
	}
}

func TestAnswers(t *testing.T) {
	a := NewAnswers(16, time.Minute)
	asks := 0
	head := func(status int) func() (Answer, error) {
		return func() (Answer, error) {
			asks++
			return AnswerOf(status, http.Header{}), nil
		}
	}
	if ans, cached, _ := a.Ask("Bearer x", "/f", true, head(200)); !ans.Allowed || cached {
		t.Fatal("a 200 is a yes, asked")
	}
	if ans, cached, _ := a.Ask("Bearer x", "/f", true, head(401)); !ans.Allowed || !cached {
		t.Fatal("a yes is remembered")
	}
	if ans, _, _ := a.Ask("Bearer y", "/f", true, head(401)); ans.Allowed {
		t.Fatal("another credential is asked for itself")
	}
	if _, cached, _ := a.Ask("Bearer y", "/f", true, head(200)); cached {
		t.Fatal("a no is not remembered")
	}
	if _, cached, _ := a.Ask("Bearer z", "/branch", false, head(200)); cached {
		t.Fatal("asked")
	}
	if _, cached, _ := a.Ask("Bearer z", "/branch", false, head(200)); cached {
		t.Fatal("a yes not to remember was remembered")
	}
	if asks != 5 {
		t.Fatalf("%d asks, want 5", asks)
	}
}

func TestNoDeeper(t *testing.T) {
	hosts := map[string]string{"hub.example": "93.184.216.34", "cdn.example": "151.101.1.1", "minio.internal": "10.0.0.9", "meta.example": "169.254.169.254"}
	lookup := func(host string) ([]netip.Addr, error) {
		a, ok := hosts[host]
		if !ok {
			return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
		}
		return []netip.Addr{netip.MustParseAddr(a)}, nil
	}
	allow := NoDeeper(lookup)
	for _, tc := range []struct {
		from, to string
		ok       bool
	}{
		{"https://hub.example/x", "https://cdn.example/blob", true},
		{"https://hub.example/x", "http://127.0.0.1:8080/admin", false},
		{"https://hub.example/x", "http://meta.example/latest/meta-data", false},
		{"https://hub.example/x", "http://minio.internal/b", false},
		{"https://hub.example/x", "http://[::1]/b", false},
		{"http://10.0.0.5:5000/v2/x", "http://minio.internal/b", true},
		{"http://127.0.0.1:5000/v2/x", "http://127.0.0.1:9000/b", true},
		{"https://hub.example/x", "https://nowhere.example/b", false},
		{"https://hub.example/x", "http://[64:ff9b::a9fe:a9fe]/latest", false},
		{"https://hub.example/x", "http://0.1.2.3/x", false},
	} {
		req, _ := http.NewRequest(http.MethodGet, tc.from, nil)
		to, _ := url.Parse(tc.to)
		if err := allow(req, to); (err == nil) != tc.ok {
			t.Errorf("%s → %s: %v, want allowed %v", tc.from, tc.to, err, tc.ok)
		}
	}
}
