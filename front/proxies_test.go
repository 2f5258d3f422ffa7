package front

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
)

func proxyServer(t testing.TB, trusted string) *Server {
	t.Helper()
	p, err := ParseTrustedProxies(trusted)
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{Handler: http.NotFoundHandler(), TrustedProxies: p})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestParseTrustedProxies(t *testing.T) {
	got, err := ParseTrustedProxies(" 10.0.0.0/8, 192.0.2.7,2001:db8::/32,::ffff:10.1.0.0/112 ,, ::1")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"10.0.0.0/8", "192.0.2.7/32", "2001:db8::/32", "10.1.0.0/16", "::1/128"}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i].String() != want[i] {
			t.Errorf("prefix %d: got %v, want %v", i, got[i], want[i])
		}
	}
	for _, bad := range []string{"10.0.0.0/33", "lb.example", "10.0.0.0/8,x"} {
		if _, err := ParseTrustedProxies(bad); err == nil || !strings.Contains(err.Error(), "trusted proxy") {
			t.Errorf("ParseTrustedProxies(%q) = %v, want a trusted proxy error", bad, err)
		}
	}
}

func TestClientAddr(t *testing.T) {
	s := proxyServer(t, "10.0.0.0/8,2001:db8::/32")
	for _, c := range []struct {
		name, peer string
		xff        []string
		fwd        []string
		want       string
	}{
		{"untrusted peer, no header", "192.0.2.1:5000", nil, nil, "192.0.2.1"},
		{"untrusted peer, spoofed XFF", "192.0.2.1:5000", []string{"198.51.100.9"}, nil, "192.0.2.1"},
		{"untrusted peer, spoofed Forwarded", "192.0.2.1:5000", nil, []string{"for=198.51.100.9"}, "192.0.2.1"},
		{"trusted peer, no header", "10.1.2.3:5000", nil, nil, "10.1.2.3"},
		{"trusted peer names its client", "10.1.2.3:5000", []string{"198.51.100.9"}, nil, "198.51.100.9"},
		{"client's own XFF ignored", "10.1.2.3:5000", []string{"203.0.113.5, 198.51.100.9"}, nil, "198.51.100.9"},
		{"two trusted proxies", "10.1.2.3:5000", []string{"203.0.113.5, 198.51.100.9, 10.9.9.9"}, nil, "198.51.100.9"},
		{"several XFF lines", "10.1.2.3:5000", []string{"203.0.113.5", "198.51.100.9 , 10.9.9.9"}, nil, "198.51.100.9"},
		{"every hop trusted", "10.1.2.3:5000", []string{"10.4.4.4, 10.9.9.9"}, nil, "10.4.4.4"},
		{"junk stops at the last trusted", "10.1.2.3:5000", []string{"198.51.100.9, unknown, 10.9.9.9"}, nil, "10.9.9.9"},
		{"empty XFF entry", "10.1.2.3:5000", []string{""}, nil, "10.1.2.3"},
		{"XFF with ports", "10.1.2.3:5000", []string{"198.51.100.9:443"}, nil, "198.51.100.9"},
		{"XFF IPv6", "[2001:db8::1]:5000", []string{"[2001:db9::5]:443"}, nil, "2001:db9::5"},
		{"XFF mapped IPv4", "[::ffff:10.1.2.3]:5000", []string{"::ffff:198.51.100.9"}, nil, "198.51.100.9"},
		{"Forwarded", "10.1.2.3:5000", nil, []string{`for=203.0.113.5;proto=https, For="198.51.100.9:80";by=10.1.2.3`}, "198.51.100.9"},
		{"Forwarded IPv6", "10.1.2.3:5000", nil, []string{`for="[2001:db9::5]:4711", for=10.2.2.2`}, "2001:db9::5"},
		{"Forwarded unknown", "10.1.2.3:5000", nil, []string{`for=198.51.100.9, for=unknown`}, "10.1.2.3"},
		{"Forwarded obfuscated", "10.1.2.3:5000", nil, []string{`for=_hidden`}, "10.1.2.3"},
		{"Forwarded without for", "10.1.2.3:5000", nil, []string{`proto=https`}, "10.1.2.3"},
		{"Forwarded quoted comma", "10.1.2.3:5000", nil, []string{`for="198.51.100.9,x", for=198.51.100.8`}, "198.51.100.8"},
		{"XFF preferred", "10.1.2.3:5000", []string{"198.51.100.9"}, []string{"for=203.0.113.5"}, "198.51.100.9"},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = c.peer
		for _, v := range c.xff {
			r.Header.Add("X-Forwarded-For", v)
		}
		for _, v := range c.fwd {
			r.Header.Add("Forwarded", v)
		}
		if got := s.clientAddr(r); got != c.want {
			t.Errorf("%s: got %q, want %q", c.name, got, c.want)
		}
	}
	// Without trusted proxies the headers mean nothing.
	r := httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = "10.1.2.3:5000"
	r.Header.Set("X-Forwarded-For", "198.51.100.9")
	if got := proxyServer(t, "").clientAddr(r); got != "10.1.2.3" {
		t.Errorf("no trusted proxies: got %q, want the peer", got)
	}
}

// FuzzClientAddr: whatever a trusted proxy passes on, the client address
// is the peer or an address that stands in the headers, never a trusted
// one unless nothing else is named, and never a panic.
func FuzzClientAddr(f *testing.F) {
	f.Add("198.51.100.9, 10.9.9.9", "")
	f.Add("", `for="[2001:db9::5]:4711";proto=https, for=10.2.2.2`)
	f.Add("unknown", `for="\"x"`)
	f.Add(" , ,", `for=";,"`)
	s := proxyServer(f, "10.0.0.0/8")
	f.Fuzz(func(t *testing.T, xff, fwd string) {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = "10.1.2.3:5000"
		if xff != "" {
			r.Header.Set("X-Forwarded-For", xff)
		}
		r.Header.Set("Forwarded", fwd)
		got := s.clientAddr(r)
		a, err := netip.ParseAddr(got)
		if err != nil {
			t.Fatalf("client %q is not an address", got)
		}
		if got != "10.1.2.3" && !strings.Contains(xff+fwd, strings.TrimPrefix(got, "::ffff:")) {
			// An address may be spelled differently in the header (a
			// mapped IPv4, leading zeros in IPv6): it must parse to it.
			found := false
			for _, h := range append(strings.Split(xff, ","), forwardedFor([]string{fwd})...) {
				if p, ok := parseHop(strings.TrimSpace(h)); ok && p == a {
					found = true
				}
			}
			if !found {
				t.Fatalf("client %q is neither the peer nor in the headers %q, %q", got, xff, fwd)
			}
		}
	})
}
