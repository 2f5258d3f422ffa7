package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os/exec"
	"strings"
	"testing"
)

func TestParseOrigins(t *testing.T) {
	for _, tc := range []struct {
		in    string
		base  string
		sites map[string]string
		err   string
	}{
		{in: "http://127.0.0.1:9000", base: "http://127.0.0.1:9000"},
		{in: " https://o.internal/base ", base: "https://o.internal/base"},
		{in: "dl.example.com=http://10.0.0.5:9000,cdn.example.org=https://o2.internal",
			sites: map[string]string{"dl.example.com": "http://10.0.0.5:9000", "cdn.example.org": "https://o2.internal"}},
		{in: "A.test=http://a, *=http://d", sites: map[string]string{"a.test": "http://a", "*": "http://d"}},
		{in: "a.test=http://a", sites: map[string]string{"a.test": "http://a"}},
		{in: "", err: "required"},
		{in: "http://a,b.test=http://b", err: "pairs only"},
		{in: "a.test=http://a,a.test=http://b", err: "twice"},
		{in: "a.test=", err: "want host=URL"},
		{in: "=http://a", err: "want host=URL"},
	} {
		base, sites, err := parseOrigins(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("parseOrigins(%q): got %v, want an error containing %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || base != tc.base || fmt.Sprint(sites) != fmt.Sprint(tc.sites) {
			t.Errorf("parseOrigins(%q) = %q, %v, %v; want %q, %v", tc.in, base, sites, err, tc.base, tc.sites)
		}
	}
}

// TestE2ESeveralOrigins runs two origins, each with its own file under the
// same path, behind a fleet of three edges started with
// --origin a.test=...,b.test=...: each Host gets its own bytes from every
// edge, each origin sends its file about once, and an unknown Host gets 421
// and reaches no origin.
func TestE2ESeveralOrigins(t *testing.T) {
	shoalBinary(t)
	wwwA, wwwB := t.TempDir(), t.TempDir()
	objA := writeObject(t, wwwA, "pkg/release.bin", 3<<20+1234, 11)
	objB := writeObject(t, wwwB, "pkg/release.bin", 2<<20+99, 12)
	proxyA := startProxy(t, startOrigin(t, wwwA).url)
	proxyB := startProxy(t, startOrigin(t, wwwB).url)
	var peers []string
	for range 3 {
		peers = append(peers, freeUDP(t))
	}
	tlsDir := fleetTLS(t)
	var edges []*edgeProc
	for i, peer := range peers {
		edges = append(edges, startEdge(t, edgeSpec{
			name: fmt.Sprintf("edge%d", i+1), origin: "a.test=" + proxyA.url + ",B.test=" + proxyB.url,
			tlsDir: tlsDir, peer: peer, peers: peers,
		}))
	}
	for _, e := range edges {
		e.waitReady(t)
	}
	c := newClient()
	get := func(e *edgeProc, method, host string) (*http.Response, string, int64) {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), method, e.url+"/pkg/release.bin", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = host
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("%s Host %s via %s: %v", method, host, e.name, err)
		}
		defer resp.Body.Close()
		h := sha256.New()
		n, err := io.Copy(h, resp.Body)
		if err != nil {
			t.Fatalf("%s Host %s via %s: reading the body after %d bytes: %v", method, host, e.name, n, err)
		}
		return resp, hex.EncodeToString(h.Sum(nil)), n
	}
	for _, tc := range []struct {
		host string
		obj  object
	}{{"a.test", objA}, {"b.test", objB}, {"A.TEST:80", objA}} {
		for _, e := range edges {
			resp, sum, n := get(e, http.MethodGet, tc.host)
			checkWhole(t, e.name+" Host "+tc.host, tc.obj, resp, sum, n)
		}
	}
	for _, p := range []struct {
		name  string
		proxy *countingProxy
		size  int64
	}{{"a", proxyA, objA.size}, {"b", proxyB, objB.size}} {
		got := p.proxy.bytes.Load()
		t.Logf("origin %s egress: %d bytes for a %s object served 3 times (%.4f×)", p.name, got, mibs(p.size), float64(got)/float64(p.size))
		if got < p.size || float64(got) > 1.05*float64(p.size) {
			t.Errorf("origin %s sent %d bytes for its %d-byte object, want about once", p.name, got, p.size)
		}
	}
	nA, nB := proxyA.nreqs(), proxyB.nreqs()
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost} {
		resp, _, _ := get(edges[1], m, "c.test")
		if resp.StatusCode != http.StatusMisdirectedRequest {
			t.Errorf("%s Host c.test: status %s, want 421", m, resp.Status)
		}
	}
	if a, b := proxyA.requests(nA), proxyB.requests(nB); len(a)+len(b) != 0 {
		t.Errorf("requests for an unknown host reached the origins: a %q, b %q", a, b)
	}

	// Purge a's URL through the admin API: b is not asked again.
	form := url.Values{"url": {"http://a.test/pkg/release.bin"}}
	resp, err := http.PostForm(edges[0].admin+"/admin/purge", form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("purge: status %s", resp.Status)
	}
	nA, nB = proxyA.nreqs(), proxyB.nreqs()
	for _, tc := range []struct {
		host string
		obj  object
	}{{"a.test", objA}, {"b.test", objB}} {
		resp, sum, n := get(edges[2], http.MethodGet, tc.host)
		checkWhole(t, "edge3 after the purge, Host "+tc.host, tc.obj, resp, sum, n)
	}
	if a, b := proxyA.requests(nA), proxyB.requests(nB); len(a) == 0 || len(b) != 0 {
		t.Errorf("after purging a's URL: origin a got %q (want a lookup), b got %q (want none)", a, b)
	}
}

// TestE2EOriginFlagErrors: a malformed --origin stops the edge with a
// message saying what is wrong.
func TestE2EOriginFlagErrors(t *testing.T) {
	shoalBinary(t)
	for _, tc := range []struct{ flag, want string }{
		{"http://127.0.0.1:9,b.test=http://127.0.0.1:9", "pairs only"},
		{"a.test=ftp://127.0.0.1:9", "scheme"},
	} {
		out, err := runShoal("edge", "--origin", tc.flag, "--listen", freeTCP(t), "--peer-listen", freeUDP(t),
			"--admin-listen", freeTCP(t), "--tls-dir", fleetTLS(t), "--log-format", "text")
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() == 0 || !bytes.Contains(out, []byte(tc.want)) {
			t.Errorf("--origin %q: err %v, want a non-zero exit saying %q; output:\n%s", tc.flag, err, tc.want, out)
		}
	}
}
