// Package throttle paces byte streams with token buckets
// (golang.org/x/time/rate), for the bandwidth limits of the peer protocol
// and of origin fetches.
package throttle

import (
	"context"
	"io"
	"net/http"

	"golang.org/x/time/rate"
)

// chunk is the most bytes taken from the bucket at once: small enough to
// pace smoothly, large enough to cost nothing.
const chunk = 64 << 10

// New returns a limiter of bytesPerSec, or nil (no limit) when it is not
// positive. Its burst is a tenth of a second of traffic, at least one
// chunk, so that a limit holds over short windows too.
func New(bytesPerSec int64) *rate.Limiter {
	if bytesPerSec <= 0 {
		return nil
	}
	return rate.NewLimiter(rate.Limit(bytesPerSec), max(chunk, int(min(bytesPerSec/10, 1<<30))))
}

// Write writes b to w, waiting for l's tokens before each chunk. A nil l
// writes at once. It returns early with ctx's error.
func Write(ctx context.Context, w io.Writer, b []byte, l *rate.Limiter) (int, error) {
	if l == nil {
		return w.Write(b)
	}
	n := 0
	for len(b) > 0 {
		c := min(len(b), chunk)
		if err := l.WaitN(ctx, c); err != nil {
			return n, err
		}
		m, err := w.Write(b[:c])
		n += m
		if err != nil {
			return n, err
		}
		b = b[c:]
	}
	return n, nil
}

// Reader paces reads from R with L: each Read returns at most one chunk
// and first takes its tokens. A nil L does not pace.
type Reader struct {
	Ctx context.Context
	R   io.Reader
	L   *rate.Limiter
}

func (r *Reader) Read(p []byte) (int, error) {
	if r.L == nil {
		return r.R.Read(p)
	}
	if len(p) > chunk {
		p = p[:chunk]
	}
	n, err := r.R.Read(p)
	if n > 0 {
		// Tokens are taken for what arrived: the bytes are already here,
		// and waiting before the next read is what slows the sender.
		if werr := r.L.WaitN(r.Ctx, n); werr != nil && err == nil {
			err = werr
		}
	}
	return n, err
}

// Transport paces the bytes read from next's response bodies by l, a
// bucket from New (nil: next itself). An edge's transports to its origins
// share one bucket (--origin-limit): fills, lookups and forwarded requests
// alike. A body that is also a writer (a protocol upgrade) is not paced.
func Transport(next http.RoundTripper, l *rate.Limiter) http.RoundTripper {
	if l == nil {
		return next
	}
	return roundTripFunc(func(r *http.Request) (*http.Response, error) {
		resp, err := next.RoundTrip(r)
		if err != nil {
			return nil, err
		}
		if _, upgraded := resp.Body.(io.ReadWriteCloser); !upgraded {
			resp.Body = &limitedBody{Reader: Reader{Ctx: r.Context(), R: resp.Body, L: l}, c: resp.Body}
		}
		return resp, nil
	})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

type limitedBody struct {
	Reader
	c io.Closer
}

func (b *limitedBody) Close() error { return b.c.Close() }
