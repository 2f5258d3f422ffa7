package edge

import (
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/shoalcdn/shoal/erasure"
	"github.com/shoalcdn/shoal/store"
)

func openRecordStore(t *testing.T, dir string) *store.Store {
	t.Helper()
	s, err := store.Open(store.Config{Dir: dir, Limit: 1 << 30, ScrubRate: -1, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestRecordsKeptOnDisk(t *testing.T) {
	dir := t.TempDir()
	s := openRecordStore(t, dir)
	r := sampleRecord()
	r.Expires = time.Now().Add(time.Hour)
	old := sampleRecord()
	old.Key = "/old"
	old.Expires = time.Now().Add(-2 * recordKeep)
	pass := &Record{Key: "/pass", Pass: true, Expires: time.Now().Add(time.Hour)}
	for _, rec := range []*Record{r, old, pass} {
		if err := putRecord(s, rec); err != nil {
			t.Fatal(err)
		}
	}
	// An older word on r's object does not replace it.
	older := sampleRecord()
	older.Fetched = r.Fetched.Add(-time.Minute)
	older.Validator = `"older"`
	if err := putRecord(s, older); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "records", "zz"), []byte("garbage"), 0o644)
	s.Close()
	s2 := openRecordStore(t, dir)
	got := storedRecords(s2)
	if len(got) != 1 || got[0].Key != r.Key || !got[0].Same(r) {
		t.Fatalf("records after reopen: %v, want only %q", got, r.Key)
	}
	if _, err := os.Stat(filepath.Join(dir, "records", "zz")); !errors.Is(err, os.ErrNotExist) {
		t.Error("garbage record file kept")
	}
	if again := storedRecords(s2); len(again) != 1 {
		t.Errorf("second load: %d records", len(again))
	}
}

// A record file as earlier versions wrote it (the record's encoding alone,
// under records/<2 hex>/<32 hex of the key's BLAKE3>) loads after an
// upgrade.
func TestRecordFileFromEarlierVersion(t *testing.T) {
	dir := t.TempDir()
	r := sampleRecord()
	r.Expires = time.Now().Add(time.Hour)
	h := erasure.Sum([]byte(r.Key))
	name := hex.EncodeToString(h[:16])
	p := filepath.Join(dir, "records", name[:2], name)
	os.MkdirAll(filepath.Dir(p), 0o755)
	if err := os.WriteFile(p, r.Append(nil), 0o644); err != nil {
		t.Fatal(err)
	}
	got := storedRecords(openRecordStore(t, dir))
	if len(got) != 1 || !got[0].Same(r) {
		t.Fatalf("records: %v, want %q", got, r.Key)
	}
}
