package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shoalcdn/shoal/erasure"
	"github.com/shoalcdn/shoal/manifest"
)

// TestE2ESign makes a key with `shoal keygen`, signs a tree with `shoal
// sign`, and checks every manifest, and that `shoal origin --sign-key`
// serves the same segment hashes on the fly.
func TestE2ESign(t *testing.T) {
	shoalBinary(t)
	dir := t.TempDir()
	key, pub := filepath.Join(dir, "k.key"), filepath.Join(dir, "k.pub")
	if out, err := runShoal("keygen", "--key", key, "--pub", pub); err != nil || !strings.Contains(string(out), "key id") {
		t.Fatalf("keygen: %v\n%s", err, out)
	}
	if out, err := runShoal("keygen", "--key", key, "--pub", pub); err == nil {
		t.Fatalf("keygen overwrote its key:\n%s", out)
	}
	www := filepath.Join(dir, "www")
	a := writeObject(t, www, "rel/a b.bin", 9<<20+123, 7)
	writeObject(t, www, "empty", 0, 8)
	out, err := runShoal("sign", "--key", key, www)
	if err != nil || !strings.Contains(string(out), "signed 2 files") {
		t.Fatalf("sign: %v\n%s", err, out)
	}
	v, err := manifest.LoadVerifier(pub)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := os.ReadFile(filepath.Join(www, "rel", "a b.bin"+manifest.Suffix))
	if err != nil {
		t.Fatal(err)
	}
	m, err := v.Verify(enc, "/rel/a%20b.bin")
	if err != nil {
		t.Fatal(err)
	}
	if want := int((a.size + erasure.DefaultSegmentSize - 1) / erasure.DefaultSegmentSize); m.Size != a.size || len(m.Segments) != want {
		t.Fatalf("manifest: size %d, %d segments", m.Size, len(m.Segments))
	}
	for i := range m.Segments {
		off, n := m.Segment(i)
		if err := m.VerifySegment(i, a.bytesAt(t, off, n)); err != nil {
			t.Fatal(err)
		}
	}
	if enc, err := os.ReadFile(filepath.Join(www, "empty"+manifest.Suffix)); err != nil {
		t.Fatal(err)
	} else if _, err := v.Verify(enc, "/empty"); err != nil {
		t.Fatal(err)
	}
	if out, err := runShoal("sign", "--key", pub, www); err == nil {
		t.Fatalf("sign with a public key succeeded:\n%s", out)
	}

	// On the fly: remove the file's manifest; the origin signs it.
	os.Remove(filepath.Join(www, "rel", "a b.bin"+manifest.Suffix))
	o := startOriginEnv(t, www, []string{"SHOAL_SIGN_KEY=" + key})
	resp, err := http.Get(o.url + "/rel/a%20b.bin" + manifest.Suffix)
	if err != nil {
		t.Fatal(err)
	}
	fly, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("on the fly: %d %v\n%s", resp.StatusCode, err, fly)
	}
	mf, err := v.Verify(fly, "/rel/a%20b.bin")
	if err != nil {
		t.Fatal(err)
	}
	if mf.ETag == "" || mf.Object != m.Object || len(mf.Segments) != len(m.Segments) {
		t.Fatalf("on the fly: %+v, want the hashes of %+v", mf, m)
	}
	for i := range m.Segments {
		if mf.Segments[i] != m.Segments[i] {
			t.Fatalf("segment %d differs on the fly", i)
		}
	}

	// Edges with --trust-key and --require-signed serve what is signed
	// (for their segment size) and refuse what is not.
	if out, err := runShoal("sign", "--key", key, "--segment-size", "1MiB", www); err != nil {
		t.Fatalf("sign: %v\n%s", err, out)
	}
	writeObject(t, www, "late.bin", 1000, 9) // after signing: no manifest
	f := startFleet(t, www, 2, "--trust-key", pub, "--require-signed")
	resp, sum, n := fetch(t, newClient(), http.MethodGet, f.edges[1].url+"/rel/a%20b.bin", nil)
	checkWhole(t, "a signed object through an edge", a, resp, sum, n)
	resp, _, _ = fetch(t, newClient(), http.MethodGet, f.edges[0].url+"/late.bin", nil)
	if resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("an unsigned object under --require-signed: %d, want 502", resp.StatusCode)
	}
	if m := scrape(t, f.edges[1]); m.sum("shoal_manifest_verified_segments_total") < 10 {
		t.Fatalf("verified segments %v, want all 10", m.sum("shoal_manifest_verified_segments_total"))
	}
}

// TestE2EPrefetch drives `shoal prefetch` against a fleet: the release is
// fetched from the origin once, then served by every edge without it.
//
// SHOAL_E2E_PREFETCH="512MiB,8" runs it at the scale (a 512 MiB
// release, 8 edges) and logs the figures; by default it is 6 MiB and 3.
func TestE2EPrefetch(t *testing.T) {
	size, edges := int64(6<<20+5), 3
	if v := os.Getenv("SHOAL_E2E_PREFETCH"); v != "" {
		s, n, _ := strings.Cut(v, ",")
		if err := (sizeFlag{&size}).Set(s); err != nil {
			t.Fatalf("SHOAL_E2E_PREFETCH=%q: %v", v, err)
		}
		if _, err := fmt.Sscan(n, &edges); err != nil || edges < 1 {
			t.Fatalf("SHOAL_E2E_PREFETCH=%q: want SIZE,EDGES", v)
		}
	}
	www := t.TempDir()
	rel := writeObject(t, www, "rel/app.bin", size, 21)
	f := startFleet(t, www, edges, "--admin-token", "tok")
	start := time.Now()
	out, err := runShoal("prefetch", "--admin", f.edges[0].admin, "--token", "tok", "--interval", "50ms", rel.path)
	if err != nil || !strings.Contains(string(out), "prefetched 1 of 1 objects") {
		t.Fatalf("prefetch: %v\n%s", err, out)
	}
	took := time.Since(start)
	got := f.proxy.bytes.Load()
	t.Logf("prefetch of %d bytes into %d edges: %v, origin egress %d bytes = %.4f× the release", rel.size, edges, took.Round(time.Millisecond), got, float64(got)/float64(rel.size))
	if got < rel.size || float64(got) > 1.02*float64(rel.size) {
		t.Fatalf("origin egress %d for a %d-byte release", got, rel.size)
	}
	before := f.proxy.bytes.Load()
	for _, e := range f.edges {
		resp, sum, n := fetch(t, newClient(), http.MethodGet, e.url+rel.path, nil)
		checkWhole(t, "after prefetch", rel, resp, sum, n)
	}
	if n := f.proxy.bytes.Load() - before; n != 0 {
		t.Fatalf("origin sent %d bytes after the prefetch", n)
	}
	out, err = runShoal("prefetch", "--admin", f.edges[1].admin, "--token", "tok", "--quiet", rel.path, "/nope.bin")
	if err == nil || !strings.Contains(string(out), "/nope.bin") || !strings.Contains(string(out), "1 of 2 objects failed") {
		t.Fatalf("prefetch of a missing object: %v\n%s", err, out)
	}
	if out, err := runShoal("prefetch", "--admin", f.edges[1].admin, "--token", "wrong", rel.path); err == nil || !strings.Contains(string(out), "401") {
		t.Fatalf("prefetch with a wrong token: %v\n%s", err, out)
	}
}
