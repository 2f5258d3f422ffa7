package edge

import (
	"strings"
	"testing"
)

// TestNegativeReadAheadIsRefused: a negative Config.ReadAhead is a clear
// error from New, not a panic when the first response starts.
func TestNegativeReadAheadIsRefused(t *testing.T) {
	e, err := New(Config{ReadAhead: -1, Logger: quietLogger()})
	if err == nil {
		e.Close()
		t.Fatal("New accepted ReadAhead -1")
	}
	if !strings.Contains(err.Error(), "ReadAhead") {
		t.Errorf("error %q does not name ReadAhead", err)
	}
}
