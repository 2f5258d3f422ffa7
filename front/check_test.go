package front

import (
	"net/url"
	"strings"
	"testing"
)

func TestCheckPath(t *testing.T) {
	for _, p := range []string{"/", "/a/b.bin", "/a%20b", "/a%2Ab", "/v1.2/..x/x..", "/%7Euser/.well-known/x", "/a//b", ""} {
		if err := CheckPath(p); err != nil {
			t.Errorf("CheckPath(%q) = %v, want nil", p, err)
		}
	}
	for _, p := range []string{
		"a", "/..", "/a/../b", "/a/./b", "/a/.", "/%2e%2E/x", "/a/%2e/b", "/.%2e/",
		"/a%2fb", "/a%2Fb", "/a%5cb", "/a\\b", "/a%00", "/a\x00", "/a%0A", "/a\x7f", "/a%7F", "/a%", "/a%2", "/a%g0",
	} {
		if err := CheckPath(p); err == nil {
			t.Errorf("CheckPath(%q) = nil, want an error", p)
		}
	}
}

// FuzzCheckPath: a path CheckPath lets through decodes to the same
// segments it has, with no dot segment, separator or control byte hidden
// in an escape.
func FuzzCheckPath(f *testing.F) {
	for _, p := range []string{"/a/b", "/a/../b", "/%2e%2e", "/a%2Fb", "/a%00", "/%41%42/c.txt", "/x%"} {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, p string) {
		if CheckPath(p) != nil {
			return
		}
		if p == "" {
			return
		}
		dec, err := url.PathUnescape(p)
		if err != nil {
			t.Fatalf("CheckPath(%q) passed a path that does not decode: %v", p, err)
		}
		if strings.Count(dec, "/") != strings.Count(p, "/") {
			t.Fatalf("CheckPath(%q) passed a path whose decoding %q has other separators", p, dec)
		}
		for seg := range strings.SplitSeq(dec, "/") {
			if seg == "." || seg == ".." {
				t.Fatalf("CheckPath(%q) passed the dot segment %q", p, seg)
			}
		}
		for _, c := range []byte(dec) {
			if c < 0x20 || c == 0x7f || c == '\\' {
				t.Fatalf("CheckPath(%q) passed the byte %#x", p, c)
			}
		}
	})
}

func TestDropDotSegments(t *testing.T) {
	for in, want := range map[string]string{
		"/a/b":               "",
		"/a/./b":             "/a/b",
		"/./a":               "/a",
		"/a/.":               "/a/",
		"/a/././b/./":        "/a/b/",
		"/debian/./Packages": "/debian/Packages",
		"/a/.b/c":            "",
		"/a/../b":            "",
		"/a/%2e/b":           "",
	} {
		got, ok := dropDotSegments(in)
		if want == "" {
			if ok || got != in {
				t.Errorf("dropDotSegments(%q) = %q, %v; want it unchanged", in, got, ok)
			}
			continue
		}
		if !ok || got != want {
			t.Errorf("dropDotSegments(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
}
