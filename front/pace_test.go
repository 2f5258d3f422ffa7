package front

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// slowBody yields body in pieces of 32 KiB every gap.
func slowBody(body []byte, gap time.Duration) io.Reader {
	pr, pw := io.Pipe()
	go func() {
		for b := body; len(b) > 0; {
			n := min(len(b), 32<<10)
			if _, err := pw.Write(b[:n]); err != nil {
				return
			}
			b = b[n:]
			time.Sleep(gap)
		}
		pw.Close()
	}()
	return pr
}

func TestSlowHonestUpload(t *testing.T) {
	tf := startTestFront(t, Config{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Write([]byte{byte(len(b) >> 16)})
	}), MinSendRate: 256 << 10, SendWindow: 2 * time.Second})
	body := bytes.Repeat([]byte("x"), 1<<20)
	for base, c := range tf.clients(t) {
		t.Run(strings.NewReplacer("/", "_", ":", "_").Replace(base), func(t *testing.T) {
			t.Parallel()
			// 1 MiB at about 640 KiB/s: 1.6 s, longer than the window.
			req, _ := http.NewRequest("POST", base+"/up", slowBody(body, 50*time.Millisecond))
			req.ContentLength = int64(len(body))
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || len(b) != 1 || b[0] != 16 {
				t.Errorf("%s %q", resp.Status, b)
			}
		})
	}
}

// TestSlowReaderCut: over every protocol, a client that stops reading a
// large response is cut off once the bytes stop leaving at the minimum
// rate, while a handler that waits for its data (as the edge waits for a
// slow origin) longer than the window is not held against the client.
func TestSlowReaderCut(t *testing.T) {
	big := bytes.Repeat([]byte("y"), 24<<20)
	tf := startTestFront(t, Config{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/wait") {
			w.Write([]byte("first"))
			http.NewResponseController(w).Flush()
			time.Sleep(3 * time.Second) // 1.5 windows without writing
			w.Write([]byte(" then the rest"))
			return
		}
		w.Write(big)
	}), MinSendRate: 1 << 20, SendWindow: 2 * time.Second})
	for base, c := range tf.clients(t) {
		t.Run(strings.NewReplacer("/", "_", ":", "_").Replace(base), func(t *testing.T) {
			t.Parallel()
			resp, err := c.Get(base + "/wait")
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || string(b) != "first then the rest" {
				t.Fatalf("a handler that paused: %.40q (%d bytes), %v", b, len(b), err)
			}

			resp, err = c.Get(base + "/big")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			one := make([]byte, 1)
			if _, err := io.ReadFull(resp.Body, one); err != nil {
				t.Fatal(err)
			}
			time.Sleep(5 * time.Second) // not reading: the buffers fill, the writes stall
			n, err := io.Copy(io.Discard, resp.Body)
			if err == nil || n+1 >= int64(len(big)) {
				t.Fatalf("a reader that stopped for 5 s got %d more bytes, err %v; want it cut off", n, err)
			}
		})
	}
}
