package edge

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shoalcdn/shoal/erasure"
	"github.com/shoalcdn/shoal/manifest"
)

// signer is a publisher's key pair for tests.
type testSigner struct {
	priv ed25519.PrivateKey
	v    *manifest.Verifier
}

func newTestSigner(t *testing.T) *testSigner {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	v, err := manifest.NewVerifier(pub)
	if err != nil {
		t.Fatal(err)
	}
	return &testSigner{priv: priv, v: v}
}

// sign writes the manifest of the origin's file name, as `shoal sign` does.
func (s *testSigner) sign(t *testing.T, o *testOrigin, name string) {
	t.Helper()
	if _, err := manifest.SignFile(filepath.Join(o.dir, name), "/"+name, testLayout.SegmentSize, s.priv); err != nil {
		t.Fatal(err)
	}
}

func trusting(s *testSigner, require bool) func(*Config) {
	return func(c *Config) { c.Trust, c.RequireSigned = s.v, require }
}

// forgeSegment replaces every shard of segment idx of the object behind
// path, on every edge that holds one, by shards of different bytes with a
// matching descriptor: what a malicious member of the fleet could push. It
// returns the forged segment.
func forgeSegment(t *testing.T, c *cluster, path string, idx uint32) []byte {
	t.Helper()
	rec, ok := c.edges[0].records.Get(path)
	if !ok {
		t.Fatalf("edge 0 has no record of %s", path)
	}
	id := erasure.SegmentID{Object: rec.ID(), Index: idx}
	_, n := rec.Layout.Segment(int64(idx), rec.Size)
	var orig []byte
	for _, e := range c.edges {
		if s, ok := e.mem.Get(id); ok {
			orig = s.data
		}
	}
	if orig == nil {
		t.Fatal("segment not in any edge's memory")
	}
	forged := bytes.Clone(orig[:n])
	copy(forged, "forged by a malicious peer")
	coder, err := erasure.NewCoder(rec.Layout.Params)
	if err != nil {
		t.Fatal(err)
	}
	shards, d, err := coder.Encode(forged)
	if err != nil {
		t.Fatal(err)
	}
	placed := 0
	for _, e := range c.edges {
		for i := range shards {
			sid := erasure.ShardID{Segment: id, Index: uint8(i)}
			if e.store.Has(sid) {
				if err := e.store.PutShard(sid, d, shards[i]); err != nil {
					t.Fatal(err)
				}
				placed++
			}
		}
	}
	if placed < rec.Layout.Params.K {
		t.Fatalf("only %d shards of the segment were placed", placed)
	}
	clearMemory(c)
	return forged
}

// TestSignedManifestStopsForgedShards: a member of the fleet rewrites the
// shards of a segment, consistently with a descriptor of its own. Without
// --trust-key the fleet has no way to tell; with it, the forged segment is
// caught, counted, fetched again from the origin, and the client gets the
// publisher's bytes.
func TestSignedManifestStopsForgedShards(t *testing.T) {
	s := newTestSigner(t)
	for _, trust := range []bool{false, true} {
		o := newTestOrigin(t, "public, max-age=600")
		want := o.put(t, "rel.bin", 5*int(testLayout.SegmentSize)/2, 11)
		s.sign(t, o, "rel.bin")
		var tweak func(*Config)
		if trust {
			tweak = trusting(s, true)
		}
		c := newCluster(t, o, 3, tweak)
		_, got := c.get(0, "/rel.bin")
		sameBytes(t, "first read", got, want)
		waitFor(t, func() bool { return storedShards(c) >= 3*6 })
		forged := forgeSegment(t, c, "/rel.bin", 1)

		before := o.bytes.Load()
		resp, got := c.get(2, "/rel.bin")
		seg := testLayout.SegmentSize
		if !trust {
			// The attack works on an edge that trusts no publisher key.
			if resp.StatusCode != http.StatusOK || !bytes.Equal(got[seg:2*seg], forged) {
				t.Fatalf("without --trust-key: status %d; the forgery was not served, so this test proves nothing", resp.StatusCode)
			}
			continue
		}
		sameBytes(t, "read after the forgery", got, want)
		if n := counterValue(t, c.edges[2].Edge, "shoal_manifest_failures_total"); n < 1 {
			t.Fatalf("shoal_manifest_failures_total = %v, want the mismatch counted", n)
		}
		if refetched := o.bytes.Load() - before; refetched < seg || refetched > 2*seg+8<<10 {
			t.Fatalf("origin sent %d bytes after the forgery, want about one segment (%d) plus the manifest", refetched, seg)
		}
		// The fresh shards replaced the forged ones: another edge reads
		// the segment from the fleet, verified, with no origin traffic but
		// its own fetch of the manifest.
		fi, err := os.Stat(filepath.Join(o.dir, "rel.bin"+manifest.Suffix))
		if err != nil {
			t.Fatal(err)
		}
		clearMemory(c)
		before = o.bytes.Load()
		_, got = c.get(1, "/rel.bin")
		sameBytes(t, "read after the repair", got, want)
		if n := o.bytes.Load() - before; n > fi.Size() {
			t.Fatalf("origin sent %d bytes after the repair, more than the manifest's %d", n, fi.Size())
		}
	}
}

func TestRequireSigned(t *testing.T) {
	s := newTestSigner(t)
	other := newTestSigner(t)
	o := newTestOrigin(t, "public, max-age=600")
	signed := o.put(t, "signed.bin", 300<<10, 1)
	s.sign(t, o, "signed.bin")
	unsigned := o.put(t, "unsigned.bin", 1000, 2)
	o.put(t, "foreign.bin", 1000, 3)
	other.sign(t, o, "foreign.bin")
	o.put(t, "swapped.bin", 300<<10, 4)
	// The manifest of another object, validly signed.
	mf, err := os.ReadFile(filepath.Join(o.dir, "signed.bin"+manifest.Suffix))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(o.dir, "swapped.bin"+manifest.Suffix), mf, 0o644); err != nil {
		t.Fatal(err)
	}

	for _, require := range []bool{true, false} {
		c := newCluster(t, o, 2, trusting(s, require))
		resp, got := c.get(0, "/signed.bin")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("require=%v signed: %d", require, resp.StatusCode)
		}
		sameBytes(t, "signed", got, signed)

		resp, got = c.get(1, "/unsigned.bin")
		if require {
			if resp.StatusCode != http.StatusBadGateway || bytes.Contains(got, unsigned[:64]) {
				t.Fatalf("require=true unsigned: %d, want 502 and no body", resp.StatusCode)
			}
		} else {
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("require=false unsigned: %d", resp.StatusCode)
			}
			sameBytes(t, "unsigned", got, unsigned)
		}
		// A manifest that is there but wrong is refused either way.
		for _, p := range []string{"/foreign.bin", "/swapped.bin"} {
			if resp, body := c.get(0, p); resp.StatusCode != http.StatusBadGateway {
				t.Fatalf("require=%v %s: %d %q, want 502", require, p, resp.StatusCode, body)
			}
		}
		if n := counterValue(t, c.edges[0].Edge, "shoal_manifest_failures_total"); n < 2 {
			t.Fatalf("require=%v: failures %v, want the invalid manifests counted", require, n)
		}
	}
}

// TestSignedOriginMismatch: the origin's bytes changed, its manifest did
// not. Nothing of the new bytes is served.
func TestSignedOriginMismatch(t *testing.T) {
	s := newTestSigner(t)
	o := newTestOrigin(t, "public, max-age=600")
	o.put(t, "a.bin", 300<<10, 1)
	s.sign(t, o, "a.bin")
	o.put(t, "a.bin", 300<<10, 2) // same size, other bytes
	// One edge alone forwards cold misses to the origin (miss.go) unless
	// it checks manifests: both sizes must refuse.
	for _, n := range []int{1, 2} {
		c := newCluster(t, o, n, trusting(s, false))
		resp, body := c.get(0, "/a.bin")
		if resp.StatusCode != http.StatusBadGateway {
			t.Fatalf("%d edges: status %d, want 502", n, resp.StatusCode)
		}
		if !strings.Contains(string(body), "could not read object") {
			t.Fatalf("%d edges: body %q", n, body)
		}
	}
}
