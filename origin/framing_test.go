package origin

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// rawOrigin is a TCP server on loopback that answers each request, on
// one connection after another, with the next scripted raw response; a
// response ending in "\x00close" closes the connection after it.
type rawOrigin struct {
	ln    net.Listener
	conns atomic.Int32
	resps chan string
}

func newRawOrigin(t *testing.T, resps ...string) *rawOrigin {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	o := &rawOrigin{ln: ln, resps: make(chan string, len(resps))}
	for _, r := range resps {
		o.resps <- r
	}
	close(o.resps)
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			o.conns.Add(1)
			go o.serve(c)
		}
	}()
	return o
}

func (o *rawOrigin) serve(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		io.Copy(io.Discard, req.Body)
		resp, ok := <-o.resps
		if !ok {
			return
		}
		raw, closeAfter := strings.CutSuffix(resp, "\x00close")
		if _, err := io.WriteString(c, raw); err != nil || closeAfter {
			return
		}
	}
}

func TestFramingUnknownTransferCoding(t *testing.T) {
	big := strings.Repeat("b", maxClosedBody+100)
	tests := []struct {
		name    string
		method  string
		resps   []string // the first is answered to a warm-up GET on the same connection
		code    int      // 0: the request fails
		body    string
		length  int64
		conns   int32
		noReuse bool
	}{
		{"RFC9112-6.3/unknown-coding-close-delimited", "GET", []string{"HTTP/1.1 200 OK\r\nTransfer-Encoding: ABCDEF\r\nX-A: 1\r\n\r\nhello\x00close"}, 200, "hello", 5, 1, false},
		{"RFC9112-6.3/unknown-coding-on-reused-connection", "GET", []string{"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", "HTTP/1.1 200 OK\r\nTransfer-Encoding: foo\r\n\r\nsecond\x00close"}, 200, "second", 6, 1, false},
		{"RFC9112-6.3/after-interim-100", "GET", []string{"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: foo\r\n\r\nafter\x00close"}, 200, "after", 5, 1, false},
		{"RFC9112-6.3/identity-and-unknown", "GET", []string{"HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\nTransfer-Encoding: x-mine;q=1\r\n\r\nid\x00close"}, 200, "id", 2, 1, false},
		{"RFC9112-6.3/large-body-streamed", "GET", []string{"HTTP/1.1 200 OK\r\nTransfer-Encoding: foo\r\n\r\n" + big + "\x00close"}, 200, big, -1, 1, false},
		{"RFC9112-6.3/head-no-body", "HEAD", []string{"HTTP/1.1 200 OK\r\nTransfer-Encoding: foo\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nnex"}, 200, "", -1, 1, false},
		// A response that would smuggle a second one in its body: it is
		// all body, and the connection is not used again.
		{"RFC9112-6.3/no-reuse-after-close-delimited", "GET", []string{"HTTP/1.1 200 OK\r\nTransfer-Encoding: foo\r\n\r\nx\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nevil\x00close", "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ngood"}, 200, "x\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nevil", -2, 2, true},
		{"RFC9112-6.3/with-content-length-refused", "GET", []string{"HTTP/1.1 200 OK\r\nTransfer-Encoding: foo\r\nContent-Length: 3\r\n\r\nabc\x00close"}, 0, "", 0, 1, false},
		{"RFC9112-6.1/gzip-coding-refused", "GET", []string{"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nzz\x00close"}, 0, "", 0, 1, false},
		{"RFC9112-6.1/chunked-not-final-refused", "GET", []string{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, foo\r\n\r\nzz\x00close"}, 0, "", 0, 1, false},
		{"RFC9112-5.2/folded-line-refused", "GET", []string{"HTTP/1.1 200 OK\r\nTransfer-Encoding: foo\r\n bar\r\n\r\nzz\x00close"}, 0, "", 0, 1, false},
		{"RFC9112-7.1/chunked-unchanged", "GET", []string{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"}, 200, "abc", -1, 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resps := tt.resps
			warm := strings.HasPrefix(tt.name, "RFC9112-6.3/unknown-coding-on-reused")
			o := newRawOrigin(t, resps...)
			c, err := NewClient(ClientConfig{Base: "http://" + o.ln.Addr().String()})
			if err != nil {
				t.Fatal(err)
			}
			hc := &http.Client{Transport: c.Transport()}
			url := "http://" + o.ln.Addr().String() + "/x"
			if warm {
				resp, err := hc.Get(url)
				if err != nil {
					t.Fatal(err)
				}
				io.ReadAll(resp.Body)
				resp.Body.Close()
			}
			req, _ := http.NewRequest(tt.method, url, nil)
			resp, err := hc.Do(req)
			if tt.code == 0 {
				if err == nil {
					resp.Body.Close()
					t.Fatalf("status %d, want the request to fail", resp.StatusCode)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != tt.code || !bytes.Equal(got, []byte(tt.body)) {
				t.Fatalf("status %d, %d body bytes (err %v), want %d and %d bytes", resp.StatusCode, len(got), err, tt.code, len(tt.body))
			}
			if v := resp.Header.Values("Transfer-Encoding"); len(v) != 0 || len(resp.TransferEncoding) > 0 && tt.body != "abc" {
				t.Errorf("Transfer-Encoding %q %q reached the caller", v, resp.TransferEncoding)
			}
			if tt.length != -2 && resp.ContentLength != tt.length {
				t.Errorf("ContentLength %d, want %d", resp.ContentLength, tt.length)
			}
			if tt.method == "HEAD" || tt.noReuse {
				// The connection must still be usable (HEAD) or not have
				// been reused (close-delimited): the next answer is "good"
				// or "next", never the bytes that followed.
				resp, err := hc.Get(url)
				if err != nil {
					t.Fatal(err)
				}
				next, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if want := map[bool]string{true: "nex", false: "good"}[tt.method == "HEAD"]; string(next) != want {
					t.Errorf("next response %q, want %q", next, want)
				}
			}
			if n := o.conns.Load(); n != tt.conns {
				t.Errorf("%d connections, want %d", n, tt.conns)
			}
		})
	}
}

// BenchmarkFramingGet measures a 64 KiB GET over one kept-alive
// connection through the origin client's transport (framingConn on the
// path) against a plain *http.Transport.
func BenchmarkFramingGet(b *testing.B) {
	body := bytes.Repeat([]byte("x"), 64<<10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(body) }))
	defer srv.Close()
	c, err := NewClient(ClientConfig{Base: srv.URL})
	if err != nil {
		b.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		rt   http.RoundTripper
	}{{"framing", c.Transport()}, {"plain", plainTransport()}} {
		b.Run(tt.name, func(b *testing.B) {
			hc := &http.Client{Transport: tt.rt}
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				resp, err := hc.Get(srv.URL)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
}

// plainTransport is the client's transport without framingConn.
func plainTransport() *http.Transport {
	t := newTransport(32)
	t.DialContext = (&net.Dialer{}).DialContext
	return t
}

// FuzzFramingHeader: a response header block never panics the framing
// rewrite, and a rewritten one keeps no Transfer-Encoding or
// Content-Length and is still one header block.
func FuzzFramingHeader(f *testing.F) {
	f.Add([]byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: foo\r\nX: 1\r\n\r\n"), "GET")
	f.Add([]byte("HTTP/1.1 204 No Content\r\nTransfer-Encoding: identity\r\n\r\n"), "HEAD")
	f.Add([]byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"), "GET")
	f.Fuzz(func(t *testing.T, block []byte, method string) {
		status, ok := statusOf(block)
		plainFraming(block)
		if !ok || !bytes.HasSuffix(block, []byte("\r\n\r\n")) {
			return
		}
		head, _ := rewriteHeader(block, status, method)
		if head == nil {
			return
		}
		lower := bytes.ToLower(head)
		if bytes.Contains(lower, []byte("\r\ntransfer-encoding:")) || bytes.Contains(lower, []byte("\r\ncontent-length:")) {
			t.Fatalf("rewritten header keeps framing fields: %q", head)
		}
		if !bytes.HasSuffix(head, []byte("\r\n\r\n")) || bytes.Count(head, []byte("\r\n\r\n")) != 1 {
			t.Fatalf("rewritten header is not one block: %q", head)
		}
	})
}
