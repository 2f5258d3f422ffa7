package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// Container images through the fleet: Debian's docker-registry
// (distribution 2.8) as the origin behind the counting proxy, images
// pushed to it with skopeo, pulled through the edges by skopeo and by
// containerd (ctr, with the edge as a mirror in hosts.toml). .ci/run
// installs them (apt-get install docker-registry skopeo containerd).

// ociImage is an image in an OCI layout directory, as skopeo reads it.
type ociImage struct {
	dir      string
	layers   []string // digests, "sha256:<hex>"
	bytes    int64    // of the layers
	manifest string   // its digest
}

// writeOCIImage writes an image of layers of the given sizes (each a tar
// of one file of seeded random bytes) to a new OCI layout, tagged tag.
func writeOCIImage(t *testing.T, tag string, sizes ...int) *ociImage {
	t.Helper()
	img := &ociImage{dir: t.TempDir()}
	blobs := filepath.Join(img.dir, "blobs", "sha256")
	if err := os.MkdirAll(blobs, 0o755); err != nil {
		t.Fatal(err)
	}
	put := func(b []byte) (string, int) {
		sum := sha256.Sum256(b)
		h := hex.EncodeToString(sum[:])
		if err := os.WriteFile(filepath.Join(blobs, h), b, 0o644); err != nil {
			t.Fatal(err)
		}
		return "sha256:" + h, len(b)
	}
	type desc struct {
		MediaType   string            `json:"mediaType"`
		Digest      string            `json:"digest"`
		Size        int               `json:"size"`
		Annotations map[string]string `json:"annotations,omitempty"`
	}
	var layers []desc
	var diffIDs []string
	for i, n := range sizes {
		var seed [32]byte
		binary.LittleEndian.PutUint64(seed[:], uint64(1000+i))
		data := make([]byte, n)
		rand.NewChaCha8(seed).Read(data)
		var tb bytes.Buffer
		tw := tar.NewWriter(&tb)
		if err := tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("data/layer%d.bin", i), Mode: 0o644, Size: int64(n), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write(data)
		tw.Close()
		diffIDs = append(diffIDs, digestOf(tb.Bytes()))
		// Compressed, as images are: skopeo would compress a plain tar
		// on its way to a registry, and the digests would change.
		var gz bytes.Buffer
		zw := gzip.NewWriter(&gz)
		zw.Write(tb.Bytes())
		zw.Close()
		d, size := put(gz.Bytes())
		layers = append(layers, desc{MediaType: "application/vnd.oci.image.layer.v1.tar+gzip", Digest: d, Size: size})
		img.layers = append(img.layers, d)
		img.bytes += int64(size)
	}
	config, _ := json.Marshal(map[string]any{
		"architecture": "amd64", "os": "linux",
		"config": map[string]any{"Cmd": []string{"/bin/true"}},
		"rootfs": map[string]any{"type": "layers", "diff_ids": diffIDs},
	})
	cd, cn := put(config)
	manifest, _ := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"config":        desc{MediaType: "application/vnd.oci.image.config.v1+json", Digest: cd, Size: cn},
		"layers":        layers,
	})
	md, mn := put(manifest)
	img.manifest = md
	index, _ := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"manifests": []desc{{MediaType: "application/vnd.oci.image.manifest.v1+json", Digest: md, Size: mn,
			Annotations: map[string]string{"org.opencontainers.image.ref.name": tag}}},
	})
	if err := os.WriteFile(filepath.Join(img.dir, "index.json"), index, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(img.dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	return img
}

// registryProc is a running docker-registry.
type registryProc struct {
	*proc
	addr string // host:port
}

// startRegistry starts docker-registry on loopback with its storage in a
// temporary directory; with users (name → password), behind htpasswd
// authentication.
func startRegistry(t *testing.T, users map[string]string) *registryProc {
	t.Helper()
	bin := clientTool(t, "docker-registry", "docker-registry")
	dir := t.TempDir()
	addr := freeTCP(t)
	cfg := fmt.Sprintf("version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: %s\n  delete:\n    enabled: true\nhttp:\n  addr: %s\n", filepath.Join(dir, "data"), addr)
	if users != nil {
		var pw strings.Builder
		for u, p := range users {
			h, err := bcrypt.GenerateFromPassword([]byte(p), bcrypt.MinCost)
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&pw, "%s:%s\n", u, h)
		}
		if err := os.WriteFile(filepath.Join(dir, "htpasswd"), []byte(pw.String()), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg += fmt.Sprintf("auth:\n  htpasswd:\n    realm: shoal-test\n    path: %s\n", filepath.Join(dir, "htpasswd"))
	}
	cfgFile := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startProgram(t, "registry", bin, nil, nil, "serve", cfgFile)
	waitFor(t, p, "registry on "+addr, func() bool { return tcpUp(addr) })
	return &registryProc{proc: p, addr: addr}
}

// skopeo runs skopeo with a policy that accepts any image, and a clean
// auth file, so the machine's configuration plays no part.
func skopeo(t *testing.T, args ...string) {
	t.Helper()
	bin := clientTool(t, "skopeo", "skopeo")
	dir := t.TempDir()
	policy := filepath.Join(dir, "policy.json")
	if err := os.WriteFile(policy, []byte(`{"default":[{"type":"insecureAcceptAnything"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	runTool(t, dir, []string{"REGISTRY_AUTH_FILE=" + filepath.Join(dir, "auth.json"), "HOME=" + dir},
		bin, append([]string{"--policy", policy}, args...)...)
}

// pushImage pushes img to the registry (directly, not through the proxy)
// as repo:tag.
func pushImage(t *testing.T, reg *registryProc, img *ociImage, repo, tag string, creds string) {
	t.Helper()
	args := []string{"copy", "--dest-tls-verify=false"}
	if creds != "" {
		args = append(args, "--dest-creds", creds)
	}
	skopeo(t, append(args, "oci:"+img.dir+":"+tag, "docker://"+reg.addr+"/"+repo+":"+tag)...)
}

// pulledLayers checks an image skopeo copied to an OCI layout: it has
// every layer of img, each matching its digest.
func pulledLayers(t *testing.T, dir string, img *ociImage) {
	t.Helper()
	for _, d := range img.layers {
		h := strings.TrimPrefix(d, "sha256:")
		if got := fileSum(t, filepath.Join(dir, "blobs", "sha256", h)); got != h {
			t.Fatalf("layer %s pulled as %s", d, got)
		}
	}
}

// edgeHost is the edge's client address as an image reference's host.
func edgeHost(e *edgeProc) string { return strings.TrimPrefix(e.url, "http://") }

// startRegistryFleet starts n default edges in front of reg, through the
// counting proxy.
func startRegistryFleet(t *testing.T, reg *registryProc, n int) *fleet {
	t.Helper()
	f := &fleet{proxy: startProxy(t, "http://"+reg.addr)}
	for range n {
		f.peers = append(f.peers, freeUDP(t))
	}
	tlsDir := fleetTLS(t)
	for i, peer := range f.peers {
		f.edges = append(f.edges, startEdge(t, edgeSpec{
			name: fmt.Sprintf("edge%d", i+1), origin: f.proxy.url, tlsDir: tlsDir,
			peer: peer, peers: f.peers,
		}))
	}
	for _, e := range f.edges {
		e.waitReady(t)
	}
	return f
}

// TestE2ERegistrySkopeo pushes an image of three layers under two
// repository names and pulls it through three default edges with skopeo
// (which verifies every blob against its digest): the registry sends
// each layer once over all pulls, and a manifest asked for by digest is
// answered by the fleet.
func TestE2ERegistrySkopeo(t *testing.T) {
	reg := startRegistry(t, nil)
	img := writeOCIImage(t, "v1", 9<<20+4321, 5<<20+77, 2<<20+5)
	pushImage(t, reg, img, "team/app", "v1", "")
	pushImage(t, reg, img, "mirror/app", "v1", "")
	f := startRegistryFleet(t, reg, 3)

	pulls := []struct {
		edge int
		ref  string
	}{{0, "team/app:v1"}, {1, "team/app:v1"}, {2, "mirror/app:v1"}}
	for _, p := range pulls {
		out := filepath.Join(t.TempDir(), "img")
		skopeo(t, "copy", "--src-tls-verify=false", "docker://"+edgeHost(f.edges[p.edge])+"/"+p.ref, "oci:"+out+":v1")
		pulledLayers(t, out, img)
	}
	egress := f.proxy.bytes.Load()
	t.Logf("registry egress %d bytes for %d bytes of layers (%.3f×), %d requests", egress, img.bytes, float64(egress)/float64(img.bytes), f.proxy.nreqs())
	if float64(egress) > 1.05*float64(img.bytes) {
		t.Fatalf("registry egress %d bytes, more than 1.05× the %d bytes of unique layers", egress, img.bytes)
	}

	// A manifest by digest (skopeo asked by tag; containerd asks by
	// digest once it resolved the tag): fetched once, then answered by
	// the fleet under the other name and a mirror's query, byte-identical.
	h := http.Header{"Accept": {"application/vnd.oci.image.manifest.v1+json"}}
	for i, u := range []string{
		f.edges[0].url + "/v2/team/app/manifests/" + img.manifest,
		f.edges[2].url + "/v2/mirror/app/manifests/" + img.manifest + "?ns=registry.example",
	} {
		before := f.proxy.bytes.Load()
		resp, body := fetchBytes(t, newClient(), http.MethodGet, u, h, nil)
		if resp.StatusCode != http.StatusOK || digestOf(body) != img.manifest {
			t.Fatalf("manifest by digest: %d, digest %s, want %s", resp.StatusCode, digestOf(body), img.manifest)
		}
		if got := f.proxy.bytes.Load() - before; i > 0 && got != 0 {
			t.Fatalf("manifest by digest under another name cost %d origin bytes, want 0 (Cache-Status %q)", got, resp.Header.Get("Cache-Status"))
		}
	}
	// HEAD of a layer, answered by the fleet too.
	resp, _ := fetchBytes(t, newClient(), http.MethodHead, f.edges[1].url+"/v2/mirror/app/blobs/"+img.layers[0], nil, nil)
	if resp.StatusCode != http.StatusOK || resp.ContentLength <= 0 {
		t.Fatalf("HEAD of a layer: %d, Content-Length %d", resp.StatusCode, resp.ContentLength)
	}
	// A digest not in a repository is that repository's 404, not the
	// fleet's copy of it.
	resp, _ = fetchBytes(t, newClient(), http.MethodGet, f.edges[0].url+"/v2/other/app/blobs/"+img.layers[0], nil, nil)
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("a layer under a repository that does not have it: %d, want 404", resp.StatusCode)
	}
}

func digestOf(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

