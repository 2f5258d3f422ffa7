// Package samplefile writes sample content for the demo and the bench: bytes
// from a seeded ChaCha8 stream, the same on every run and incompressible.
package samplefile

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
)

// WriteFile writes size bytes from a ChaCha8 stream seeded with seed to
// path, making its directories, and returns their SHA-256 in hex.
func WriteFile(path string, size int64, seed uint64) (string, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", err
	}
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	var key [32]byte
	for i := range 8 {
		key[i] = byte(seed >> (8 * i))
	}
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(rand.NewChaCha8(key), size)); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), f.Close()
}
