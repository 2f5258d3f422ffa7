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
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
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
	policy := writePolicy(t, dir)
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
	return startOriginFleet(t, "http://"+reg.addr, n)
}

// startOriginFleet starts n default edges in front of the origin at
// originURL, through the counting proxy.
func startOriginFleet(t *testing.T, originURL string, n int) *fleet {
	t.Helper()
	f := &fleet{proxy: startProxy(t, originURL)}
	f.startEdges(t, n)
	return f
}

// twoNameImage starts a registry without authentication, pushes an image
// of layers of the given sizes to it as team/app:v1 and mirror/app:v1 (the
// same layers under two repository names), and starts three default
// edges in front of it.
func twoNameImage(t *testing.T, sizes ...int) (*ociImage, *fleet) {
	t.Helper()
	reg := startRegistry(t, nil)
	img := writeOCIImage(t, "v1", sizes...)
	pushImage(t, reg, img, "team/app", "v1", "")
	pushImage(t, reg, img, "mirror/app", "v1", "")
	return img, startRegistryFleet(t, reg, 3)
}

// checkEgress fails the test when the origin sent more than 1.05× the
// unique bytes of what was pulled, and logs the figure.
func checkEgress(t *testing.T, f *fleet, unique int64) {
	t.Helper()
	egress := f.proxy.bytes.Load()
	t.Logf("registry egress %d bytes for %d bytes of layers (%.3f×), %d requests", egress, unique, float64(egress)/float64(unique), f.proxy.nreqs())
	if float64(egress) > 1.05*float64(unique) {
		t.Fatalf("registry egress %d bytes, more than 1.05× the %d bytes of unique layers", egress, unique)
	}
}

// TestE2ERegistrySkopeo pushes an image of three layers under two
// repository names and pulls it through three default edges with skopeo
// (which verifies every blob against its digest): the registry sends
// each layer once over all pulls, and a manifest asked for by digest is
// answered by the fleet.
func TestE2ERegistrySkopeo(t *testing.T) {
	img, f := twoNameImage(t, 9<<20+4321, 5<<20+77, 2<<20+5)

	pulls := []struct {
		edge int
		ref  string
	}{{0, "team/app:v1"}, {1, "team/app:v1"}, {2, "mirror/app:v1"}}
	for _, p := range pulls {
		out := filepath.Join(t.TempDir(), "img")
		skopeo(t, "copy", "--src-tls-verify=false", "docker://"+edgeHost(f.edges[p.edge])+"/"+p.ref, "oci:"+out+":v1")
		pulledLayers(t, out, img)
	}
	checkEgress(t, f, img.bytes)

	// A manifest by digest (skopeo asked by tag; containerd asks by
	// digest once it resolved the tag): fetched once, then answered by
	// the fleet under the other name and a mirror's query, byte-identical.
	h := http.Header{"Accept": {"application/vnd.oci.image.manifest.v1+json"}}
	for i, u := range []string{
		f.edges[0].url + "/v2/team/app/manifests/" + img.manifest,
		f.edges[2].url + "/v2/mirror/app/manifests/" + img.manifest + "?ns=" + url.QueryEscape(strings.TrimPrefix(f.proxy.url, "http://")),
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
	// A mirror request for another registry is not this one's to answer.
	if resp, _ := fetchBytes(t, newClient(), http.MethodGet, f.edges[2].url+"/v2/mirror/app/manifests/"+img.manifest+"?ns=docker.io", h, nil); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("a manifest asked of the mirror of docker.io: %d, want 404", resp.StatusCode)
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

// TestE2ERegistryAuth runs the registry behind htpasswd authentication: a
// client with the right credentials pulls through the fleet; one with
// wrong or no credentials gets the registry's 401 and no byte of a layer,
// also from edges that hold the layers after the first pull.
func TestE2ERegistryAuth(t *testing.T) {
	reg := startRegistry(t, map[string]string{"alice": "s3cret"})
	img := writeOCIImage(t, "v1", 3<<20+99, 1<<20+7)
	pushImage(t, reg, img, "team/private", "v1", "alice:s3cret")
	f := startRegistryFleet(t, reg, 3)

	out := filepath.Join(t.TempDir(), "img")
	skopeo(t, "copy", "--src-tls-verify=false", "--src-creds", "alice:s3cret", "docker://"+edgeHost(f.edges[0])+"/team/private:v1", "oci:"+out+":v1")
	pulledLayers(t, out, img)

	basic := func(user, pw string) http.Header {
		req, _ := http.NewRequest(http.MethodGet, "/", nil)
		req.SetBasicAuth(user, pw)
		return req.Header
	}
	for _, e := range f.edges {
		for _, layer := range img.layers {
			for name, h := range map[string]http.Header{"no credentials": nil, "a wrong password": basic("alice", "guess"), "an unknown user": basic("mallory", "s3cret")} {
				for _, method := range []string{http.MethodGet, http.MethodHead} {
					resp, body := fetchBytes(t, newClient(), method, e.url+"/v2/team/private/blobs/"+layer, h, nil)
					if resp.StatusCode != http.StatusUnauthorized || len(body) > 1024 {
						t.Fatalf("%s of a layer with %s through %s: %d with %d body bytes, want the registry's 401", method, name, e.name, resp.StatusCode, len(body))
					}
					if resp.Header.Get("WWW-Authenticate") == "" {
						t.Fatalf("%s with %s: 401 without the registry's challenge", method, name)
					}
				}
			}
			// The right credentials read it from the fleet.
			before := f.proxy.bytes.Load()
			resp, body := fetchBytes(t, newClient(), http.MethodGet, e.url+"/v2/team/private/blobs/"+layer, basic("alice", "s3cret"), nil)
			if resp.StatusCode != http.StatusOK || digestOf(body) != layer {
				t.Fatalf("GET of a layer with the right credentials through %s: %d, digest %s", e.name, resp.StatusCode, digestOf(body))
			}
			if got := f.proxy.bytes.Load() - before; got > 1024 {
				t.Fatalf("a layer the fleet holds cost %d origin bytes through %s", got, e.name)
			}
		}
	}
	// skopeo with a wrong password fails, and without any too.
	bin := clientTool(t, "skopeo", "skopeo")
	for _, creds := range []string{"alice:guess", ""} {
		dir := t.TempDir()
		args := []string{"--policy", writePolicy(t, dir), "copy", "--src-tls-verify=false"}
		if creds != "" {
			args = append(args, "--src-creds", creds)
		}
		args = append(args, "docker://"+edgeHost(f.edges[1])+"/team/private:v1", "oci:"+filepath.Join(dir, "img")+":v1")
		cmd := exec.Command(bin, args...)
		cmd.Env = append(cleanEnv(), "REGISTRY_AUTH_FILE="+filepath.Join(dir, "auth.json"), "HOME="+dir)
		if b, err := cmd.CombinedOutput(); err == nil {
			t.Fatalf("skopeo with credentials %q pulled a private image:\n%s", creds, b)
		}
		for _, layer := range img.layers {
			if _, err := os.Stat(filepath.Join(dir, "img", "blobs", "sha256", strings.TrimPrefix(layer, "sha256:"))); err == nil {
				t.Fatalf("skopeo with credentials %q got layer %s", creds, layer)
			}
		}
	}
}

// writePolicy writes a containers policy that accepts any image.
func writePolicy(t *testing.T, dir string) string {
	t.Helper()
	policy := filepath.Join(dir, "policy.json")
	if err := os.WriteFile(policy, []byte(`{"default":[{"type":"insecureAcceptAnything"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	return policy
}

// startContainerd starts a containerd daemon of its own (root, state and
// socket in a temporary directory, CRI off) and returns its socket.
func startContainerd(t *testing.T, name string) string {
	t.Helper()
	bin := clientTool(t, "containerd", "containerd")
	clientTool(t, "ctr", "containerd")
	if os.Geteuid() != 0 {
		msg := "containerd needs root"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	dir, err := os.MkdirTemp("", "shoal-containerd-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "containerd.sock")
	cfg := fmt.Sprintf("version = 2\nroot = %q\nstate = %q\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n[grpc]\n  address = %q\n[debug]\n  level = \"warn\"\n",
		filepath.Join(dir, "root"), filepath.Join(dir, "state"), sock)
	cfgFile := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startProgram(t, name, bin, nil, nil, "--config", cfgFile)
	waitFor(t, p, "containerd's socket", func() bool {
		c, err := net.Dial("unix", sock)
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
	return sock
}

// hostsDir writes containerd's hosts.toml for registry host reg with the
// edge as its mirror, with shoal containerd-hosts (as README "Container
// images" and the Helm chart's containerdMirror do).
func hostsDir(t *testing.T, reg string, e *edgeProc) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := runShoal("containerd-hosts", "--dir", dir, "--registry", reg, "--server", "http://"+reg, "--mirror", e.url); err != nil {
		t.Fatalf("shoal containerd-hosts: %v\n%s", err, out)
	}
	return dir
}

// TestE2ERegistryContainerd pulls one image with containerd through two
// edges (ctr images pull --hosts-dir, the edge a mirror of the registry,
// which containerd asks with "?ns=<registry>"), and with skopeo through a
// third under another repository name: containerd verifies and unpacks
// every layer, and the registry sends each once.
func TestE2ERegistryContainerd(t *testing.T) {
	img, f := twoNameImage(t, 6<<20+11, 4<<20+13, 1<<20+17)
	// The registry's name in image references is the counting proxy's
	// address: a pull that falls back to the server is counted too.
	name := strings.TrimPrefix(f.proxy.url, "http://")
	for i, e := range f.edges[:2] {
		sock := startContainerd(t, fmt.Sprintf("containerd%d", i+1))
		ref := name + "/team/app:v1"
		runTool(t, t.TempDir(), nil, "ctr", "--address", sock, "images", "pull", "--hosts-dir", hostsDir(t, name, e), "--snapshotter", "native", ref)
		stdout, _ := runTool(t, t.TempDir(), nil, "ctr", "--address", sock, "content", "ls", "-q")
		for _, layer := range img.layers {
			if !strings.Contains(string(stdout), layer) {
				t.Fatalf("containerd %d has no layer %s after the pull:\n%s", i+1, layer, stdout)
			}
		}
		if !strings.Contains(string(stdout), img.manifest) {
			t.Fatalf("containerd %d has no manifest %s after the pull", i+1, img.manifest)
		}
	}
	out := filepath.Join(t.TempDir(), "img")
	skopeo(t, "copy", "--src-tls-verify=false", "docker://"+edgeHost(f.edges[2])+"/mirror/app:v1", "oci:"+out+":v1")
	pulledLayers(t, out, img)

	checkEgress(t, f, img.bytes)
	// containerd asked the edges, as a mirror: their requests to the
	// registry carry its "?ns=".
	mirrored := 0
	for _, r := range f.proxy.requests(0) {
		if strings.Contains(r, "/blobs/") && strings.Contains(r, "?ns="+url.QueryEscape(name)) {
			mirrored++
		}
	}
	if mirrored == 0 {
		t.Fatalf("no request for a blob came from containerd through an edge:\n%s", strings.Join(f.proxy.requests(0), "\n"))
	}
}
