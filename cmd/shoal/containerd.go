package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
)

// runContainerdHosts writes containerd's hosts.toml for a registry, with
// an edge as its mirror and the registry itself as the fallback
// (README "Container images"; the Helm chart's containerdMirror runs it on
// every node).
func runContainerdHosts(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("containerd-hosts", flag.ContinueOnError)
	envUsage(fs)
	var (
		dir      = fs.String("dir", "/etc/containerd/certs.d", "containerd's hosts directory (config_path of its CRI registry config, or ctr --hosts-dir)")
		registry = fs.String("registry", "", "the registry's name in image references, e.g. registry.example.com:5000, docker.io, or _default for every registry (required)")
		server   = fs.String("server", "", "the registry's own URL, asked when the edge cannot answer (default: https://<registry>, none for _default)")
		mirror   = fs.String("mirror", "", "the edge's client URL, e.g. http://10.0.0.5:8080 (required)")
		remove   = fs.Bool("remove", false, "remove the registry's hosts.toml instead (only one this command wrote)")
		resolve  = fs.Bool("resolve", false, "let the edge resolve tags too (capability resolve); by default tags are resolved at the registry, and the edge only serves content by digest, which containerd checks")
	)
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	if *registry == "" || strings.ContainsAny(*registry, `/\`) || *registry == "." || *registry == ".." {
		return fmt.Errorf("--registry %q: want a registry host name (host[:port]) or _default", *registry)
	}
	path := filepath.Join(*dir, *registry, "hosts.toml")
	if *remove {
		b, err := os.ReadFile(path)
		switch {
		case errors.Is(err, os.ErrNotExist):
			return nil
		case err != nil:
			return err
		case !strings.HasPrefix(string(b), hostsHeader):
			return fmt.Errorf("%s was not written by shoal containerd-hosts: left alone", path)
		}
		return os.Remove(path)
	}
	b, err := containerdHosts(*registry, *server, *mirror, *resolve)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s: pulls of %s go through %s\n", path, *registry, *mirror)
	return nil
}

// hostsHeader starts every hosts.toml containerdHosts writes.
const hostsHeader = "# Written by shoal containerd-hosts"

// containerdHosts returns the hosts.toml of registry: pulls (and with
// resolve, tag lookups) go to the mirror first, then to server.
func containerdHosts(registry, server, mirror string, resolve bool) ([]byte, error) {
	m, err := url.Parse(mirror)
	if err != nil || (m.Scheme != "http" && m.Scheme != "https") || m.Host == "" {
		return nil, fmt.Errorf("--mirror %q: want the edge's URL, http://host:port", mirror)
	}
	if server == "" && registry != "_default" {
		server = "https://" + registry
		if registry == "docker.io" {
			server = "https://registry-1.docker.io"
		}
	}
	if server != "" {
		if u, err := url.Parse(server); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("--server %q: want the registry's URL, https://host[:port]", server)
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s: pulls of %s go through the Shoal edge first.\n", hostsHeader, registry)
	if server != "" {
		fmt.Fprintf(&b, "server = %q\n", server)
	}
	caps := `"pull"`
	if resolve {
		caps += `, "resolve"`
	}
	fmt.Fprintf(&b, "\n[host.%q]\n  capabilities = [%s]\n", strings.TrimSuffix(m.String(), "/"), caps)
	return []byte(b.String()), nil
}
