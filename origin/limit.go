package origin

import (
	"errors"
	"io"
	"net/http"
	"sync"
	"syscall"
)

// Limited returns rt held to the client's MaxConcurrent, for requests to
// the origin made outside the client (a reverse proxy forwarding client
// requests): each round trip takes one of the slots the client's own
// requests take, waiting on the request's context, and gives it back when
// the response body is closed, or at once when the round trip fails. So
// fetches and forwarded requests together never exceed MaxConcurrent.
func (c *Client) Limited(rt http.RoundTripper) http.RoundTripper {
	return &limitedTransport{rt: rt, sem: c.sem}
}

type limitedTransport struct {
	rt  http.RoundTripper
	sem chan struct{}
}

func (t *limitedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	select {
	case t.sem <- struct{}{}:
	case <-req.Context().Done():
		if req.Body != nil {
			req.Body.Close() // RoundTrip must close it, even on error
		}
		return nil, req.Context().Err()
	}
	resp, err := t.rt.RoundTrip(req)
	if err != nil && droppedConn(err) && replayable(req) && req.Context().Err() == nil {
		// The origin closed the connection before it answered (a
		// keep-alive connection it timed out as the request went out, or
		// a restart): a safe request without a body is sent once more,
		// on a new connection, as browsers do, rather than answered 502.
		resp, err = t.rt.RoundTrip(req)
	}
	if err != nil {
		<-t.sem
		return nil, err
	}
	release := sync.OnceFunc(func() { <-t.sem })
	if rwc, ok := resp.Body.(io.ReadWriteCloser); ok && resp.StatusCode == http.StatusSwitchingProtocols {
		// An upgraded connection (a reverse proxy's tunnel needs the
		// body to be writable) holds its slot while it lasts.
		resp.Body = &releaseRWC{ReadWriteCloser: rwc, release: release}
	} else {
		resp.Body = &releaseBody{ReadCloser: resp.Body, release: release}
	}
	return resp, nil
}

type releaseBody struct {
	io.ReadCloser
	release func()
}

func (b *releaseBody) Close() error {
	err := b.ReadCloser.Close()
	b.release()
	return err
}

type releaseRWC struct {
	io.ReadWriteCloser
	release func()
}

func (b *releaseRWC) Close() error {
	err := b.ReadWriteCloser.Close()
	b.release()
	return err
}

// droppedConn reports whether err is the origin closing or resetting the
// connection before its response header came.
func droppedConn(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// replayable reports whether req may be sent again: a safe method
// (RFC 9110 §9.2.1) without a body.
func replayable(req *http.Request) bool {
	switch req.Method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return req.Body == nil || req.Body == http.NoBody
	}
	return false
}
