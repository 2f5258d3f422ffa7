package edge

import (
	"encoding/json"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// The admin API's request bodies, fuzzed: POST /admin/prefetch (JSON or a
// form, parsePrefetchRequest) and POST /admin/purge (a form, purgeTarget).
// Whatever the body, the parse never panics; what it accepts is normalised
// (parsing the result again changes nothing, and the JSON and form
// spellings of it agree); what it refuses comes with an error that says
// which part is wrong.

// prefetchErrPrefixes are how parsePrefetchRequest's errors begin: each
// names the part of the request that is wrong.
var prefetchErrPrefixes = []string{"body: ", "form: ", "warm ", "no URLs", "url "}

func saysWhatIsWrong(msg string) bool {
	if slices.ContainsFunc(prefetchErrPrefixes, func(p string) bool { return strings.HasPrefix(msg, p) }) {
		return true
	}
	n := strings.TrimLeft(msg, "0123456789")
	return len(n) < len(msg) && strings.HasPrefix(n, " URLs, at most")
}

func parsePrefetchBody(t *testing.T, contentType, body string) (*PrefetchRequest, error) {
	t.Helper()
	r := httptest.NewRequest("POST", "/admin/prefetch", strings.NewReader(body))
	if contentType != "" {
		r.Header.Set("Content-Type", contentType)
	}
	return parsePrefetchRequest(r)
}

func FuzzPrefetchRequest(f *testing.F) {
	f.Add(true, `{"urls": ["/r/app.tar"]}`)
	f.Add(true, `{"urls": ["/a", "http://origin.example/b?x=1", "//h/c"], "warm": "all"}`)
	f.Add(true, `{"urls": ["/a"], "warm": "some"}`)
	f.Add(true, `{"urls": []}`)
	f.Add(true, `{"urls": ["ftp://h/a"]}`)
	f.Add(true, `{"urls": ["/a\u0000b"]}`)
	f.Add(true, `{"urls": ["/a"], "extra": 1}`)
	f.Add(true, `{"urls": ["/a"]} {"urls": ["/b"]}`)
	f.Add(true, `{"urls": "/a"}`)
	f.Add(true, `[`)
	f.Add(false, "url=%2Fa&url=http%3A%2F%2Fh%2Fb%3Fq&warm=all")
	f.Add(false, "url=a")
	f.Add(false, "url=%ZZ")
	f.Add(false, "")
	f.Fuzz(func(t *testing.T, isJSON bool, body string) {
		ct := "application/x-www-form-urlencoded"
		if isJSON {
			ct = "application/json"
		}
		req, err := parsePrefetchBody(t, ct, body)
		if err != nil {
			if req != nil {
				t.Fatalf("error %q with a request %+v", err, req)
			}
			msg := err.Error()
			if !saysWhatIsWrong(msg) {
				t.Fatalf("error %q does not say which part of the request is wrong", msg)
			}
			return
		}
		if req.Warm != "" && req.Warm != "all" {
			t.Fatalf("accepted warm %q", req.Warm)
		}
		if n := len(req.URLs); n == 0 || n > prefetchMaxURLs {
			t.Fatalf("accepted %d URLs", n)
		}
		for _, k := range req.URLs {
			if !strings.HasPrefix(k, "/") {
				t.Fatalf("accepted key %q does not start with /", k)
			}
			if i := strings.IndexFunc(k, func(r rune) bool { return r < 0x20 || r == 0x7f }); i >= 0 {
				t.Fatalf("accepted key %q holds a control character at %d", k, i)
			}
			again, err := prefetchKey(k)
			if err != nil || again != k {
				t.Fatalf("key %q is not normalised: prefetchKey gives %q, %v", k, again, err)
			}
		}
		// The normalised request, sent again as JSON and as a form, is
		// accepted as it is.
		js, err := json.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		form := url.Values{"url": req.URLs}
		if req.Warm != "" {
			form.Set("warm", req.Warm)
		}
		for _, again := range []struct{ ct, body string }{
			{"application/json", string(js)},
			{"application/x-www-form-urlencoded", form.Encode()},
		} {
			got, err := parsePrefetchBody(t, again.ct, again.body)
			if err != nil {
				t.Fatalf("%s %q: %v, accepted before as %+v", again.ct, again.body, err, req)
			}
			if got.Warm != req.Warm || !slices.Equal(got.URLs, req.URLs) {
				t.Fatalf("%s %q: got %+v, want %+v", again.ct, again.body, got, req)
			}
		}
	})
}

// FuzzPurgeForm: the form of POST /admin/purge (url= or prefix=) read as
// servePurge reads it, then purgeTarget.
func FuzzPurgeForm(f *testing.F) {
	f.Add("/r/app.tar", "")
	f.Add("http://origin.example/r/app.tar?v=2", "")
	f.Add("", "/r/")
	f.Add("", "https://origin.example/r/")
	f.Add("/a", "/b")
	f.Add("", "")
	f.Add("r/app.tar", "")
	f.Add("", "r/")
	f.Add("http://h", "")
	f.Add("%zz", "")
	f.Add("/a%2Fb?x=%00", "")
	f.Fuzz(func(t *testing.T, rawURL, rawPrefix string) {
		form := url.Values{}
		if rawURL != "" {
			form.Set("url", rawURL)
		}
		if rawPrefix != "" {
			form.Set("prefix", rawPrefix)
		}
		r := httptest.NewRequest("POST", "/admin/purge", strings.NewReader(form.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		gotURL, gotPrefix := r.FormValue("url"), r.FormValue("prefix")
		if gotURL != rawURL || gotPrefix != rawPrefix {
			t.Fatalf("form %q read back as url=%q prefix=%q", form.Encode(), gotURL, gotPrefix)
		}
		target, prefix, err := purgeTarget(gotURL, gotPrefix)
		if err != nil {
			if target != "" || prefix {
				t.Fatalf("error %q with target %q, prefix %v", err, target, prefix)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "url") && !strings.HasPrefix(msg, "prefix") && !strings.HasPrefix(msg, "give url= or prefix=") {
				t.Fatalf("error %q does not say which parameter is wrong", msg)
			}
			if rawURL != "" && rawPrefix != "" || rawURL == "" && rawPrefix == "" {
				return
			}
			if rawURL != "" && strings.HasPrefix(rawURL, "/") && !strings.HasPrefix(rawURL, "//") && !strings.HasPrefix(msg, "url: ") {
				t.Fatalf("request-target %q refused for another reason than parsing: %v", rawURL, err)
			}
			if rawPrefix != "" && strings.HasPrefix(rawPrefix, "/") {
				t.Fatalf("prefix %q starting with / refused: %v", rawPrefix, err)
			}
			return
		}
		if rawURL != "" && rawPrefix != "" || rawURL == "" && rawPrefix == "" {
			t.Fatalf("url=%q prefix=%q accepted", rawURL, rawPrefix)
		}
		if prefix != (rawPrefix != "") {
			t.Fatalf("url=%q prefix=%q: prefix %v", rawURL, rawPrefix, prefix)
		}
		if !strings.HasPrefix(target, "/") {
			t.Fatalf("target %q does not start with /", target)
		}
		if prefix {
			// A prefix is kept as given, or is the path and query of the
			// absolute URL given; either way, given again it stays.
			if again, p, err := purgeTarget("", target); err != nil || again != target || !p {
				t.Fatalf("prefix %q from %q: again %q, %v, %v", target, rawPrefix, again, p, err)
			}
			return
		}
		u, _ := url.Parse(rawURL)
		if u.Scheme == "" && u.Host == "" && target != rawURL {
			t.Fatalf("request-target %q not kept byte for byte: %q", rawURL, target)
		}
		// The key of an object is its request-target: purging it by that
		// request-target purges the same key, unless the target reads as
		// a network-path reference ("//host/...").
		if !strings.HasPrefix(target, "//") {
			if again, _, err := purgeTarget(target, ""); err != nil || again != target {
				t.Fatalf("target %q from %q: again %q, %v", target, rawURL, again, err)
			}
		}
	})
}
