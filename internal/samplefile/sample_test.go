package samplefile

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"
)

func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	a, err := WriteFile(filepath.Join(dir, "x", "a.bin"), 100_000, 7)
	if err != nil {
		t.Fatal(err)
	}
	b, err := WriteFile(filepath.Join(dir, "b.bin"), 100_000, 7)
	if err != nil {
		t.Fatal(err)
	}
	c, err := WriteFile(filepath.Join(dir, "c.bin"), 100_000, 8)
	if err != nil {
		t.Fatal(err)
	}
	if a != b || a == c {
		t.Errorf("sums %s %s %s: want the same for one seed, another for another", a, b, c)
	}
	body, err := os.ReadFile(filepath.Join(dir, "x", "a.bin"))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(body)
	if len(body) != 100_000 || hex.EncodeToString(sum[:]) != a {
		t.Errorf("file of %d bytes, sum %x: want 100000 bytes, sum %s", len(body), sum, a)
	}
}
