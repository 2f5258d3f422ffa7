package digest

import (
	"io"
	"net/http"
)

// Follow returns a RoundTripper that sends a request through next and,
// for a GET that when accepts, follows the redirects of its answer, up to
// five: to the request's own host through next, to any other through
// other, without the request's credentials and cookies (a presigned
// storage URL refuses them, and they are not its to see). The answer keeps
// the fields of the redirects that name the content (a hub's
// X-Linked-Etag and X-Linked-Size) and the request as its Request. A
// redirect to a location that is not http or https is returned as it came.
func Follow(next, other http.RoundTripper, when func(*http.Request) bool) http.RoundTripper {
	return roundTripFunc(func(req *http.Request) (*http.Response, error) {
		resp, err := next.RoundTrip(req)
		if err != nil || req.Method != http.MethodGet || !when(req) {
			return resp, err
		}
		var linked http.Header
		for hop := 0; hop < 5 && isRedirect(resp.StatusCode); hop++ {
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
			out := (&http.Request{Method: http.MethodGet, URL: loc, Header: req.Header.Clone(), Host: loc.Host}).WithContext(req.Context())
			rt := next
			if loc.Host != req.URL.Host {
				for _, f := range []string{"Authorization", "Cookie", "Proxy-Authorization"} {
					out.Header.Del(f)
				}
				rt = other
			}
			if resp, err = rt.RoundTrip(out); err != nil {
				return nil, err
			}
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

func isRedirect(code int) bool {
	switch code {
	case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther, http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		return true
	}
	return false
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
