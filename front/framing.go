package front

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
)

// framing follows the HTTP/1.x framing of what a client sends on one
// connection, request head by request head, alongside net/http's own
// parser. It exists because net/http tidies up the shapes of request
// smuggling before a handler can see them: it drops a Content-Length sent
// with Transfer-Encoding and folds identical duplicate Content-Lengths into
// one. Those are what a front that disagrees with some other hop about
// where a request ends looks like, so the edge refuses them outright (400,
// connection closed) instead of repairing them:
//
//   - Content-Length together with Transfer-Encoding;
//   - more than one Content-Length, even with equal values, or more than one
//     Transfer-Encoding;
//   - a Transfer-Encoding other than exactly "chunked", or in a request
//     other than HTTP/1.1 (net/http ignores it in HTTP/1.0);
//   - a Content-Length that is not a plain decimal number;
//   - a header line folded onto the next (obs-fold) or a field name with
//     white space in it or around it.
//
// The verdict of each head is queued; the handler of the n-th request on
// the connection takes the n-th verdict and checks that its method and
// target are the ones the head carried, so the two parsers cannot drift
// apart unnoticed. Bytes after an Upgrade request, an HTTP/2 preface (h2c)
// or a refused head are not followed.
type framing struct {
	maxHead int

	mu       sync.Mutex
	state    int
	buf      []byte // the head or chunk-size line being read
	left     int64  // body bytes still to skip
	verdicts []verdict
	off      bool // stopped following: upgrade, h2c, a refused head
}

// verdict is what framing found in one request head.
type verdict struct {
	method, target string
	err            error
}

const (
	stHead = iota
	stBody
	stChunkSize
	stChunkData
	stChunkEnd
	stTrailer
)

// maxVerdicts bounds the heads queued ahead of the handler; net/http reads
// a few KiB ahead at most, so only a flood of empty requests comes near it.
const maxVerdicts = 1024

var errFramingLost = errors.New("request framing lost")

func newFraming(maxHead int) *framing { return &framing{maxHead: maxHead} }

// feed follows b, the next bytes the client sent.
func (f *framing) feed(b []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for len(b) > 0 && !f.off {
		switch f.state {
		case stBody, stChunkData:
			n := int64(len(b))
			if n > f.left {
				n = f.left
			}
			f.left -= n
			b = b[n:]
			if f.left == 0 {
				if f.state == stBody {
					f.state = stHead
				} else {
					f.state = stChunkEnd
				}
			}
		default:
			i := bytes.IndexByte(b, '\n')
			if i < 0 {
				f.buf = append(f.buf, b...)
				b = nil
			} else {
				f.buf = append(f.buf, b[:i+1]...)
				b = b[i+1:]
			}
			if len(f.buf) > f.maxHead {
				f.refuse(verdict{err: errors.New("request head too large")})
				return
			}
			if i >= 0 {
				f.line()
			}
		}
	}
}

// line handles f.buf, which ends with a line feed (the head so far, in
// stHead).
func (f *framing) line() {
	switch f.state {
	case stHead:
		if bytes.Equal(f.buf, []byte("\r\n")) || bytes.Equal(f.buf, []byte("\n")) {
			f.buf = f.buf[:0] // an empty line before a request line
			return
		}
		if !bytes.HasSuffix(f.buf, []byte("\n\r\n")) && !bytes.HasSuffix(f.buf, []byte("\n\n")) {
			return // the head goes on
		}
		v, body, chunked, stop := parseHead(f.buf)
		f.buf = f.buf[:0]
		if v.err != nil {
			f.refuse(v)
			return
		}
		if len(f.verdicts) >= maxVerdicts {
			f.refuse(verdict{err: errors.New("too many pipelined requests")})
			return
		}
		f.verdicts = append(f.verdicts, v)
		switch {
		case stop:
			f.off = true
		case chunked:
			f.state = stChunkSize
		case body > 0:
			f.state, f.left = stBody, body
		}
	case stChunkSize:
		line := trimEOL(f.buf)
		if i := bytes.IndexByte(line, ';'); i >= 0 {
			line = line[:i]
		}
		line = bytes.TrimRight(line, " \t")
		n, err := strconv.ParseUint(string(line), 16, 63)
		f.buf = f.buf[:0]
		if err != nil || len(line) == 0 {
			f.refuse(verdict{err: fmt.Errorf("bad chunk size %q", line)})
			return
		}
		if n == 0 {
			f.state = stTrailer
		} else {
			f.state, f.left = stChunkData, int64(n)
		}
	case stChunkEnd:
		empty := len(trimEOL(f.buf)) == 0
		f.buf = f.buf[:0]
		if !empty {
			f.refuse(verdict{err: errors.New("chunk not followed by CRLF")})
			return
		}
		f.state = stChunkSize
	case stTrailer:
		empty := len(trimEOL(f.buf)) == 0
		f.buf = f.buf[:0]
		if empty {
			f.state = stHead
		}
	}
}

// refuse queues a refusal and stops following: net/http may read on, but
// the handler answers 400 and closes the connection at the refused head
// (or net/http has refused it itself).
func (f *framing) refuse(v verdict) {
	f.verdicts = append(f.verdicts, v)
	f.off = true
	f.buf = nil
}

// next returns the verdict of the next request head. ok is false when
// there is none because framing stopped following the connection
// (upgrade, h2c) before that head.
func (f *framing) next() (v verdict, ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.verdicts) == 0 {
		if f.off {
			return verdict{}, false
		}
		return verdict{err: errFramingLost}, true
	}
	v = f.verdicts[0]
	if len(f.verdicts) == 1 {
		// Reuse the array: one verdict at a time is the common case, and
		// slicing from the front would make every append allocate.
		f.verdicts[0] = verdict{}
		f.verdicts = f.verdicts[:0]
	} else {
		f.verdicts = f.verdicts[1:]
	}
	return v, true
}

// methodString is string(m), without an allocation for the usual methods.
func methodString(m []byte) string {
	switch string(m) {
	case http.MethodGet:
		return http.MethodGet
	case http.MethodHead:
		return http.MethodHead
	case http.MethodPost:
		return http.MethodPost
	}
	return string(m)
}

func trimEOL(b []byte) []byte {
	b = bytes.TrimSuffix(b, []byte("\n"))
	return bytes.TrimSuffix(b, []byte("\r"))
}

// parseHead reads a request head: its request line and the framing fields.
// body is the Content-Length; stop says framing cannot follow what comes
// after (an upgrade or the HTTP/2 preface).
func parseHead(head []byte) (v verdict, body int64, chunked, stop bool) {
	reqLine, fields, _ := bytes.Cut(trimEOL(trimEOL(head)), []byte("\n"))
	reqLine = trimEOL(reqLine)
	method, rest, ok1 := bytes.Cut(reqLine, []byte(" "))
	target, proto, ok2 := bytes.Cut(rest, []byte(" "))
	if !ok1 || !ok2 {
		v.err = fmt.Errorf("malformed request line %q", reqLine)
		return
	}
	v.method, v.target = methodString(method), string(target)
	if string(proto) == "HTTP/2.0" {
		stop = true // the h2c preface, "PRI * HTTP/2.0"
		return
	}
	var cls, tes int
	upgrade := false
	for l := range bytes.SplitSeq(fields, []byte("\n")) {
		l = trimEOL(l)
		if len(l) == 0 {
			continue
		}
		if l[0] == ' ' || l[0] == '\t' {
			v.err = errors.New("folded header line (obs-fold)")
			return
		}
		name, value, ok := bytes.Cut(l, []byte(":"))
		if !ok {
			v.err = fmt.Errorf("header line without a colon: %q", l)
			return
		}
		if bytes.ContainsAny(name, " \t") {
			v.err = fmt.Errorf("white space in the header name %q", name)
			return
		}
		value = bytes.Trim(value, " \t")
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			cls++
			n, err := strconv.ParseInt(string(value), 10, 64)
			if err != nil || n < 0 || len(value) == 0 || value[0] == '+' {
				v.err = fmt.Errorf("bad Content-Length %q", value)
				return
			}
			body = n
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			tes++
			if !bytes.EqualFold(value, []byte("chunked")) {
				v.err = fmt.Errorf("Transfer-Encoding %q is not chunked", value)
				return
			}
			chunked = true
		case bytes.EqualFold(name, []byte("Upgrade")):
			upgrade = true
		}
	}
	switch {
	case cls > 1:
		v.err = errors.New("more than one Content-Length")
	case tes > 1:
		v.err = errors.New("more than one Transfer-Encoding")
	case cls > 0 && tes > 0:
		v.err = errors.New("both Content-Length and Transfer-Encoding")
	case tes > 0 && string(proto) != "HTTP/1.1":
		// net/http ignores it in HTTP/1.0 and reads no body, where a hop
		// before may have read a chunked one (RFC 9112 §6.1: faulty framing).
		v.err = fmt.Errorf("Transfer-Encoding in an %q request", proto)
	}
	return v, body, chunked, upgrade
}

// framedConn feeds what a client sends through its framing.
type framedConn struct {
	net.Conn
	f   *framing
	tls *tls.ConnectionState // of the TLS connection underneath, if any
}

func (c *framedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.f.feed(p[:n])
	}
	return n, err
}

// NetConn returns the connection underneath, as tls.Conn's does.
func (c *framedConn) NetConn() net.Conn { return c.Conn }
