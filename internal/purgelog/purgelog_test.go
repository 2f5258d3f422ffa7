package purgelog

import (
	"bytes"
	"testing"
	"time"
)

func TestLogEncoding(t *testing.T) {
	at := time.Unix(1_700_000_000, 123)
	l := New("")
	l.Add(Entry{Pattern: "/a", At: at})
	l.Add(Entry{Pattern: "/p/", Prefix: true, At: at.Add(time.Second)})
	if l.Add(Entry{Pattern: "/a", At: at.Add(-time.Second)}) {
		t.Error("an older purge of a known pattern counted as news")
	}
	es, err := Parse(l.Encode())
	if err != nil || len(es) != 2 || es[0].Pattern != "/p/" || !es[0].Prefix || !es[1].At.Equal(at) {
		t.Fatalf("round trip: %+v, %v", es, err)
	}
	for _, tt := range []struct {
		key  string
		want time.Time
	}{
		{"/a", at},
		{"/a\nAccept-Language=fr", at},
		{"/ab", time.Time{}},
		{"/p/x", at.Add(time.Second)},
	} {
		if got := l.PurgedAt(tt.key); !got.Equal(tt.want) {
			t.Errorf("PurgedAt(%q) = %v, want %v", tt.key, got, tt.want)
		}
	}
	for _, bad := range [][]byte{nil, {0}, {0, 1}, {0, 1, 2, 0, 0, 0, 0, 0, 0, 0, 1, 0, 9, '/'}, {0xff, 0xff}, append(l.Encode(), 0)} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%x) accepted", bad)
		}
	}
	// Kept on disk.
	dir := t.TempDir()
	d := New(dir)
	d.Add(Entry{Pattern: "/k", At: at})
	d.Save()
	if got := New(dir).PurgedAt("/k"); !got.Equal(at) {
		t.Errorf("reloaded log: purge of /k at %v, want %v", got, at)
	}
}

// FuzzPurgeLog: the log and stamped-purge decoders never panic, and what
// they accept encodes back to what they decoded.
func FuzzPurgeLog(f *testing.F) {
	l := New("")
	l.Add(Entry{Pattern: "/a", At: time.Unix(1, 2)})
	l.Add(Entry{Pattern: "/p/", Prefix: true, At: time.Unix(3, 4)})
	f.Add(l.Encode())
	f.Add(AppendStamped(nil, Entry{Pattern: "/x", Prefix: true, At: time.Unix(5, 6)}))
	f.Add([]byte{0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		if en, err := ParseStamped(b); err == nil {
			if got := AppendStamped(nil, en); !bytes.Equal(got, b) {
				t.Fatalf("stamped purge %x re-encodes as %x", b, got)
			}
		}
		es, err := Parse(b)
		if err != nil {
			return
		}
		l := New("")
		for _, en := range es {
			l.Add(en)
		}
		again, err := Parse(l.Encode())
		if err != nil || len(again) > len(es) {
			t.Fatalf("re-encoded log: %d entries (of %d), %v", len(again), len(es), err)
		}
	})
}
