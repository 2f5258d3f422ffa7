package main

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestDependencies keeps the module's arrows pointing one way
// (ARCHITECTURE.md, DESIGN.md's table): each package may import only the
// packages of this module listed for it, nothing imports edge, front or
// bench but this command, and edge talks to peers through swarm alone,
// never quic-go.
func TestDependencies(t *testing.T) {
	const module = "github.com/shoalcdn/shoal/"
	allowed := map[string][]string{
		"erasure":             nil,
		"manifest":            nil,
		"internal/httpcache":  nil,
		"internal/latency":    nil,
		"internal/purgelog":   nil,
		"internal/digest":     {"erasure"},
		"internal/sizedlru":   nil,
		"internal/throttle":   nil,
		"internal/netns":      nil,
		"internal/samplefile": nil,
		"front":               nil,
		"origin":              {"erasure", "internal/httpcache", "manifest"},
		"swarm":               {"erasure", "internal/throttle"},
		"store":               {"erasure", "internal/sizedlru"},
		"edge": {"erasure", "internal/digest", "internal/httpcache", "internal/latency", "internal/purgelog", "internal/sizedlru",
			"internal/throttle", "manifest", "origin", "store", "swarm"},
		"bench": {"internal/netns", "internal/samplefile"},
	}
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}} {{join .Imports \" \"}}", module+"...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	seen := map[string]bool{}
	for line := range strings.Lines(string(out)) {
		fields := strings.Fields(line)
		pkg, ok := strings.CutPrefix(fields[0], module)
		if !ok {
			continue
		}
		seen[pkg] = true
		for _, imp := range fields[1:] {
			if pkg == "edge" && strings.HasPrefix(imp, "github.com/quic-go/") {
				t.Errorf("edge imports %s: it talks to peers through swarm", imp)
			}
			dep, ok := strings.CutPrefix(imp, module)
			if !ok || pkg == "cmd/shoal" || strings.HasPrefix(pkg, "deploy") {
				continue
			}
			want, listed := allowed[pkg]
			if !listed {
				t.Errorf("%s is not in this test's table: say what it may import", pkg)
				break
			}
			if !slices.Contains(want, dep) {
				t.Errorf("%s imports %s, which the architecture does not allow", pkg, dep)
			}
		}
	}
	for pkg := range allowed {
		if !seen[pkg] {
			t.Errorf("%s is in the table but not in the module", pkg)
		}
	}
}
