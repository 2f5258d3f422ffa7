package digest

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	h := strings.Repeat("ab", 32)
	for _, tc := range []struct {
		target string
		ok     bool
		want   Ref
	}{
		{"/v2/library/alpine/blobs/sha256:" + h, true, Ref{"library/alpine", Blob, "sha256", h}},
		{"/v2/a/manifests/sha256:" + h + "?ns=docker.io", true, Ref{"a", Manifest, "sha256", h}},
		{"/v2/a/b/c/blobs/sha512:" + strings.Repeat("0f", 64), true, Ref{"a/b/c", Blob, "sha512", strings.Repeat("0f", 64)}},
		{"/v2/a/manifests/latest", false, Ref{}},                   // a tag
		{"/v2/a/blobs/uploads/", false, Ref{}},                     // an upload
		{"/v2/a/blobs/sha256:" + strings.ToUpper(h), false, Ref{}}, // upper-case hex
		{"/v2/a/blobs/sha256:" + h[:63], false, Ref{}},             // short
		{"/v2/a/blobs/md5:" + h[:32], false, Ref{}},                // unknown algorithm
		{"/v2/_/blobs/sha256:" + h, false, Ref{}},                  // the fleet's own keys
		{"/v2/A/blobs/sha256:" + h, false, Ref{}},                  // upper-case name
		{"/v2/a//b/blobs/sha256:" + h, false, Ref{}},               // empty component
		{"/v2/blobs/sha256:" + h, false, Ref{}},                    // no repository
		{"/v3/a/blobs/sha256:" + h, false, Ref{}},                  // not the API
		{"/v2/a/tags/list", false, Ref{}},
	} {
		got, ok := Parse(tc.target)
		if ok != tc.ok || got != tc.want {
			t.Errorf("Parse(%q) = %+v, %v; want %+v, %v", tc.target, got, ok, tc.want, tc.ok)
		}
	}
	r, _ := Parse("/v2/x/y/blobs/sha256:" + h + "?ns=reg")
	r2, _ := Parse("/v2/other/blobs/sha256:" + h)
	if r.Key() != r2.Key() || !IsKey(r.Key()) || IsKey("/v2/x/y/blobs/sha256:"+h) {
		t.Fatalf("keys %q and %q: the same digest must have one key, in the reserved name space", r.Key(), r2.Key())
	}
	if _, ok := Parse(r.Key()); ok {
		t.Fatalf("a key %q parses as a client's reference", r.Key())
	}
}

func TestVerifier(t *testing.T) {
	content := []byte("layer bytes")
	s := sha256.Sum256(content)
	r, ok := Parse("/v2/a/blobs/sha256:" + hex.EncodeToString(s[:]))
	if !ok {
		t.Fatal("no ref")
	}
	v := NewVerifier(r.Algorithm, r.Hex)
	v.Write(content[:3])
	v.Write(content[3:])
	if !v.Match() {
		t.Fatal("the content does not match its own digest")
	}
	v = NewVerifier(r.Algorithm, r.Hex)
	v.Write([]byte("layer byteS"))
	if v.Match() {
		t.Fatal("other bytes match the digest")
	}
}

func TestHub(t *testing.T) {
	h := strings.Repeat("3c", 32)
	for target, want := range map[string]bool{
		"/org/model/resolve/main/model.safetensors":           true,
		"/gpt2/resolve/main/config.json":                      true,
		"/datasets/org/set/resolve/v1.0/data/train.parquet":   true,
		"/org/model/resolve/0123abc/sub/dir/w.bin?download=1": true,
		"/org/model/blob/main/model.safetensors":              false,
		"/org/model/resolve/main/":                            false,
		"/api/models/org/model":                               false,
		"/resolve/main/x":                                     false,
	} {
		if got := IsHubResolve(target); got != want {
			t.Errorf("IsHubResolve(%q) = %v", target, got)
		}
	}
	for field, ok := range map[string]bool{`"` + h + `"`: true, h: true, `W/"` + h + `"`: true, `"abc"`: false, `"` + strings.Repeat("3C", 32) + `"`: false} {
		if got, gotOK := LinkedSHA256(field); gotOK != ok || ok && got != h {
			t.Errorf("LinkedSHA256(%q) = %q, %v", field, got, gotOK)
		}
	}
	if !HubCommit("/org/m/resolve/0123456789abcdef0123456789abcdef01234567/w.bin") || HubCommit("/org/m/resolve/main/w.bin") {
		t.Fatal("HubCommit")
	}
	k := HubKey(h)
	if alg, hex, ok := KeyDigest(k); !IsKey(k) || !ok || alg != "sha256" || hex != h {
		t.Fatalf("KeyDigest(%q) = %q %q %v", k, alg, hex, ok)
	}
	r, _ := Parse("/v2/a/blobs/sha512:" + strings.Repeat("0f", 64))
	if alg, hex, ok := KeyDigest(r.Key()); !ok || alg != "sha512" || hex != r.Hex {
		t.Fatalf("KeyDigest(%q) = %q %q %v", r.Key(), alg, hex, ok)
	}
	if NewVerifier("md5", h[:32]) != nil {
		t.Fatal("a verifier of an unknown algorithm")
	}
}

func FuzzParse(f *testing.F) {
	f.Add("/v2/library/alpine/blobs/sha256:" + strings.Repeat("ab", 32))
	f.Add("/v2/a/manifests/latest?ns=x")
	f.Fuzz(func(t *testing.T, target string) {
		r, ok := Parse(target)
		if !ok {
			return
		}
		// What parses names its digest in its target, and its key is in
		// the reserved name space, which never parses.
		if !strings.Contains(target, "/"+string(r.Kind)+"/"+r.Digest()) || !IsKey(r.Key()) {
			t.Fatalf("Parse(%q) = %+v", target, r)
		}
		if _, ok := Parse(r.Key()); ok {
			t.Fatalf("key %q parses", r.Key())
		}
		NewVerifier(r.Algorithm, r.Hex).Match()
	})
}
