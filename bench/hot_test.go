package bench

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// TestHotScript runs bench/hot.sh briefly (one round of one second per
// system and size) with the shoal binary of this checkout: the script
// itself checks that every server sends the object's bytes from its cache
// before it measures; here every system must also have served requests.
func TestHotScript(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the shoal binary, nginx and wrk; skipped with -short")
	}
	for _, tool := range []string{"wrk", "nginx", "curl", "python3", "bash"} {
		if _, err := exec.LookPath(tool); err != nil && (tool != "nginx" || !executable("/usr/sbin/nginx")) {
			if os.Getenv("CI") == "true" {
				t.Fatalf("bench/hot.sh needs %s: %v", tool, err)
			}
			t.Skipf("bench/hot.sh needs %s (apt-get install -y %s): %v", tool, tool, err)
		}
	}
	cmd := exec.Command("bash", "hot.sh")
	cmd.Env = append(os.Environ(), "SHOAL_BIN="+buildShoal(t), "HOT_DURATION=1", "HOT_ROUNDS=1", "HOT_SIZES=1048576 1024", "HOT_CONNS=8")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("bench/hot.sh: %v\n%s", err, out)
	}
	_, summary, ok := strings.Cut(string(out), "# summary")
	if !ok {
		t.Fatalf("no summary in the output:\n%s", out)
	}
	seen := map[string]bool{}
	for _, line := range strings.Split(summary, "\n") {
		f := strings.Fields(line)
		if len(f) < 3 || f[1] != "1048576" && f[1] != "1024" {
			continue
		}
		if rps, err := strconv.ParseFloat(f[2], 64); err != nil || rps <= 0 {
			t.Errorf("%s, %s bytes: req/s %q", f[0], f[1], f[2])
		}
		seen[f[0]+" "+f[1]] = true
	}
	for _, sys := range []string{"shoal", "nginx", "static"} {
		for _, size := range []string{"1048576", "1024"} {
			if !seen[sys+" "+size] {
				t.Errorf("no summary for %s, %s bytes:\n%s", sys, size, out)
			}
		}
	}
}

func executable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}
