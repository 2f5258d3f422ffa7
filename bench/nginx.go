package bench

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"text/template"
	"time"
)

// nginxInfo is what the harness learned about the nginx binary.
type nginxInfo struct {
	Path    string
	Version string // e.g. "nginx/1.22.1"
	Slice   bool   // built with the slice module
}

// findNginx looks up name (a path, or a command on PATH) and asks it for
// its version and modules.
func findNginx(name string) (nginxInfo, error) {
	path, err := exec.LookPath(name)
	if err != nil {
		return nginxInfo{}, err
	}
	out, err := exec.Command(path, "-V").CombinedOutput() // nginx -V writes to stderr
	if err != nil {
		return nginxInfo{}, fmt.Errorf("bench: %s -V: %w: %s", path, err, out)
	}
	info := nginxInfo{Path: path, Slice: bytes.Contains(out, []byte("--with-http_slice_module"))}
	first, _, _ := strings.Cut(string(out), "\n")
	info.Version = strings.TrimSpace(strings.TrimPrefix(first, "nginx version:"))
	return info, nil
}

// nginxSite is one site's nginx configuration.
type nginxSite struct {
	// Prefix is its directory: configuration, cache, temporary files, pid
	// and logs.
	Prefix string
	// Listen is its client address, host:port on loopback.
	Listen string
	// Upstream is the origin's host:port (the counting proxy).
	Upstream string
	// Slice is the slice size in bytes; zero or less caches whole objects.
	Slice int64
	// Lock bounds how long a request waits for another to fill the cache
	// entry it wants before it goes to the origin itself.
	Lock time.Duration
	// User and Group run the workers when the harness is root (otherwise
	// nginx ignores the directive, and workers run as the current user).
	User, Group string
}

// nginxConfTemplate is a per-site cache in front of a software-download
// origin, as a competent operator would write it: sendfile, a large disk
// cache, proxy_cache_lock so that a crowd asking for one object costs the
// origin one fetch, keep-alive connections to the origin, and, when the
// slice module is built in, slices so that clients are served as the
// object arrives (each slice is locked and cached on its own) instead of
// after all of it.
var nginxConfTemplate = template.Must(template.New("nginx.conf").Parse(`# Written by shoal bench: one site's cache in front of the origin.
daemon off;
master_process on;
worker_processes auto;
pid {{.Prefix}}/nginx.pid;
error_log {{.Prefix}}/error.log warn;
{{- if .User}}
user {{.User}} {{.Group}};
{{- end}}

events {
    worker_connections 4096;
}

http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 65s;

    client_body_temp_path {{.Prefix}}/tmp/client;
    proxy_temp_path {{.Prefix}}/tmp/proxy;
    fastcgi_temp_path {{.Prefix}}/tmp/fastcgi;
    uwsgi_temp_path {{.Prefix}}/tmp/uwsgi;
    scgi_temp_path {{.Prefix}}/tmp/scgi;

    proxy_cache_path {{.Prefix}}/cache levels=1:2 keys_zone=site:16m max_size=64g inactive=1d use_temp_path=off;

    upstream origin {
        server {{.Upstream}};
        keepalive 32;
    }

    server {
        listen {{.Listen}};

        location / {
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffers 16 64k;
            proxy_buffer_size 64k;

            proxy_cache site;
            proxy_cache_valid 200 206 1h;
            proxy_cache_lock on;
            proxy_cache_lock_timeout {{.LockSeconds}}s;
            proxy_cache_lock_age {{.LockSeconds}}s;
            add_header X-Cache-Status $upstream_cache_status;
{{- if gt .Slice 0}}

            slice {{.Slice}};
            proxy_cache_key $scheme$proxy_host$uri$is_args$args$slice_range;
            proxy_set_header Range $slice_range;
{{- end}}
        }
    }
}
`))

// LockSeconds is Lock in whole seconds, as the template wants it.
func (s nginxSite) LockSeconds() int64 { return int64(max(s.Lock, time.Second) / time.Second) }

// conf renders the site's nginx.conf.
func (s nginxSite) conf() (string, error) {
	var b strings.Builder
	if err := nginxConfTemplate.Execute(&b, s); err != nil {
		return "", err
	}
	return b.String(), nil
}

// startNginx writes the site's configuration under its prefix and starts
// nginx in the foreground (daemon off), logging to logDir; wrap, if not
// empty, is a command line that runs it (`ip netns exec NS`).
func startNginx(info nginxInfo, s nginxSite, name, logDir string, wrap []string) (*process, error) {
	if os.Geteuid() == 0 {
		if u, err := user.Current(); err == nil {
			s.User, s.Group = u.Username, u.Username
			if g, err := user.LookupGroupId(u.Gid); err == nil {
				s.Group = g.Name
			}
		}
	}
	for _, d := range []string{"cache", "tmp"} {
		if err := os.MkdirAll(filepath.Join(s.Prefix, d), 0o755); err != nil {
			return nil, err
		}
	}
	conf, err := s.conf()
	if err != nil {
		return nil, err
	}
	path := filepath.Join(s.Prefix, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	// -e: the error log before the configuration is read, which would
	// otherwise be the distribution's (unwritable for a user).
	args := []string{"-p", s.Prefix, "-c", path, "-e", filepath.Join(s.Prefix, "error.log")}
	if len(wrap) > 0 {
		return startProcess(name, logDir, wrap[0], append(append(wrap[1:], info.Path), args...)...)
	}
	return startProcess(name, logDir, info.Path, args...)
}
