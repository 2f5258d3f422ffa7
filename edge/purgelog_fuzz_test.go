package edge

import (
	"bytes"
	"testing"
	"time"
)

// FuzzPurgeLog: the purge log decoder never panics, and what it accepts
// encodes back to what it decoded.
func FuzzPurgeLog(f *testing.F) {
	l := newPurgeLog("")
	l.add(purgeEntry{pattern: "/a", at: time.Unix(1, 2)})
	l.add(purgeEntry{pattern: "/p/", prefix: true, at: time.Unix(3, 4)})
	f.Add(l.encode())
	f.Add(stampedPurge(purgeEntry{pattern: "/x", prefix: true, at: time.Unix(5, 6)})[1:])
	f.Add([]byte{0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		if en, err := parseStampedPurge(b); err == nil {
			if got := stampedPurge(en)[1:]; !bytes.Equal(got, b) {
				t.Fatalf("stamped purge %x re-encodes as %x", b, got)
			}
		}
		es, err := parsePurgeLog(b)
		if err != nil {
			return
		}
		l := newPurgeLog("")
		for _, en := range es {
			l.add(en)
		}
		again, err := parsePurgeLog(l.encode())
		if err != nil || len(again) > len(es) {
			t.Fatalf("re-encoded log: %d entries (of %d), %v", len(again), len(es), err)
		}
	})
}
