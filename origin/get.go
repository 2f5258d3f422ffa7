package origin

import (
	"context"
	"fmt"
	"io"
	"net/http"
)

// ErrTooLarge reports a body over Get's limit.
var ErrTooLarge = fmt.Errorf("origin: response body over the limit")

// Get fetches a small object whole (a manifest, say): GET target, at most
// limit bytes of body. Transport errors, short bodies and 5xx are retried
// like Head's; a 200 returns the body; any other status is a *StatusError,
// not retried. A body over limit is ErrTooLarge.
func (c *Client) Get(ctx context.Context, target string, limit int64) ([]byte, *Info, error) {
	u, err := c.resolve(target)
	if err != nil {
		return nil, nil, err
	}
	h := http.Header{"Accept-Encoding": {"identity"}}
	var (
		body []byte
		info *Info
	)
	err = c.retry(ctx, http.MethodGet, target, func(ctx context.Context) (bool, error) {
		resp, err := c.rt.RoundTrip(c.request(ctx, http.MethodGet, u, h))
		if err != nil {
			return true, fmt.Errorf("origin: GET %s: %w", target, err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			drainClose(resp.Body)
			return resp.StatusCode >= 500, &StatusError{Op: http.MethodGet, Target: target, Code: resp.StatusCode}
		}
		if resp.ContentLength > limit {
			return false, fmt.Errorf("%w: GET %s: %d bytes, limit %d", ErrTooLarge, target, resp.ContentLength, limit)
		}
		b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
		if err != nil {
			return true, fmt.Errorf("origin: GET %s: %w", target, noEOF(err))
		}
		if int64(len(b)) > limit {
			return false, fmt.Errorf("%w: GET %s: over %d bytes", ErrTooLarge, target, limit)
		}
		if resp.ContentLength >= 0 && int64(len(b)) != resp.ContentLength {
			return true, fmt.Errorf("origin: GET %s: %d of %d bytes: %w", target, len(b), resp.ContentLength, io.ErrUnexpectedEOF)
		}
		body = b
		info = &Info{StatusCode: resp.StatusCode, Header: resp.Header, Size: int64(len(b)), ETag: resp.Header.Get("ETag")}
		return false, nil
	})
	if err != nil {
		return nil, nil, err
	}
	return body, info, nil
}
