package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestContainerdHosts(t *testing.T) {
	dir := t.TempDir()
	var out, errOut bytes.Buffer
	run := func(args ...string) error {
		return runContainerdHosts(context.Background(), append([]string{"--dir", dir}, args...), &out, &errOut)
	}
	if err := run("--registry", "docker.io", "--mirror", "http://10.0.0.5:8080"); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "docker.io", "hosts.toml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`server = "https://registry-1.docker.io"`, `[host."http://10.0.0.5:8080"]`, `capabilities = ["pull"]`} {
		if !strings.Contains(string(b), want) {
			t.Fatalf("hosts.toml lacks %q:\n%s", want, b)
		}
	}
	if err := run("--registry", "_default", "--mirror", "http://10.0.0.5:8080", "--resolve"); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "_default", "hosts.toml")); strings.Contains(string(b), "server =") || !strings.Contains(string(b), `"pull", "resolve"`) {
		t.Fatalf("_default with a server:\n%s", b)
	}
	for _, bad := range [][]string{
		{"--registry", "", "--mirror", "http://e:1"},
		{"--registry", "../etc", "--mirror", "http://e:1"},
		{"--registry", "r.example", "--mirror", "10.0.0.5:8080"},
		{"--registry", "r.example", "--mirror", "http://e:1", "--server", "r.example"},
	} {
		if err := run(bad...); err == nil {
			t.Fatalf("%q: no error", bad)
		}
	}
	// --remove takes away what it wrote, and only that.
	if err := run("--registry", "docker.io", "--mirror", "http://e:1", "--remove"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "docker.io", "hosts.toml")); !os.IsNotExist(err) {
		t.Fatalf("hosts.toml still there after --remove: %v", err)
	}
	mine := filepath.Join(dir, "ghcr.io", "hosts.toml")
	os.MkdirAll(filepath.Dir(mine), 0o755)
	os.WriteFile(mine, []byte("server = \"https://ghcr.io\"\n"), 0o644)
	if err := run("--registry", "ghcr.io", "--mirror", "http://e:1", "--remove"); err == nil {
		t.Fatal("--remove deleted a hosts.toml it did not write")
	}
}
