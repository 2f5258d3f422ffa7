package origin

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"strconv"
	"strings"
	"sync"
)

// Responses framed by the closing of the connection (RFC 9112 §6.3).
//
// Go's HTTP/1.1 client accepts a response's Transfer-Encoding only when it
// is "chunked" alone, and fails any other with an error, so an origin that
// sends a transfer coding it made up (a test suite does) would be a 502.
// RFC 9112 §6.3 rule 3 frames such a response: when the final transfer
// coding is not chunked, the body is what comes until the server closes
// the connection. framingConn rewrites the header of exactly that case
// before the client parses it:
//
//   - only the final response to a request this client sent on a plain
//     (not TLS) connection is looked at, found by the transport's GotConn
//     hook (framingTransport), never by guessing where a body ends;
//   - only when every coding named is unknown (or "identity"): a coding
//     that changes the bytes (chunked, gzip, deflate, compress) cannot be
//     passed on as the content, so those responses still fail;
//   - never with a Content-Length too (RFC 9112 §6.3: ought to be handled as
//     an error, it is how responses are split), nor with folded lines;
//   - the Transfer-Encoding lines are removed and "Connection: close"
//     added: the client reads until the close and never reuses the
//     connection, so nothing the origin sends after can be taken for the
//     next response. A body of up to maxClosedBody bytes is read whole
//     first and given a Content-Length, so that a cache can store it.
//
// An unknown coding is read as no coding, as browsers, nginx and Apache
// do. Whatever the origin sent, the client of the edge never sees its
// Transfer-Encoding: the edge frames its own responses.

const (
	// maxFramedHeader bounds the header block read ahead of the client.
	maxFramedHeader = 64 << 10
	// maxClosedBody is the largest close-delimited body read whole and
	// given a Content-Length.
	maxClosedBody = 1 << 20
)

// framingTransport installs the GotConn hook that tells a framingConn a
// response header comes next.
type framingTransport struct {
	*http.Transport
}

func (t framingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	method := req.Method
	trace := &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) {
		if fc, ok := info.Conn.(*framingConn); ok {
			fc.expect(method)
		}
	}}
	return t.Transport.RoundTrip(req.WithContext(httptrace.WithClientTrace(req.Context(), trace)))
}

// framingDialer wraps the connections dial makes.
func framingDialer(dial func(ctx context.Context, network, addr string) (net.Conn, error)) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &framingConn{Conn: c}, nil
	}
}

// framingConn is a client connection that may rewrite the header of the
// response it was told to expect (see above). Read is called by one
// goroutine (the transport's reader); expect by the request's.
type framingConn struct {
	net.Conn

	mu     sync.Mutex
	method string // the request whose response header comes next; "" when none

	pending []byte // rewritten bytes not yet returned
	err     error  // the read error to return once pending is empty
}

func (c *framingConn) expect(method string) {
	c.mu.Lock()
	c.method = method
	c.mu.Unlock()
}

func (c *framingConn) Read(b []byte) (int, error) {
	if len(c.pending) > 0 {
		n := copy(b, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.Conn.Read(b)
	if n == 0 {
		return n, err
	}
	c.mu.Lock()
	method := c.method
	c.method = ""
	c.mu.Unlock()
	if method == "" {
		return n, err
	}
	// A response starts here. Most come whole in this read without a
	// Transfer-Encoding, interim or final: passed on as they are.
	if end := bytes.Index(b[:n], []byte("\r\n\r\n")); end >= 0 {
		if status, ok := statusOf(b[:end+4]); ok && status >= 200 && plainFraming(b[:end]) {
			return n, err
		}
	}
	// Else read its header block(s) before the client.
	buf := append([]byte(nil), b[:n]...)
	c.pending, c.err = c.frame(buf, err, method)
	n = copy(b, c.pending)
	c.pending = c.pending[n:]
	if len(c.pending) == 0 && c.err != nil {
		return n, c.err
	}
	return n, nil
}

// frame reads the response's header blocks (interim 1xx ones pass as they
// are) and returns the bytes to give the client, rewritten when the final
// header is one framingConn handles, and the read error met, if any.
func (c *framingConn) frame(buf []byte, err error, method string) ([]byte, error) {
	start := 0 // where the current header block begins
	for {
		end := bytes.Index(buf[start:], []byte("\r\n\r\n"))
		for end < 0 && err == nil && len(buf)-start < maxFramedHeader {
			buf, err = readMore(c.Conn, buf)
			end = bytes.Index(buf[start:], []byte("\r\n\r\n"))
		}
		if end < 0 {
			return buf, err // let the client judge what came
		}
		end += start + 4
		status, ok := statusOf(buf[start:end])
		if !ok {
			return buf, err
		}
		if status >= 100 && status < 200 && status != http.StatusSwitchingProtocols {
			start = end // an interim response: the final one follows
			continue
		}
		head, closeDelimited := rewriteHeader(buf[start:end], status, method)
		if head == nil {
			return buf, err
		}
		body := buf[end:]
		out := append(append(append([]byte(nil), buf[:start]...), head...), body...)
		if !closeDelimited {
			return out, err
		}
		// Read a small body whole, to give it a length.
		bodyStart := start + len(head)
		for err == nil && len(out)-bodyStart <= maxClosedBody {
			out, err = readMore(c.Conn, out)
		}
		if errors.Is(err, io.EOF) && len(out)-bodyStart <= maxClosedBody {
			cl := "Content-Length: " + strconv.Itoa(len(out)-bodyStart) + "\r\n\r\n"
			withLen := append(append([]byte(nil), out[:bodyStart-2]...), cl...)
			return append(withLen, out[bodyStart:]...), io.EOF
		}
		return out, err
	}
}

// plainFraming reports whether a header block (without its empty line)
// has no Transfer-Encoding, or one line of "chunked" alone: what the
// client parses itself.
func plainFraming(head []byte) bool {
	seen := false
	for len(head) > 0 {
		line := head
		if i := bytes.Index(head, []byte("\r\n")); i >= 0 {
			line, head = head[:i], head[i+2:]
		} else {
			head = nil
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok || !bytes.EqualFold(name, []byte("Transfer-Encoding")) {
			continue
		}
		if seen || !bytes.EqualFold(bytes.Trim(value, " \t"), []byte("chunked")) {
			return false
		}
		seen = true
	}
	return true
}

// readMore appends what one Read of c returns to buf.
func readMore(c net.Conn, buf []byte) ([]byte, error) {
	tmp := make([]byte, 32<<10)
	n, err := c.Read(tmp)
	return append(buf, tmp[:n]...), err
}

// statusOf parses an HTTP/1.1 status line at the start of block.
func statusOf(block []byte) (int, bool) {
	line, _, _ := bytes.Cut(block, []byte("\r\n"))
	rest, ok := bytes.CutPrefix(line, []byte("HTTP/1.1 "))
	if !ok || len(rest) < 3 || len(rest) > 3 && rest[3] != ' ' {
		return 0, false
	}
	code, err := strconv.Atoi(string(rest[:3]))
	return code, err == nil && code >= 100
}

// knownCodings change the bytes: a response using them is not passed on
// as if it used none.
var knownCodings = map[string]bool{
	"chunked": true, "gzip": true, "x-gzip": true, "deflate": true, "compress": true, "x-compress": true,
}

// rewriteHeader returns block (a final HTTP/1.1 response header, its
// empty line included) without its Transfer-Encoding and framed by the
// connection's close, or nil when the header is left to the client:
// no Transfer-Encoding, only "chunked", a coding the client must not
// ignore, a Content-Length as well, or folded lines. closeDelimited is
// false for a response that has no body whatever its fields (to HEAD, a
// 204 or a 304).
func rewriteHeader(block []byte, status int, method string) (head []byte, closeDelimited bool) {
	lines := strings.Split(strings.TrimSuffix(string(block), "\r\n\r\n"), "\r\n")
	var kept []string
	var codings []string
	teLines := 0
	for i, l := range lines {
		if i == 0 {
			kept = append(kept, l)
			continue
		}
		if l == "" || l[0] == ' ' || l[0] == '\t' {
			return nil, false // obsolete line folding: not ours to judge
		}
		name, value, ok := strings.Cut(l, ":")
		if !ok {
			return nil, false
		}
		switch strings.ToLower(name) {
		case "transfer-encoding":
			teLines++
			for c := range strings.SplitSeq(value, ",") {
				c, _, _ = strings.Cut(c, ";")
				if c = strings.ToLower(strings.Trim(c, " \t")); c != "" && c != "identity" {
					codings = append(codings, c)
				}
			}
			continue
		case "content-length":
			return nil, false
		}
		kept = append(kept, l)
	}
	if teLines == 0 {
		return nil, false
	}
	for _, c := range codings {
		if knownCodings[c] {
			return nil, false
		}
	}
	noBody := method == http.MethodHead || status == http.StatusNoContent || status == http.StatusNotModified
	if !noBody {
		kept = append(kept, "Connection: close")
	}
	return []byte(strings.Join(kept, "\r\n") + "\r\n\r\n"), !noBody
}
