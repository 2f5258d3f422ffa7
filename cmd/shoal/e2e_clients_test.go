package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Real clients through a real fleet: apt, aria2c and ffmpeg, each as its
// users run it. .ci/run installs them (apt-get install aria2 ffmpeg
// apt-utils dpkg-dev); elsewhere a missing tool skips the test, and under
// CI=true fails it.

// clientTool returns the path of a client program, or skips (fails under
// CI=true) when it is not installed.
func clientTool(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	msg := fmt.Sprintf("%s not found (apt-get install %s; .ci/run installs it)", name, pkg)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// runTool runs a client program with a time limit and returns its standard
// output and error, failing the test if it exits non-zero.
func runTool(t *testing.T, dir string, env []string, name string, args ...string) (stdout, stderr []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(cleanEnv(), env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\nstdout:\n%s\nstderr:\n%s", filepath.Base(name), strings.Join(args, " "), err, tail(out.Bytes()), tail(errOut.Bytes()))
	}
	return out.Bytes(), errOut.Bytes()
}

func tail(b []byte) []byte {
	if len(b) > 4000 {
		return b[len(b)-4000:]
	}
	return b
}

func fileSum(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// TestE2EAria2c downloads a release with aria2c over 8 connections, 1 MiB
// pieces, through one edge, then through another: byte-identical both
// times, and the origin sends it once.
func TestE2EAria2c(t *testing.T) {
	aria := clientTool(t, "aria2c", "aria2")
	www := t.TempDir()
	rel := writeObject(t, www, "rel/big.iso", 24<<20+12345, 31)
	f := startFleet(t, www, 3)
	for i, e := range f.edges[:2] {
		dir := t.TempDir()
		runTool(t, dir, nil, aria, "-x", "8", "-s", "8", "-k", "1M", "--min-split-size=1M",
			"--file-allocation=none", "--console-log-level=warn", "--summary-interval=0",
			"--no-conf", "--dir", dir, "-o", "big.iso", e.url+rel.path)
		if got := fileSum(t, filepath.Join(dir, "big.iso")); got != rel.sum {
			t.Fatalf("aria2c via edge %d: sha256 %s, want %s", i+1, got, rel.sum)
		}
	}
	// Several connections ask for overlapping segments at once: the fleet
	// still fetches each byte from the origin once (a HEAD per object aside).
	if got := f.proxy.bytes.Load(); got < rel.size || float64(got) > 1.02*float64(rel.size) {
		t.Fatalf("origin egress %d for a %d-byte object", got, rel.size)
	}
}

// TestE2EApt builds a Debian package and a flat repository, serves it
// through the fleet, and runs apt-get update and apt-get install against
// it in a throw-away configuration and root, so the machine's own apt and
// dpkg state are untouched.
func TestE2EApt(t *testing.T) {
	aptGet := clientTool(t, "apt-get", "apt")
	dpkgDeb := clientTool(t, "dpkg-deb", "dpkg")
	scan := clientTool(t, "dpkg-scanpackages", "dpkg-dev")
	ftparchive := clientTool(t, "apt-ftparchive", "apt-utils")
	if os.Geteuid() != 0 {
		// dpkg insists on root (or fakeroot) to unpack, even into its own root.
		if os.Getenv("CI") == "true" {
			t.Fatal("apt-get install needs root; CI runs as root")
		}
		t.Skip("apt-get install needs root")
	}

	// A package with a payload big enough to span segments.
	work := t.TempDir()
	pkg := filepath.Join(work, "pkg")
	payload := make([]byte, 3<<20+77)
	rand.Read(payload)
	for name, content := range map[string][]byte{
		"DEBIAN/control":                    []byte("Package: shoal-hello\nVersion: 1.0\nArchitecture: all\nMaintainer: Shoal <dev@shoal.invalid>\nDescription: a package for Shoal's apt test\n"),
		"usr/share/shoal-hello/payload.bin": payload,
	} {
		p := filepath.Join(pkg, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, content, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	www := t.TempDir()
	if err := os.MkdirAll(filepath.Join(www, "debian", "pool"), 0o755); err != nil {
		t.Fatal(err)
	}
	repo := filepath.Join(www, "debian")
	runTool(t, work, nil, dpkgDeb, "--root-owner-group", "--build", pkg, filepath.Join(repo, "pool", "shoal-hello_1.0_all.deb"))
	packages, _ := runTool(t, repo, nil, scan, "pool", "/dev/null")
	if !bytes.Contains(packages, []byte("Package: shoal-hello")) {
		t.Fatalf("dpkg-scanpackages wrote:\n%s", packages)
	}
	if err := os.WriteFile(filepath.Join(repo, "Packages"), packages, 0o644); err != nil {
		t.Fatal(err)
	}
	release, _ := runTool(t, repo, nil, ftparchive, "release", ".")
	if err := os.WriteFile(filepath.Join(repo, "Release"), release, 0o644); err != nil {
		t.Fatal(err)
	}

	f := startFleet(t, www, 3)

	// apt and dpkg, each with a private state: lists, cache, status, root.
	for i, e := range f.edges[:2] {
		st := filepath.Join(work, fmt.Sprintf("apt%d", i))
		root := filepath.Join(st, "root")
		for _, d := range []string{"lists/partial", "cache/archives/partial", "root/var/lib/dpkg/info", "root/var/lib/dpkg/updates", "etc/preferences.d", "etc/apt.conf.d"} {
			if err := os.MkdirAll(filepath.Join(st, d), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		status := filepath.Join(root, "var/lib/dpkg/status")
		for _, name := range []string{status, filepath.Join(root, "var/lib/dpkg/available")} {
			if err := os.WriteFile(name, nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		sources := filepath.Join(st, "sources.list")
		if err := os.WriteFile(sources, []byte("deb [trusted=yes] "+e.url+"/debian ./\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		opts := []string{
			"-o", "Dir::Etc::sourcelist=" + sources,
			"-o", "Dir::Etc::sourceparts=-",
			"-o", "Dir::Etc::preferencesparts=" + filepath.Join(st, "etc/preferences.d"),
			"-o", "Dir::Etc::parts=" + filepath.Join(st, "etc/apt.conf.d"),
			"-o", "Dir::State::Lists=" + filepath.Join(st, "lists"),
			"-o", "Dir::State::status=" + status,
			"-o", "Dir::Cache=" + filepath.Join(st, "cache"),
			"-o", "Dir::Log=" + st,
			"-o", "Debug::NoLocking=1",
			"-o", "APT::Sandbox::User=root",
			"-o", "Acquire::Languages=none",
			"-o", "DPkg::Options::=--root=" + root,
			"-o", "DPkg::Options::=--log=" + filepath.Join(st, "dpkg.log"),
			"-o", "DPkg::Options::=--force-script-chrootless",
			"-o", "DPkg::Options::=--force-not-root",
			"-o", "Dpkg::Use-Pty=0",
			"-o", "DPkg::Pre-Invoke::=",
			"-o", "DPkg::Post-Invoke::=",
			"-o", "APT::Update::Post-Invoke::=",
		}
		env := []string{"DEBIAN_FRONTEND=noninteractive"}
		out, errOut := runTool(t, st, env, aptGet, append(opts, "update")...)
		if len(bytes.TrimSpace(errOut)) > 0 {
			t.Fatalf("apt-get update via edge %d complained:\n%s\n%s", i+1, errOut, out)
		}
		out, _ = runTool(t, st, env, aptGet, append(opts, "install", "-y", "--no-install-recommends", "shoal-hello")...)
		got, err := os.ReadFile(filepath.Join(root, "usr/share/shoal-hello/payload.bin"))
		if err != nil {
			t.Fatalf("apt-get install via edge %d: %v\n%s", i+1, err, out)
		}
		if !bytes.Equal(got, payload) {
			t.Fatalf("apt-get install via edge %d installed other bytes", i+1)
		}
		if st, err := os.ReadFile(status); err != nil || !bytes.Contains(st, []byte("Package: shoal-hello\nStatus: install ok installed")) {
			t.Fatalf("private dpkg status after install via edge %d: %v\n%s", i+1, err, st)
		}
	}
	// The machine's own dpkg never heard of it.
	if b, _ := os.ReadFile("/var/lib/dpkg/status"); bytes.Contains(b, []byte("Package: shoal-hello\n")) {
		t.Fatal("the machine's dpkg status lists the test package")
	}
}

// TestE2EHLS makes a short HLS stream with ffmpeg, and has ffmpeg read it
// through an edge and decode every frame: the frames' checksums equal
// those of decoding the files directly.
func TestE2EHLS(t *testing.T) {
	ffmpeg := clientTool(t, "ffmpeg", "ffmpeg")
	www := t.TempDir()
	hls := filepath.Join(www, "live")
	if err := os.MkdirAll(hls, 0o755); err != nil {
		t.Fatal(err)
	}
	runTool(t, hls, nil, ffmpeg, "-hide_banner", "-loglevel", "error", "-nostdin",
		"-f", "lavfi", "-i", "testsrc2=duration=6:size=320x180:rate=25",
		"-f", "lavfi", "-i", "sine=frequency=440:duration=6",
		"-c:v", "mpeg2video", "-q:v", "4", "-g", "25", "-c:a", "mp2", "-b:a", "64k",
		"-f", "hls", "-hls_time", "1", "-hls_list_size", "0", "-hls_segment_filename", "seg%03d.ts", "stream.m3u8")
	segs, _ := filepath.Glob(filepath.Join(hls, "seg*.ts"))
	if len(segs) < 4 {
		t.Fatalf("ffmpeg made %d segments", len(segs))
	}
	decode := func(input string) []byte {
		out, _ := runTool(t, www, nil, ffmpeg, "-hide_banner", "-loglevel", "error", "-nostdin",
			"-i", input, "-map", "0", "-f", "framemd5", "-")
		return out
	}
	want := decode(filepath.Join(hls, "stream.m3u8"))
	if n := bytes.Count(want, []byte("\n0,")); n < 100 {
		t.Fatalf("decoding the files directly gave %d video frames:\n%s", n, tail(want))
	}
	f := startFleet(t, www, 3)
	for i, e := range f.edges {
		got := decode(e.url + "/live/stream.m3u8")
		if !bytes.Equal(got, want) {
			t.Fatalf("ffmpeg through edge %d decoded other frames (%d bytes of framemd5, want %d)", i+1, len(got), len(want))
		}
	}
}
