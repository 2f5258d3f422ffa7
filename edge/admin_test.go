package edge

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestAdminPolicy: one authorization policy for the admin listener. An
// endpoint that changes the fleet's state (purge, prefetch) needs the
// token, or, when no token is set, a loopback client; a read-only one
// (/metrics) needs the token when one is set and is open otherwise. The
// client's address is the connection's (RemoteAddr), never a header.
func TestAdminPolicy(t *testing.T) {
	o := newTestOrigin(t, "public, max-age=600")
	c := newCluster(t, o, 1, nil)
	e := c.edges[0]

	// Each request is one the handler refuses as malformed (or unknown),
	// so that getting its own answer shows the guard let it through, and
	// nothing is purged or fetched.
	endpoints := []struct {
		method, path string
		changes      bool // changes the fleet's state
		handled      int  // the handler's own answer
	}{
		{"POST", "/admin/purge", true, http.StatusBadRequest},
		{"POST", "/admin/prefetch", true, http.StatusBadRequest},
		{"GET", "/admin/prefetch/none", true, http.StatusNotFound}, // guarded like prefetch, as before
		{"GET", "/metrics", false, http.StatusOK},
	}
	const (
		handled = 0 // the handler's own answer
		denied  = http.StatusForbidden
		unauth  = http.StatusUnauthorized
	)
	cases := []struct {
		name                 string
		token, remote        string
		auth                 string // Authorization field
		wantChange, wantRead int
	}{
		{"no token, loopback", "", "127.0.0.1:40000", "", handled, handled},
		{"no token, IPv6 loopback", "", "[::1]:40000", "", handled, handled},
		{"no token, IPv4-mapped loopback", "", "[::ffff:127.0.0.1]:40000", "", handled, handled},
		{"no token, other host", "", "192.0.2.7:40000", "", denied, handled},
		{"no token, other host, IPv6", "", "[2001:db8::7]:40000", "", denied, handled},
		{"no token, other host claiming a token", "", "192.0.2.7:40000", "Bearer tok", denied, handled},
		{"no token, unparsable address", "", "somewhere", "", denied, handled},
		{"token, loopback, none sent", "tok", "127.0.0.1:40000", "", unauth, unauth},
		{"token, loopback, wrong one", "tok", "127.0.0.1:40000", "Bearer nope", unauth, unauth},
		{"token, loopback, sent", "tok", "127.0.0.1:40000", "Bearer tok", handled, handled},
		{"token, other host, none sent", "tok", "192.0.2.7:40000", "", unauth, unauth},
		{"token, other host, sent", "tok", "192.0.2.7:40000", "Bearer tok", handled, handled},
	}
	for _, tc := range cases {
		h := e.Admin(tc.token)
		for _, ep := range endpoints {
			r := httptest.NewRequest(ep.method, ep.path, nil)
			r.RemoteAddr = tc.remote
			if tc.auth != "" {
				r.Header.Set("Authorization", tc.auth)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			want := tc.wantRead
			if ep.changes {
				want = tc.wantChange
			}
			if want == handled {
				want = ep.handled
			}
			if rec.Code != want {
				t.Errorf("%s: %s %s: status %d, want %d (%s)", tc.name, ep.method, ep.path, rec.Code, want, rec.Body)
			}
		}
	}
}
