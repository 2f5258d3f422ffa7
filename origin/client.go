package origin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/shoalcdn/shoal/internal/httpcache"
	"go.opentelemetry.io/otel/propagation"
)

// ErrChanged reports that the origin no longer holds the object version a fetch
// asked for: another ETag or Last-Modified, another length, a 412 or a 416.
// The caller should learn the new version (Head) and start over.
var ErrChanged = errors.New("origin: object changed")

// StatusError reports a response status the operation cannot use: a 5xx that
// lasted through every attempt, or a status FetchRange does not retry.
type StatusError struct {
	// Op is the request method, "HEAD" or "GET".
	Op string
	// Target is the request-target as passed by the caller.
	Target string
	// Code is the response status code.
	Code int
}

// Error returns, e.g., "origin: HEAD /x: status 503".
func (e *StatusError) Error() string {
	return fmt.Sprintf("origin: %s %s: status %d", e.Op, e.Target, e.Code)
}

// maxBackoff caps the wait between two attempts (unless Backoff itself is
// longer), so a large Attempts does not turn into minutes of sleep.
const maxBackoff = 10 * time.Second

// ClientConfig configures a Client.
type ClientConfig struct {
	// Base is the origin's base URL, e.g. "http://127.0.0.1:9000". Required;
	// http or https, with a host, without query or fragment. Its path, if any,
	// prefixes every target.
	Base string
	// Transport performs requests. Nil means a tuned *http.Transport of this
	// package's own (not http.DefaultTransport): compression off, so ranges
	// address the identity bytes, as many idle connections kept as
	// MaxConcurrent allows in flight, and responses of an unknown transfer
	// coding framed by the connection's close (framing.go).
	//
	// Requests go to Transport.RoundTrip directly: redirects are not followed.
	Transport http.RoundTripper
	// MaxConcurrent bounds requests in flight to the origin. Zero means 32.
	MaxConcurrent int
	// Attempts is how many times an idempotent read is tried. Zero means 3.
	Attempts int
	// Timeout bounds one attempt (headers and body). Zero means 30s.
	Timeout time.Duration
	// Backoff is the wait before the first retry; it doubles each retry, with
	// jitter (each wait is drawn from [d/2, 3d/2) around the nominal d), up to
	// 10s or Backoff, whichever is longer. Zero means 100ms.
	Backoff time.Duration
	// Logger receives structured logs: retries and origins that ignore Range,
	// at debug level. Nil means slog.Default().
	Logger *slog.Logger
}

// Client fetches from one origin. It is safe for concurrent use.
type Client struct {
	base     *url.URL
	rt       http.RoundTripper
	sem      chan struct{} // a slot per request in flight
	attempts int
	timeout  time.Duration
	backoff  time.Duration
	log      *slog.Logger
}

// NewClient returns a Client for cfg.
func NewClient(cfg ClientConfig) (*Client, error) {
	if cfg.Base == "" {
		return nil, errors.New("origin: ClientConfig.Base is required")
	}
	base, err := url.Parse(cfg.Base)
	if err != nil {
		return nil, fmt.Errorf("origin: base URL: %w", err)
	}
	if base.Scheme != "http" && base.Scheme != "https" {
		return nil, fmt.Errorf("origin: base URL %q: scheme must be http or https", cfg.Base)
	}
	if base.Host == "" {
		return nil, fmt.Errorf("origin: base URL %q: no host", cfg.Base)
	}
	if base.RawQuery != "" || base.ForceQuery || base.Fragment != "" {
		return nil, fmt.Errorf("origin: base URL %q: query or fragment not allowed", cfg.Base)
	}
	switch {
	case cfg.MaxConcurrent < 0:
		return nil, errors.New("origin: ClientConfig.MaxConcurrent is negative")
	case cfg.Attempts < 0:
		return nil, errors.New("origin: ClientConfig.Attempts is negative")
	case cfg.Timeout < 0:
		return nil, errors.New("origin: ClientConfig.Timeout is negative")
	case cfg.Backoff < 0:
		return nil, errors.New("origin: ClientConfig.Backoff is negative")
	}
	c := &Client{
		base:     base,
		rt:       cfg.Transport,
		attempts: orDefault(cfg.Attempts, 3),
		timeout:  orDefault(cfg.Timeout, 30*time.Second),
		backoff:  orDefault(cfg.Backoff, 100*time.Millisecond),
		log:      cfg.Logger,
	}
	maxConc := orDefault(cfg.MaxConcurrent, 32)
	c.sem = make(chan struct{}, maxConc)
	if c.rt == nil {
		c.rt = framingTransport{newTransport(maxConc)}
	}
	if c.log == nil {
		c.log = slog.Default()
	}
	return c, nil
}

// orDefault returns v, or def when v is the zero value.
func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

func newTransport(maxConc int) *http.Transport {
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           framingDialer(d.DialContext), // see framing.go
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          max(100, maxConc),
		MaxIdleConnsPerHost:   maxConc, // the default of 2 would churn connections
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		// Transparent gzip would make ranges address the compressed bytes.
		DisableCompression: true,
		ReadBufferSize:     64 << 10,
		WriteBufferSize:    16 << 10,
	}
}

// Base returns the parsed base URL (for a reverse proxy that forwards other
// methods). It is a copy; changing it does not change the client.
func (c *Client) Base() *url.URL {
	u := *c.base
	if u.User != nil {
		user := *u.User
		u.User = &user
	}
	return &u
}

// Transport returns the RoundTripper the client uses.
func (c *Client) Transport() http.RoundTripper {
	return c.rt
}

// Info is what a HEAD tells about an object.
type Info struct {
	// StatusCode is the response status.
	StatusCode int
	// Header is the response header as received.
	Header http.Header
	// Size is the Content-Length, or -1 when unknown.
	Size int64
	// ETag is the ETag field as sent (quotes included), "" if none.
	ETag string
	// LastModified is the Last-Modified field, zero if absent or unparsable.
	LastModified time.Time
}

// StrongETag reports whether ETag is a strong entity tag.
func (i *Info) StrongETag() bool {
	weak, ok := httpcache.ParseETag(i.ETag)
	return ok && !weak
}

// Validator returns what to send in If-Range: the strong ETag, else the
// Last-Modified date in HTTP format, else "" (no safe validator).
//
// A Last-Modified date is only safe when it is at least one second older than
// the response's Date (RFC 9110 §8.8.2.2): a file changed twice within one
// second keeps its date. When the response has no Date, the date is used.
func (i *Info) Validator() string {
	if i.StrongETag() {
		return i.ETag
	}
	if i.LastModified.IsZero() {
		return ""
	}
	if date, err := http.ParseTime(i.Header.Get("Date")); err == nil && date.Sub(i.LastModified) < time.Second {
		return ""
	}
	return i.LastModified.UTC().Format(http.TimeFormat)
}

// Head sends HEAD target (target is the request-target: path plus optional
// ?query, e.g. "/a/b.iso?x=1", joined to Base's path) with the given extra
// request header fields (may be nil). Transport errors and 5xx responses are
// retried; when attempts run out it returns an error (a *StatusError for a
// 5xx). Any other status (2xx, 3xx, 4xx) is returned as Info without error.
func (c *Client) Head(ctx context.Context, target string, h http.Header) (*Info, error) {
	u, err := c.resolve(target)
	if err != nil {
		return nil, err
	}
	if h == nil {
		h = http.Header{}
	} else {
		h = h.Clone() // a RoundTripper may not modify it, but a caller may after we return
	}
	var info *Info
	err = c.retry(ctx, http.MethodHead, target, func(ctx context.Context) (bool, error) {
		resp, err := c.rt.RoundTrip(c.request(ctx, http.MethodHead, u, h))
		if err != nil {
			return true, fmt.Errorf("origin: HEAD %s: %w", target, err)
		}
		drainClose(resp.Body)
		if resp.StatusCode >= 500 {
			return true, &StatusError{Op: http.MethodHead, Target: target, Code: resp.StatusCode}
		}
		info = &Info{
			StatusCode: resp.StatusCode,
			Header:     resp.Header,
			Size:       resp.ContentLength,
			ETag:       resp.Header.Get("ETag"),
		}
		if lm := resp.Header.Get("Last-Modified"); lm != "" {
			if t, err := http.ParseTime(lm); err == nil {
				info.LastModified = t
			}
		}
		return false, nil
	})
	if err != nil {
		return nil, err
	}
	return info, nil
}

// FetchRange fills dst with the bytes [off, off+len(dst)) of target, as long as
// the object is still the version named by validator (sent as If-Range; an ETag
// or an HTTP date) and has total length size.
//
// A 206 with a Content-Range that matches exactly (start, end, and
// complete-length == size) is accepted; a 200 whose ETag (or Last-Modified if
// validator is a date) still equals validator means the origin ignored Range:
// FetchRange skips off bytes and reads len(dst) (correct, wasteful, logged at
// debug); a 200 for another version, a 412, or a Content-Range whose
// complete-length differs returns ErrChanged. 416 means the object shrank:
// ErrChanged. A short body, transport error or 5xx is retried with backoff up
// to Attempts; a 4xx other than 412/416 is a *StatusError, not retried.
// Context cancellation stops at once.
//
// An empty validator sends no If-Range and checks the size alone. A weak ETag
// is refused, as If-Range cannot carry one. A 206 whose Content-Range names
// other bytes, or an unknown ("*") complete-length, is an error, not retried.
// Requests ask for Accept-Encoding: identity. len(dst) == 0 sends nothing.
func (c *Client) FetchRange(ctx context.Context, target, validator string, size, off int64, dst []byte) error {
	return c.FetchVariantRange(ctx, target, nil, validator, size, off, dst)
}

// FetchVariantRange is FetchRange for the variant of target that requests
// with the fields of variant select (RFC 9111 §4.1: a response that Vary
// names them): they are sent with the range request, and an
// Accept-Encoding among them replaces identity. The fields FetchRange sets
// itself (Range, If-Range) and other preconditions are not taken from
// variant: a variant is never selected by them.
func (c *Client) FetchVariantRange(ctx context.Context, target string, variant http.Header, validator string, size, off int64, dst []byte) error {
	n := int64(len(dst))
	if off < 0 || size < 0 || off > size || n > size-off {
		return fmt.Errorf("origin: GET %s: range [%d, %d) outside object of size %d", target, off, off+n, size)
	}
	if n == 0 {
		return nil
	}
	var (
		wantETag string
		wantDate time.Time
	)
	switch weak, isTag := httpcache.ParseETag(validator); {
	case validator == "":
	case isTag && weak:
		return fmt.Errorf("origin: GET %s: weak validator %s cannot be used in If-Range", target, validator)
	case isTag:
		wantETag = validator
	default:
		t, err := http.ParseTime(validator)
		if err != nil {
			return fmt.Errorf("origin: GET %s: validator %q is neither an entity tag nor an HTTP date", target, validator)
		}
		wantDate = t
	}
	u, err := c.resolve(target)
	if err != nil {
		return err
	}
	last := off + n - 1
	rng := make([]byte, 0, 48)
	rng = append(rng, "bytes="...)
	rng = strconv.AppendInt(rng, off, 10)
	rng = append(rng, '-')
	rng = strconv.AppendInt(rng, last, 10)
	h := http.Header{}
	for name, vs := range variant {
		if !rangeFields[http.CanonicalHeaderKey(name)] {
			h[http.CanonicalHeaderKey(name)] = append([]string(nil), vs...)
		}
	}
	h["Range"] = []string{string(rng)}
	if h.Get("Accept-Encoding") == "" {
		h["Accept-Encoding"] = []string{"identity"}
	}
	if validator != "" {
		h["If-Range"] = []string{validator}
	}

	// sameVersion reports whether a response describes the version asked
	// for. When the response lacks the field, need says whether that counts
	// as a mismatch: a 200 must prove it, a 206 was vouched for by If-Range.
	sameVersion := func(rh http.Header, need bool) bool {
		switch {
		case wantETag != "":
			e := rh.Get("ETag")
			if e == "" {
				return !need
			}
			return httpcache.StrongMatch(e, wantETag)
		case !wantDate.IsZero():
			lm := rh.Get("Last-Modified")
			if lm == "" {
				return !need
			}
			t, err := http.ParseTime(lm)
			return err == nil && t.Equal(wantDate)
		default:
			return true
		}
	}
	changed := func(format string, args ...any) error {
		return fmt.Errorf("%w: GET %s: "+format, append([]any{ErrChanged, target}, args...)...)
	}

	return c.retry(ctx, http.MethodGet, target, func(ctx context.Context) (bool, error) {
		resp, err := c.rt.RoundTrip(c.request(ctx, http.MethodGet, u, h))
		if err != nil {
			return true, fmt.Errorf("origin: GET %s: %w", target, err)
		}
		switch resp.StatusCode {
		case http.StatusPartialContent:
			defer resp.Body.Close()
			cr := resp.Header.Get("Content-Range")
			first, end, complete, ok := httpcache.ParseContentRange(cr)
			switch {
			case ok && complete >= 0 && complete != size:
				return false, changed("length %d, want %d", complete, size)
			case !ok || complete < 0 || first != off || end != last ||
				resp.ContentLength >= 0 && resp.ContentLength != n:
				return false, fmt.Errorf("origin: GET %s: asked for bytes %d-%d/%d, got Content-Range %q, Content-Length %d",
					target, off, last, size, cr, resp.ContentLength)
			case !sameVersion(resp.Header, false):
				return false, changed("206 for another version")
			}
			if _, err := io.ReadFull(resp.Body, dst); err != nil {
				return true, fmt.Errorf("origin: GET %s: body: %w", target, err)
			}
			return false, nil
		case http.StatusOK:
			defer resp.Body.Close()
			if !sameVersion(resp.Header, true) {
				return false, changed("200 for another version (ETag %q, Last-Modified %q)",
					resp.Header.Get("ETag"), resp.Header.Get("Last-Modified"))
			}
			if resp.ContentLength >= 0 && resp.ContentLength != size {
				return false, changed("length %d, want %d", resp.ContentLength, size)
			}
			c.log.LogAttrs(ctx, slog.LevelDebug, "origin: origin ignored Range, skipping",
				slog.String("target", target), slog.Int64("skip", off), slog.Int64("size", size))
			if off > 0 {
				if _, err := io.CopyN(io.Discard, resp.Body, off); err != nil {
					return true, fmt.Errorf("origin: GET %s: body: %w", target, noEOF(err))
				}
			}
			if _, err := io.ReadFull(resp.Body, dst); err != nil {
				return true, fmt.Errorf("origin: GET %s: body: %w", target, err)
			}
			// The rest of the body is not read: closing drops the connection,
			// which is cheaper than draining up to size-off-n bytes.
			return false, nil
		case http.StatusPreconditionFailed, http.StatusRequestedRangeNotSatisfiable:
			drainClose(resp.Body)
			return false, changed("status %d", resp.StatusCode)
		default:
			drainClose(resp.Body)
			return resp.StatusCode >= 500, &StatusError{Op: http.MethodGet, Target: target, Code: resp.StatusCode}
		}
	})
}

// rangeFields are the fields a range fetch sets or must not carry: they
// decide which bytes and which version come back.
var rangeFields = map[string]bool{
	"Range": true, "If-Range": true, "If-Match": true, "If-None-Match": true,
	"If-Modified-Since": true, "If-Unmodified-Since": true,
}

// retry runs attempt up to c.attempts times, while it fails with retry set,
// sleeping a jittered, doubling backoff in between. Each attempt first takes a
// concurrency slot (waiting on ctx), then runs under its own timeout, and must
// be done with the response before it returns.
func (c *Client) retry(ctx context.Context, op, target string, attempt func(ctx context.Context) (retry bool, err error)) error {
	var err error
	for i := range c.attempts {
		if i > 0 {
			d := c.backoffDelay(i - 1)
			c.log.LogAttrs(ctx, slog.LevelDebug, "origin: retrying",
				slog.String("op", op), slog.String("target", target),
				slog.Int("attempt", i+1), slog.Duration("backoff", d), slog.Any("err", err))
			if serr := sleep(ctx, d); serr != nil {
				return fmt.Errorf("origin: %s %s: %w", op, target, serr)
			}
		}
		var retry bool
		retry, err = c.attempt(ctx, op, target, attempt)
		if err == nil {
			return nil
		}
		if cerr := ctx.Err(); cerr != nil {
			return fmt.Errorf("origin: %s %s: %w", op, target, cerr)
		}
		if !retry {
			return err
		}
	}
	return err
}

func (c *Client) attempt(ctx context.Context, op, target string, attempt func(ctx context.Context) (bool, error)) (bool, error) {
	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		return false, ctx.Err()
	}
	defer func() { <-c.sem }()
	actx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	retry, err := attempt(actx)
	if err != nil && actx.Err() != nil && ctx.Err() == nil {
		// Whatever the transport made of it, the attempt ran out of time.
		return true, fmt.Errorf("origin: %s %s: attempt timed out after %v: %w", op, target, c.timeout, context.DeadlineExceeded)
	}
	return retry, err
}

// backoffDelay returns the wait before retry number retry+1: Backoff doubled
// retry times, capped, with equal jitter so that many edges that failed
// together do not retry together.
func (c *Client) backoffDelay(retry int) time.Duration {
	limit := max(maxBackoff, c.backoff)
	d := c.backoff
	for range retry {
		if d >= limit/2 {
			d = limit
			break
		}
		d *= 2
	}
	return d/2 + rand.N(d)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// resolve joins target, a request-target, to the base URL.
func (c *Client) resolve(target string) (*url.URL, error) {
	if !strings.HasPrefix(target, "/") {
		return nil, fmt.Errorf("origin: target %q does not start with /", target)
	}
	// ParseRequestURI reads a leading "//" as a path, not an authority.
	t, err := url.ParseRequestURI(target)
	if err != nil {
		return nil, fmt.Errorf("origin: target %q: %w", target, err)
	}
	u := *c.base
	u.Path = strings.TrimSuffix(c.base.Path, "/") + t.Path
	if c.base.RawPath != "" || t.RawPath != "" {
		u.RawPath = strings.TrimSuffix(c.base.EscapedPath(), "/") + t.EscapedPath()
	} else {
		u.RawPath = ""
	}
	u.RawQuery = t.RawQuery
	u.ForceQuery = t.ForceQuery
	return &u, nil
}

// request builds a request; u and h are shared by the attempts of one call and
// not modified by a RoundTripper.
func (c *Client) request(ctx context.Context, method string, u *url.URL, h http.Header) *http.Request {
	r := &http.Request{
		Method:     method,
		URL:        u,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     h,
		Host:       u.Host,
	}
	// The caller's trace goes on at the origin if it is traced too.
	propagation.TraceContext{}.Inject(ctx, propagation.HeaderCarrier(h))
	return r.WithContext(ctx)
}

// drainClose reads a little of an unwanted body, so a short error page does
// not cost the connection, and closes it.
func drainClose(body io.ReadCloser) {
	_, _ = io.CopyN(io.Discard, body, 4<<10)
	_ = body.Close()
}

// noEOF turns the io.EOF of a body that ended early into io.ErrUnexpectedEOF.
func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
