package bench

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"time"
)

// ClientResult is one client's download of the release.
type ClientResult struct {
	// Site is the index of the site (edge, nginx) the client used.
	Site int `json:"site"`
	// Client is the client's index within its site.
	Client int `json:"client"`
	// TTFB is the time from the crowd's start to the first body byte, in
	// seconds: response headers alone do not count, since a cache may send
	// them long before it has anything to send.
	TTFB float64 `json:"ttfb_s"`
	// Seconds is the time from the crowd's start to the last body byte.
	Seconds float64 `json:"seconds"`
	// Bytes is the body's length.
	Bytes int64 `json:"bytes"`
	// CacheStatus is the response's Cache-Status (Shoal) or X-Cache-Status
	// (nginx) header, if any.
	CacheStatus string `json:"cache_status,omitempty"`
}

// IntegrityError reports a body that is not the release: a wrong byte
// somewhere, or a wrong length. It fails the run.
type IntegrityError struct {
	System       string
	URL          string
	Site, Client int
	Bytes, Want  int64  // lengths
	Got, WantSum string // SHA-256, hex
}

func (e *IntegrityError) Error() string {
	return fmt.Sprintf("bench: %s: WRONG BODY from %s (site %d, client %d): %d bytes with sha256 %s, want %d bytes with sha256 %s",
		e.System, e.URL, e.Site, e.Client, e.Bytes, e.Got, e.Want, e.WantSum)
}

// release is the object every client asks for, and what its body must be.
type release struct {
	Path   string // URL path
	Size   int64
	SHA256 string // hex
}

// fetch downloads url with c, timing from start, and checks the body
// against rel; buf is the client's read buffer. A body that is not rel is
// an *IntegrityError.
func fetch(ctx context.Context, c *http.Client, url string, start time.Time, rel release, buf []byte) (ClientResult, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return ClientResult{}, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return ClientResult{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return ClientResult{}, fmt.Errorf("GET %s: %s: %q", url, resp.Status, b)
	}
	r := ClientResult{CacheStatus: resp.Header.Get("Cache-Status")}
	if r.CacheStatus == "" {
		r.CacheStatus = resp.Header.Get("X-Cache-Status")
	}
	h := sha256.New()
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 {
			if r.Bytes == 0 {
				r.TTFB = time.Since(start).Seconds()
			}
			h.Write(buf[:n])
			r.Bytes += int64(n)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return r, fmt.Errorf("GET %s: after %d bytes: %w", url, r.Bytes, err)
		}
	}
	r.Seconds = time.Since(start).Seconds()
	if sum := hex.EncodeToString(h.Sum(nil)); sum != rel.SHA256 || r.Bytes != rel.Size {
		return r, &IntegrityError{URL: url, Bytes: r.Bytes, Want: rel.Size, Got: sum, WantSum: rel.SHA256}
	}
	return r, nil
}

// newClient returns an HTTP client with connections of its own, as a
// separate machine would have.
func newClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		DisableCompression:  true,
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     30 * time.Second,
	}}
}
