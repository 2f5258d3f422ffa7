package k8stest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// kubeVersion is the Kubernetes version the chart is rendered for; the API
// server the install test starts is the same version.
const kubeVersion = "1.37.0"

// ciCache is where .ci/run keeps the tools it builds.
const ciCache = "/var/cache/shoal-ci"

// missingTool skips the test, or fails it under CI=true, where every tool
// must be installed.
func missingTool(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s (CI=true: .ci/run should have installed it)", msg)
	}
	t.Skipf("skipping: %s (.ci/run installs it)", msg)
}

// helmPath finds helm: $SHOAL_HELM, then $PATH, then the CI cache.
func helmPath(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("SHOAL_HELM"); p != "" {
		if _, err := os.Stat(p); err != nil {
			missingTool(t, "SHOAL_HELM=%s: %v", p, err)
		}
		return p
	}
	if p, err := exec.LookPath("helm"); err == nil {
		return p
	}
	if ps, _ := filepath.Glob(filepath.Join(ciCache, "helm-*", "helm")); len(ps) > 0 {
		sort.Strings(ps)
		return ps[len(ps)-1]
	}
	missingTool(t, "helm not found (set SHOAL_HELM, or put helm on PATH)")
	return ""
}

// chartDir is the chart under test.
func chartDir(t testing.TB) string {
	t.Helper()
	d, err := filepath.Abs(filepath.Join("..", "..", "helm", "shoal"))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// ciValues returns the documented combinations of values: name → file.
func ciValues(t testing.TB) map[string]string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(chartDir(t), "ci", "*-values.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no helm/shoal/ci/*-values.yaml (%v)", err)
	}
	m := map[string]string{}
	for _, f := range files {
		m[strings.TrimSuffix(filepath.Base(f), "-values.yaml")] = f
	}
	return m
}

var (
	helmHomeOnce sync.Once
	helmHome     string
)

// runHelm runs helm with args, isolated from the user's helm configuration,
// and returns its stdout; stderr is in the error.
func runHelm(t testing.TB, args ...string) (string, error) {
	t.Helper()
	helm := helmPath(t)
	helmHomeOnce.Do(func() {
		// Shared by all tests of the process and removed by TestMain;
		// helm writes only small files there.
		d, err := os.MkdirTemp("", "shoal-helm-home-")
		if err != nil {
			panic(err)
		}
		helmHome = d
	})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, helm, args...)
	cmd.Env = append(os.Environ(),
		"HELM_CONFIG_HOME="+filepath.Join(helmHome, "config"),
		"HELM_CACHE_HOME="+filepath.Join(helmHome, "cache"),
		"HELM_DATA_HOME="+filepath.Join(helmHome, "data"),
	)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("helm %s: %w\n%s", strings.Join(args, " "), err, helmNoise(stderr.String()))
	}
	return stdout.String(), nil
}

// helmNoise drops helm's notice about the chart's one symbolic link
// (files/shoal-dashboard.json → deploy/grafana), which it prints on every run.
func helmNoise(stderr string) string {
	var keep []string
	for _, l := range strings.Split(stderr, "\n") {
		if !strings.Contains(l, "found symbolic link in path") && l != "" {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}

var (
	shoalOnce sync.Once
	shoalBin  string
	shoalErr  error
)

// shoalBinary builds cmd/shoal once per test process.
func shoalBinary(t testing.TB) string {
	t.Helper()
	shoalOnce.Do(func() {
		dir, err := os.MkdirTemp("", "shoal-k8stest-bin-")
		if err != nil {
			shoalErr = err
			return
		}
		shoalBin = filepath.Join(dir, "shoal")
		out, err := exec.Command("go", "build", "-o", shoalBin, "github.com/shoalcdn/shoal/cmd/shoal").CombinedOutput()
		if err != nil {
			shoalErr = fmt.Errorf("go build ./cmd/shoal: %v\n%s", err, out)
		}
	})
	if shoalErr != nil {
		t.Fatal(shoalErr)
	}
	return shoalBin
}

// TestMain removes what the tests shared.
func TestMain(m *testing.M) {
	code := m.Run()
	if helmHome != "" {
		os.RemoveAll(helmHome)
	}
	if shoalBin != "" {
		os.RemoveAll(filepath.Dir(shoalBin))
	}
	os.Exit(code)
}
