package edge

import (
	"fmt"
	"testing"

	"github.com/shoalcdn/shoal/erasure"
)

// TestObjectIDsMemo: the memo answers what Record.ID computes, for records
// that share a slot, and for a record whose inputs changed under the same key.
func TestObjectIDsMemo(t *testing.T) {
	var c objectIDs
	var recs []*Record
	for i := range 1000 { // more keys than slots: collisions
		recs = append(recs, &Record{Key: fmt.Sprintf("/k%d", i%300), Validator: fmt.Sprintf(`"v%d"`, i), Size: int64(i), Layout: testLayout})
	}
	recs = append(recs, &Record{Key: "/k1", Validator: `"v1"`, Size: 1, Layout: erasure.Layout{}})
	for round := range 2 {
		for i, r := range recs {
			if got, want := c.of(r), r.ID(); got != want {
				t.Fatalf("round %d, record %d: got %v, want %v", round, i, got, want)
			}
			if got, want := c.of(r), r.ID(); got != want { // from the memo
				t.Fatalf("round %d, record %d again: got %v, want %v", round, i, got, want)
			}
		}
	}
}
