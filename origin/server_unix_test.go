//go:build unix

package origin

import (
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

func TestServerFIFO(t *testing.T) {
	dir := t.TempDir()
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o644); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	ts := newTestServer(t, dir)
	done := make(chan int, 1)
	go func() {
		resp, err := ts.Client().Get(ts.URL + "/fifo")
		if err != nil {
			done <- -1
			return
		}
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	select {
	case got := <-done:
		if got != 404 {
			t.Fatalf("status: got %v, want %v", got, 404)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("GET of a FIFO blocked")
	}
}
