package main

import (
	"context"
	"io"
	"strings"
	"testing"
)

// TestEdgeReadAheadFlag: --read-ahead outside 1..64 is refused with a
// message naming the flag, before anything starts.
func TestEdgeReadAheadFlag(t *testing.T) {
	for _, v := range []string{"0", "-1", "65"} {
		err := runEdge(context.Background(), []string{"--origin", "http://127.0.0.1:1", "--read-ahead", v}, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "--read-ahead") {
			t.Errorf("--read-ahead %s: got %v, want an error naming the flag", v, err)
		}
	}
}
