package digest

import (
	"net/http"
	"strconv"

	"github.com/shoalcdn/shoal/erasure"
)

// Writer passes a response through and checks a 200's body against its
// digest: it holds the last byte written until Finish, which sends it if
// the body matches (and hands OK the BLAKE3 of each segSize window of it,
// the segments the fleet cut it into) and otherwise cuts the response
// (calling Fail when the whole body was written). So a client never
// receives the whole of a body that is not the content it asked for.
type Writer struct {
	http.ResponseWriter
	v       *Verifier
	segSize int64
	ok      func([]erasure.Hash)
	fail    func()

	checking bool  // a 200: its body is the content
	length   int64 // its Content-Length, or -1
	written  int64
	held     [1]byte
	holding  bool
	started  bool
	seg      erasure.Hasher // of the segment being written
	hashed   int64          // bytes in seg and hashes
	hashes   []erasure.Hash
	werr     error // the first failed write
}

// NewWriter returns a Writer of w checking against v (nil: no check).
func NewWriter(w http.ResponseWriter, v *Verifier, segSize int64, ok func([]erasure.Hash), fail func()) *Writer {
	return &Writer{ResponseWriter: w, v: v, segSize: segSize, ok: ok, fail: fail}
}

func (w *Writer) WriteHeader(code int) {
	if !w.started && code >= 200 {
		w.started = true
		w.checking = code == http.StatusOK && w.v != nil
		w.length = -1
		if cl := w.Header().Get("Content-Length"); cl != "" {
			if n, err := strconv.ParseInt(cl, 10, 64); err == nil {
				w.length = n
			}
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *Writer) Write(b []byte) (int, error) {
	if !w.started {
		w.WriteHeader(http.StatusOK)
	}
	if !w.checking || len(b) == 0 {
		return w.ResponseWriter.Write(b)
	}
	w.v.Write(b)
	w.hashSegments(b)
	w.written += int64(len(b))
	if w.holding {
		if _, err := w.ResponseWriter.Write(w.held[:]); err != nil {
			w.werr = err
			return 0, err
		}
		w.holding = false
	}
	n, err := w.ResponseWriter.Write(b[:len(b)-1])
	if err != nil {
		w.werr = err
		return n, err
	}
	w.held[0], w.holding = b[len(b)-1], true
	return len(b), nil
}

// hashSegments adds b to the BLAKE3 of the segments it falls in.
func (w *Writer) hashSegments(b []byte) {
	for len(b) > 0 {
		n := min(int64(len(b)), w.segSize-w.hashed%w.segSize)
		w.seg.Write(b[:n])
		w.hashed += n
		if w.hashed%w.segSize == 0 {
			w.hashes = append(w.hashes, w.seg.Sum())
			w.seg.Reset()
		}
		b = b[n:]
	}
}

// Unwrap lets http.ResponseController reach the writer below.
func (w *Writer) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Finish ends a checked response: the held byte goes out if the body
// matches its digest; otherwise the handler is aborted (the connection
// cut), after Fail when the body was whole. Call it when the handler is
// done writing, on its goroutine (a deferred call).
func (w *Writer) Finish() {
	if !w.checking || !w.holding && w.v.Match() {
		return // not checked, or an empty body that is the content
	}
	if w.werr != nil {
		// The client went away: the body may be fine, it is not whole.
		panic(http.ErrAbortHandler)
	}
	if w.holding && w.v.Match() {
		if w.hashed%w.segSize != 0 {
			w.hashes = append(w.hashes, w.seg.Sum())
		}
		w.ResponseWriter.Write(w.held[:])
		w.ok(w.hashes)
		return
	}
	if w.length >= 0 && w.written == w.length {
		w.fail() // whole, and not the content (of unknown length: the fill's check says)
	}
	// Cut short, or not the content: either way the client must not get
	// its last byte, and the connection ends.
	panic(http.ErrAbortHandler)
}
