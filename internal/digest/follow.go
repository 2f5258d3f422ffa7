package digest

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
)

// Follow returns a RoundTripper that sends a request through next and,
// for a GET that when accepts, follows the redirects of its answer, up to
// five: to the request's own host through next, to any other through
// other, without the request's credentials and cookies (a presigned
// storage URL refuses them, and they are not its to see). The answer keeps
// the fields of the redirects that name the content (a hub's
// X-Linked-Etag and X-Linked-Size) and the request as its Request. A
// redirect to a location that is not http or https is returned as it came.
//
// Before each hop, allow (nil: any) may refuse the location (an origin
// must not send the edge into a network it could not reach itself); a
// refused hop, or a last hop that does not end in a 2xx, is answered 502,
// never relayed: its body is not the content, and not the origin's.
// Only the fields of safeFields cross to another host.
func Follow(next, other http.RoundTripper, when func(*http.Request) bool, allow func(from *http.Request, to *url.URL) error) http.RoundTripper {
	return roundTripFunc(func(req *http.Request) (*http.Response, error) {
		resp, err := next.RoundTrip(req)
		if err != nil || req.Method != http.MethodGet || !when(req) {
			return resp, err
		}
		var linked http.Header
		hop := 0
		for ; hop < 5 && isRedirect(resp.StatusCode); hop++ {
			loc, lerr := resp.Location()
			if lerr != nil || loc.Scheme != "http" && loc.Scheme != "https" {
				return resp, nil
			}
			for _, f := range []string{"X-Linked-Etag", "X-Linked-Size"} {
				if v := resp.Header.Get(f); v != "" {
					if linked == nil {
						linked = http.Header{}
					}
					linked.Set(f, v)
				}
			}
			io.CopyN(io.Discard, resp.Body, 64<<10)
			resp.Body.Close()
			if allow != nil && (loc.Host != req.URL.Host || loc.Scheme != req.URL.Scheme) {
				if err := allow(req, loc); err != nil {
					return badGateway(req, "redirect refused: "+err.Error()), nil
				}
			}
			out := (&http.Request{Method: http.MethodGet, URL: loc, Header: req.Header.Clone(), Host: loc.Host}).WithContext(context.WithValue(req.Context(), originKey{}, req.URL.Hostname()))
			rt := next
			if loc.Host != req.URL.Host || loc.Scheme != req.URL.Scheme {
				out.Header = http.Header{}
				for _, f := range safeFields {
					if vs := req.Header.Values(f); len(vs) > 0 {
						out.Header[f] = vs
					}
				}
				rt = other
			}
			if resp, err = rt.RoundTrip(out); err != nil {
				return nil, err
			}
		}
		if hop > 0 && (isRedirect(resp.StatusCode) || resp.StatusCode < 200 || resp.StatusCode > 299) {
			// The origin's own answers (401, 404, 429, 304) go back as they
			// came; storage's are not the origin's to relay.
			io.CopyN(io.Discard, resp.Body, 64<<10)
			resp.Body.Close()
			return badGateway(req, "redirected to "+resp.Status), nil
		}
		for f, vs := range linked {
			if resp.Header.Get(f) == "" {
				resp.Header[f] = vs
			}
		}
		resp.Request = req
		return resp, nil
	})
}

// safeFields are the request fields a redirect to another host or scheme
// keeps: none that could carry a credential.
var safeFields = []string{"Accept", "Accept-Encoding", "User-Agent", "Traceparent", "Tracestate"}

// badGateway is the answer to a content fill whose redirects went wrong.
func badGateway(req *http.Request, why string) *http.Response {
	body := "the origin's redirect did not lead to the content: " + why + "\n"
	return &http.Response{
		Status: "502 Bad Gateway", StatusCode: http.StatusBadGateway, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:        http.Header{"Content-Type": {"text/plain; charset=utf-8"}},
		Body:          io.NopCloser(strings.NewReader(body)),
		ContentLength: int64(len(body)), Request: req,
	}
}

func isRedirect(code int) bool {
	switch code {
	case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther, http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		return true
	}
	return false
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// originKey holds, in a followed hop's context, the host name of the
// origin the request went to (OriginHost).
type originKey struct{}

// OriginHost returns the host of the origin whose redirect a request
// follows, for a dialer that checks where it connects (NoDeeperDial).
func OriginHost(ctx context.Context) (string, bool) {
	h, ok := ctx.Value(originKey{}).(string)
	return h, ok
}

// NoDeeperDial returns a net.Dialer ControlContext that refuses, for a
// followed hop, an address more private than its origin's: the check on
// the address actually dialled, which no DNS answer between NoDeeper's
// look-up and the dial can dodge.
func NoDeeperDial(lookup func(host string) ([]netip.Addr, error)) func(ctx context.Context, network, address string, c syscall.RawConn) error {
	return func(ctx context.Context, network, address string, c syscall.RawConn) error {
		origin, ok := OriginHost(ctx)
		if !ok {
			return nil
		}
		host, _, err := net.SplitHostPort(address)
		if err != nil {
			return err
		}
		a, err := netip.ParseAddr(host)
		if err != nil {
			return err
		}
		o, err := HostReach(lookup, origin)
		if err != nil {
			return err
		}
		if Reach(a) > o {
			return &net.AddrError{Err: "an address more private than the origin", Addr: address}
		}
		return nil
	}
}

// Reach is how private an address is: 0 public, 1 private (RFC 1918,
// unique local, shared address space), 2 link-local (cloud metadata
// services live there), 3 loopback or unspecified.
func Reach(a netip.Addr) int {
	a = a.Unmap()
	if nat64.Contains(a) { // an IPv4 address in IPv6 clothes
		b := a.As16()
		a = netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]})
	}
	switch {
	case a.IsLoopback() || a.IsUnspecified() || thisNet.Contains(a):
		return 3
	case a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast():
		return 2
	case a.IsPrivate() || sharedSpace.Contains(a) || siteLocal.Contains(a):
		return 1
	}
	return 0
}

var (
	nat64       = netip.MustParsePrefix("64:ff9b::/96")
	thisNet     = netip.MustParsePrefix("0.0.0.0/8")
	sharedSpace = netip.MustParsePrefix("100.64.0.0/10")
	siteLocal   = netip.MustParsePrefix("fec0::/10")
)

// HostReach is the most private Reach of the addresses host (a name or
// an IP) resolves to.
func HostReach(lookup func(host string) ([]netip.Addr, error), host string) (int, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		return Reach(a), nil
	}
	addrs, err := lookup(host)
	if err != nil {
		return 0, err
	}
	most := 0
	for _, a := range addrs {
		most = max(most, Reach(a))
	}
	return most, nil
}

// NoDeeper returns an allow for Follow that refuses a location more
// private than the origin the request went to (a public origin may not
// send the edge to a private, link-local or loopback address; an origin
// on a private network may send it anywhere on one).
func NoDeeper(lookup func(host string) ([]netip.Addr, error)) func(from *http.Request, to *url.URL) error {
	return func(from *http.Request, to *url.URL) error {
		o, err := HostReach(lookup, from.URL.Hostname())
		if err != nil {
			return err
		}
		l, err := HostReach(lookup, to.Hostname())
		if err != nil {
			return err
		}
		if l > o {
			return &net.AddrError{Err: "a location more private than the origin", Addr: to.Host}
		}
		return nil
	}
}
