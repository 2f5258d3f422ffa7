package manifest

import (
	"bytes"
	"crypto/ed25519"
	crand "crypto/rand"
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func testKey(t testing.TB) (ed25519.PublicKey, ed25519.PrivateKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(crand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return pub, priv
}

func object(n int, seed uint64) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(seed, seed))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func signed(t testing.TB, data []byte, path string, seg int64, priv ed25519.PrivateKey) (*Manifest, []byte) {
	t.Helper()
	m, err := Build(bytes.NewReader(data), path, int64(len(data)), seg)
	if err != nil {
		t.Fatal(err)
	}
	m.ETag = `"abc"`
	enc, err := m.Sign(priv)
	if err != nil {
		t.Fatal(err)
	}
	return m, enc
}

func TestRoundTrip(t *testing.T) {
	pub, priv := testKey(t)
	v, err := NewVerifier(pub)
	if err != nil {
		t.Fatal(err)
	}
	for _, size := range []int{0, 1, 4096, 4097, 3*4096 + 17} {
		data := object(size, uint64(size))
		m, enc := signed(t, data, "/r/app%20v1.tar", 4096, priv)
		got, err := v.Verify(enc, "/r/app%20v1.tar")
		if err != nil {
			t.Fatalf("size %d: %v\n%s", size, err, enc)
		}
		if got.Size != int64(size) || got.SegmentSize != 4096 || got.ETag != `"abc"` || got.Object != m.Object || len(got.Segments) != (size+4095)/4096 {
			t.Fatalf("size %d: decoded %+v", size, got)
		}
		for i := range got.Segments {
			off, n := got.Segment(i)
			if err := got.VerifySegment(i, data[off:off+n]); err != nil {
				t.Fatalf("size %d segment %d: %v", size, i, err)
			}
			bad := bytes.Clone(data[off : off+n])
			bad[len(bad)/2] ^= 1
			if err := got.VerifySegment(i, bad); !errors.Is(err, ErrMismatch) {
				t.Fatalf("size %d segment %d: altered byte gave %v", size, i, err)
			}
			if err := got.VerifySegment(i, data[off:off+n-1]); !errors.Is(err, ErrMismatch) {
				t.Fatalf("size %d segment %d: short segment gave %v", size, i, err)
			}
		}
		if err := got.VerifySegment(len(got.Segments), nil); !errors.Is(err, ErrMismatch) {
			t.Fatalf("segment past the end: %v", err)
		}
	}
}

func TestVerifyRejects(t *testing.T) {
	pub, priv := testKey(t)
	otherPub, otherPriv := testKey(t)
	v, _ := NewVerifier(pub)
	data := object(10000, 1)
	_, enc := signed(t, data, "/a", 4096, priv)
	_, foreign := signed(t, data, "/a", 4096, otherPriv)

	if _, err := v.Verify(enc, "/b"); !errors.Is(err, ErrMismatch) {
		t.Errorf("manifest of /a for /b: %v", err)
	}
	if _, err := v.Verify(foreign, "/a"); !errors.Is(err, ErrUntrusted) {
		t.Errorf("untrusted key: %v", err)
	}
	both, _ := NewVerifier(pub, otherPub)
	if _, err := both.Verify(foreign, "/a"); err != nil {
		t.Errorf("second trusted key: %v", err)
	}
	// Every single-byte change in the signed part is caught, by the parser
	// (shape, canonical form) or by the signature.
	sigAt := bytes.LastIndex(enc, []byte("\nsig ")) + 1
	for i := 0; i < sigAt; i++ {
		bad := bytes.Clone(enc)
		bad[i] ^= 0x01
		if _, err := v.Verify(bad, "/a"); err == nil {
			t.Fatalf("flipping byte %d (%q) verified", i, enc[i])
		}
	}
	// A change in the signature itself.
	bad := bytes.Clone(enc)
	bad[len(bad)-5] ^= 0x01
	if _, err := v.Verify(bad, "/a"); err == nil {
		t.Fatal("altered signature verified")
	}
}

func TestParseRejects(t *testing.T) {
	_, priv := testKey(t)
	_, enc := signed(t, object(5000, 2), "/x", 4096, priv)
	good := string(enc)
	cases := map[string]string{
		"empty":            "",
		"bad version":      strings.Replace(good, "shoal-manifest 1", "shoal-manifest 2", 1),
		"upper-case hex":   upperHash(good),
		"leading zero":     strings.Replace(good, "size 5000", "size 05000", 1),
		"negative size":    strings.Replace(good, "size 5000", "size -5000", 1),
		"segment count":    strings.Replace(good, "segments 2", "segments 3", 1),
		"CRLF":             strings.ReplaceAll(good, "\n", "\r\n"),
		"trailing data":    good + "x\n",
		"no final newline": strings.TrimSuffix(good, "\n"),
		"tiny segments":    strings.Replace(good, "segment-size 4096", "segment-size 16", 1),
		"relative path":    strings.Replace(good, "path /x", "path x", 1),
		"space in path":    strings.Replace(good, "path /x", "path /x y", 1),
		"no sig":           good[:strings.LastIndex(good, "sig ")],
		"short sig":        good[:strings.LastIndex(good, " ")] + " AAAA\n",
		"weak etag":        strings.Replace(good, `etag "abc"`, `etag W/"abc"`, 1),
	}
	for name, in := range cases {
		if in == good {
			t.Fatalf("%s: case does not change the manifest", name)
		}
		if _, err := Parse([]byte(in)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := Parse(enc); err != nil {
		t.Fatal(err)
	}
}

// upperHash spells the object hash of manifest s in upper-case hex.
func upperHash(s string) string {
	i := strings.Index(s, "blake3 ") + len("blake3 ")
	return s[:i] + strings.ToUpper(s[i:i+2*HashSize]) + s[i+2*HashSize:]
}

func TestBuildChecksLength(t *testing.T) {
	data := object(5000, 3)
	if _, err := Build(bytes.NewReader(data[:4000]), "/x", 5000, 4096); err == nil {
		t.Error("a short object built")
	}
	if _, err := Build(bytes.NewReader(data), "/x", 4000, 4096); err == nil {
		t.Error("a long object built")
	}
	if _, err := Build(bytes.NewReader(data), "/x", 5000, 100); !errors.Is(err, ErrMalformed) {
		t.Errorf("tiny segment size: %v", err)
	}
}

func TestKeyFiles(t *testing.T) {
	dir := t.TempDir()
	priv, pub := filepath.Join(dir, "k.key"), filepath.Join(dir, "k.pub")
	id, err := GenerateKey(priv, pub)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := GenerateKey(priv, pub); err == nil {
		t.Fatal("GenerateKey overwrote a private key")
	}
	sk, err := ReadPrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	v, err := LoadVerifier(pub)
	if err != nil {
		t.Fatal(err)
	}
	m, enc := signed(t, object(100, 4), "/y", 4096, sk)
	if m.KeyID != id {
		t.Fatalf("key id %s, GenerateKey said %s", m.KeyID, id)
	}
	if _, err := v.Verify(enc, "/y"); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadPublicKey(priv); err == nil {
		t.Error("a private key read as a public key")
	}
}

// Keys made by openssl work too. Skipped where openssl is not installed,
// failed under CI=true, where .ci/run installs it.
func TestOpenSSLKeyFiles(t *testing.T) {
	dir := t.TempDir()
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		const msg = "openssl not found: keys made by openssl not checked (apt-get install openssl; .ci/run installs it)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	ok, opub := filepath.Join(dir, "o.key"), filepath.Join(dir, "o.pub")
	if out, err := exec.Command(openssl, "genpkey", "-algorithm", "ed25519", "-out", ok).CombinedOutput(); err != nil {
		t.Fatalf("openssl genpkey: %v\n%s", err, out)
	}
	if out, err := exec.Command(openssl, "pkey", "-in", ok, "-pubout", "-out", opub).CombinedOutput(); err != nil {
		t.Fatalf("openssl pkey: %v\n%s", err, out)
	}
	osk, err := ReadPrivateKey(ok)
	if err != nil {
		t.Fatal(err)
	}
	ov, err := LoadVerifier(opub)
	if err != nil {
		t.Fatal(err)
	}
	_, enc := signed(t, object(100, 5), "/z", 4096, osk)
	if _, err := ov.Verify(enc, "/z"); err != nil {
		t.Fatal(err)
	}
}

func FuzzParse(f *testing.F) {
	pub, priv := testKey(f)
	v, _ := NewVerifier(pub)
	for _, n := range []int{0, 10, 9000} {
		_, enc := signed(f, object(n, uint64(n)), "/f", 4096, priv)
		f.Add(enc)
	}
	f.Add([]byte("shoal-manifest 1\npath /\nsize 99999999999999\nsegment-size 4096\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Parse(data)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error not ErrMalformed: %v", err)
			}
			return
		}
		// What parses re-encodes to the same bytes' signed part.
		body := m.body(nil)
		if !bytes.HasPrefix(data, body) {
			t.Fatal("parsed manifest does not re-encode to its input")
		}
		v.Verify(data, m.Path) // must not panic
	})
}
