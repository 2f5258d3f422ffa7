package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestDemo runs the README's first command, shoal demo --exit, small: two
// edges and an 8 MiB release. It must download through every edge with
// the sums right and print the origin's egress.
func TestDemo(t *testing.T) {
	var stdout, stderr bytes.Buffer
	err := runDemo(context.Background(), []string{"--exit", "--edges", "2", "--size", "8MiB"}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("demo: %v\nstdout:\n%s\nstderr:\n%s", err, &stdout, &stderr)
	}
	out := stdout.String()
	for _, want := range []string{"edge 1 ", "edge 2 ", "origin egress:", "unique bytes"} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output has no %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "MISMATCH") {
		t.Errorf("demo output shows a mismatch:\n%s", out)
	}
	if n := strings.Count(out, " ok\n"); n != 2 {
		t.Errorf("demo output has %d verified edges, want 2:\n%s", n, out)
	}
}
