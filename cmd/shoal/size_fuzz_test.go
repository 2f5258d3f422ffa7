package main

import "testing"

// FuzzParseSize: any flag value parses to a size or a clear error, and a
// size prints back to itself.
func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"4MiB", "256MiB", "1GiB", "1.5GB", "4096", "0", "-1", "NaN", "1e30", "7 KiB", ".5k", "TiB"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := parseSize(s)
		if err != nil {
			return
		}
		if n < 0 || n > 1<<62 {
			t.Fatalf("parseSize(%q) = %d", s, n)
		}
		back, err := parseSize(formatSize(n))
		if err != nil || back != n {
			t.Fatalf("parseSize(%q) = %d, printed %q, read back %d, %v", s, n, formatSize(n), back, err)
		}
	})
}
