package bench

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestNginxConf(t *testing.T) {
	s := nginxSite{Prefix: "/tmp/site", Listen: "127.0.0.1:8081", Upstream: "127.0.0.1:9000", Slice: 4 << 20, Lock: 10 * time.Minute}
	conf, err := s.conf()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"listen 127.0.0.1:8081;", "server 127.0.0.1:9000;", "proxy_cache_lock on;", "sendfile on;",
		"proxy_cache_lock_timeout 600s;", "proxy_cache_lock_age 600s;", "slice 4194304;",
		"proxy_set_header Range $slice_range;", "$slice_range;", "pid /tmp/site/nginx.pid;", "daemon off;",
	} {
		if !strings.Contains(conf, want) {
			t.Errorf("no %q in\n%s", want, conf)
		}
	}
	if strings.Contains(conf, "user ") {
		t.Errorf("a user directive without User:\n%s", conf)
	}
	s.Slice, s.User, s.Group = 0, "root", "root"
	conf, err = s.conf()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(conf, "slice") {
		t.Errorf("slicing without a slice size:\n%s", conf)
	}
	if !strings.Contains(conf, "user root root;") {
		t.Errorf("no user directive:\n%s", conf)
	}
	if strings.Contains(conf, "0.0.0.0") || strings.Contains(conf, "listen 80") {
		t.Errorf("listens beyond loopback:\n%s", conf)
	}
}

// TestNginxConfValid has the installed nginx check the configuration.
func TestNginxConfValid(t *testing.T) {
	info, err := findNginx("nginx")
	if err != nil {
		t.Skipf("no nginx: %v", err)
	}
	if info.Version == "" {
		t.Errorf("no version from nginx -V")
	}
	for _, slice := range []int64{0, 4 << 20} {
		if slice > 0 && !info.Slice {
			continue
		}
		dir := t.TempDir()
		s := nginxSite{Prefix: dir, Listen: "127.0.0.1:1", Upstream: "127.0.0.1:2", Slice: slice, Lock: time.Minute}
		if os.Geteuid() == 0 {
			s.User, s.Group = "root", "root"
		}
		conf, err := s.conf()
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, "nginx.conf")
		os.WriteFile(path, []byte(conf), 0o644)
		os.MkdirAll(filepath.Join(dir, "tmp"), 0o755)
		out, err := exec.Command(info.Path, "-t", "-q", "-p", dir, "-c", path, "-e", filepath.Join(dir, "error.log")).CombinedOutput()
		if err != nil {
			t.Errorf("nginx -t with slice %d: %v\n%s\n%s", slice, err, out, conf)
		}
	}
}
