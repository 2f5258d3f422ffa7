package bench

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync/atomic"
	"time"
)

// ClientResult is one request of one client: a whole object, or a byte
// range of one.
type ClientResult struct {
	// Site is the index of the site (edge, nginx) the client used.
	Site int `json:"site"`
	// Client is the client's index within its site.
	Client int `json:"client"`
	// Path is the object's URL path; empty in a flash run, where it is
	// the release.
	Path string `json:"path,omitempty"`
	// Range is the Range header the request sent, if any ("bytes=a-b").
	Range string `json:"range,omitempty"`
	// Start is when the request began, in seconds from the crowd's start:
	// 0 for every client's first request unless the scenario staggers
	// them.
	Start float64 `json:"start_s,omitempty"`
	// TTFB is the time from the request's start to the first body byte,
	// in seconds: response headers alone do not count, since a cache may
	// send them long before it has anything to send.
	TTFB float64 `json:"ttfb_s"`
	// Seconds is the time from the request's start to the last body byte.
	Seconds float64 `json:"seconds"`
	// Bytes is the body's length.
	Bytes int64 `json:"bytes"`
	// CacheStatus is the response's Cache-Status (Shoal) or X-Cache-Status
	// (nginx) header, if any.
	CacheStatus string `json:"cache_status,omitempty"`
	// Failovers counts the times the request moved to another site after
	// its own failed (the faults scenario), resuming with a Range.
	Failovers int `json:"failovers,omitempty"`
}

// IntegrityError reports a body that is not what the origin holds: a
// wrong byte somewhere, or a wrong length. It fails the run.
type IntegrityError struct {
	System       string
	URL          string
	Site, Client int
	Bytes, Want  int64  // lengths
	Got, WantSum string // SHA-256, hex, for whole objects
	// At is the offset in the object of the first wrong byte, for ranged
	// requests (checked byte by byte against the origin's file); -1 when
	// unknown.
	At int64
	// Detail says what else was wrong (a Content-Range), if anything.
	Detail string
}

func (e *IntegrityError) Error() string {
	if e.Detail != "" {
		return fmt.Sprintf("bench: %s: WRONG RESPONSE from %s (site %d, client %d): %s", e.System, e.URL, e.Site, e.Client, e.Detail)
	}
	if e.Got == "" && e.WantSum == "" {
		return fmt.Sprintf("bench: %s: WRONG BODY from %s (site %d, client %d): %d bytes, want %d; first wrong byte at offset %d",
			e.System, e.URL, e.Site, e.Client, e.Bytes, e.Want, e.At)
	}
	return fmt.Sprintf("bench: %s: WRONG BODY from %s (site %d, client %d): %d bytes with sha256 %s, want %d bytes with sha256 %s",
		e.System, e.URL, e.Site, e.Client, e.Bytes, e.Got, e.Want, e.WantSum)
}

// object is a file the origin serves, and what its body must be.
type object struct {
	Path   string // URL path
	Size   int64
	SHA256 string // hex
	// file is the origin's copy, read to check ranged bodies; nil for
	// whole-object checks by SHA-256 alone.
	file *os.File
}

// request is one GET of a client: a whole object, or the n bytes at off.
type request struct {
	obj    int // index into the workload's objects
	ranged bool
	off, n int64
}

// span returns the bytes the request asks for: [off, off+n).
func (rq request) span(obj *object) (off, n int64) {
	if rq.ranged {
		return rq.off, rq.n
	}
	return 0, obj.Size
}

// counters are a crowd's running totals, for the progress lines and the
// faults scenario's triggers.
type counters struct {
	bytes     atomic.Int64 // body bytes received
	requests  atomic.Int64 // requests done
	failovers atomic.Int64
	// onBytes, if set, is called with the running byte count after each
	// read, in the reading client's goroutine: the faults scenario's
	// trigger, which fires each fault there, so that none can come after
	// the crowd is done.
	onBytes func(n int64)
}

// checker verifies a body as it arrives.
type checker interface {
	io.Writer
	// check returns an *IntegrityError if what was written is not the
	// expected body.
	check(url string) error
}

// hashChecker checks a whole object against its SHA-256.
type hashChecker struct {
	h   hash.Hash
	n   int64
	obj *object
}

func (c *hashChecker) Write(p []byte) (int, error) { c.n += int64(len(p)); return c.h.Write(p) }

func (c *hashChecker) check(url string) error {
	if sum := hex.EncodeToString(c.h.Sum(nil)); sum != c.obj.SHA256 || c.n != c.obj.Size {
		return &IntegrityError{URL: url, Bytes: c.n, Want: c.obj.Size, Got: sum, WantSum: c.obj.SHA256, At: -1}
	}
	return nil
}

// fileChecker checks a byte range against the origin's file, byte by byte.
type fileChecker struct {
	f       *os.File
	off, n  int64 // the range expected
	pos     int64 // bytes received
	wrongAt int64 // offset of the first wrong byte, -1 none
	scratch []byte
	err     error // reading the file failed
}

func (c *fileChecker) Write(p []byte) (int, error) {
	for done := 0; done < len(p); {
		chunk := p[done:min(len(p), done+len(c.scratch))]
		if c.wrongAt < 0 && c.err == nil {
			k := min(int64(len(chunk)), max(0, c.n-c.pos))
			if k > 0 {
				if _, err := c.f.ReadAt(c.scratch[:k], c.off+c.pos); err != nil {
					c.err = err
				} else if !bytes.Equal(c.scratch[:k], chunk[:k]) {
					for i := range k {
						if c.scratch[i] != chunk[i] {
							c.wrongAt = c.off + c.pos + i
							break
						}
					}
				}
			}
		}
		c.pos += int64(len(chunk))
		done += len(chunk)
	}
	return len(p), nil
}

func (c *fileChecker) check(url string) error {
	if c.err != nil {
		return fmt.Errorf("bench: reading the origin's copy to check %s: %w", url, c.err)
	}
	if c.wrongAt >= 0 || c.pos != c.n {
		at := c.wrongAt
		if at < 0 {
			at = c.off + min(c.pos, c.n)
		}
		return &IntegrityError{URL: url, Bytes: c.pos, Want: c.n, At: at}
	}
	return nil
}

// fetch makes the request rq for obj at sites[0] and checks the body:
// whole objects against their SHA-256, ranges byte by byte against the
// origin's file. When a site fails (refused, reset or cut mid-body) and
// another is listed, it resumes there with a Range for the rest, as a
// download manager does; the check runs over the joined body. Times are
// from start; buf is the client's read buffer; cnt, if not nil, counts
// bytes as they arrive. A body that is not the object is an
// *IntegrityError.
func fetch(ctx context.Context, c *http.Client, sites []string, rq request, obj *object, start time.Time, buf []byte, cnt *counters) (ClientResult, error) {
	off, n := rq.span(obj)
	var ck checker
	if rq.ranged {
		if obj.file == nil {
			return ClientResult{}, fmt.Errorf("bench: %s: a ranged request needs the origin's file to check against", obj.Path)
		}
		ck = &fileChecker{f: obj.file, off: off, n: n, wrongAt: -1, scratch: make([]byte, 64<<10)}
	} else {
		ck = &hashChecker{h: sha256.New(), obj: obj}
	}
	r := ClientResult{}
	if rq.ranged {
		r.Range = fmt.Sprintf("bytes=%d-%d", off, off+n-1)
	}
	url := sites[0] + obj.Path
	for attempt := 0; ; attempt++ {
		url = sites[attempt%len(sites)] + obj.Path
		err := r.get(ctx, c, url, rq.ranged || r.Bytes > 0, off, n, obj.Size, start, buf, ck, cnt)
		if err == nil {
			break
		}
		var ie *IntegrityError
		if ctx.Err() != nil || errors.As(err, &ie) || attempt+1 >= 2*len(sites) || len(sites) == 1 {
			return r, err
		}
		r.Failovers++
		if cnt != nil {
			cnt.failovers.Add(1)
		}
	}
	r.Seconds = time.Since(start).Seconds()
	return r, ck.check(url)
}

// get sends one GET for the part of [off, off+n) not yet received (a
// Range unless ranged is false) and feeds the body to ck.
func (r *ClientResult) get(ctx context.Context, c *http.Client, url string, ranged bool, off, n, size int64, start time.Time, buf []byte, ck checker, cnt *counters) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	from := off + r.Bytes
	last := off + n - 1
	if ranged {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", from, last))
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	switch {
	case !ranged && resp.StatusCode == http.StatusOK:
	case ranged && resp.StatusCode == http.StatusPartialContent:
		want := fmt.Sprintf("bytes %d-%d/%s", from, last, strconv.FormatInt(size, 10))
		if got := resp.Header.Get("Content-Range"); got != want {
			return &IntegrityError{URL: url, Bytes: r.Bytes, Want: n, At: from, Detail: fmt.Sprintf("Content-Range %q, want %q", got, want)}
		}
	default:
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("GET %s (Range %q): %s: %q", url, req.Header.Get("Range"), resp.Status, b)
	}
	if r.CacheStatus == "" {
		if r.CacheStatus = resp.Header.Get("Cache-Status"); r.CacheStatus == "" {
			r.CacheStatus = resp.Header.Get("X-Cache-Status")
		}
	}
	for {
		k, err := resp.Body.Read(buf)
		if k > 0 {
			if r.TTFB == 0 {
				r.TTFB = time.Since(start).Seconds()
			}
			ck.Write(buf[:k])
			r.Bytes += int64(k)
			if cnt != nil {
				if n := cnt.bytes.Add(int64(k)); cnt.onBytes != nil {
					cnt.onBytes(n)
				}
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("GET %s: after %d bytes: %w", url, r.Bytes, err)
		}
	}
}

// newClient returns an HTTP client with connections of its own, as a
// separate machine would have, made with dial (nil: the default dialer).
func newClient(dial func(context.Context, string, string) (net.Conn, error)) *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext:         dial,
		DisableCompression:  true,
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     30 * time.Second,
	}}
}
