package store

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies keeps the store a leaf below the edge: of this module it
// may import erasure and internal/sizedlru, nothing else (DESIGN.md's
// table), so that it never learns what a record or a peer is.
func TestDependencies(t *testing.T) {
	const module = "github.com/shoalcdn/shoal/"
	allowed := map[string]bool{
		module + "store":             true,
		module + "erasure":           true,
		module + "internal/sizedlru": true,
	}
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if strings.HasPrefix(pkg, module) && !allowed[pkg] {
			t.Errorf("store imports %s", pkg)
		}
	}
}
