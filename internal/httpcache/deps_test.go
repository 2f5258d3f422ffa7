package httpcache

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImportsStdlibOnly keeps the package a leaf: the rules are pure, and
// both the edge and the origin import them (see DESIGN.md's table).
func TestImportsStdlibOnly(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool:", err)
	}
	out, err := exec.Command(goTool, "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, p := range strings.Fields(string(out)) {
		if p != "github.com/shoalcdn/shoal/internal/httpcache" {
			t.Errorf("imports %s, want the standard library only", p)
		}
	}
}
