package bench

import (
	"context"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// CountingProxy is a reverse proxy in front of the origin that counts the
// requests it forwards and the response body bytes the origin sends back:
// origin egress, measured between the systems under test and the origin
// instead of taken from their own counters. Every system reaches the origin
// through it, the direct clients too, so each pays the same hop.
type CountingProxy struct {
	srv   *http.Server
	ln    net.Listener
	tr    *http.Transport
	bytes atomic.Int64
	reqs  atomic.Int64
}

// StartCountingProxy listens on a free loopback port and forwards to the
// origin at target (a base URL).
func StartCountingProxy(target string) (*CountingProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	return startCountingProxy(ln, target, nil)
}

// startCountingProxy serves on ln and forwards to target, connecting with
// dial (nil: the default dialer).
func startCountingProxy(ln net.Listener, target string, dial func(context.Context, string, string) (net.Conn, error)) (*CountingProxy, error) {
	u, err := url.Parse(target)
	if err != nil {
		ln.Close()
		return nil, err
	}
	p := &CountingProxy{ln: ln}
	p.tr = &http.Transport{
		DialContext:         dial,
		DisableCompression:  true,
		MaxIdleConnsPerHost: 256,
		IdleConnTimeout:     90 * time.Second,
	}
	rp := &httputil.ReverseProxy{
		Rewrite:    func(pr *httputil.ProxyRequest) { pr.SetURL(u) },
		Transport:  p.tr,
		BufferPool: newBufferPool(),
		// A site killed mid-request (the faults scenario) cancels its
		// origin fetch: expected, and not worth a line on the terminal.
		ErrorLog: log.New(io.Discard, "", 0),
		ModifyResponse: func(resp *http.Response) error {
			resp.Body = &countingBody{ReadCloser: resp.Body, n: &p.bytes}
			return nil
		},
	}
	p.srv = &http.Server{
		ReadHeaderTimeout: 10 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p.reqs.Add(1)
			rp.ServeHTTP(w, r)
		}),
	}
	go p.srv.Serve(ln)
	return p, nil
}

// URL returns the proxy's base URL.
func (p *CountingProxy) URL() string { return "http://" + p.ln.Addr().String() }

// Counts returns the body bytes and requests forwarded so far.
func (p *CountingProxy) Counts() (bytes, reqs int64) { return p.bytes.Load(), p.reqs.Load() }

// Close stops the proxy and its connections.
func (p *CountingProxy) Close() error {
	err := p.srv.Close()
	p.tr.CloseIdleConnections()
	return err
}

type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	return n, err
}

// copyBufferSize is the proxy's and the clients' copy buffer: large enough
// that a copy is a few system calls per segment, not thousands.
const copyBufferSize = 256 << 10

// bufferPool lends httputil.ReverseProxy its copy buffers.
type bufferPool struct{ p *sync.Pool }

func newBufferPool() bufferPool {
	return bufferPool{&sync.Pool{New: func() any { b := make([]byte, copyBufferSize); return &b }}}
}

func (b bufferPool) Get() []byte    { return *b.p.Get().(*[]byte) }
func (b bufferPool) Put(buf []byte) { b.p.Put(&buf) }
