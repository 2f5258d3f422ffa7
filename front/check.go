package front

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// serveHTTP runs the per-request checks, then the handler.
func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	s.m.request(r)
	if r.ProtoMajor == 3 {
		// A QUIC connection in a request is not evicted for a new one.
		s.conns.quicBusy(r.Context(), 1)
		defer s.conns.quicBusy(r.Context(), -1)
	}
	if fc, ok := r.Context().Value(framedConnKey{}).(*framedConn); ok && r.ProtoMajor == 1 {
		if fc.tls != nil && r.TLS == nil {
			r = r.WithContext(r.Context()) // a shallow copy, to say it came over TLS
			r.TLS = fc.tls
		}
		if v, ok := fc.f.next(); ok {
			var err error
			switch {
			case v.err != nil:
				err = v.err
			case v.method != r.Method || v.target != r.RequestURI:
				err = fmt.Errorf("%w: head %q %q, request %q %q", errFramingLost, v.method, v.target, r.Method, r.RequestURI)
				s.log.Warn("request framing lost; closing the connection", append(s.logClient(r), "err", err)...)
			}
			if err != nil {
				w.Header().Set("Connection", "close")
				s.reject(w, "bad_framing", http.StatusBadRequest, "refused: "+err.Error())
				return
			}
		}
	}
	if r.TLS != nil || r.ProtoMajor == 3 {
		if v := s.altSvc.Load(); v != nil {
			w.Header().Set("Alt-Svc", *v)
		}
	}
	target := r.RequestURI
	if target == "" {
		target = r.URL.RequestURI()
	}
	if len(target) > s.cfg.MaxURL {
		s.reject(w, "uri_too_long", http.StatusRequestURITooLong, "request target too long")
		return
	}
	// The path as the client wrote it, and as net/http understood it: an
	// escape that one of them resolves must not hide from the check.
	raw, query, hasQuery := strings.Cut(target, "?")
	if !strings.HasPrefix(raw, "/") {
		raw = r.URL.EscapedPath() // absolute form, or "*"
	}
	if clean, ok := dropDotSegments(raw); ok {
		// "/a/./b" names "/a/b" (RFC 3986 §5.2.4), and some clients send
		// it as is: apt asks a flat repository ("deb URI ./") for
		// URI/./Packages. It is served, and keyed and forwarded, as
		// "/a/b", so the object still has one name.
		if hasQuery {
			clean += "?" + query
		}
		u, perr := url.ParseRequestURI(clean)
		if perr != nil {
			s.reject(w, "bad_path", http.StatusBadRequest, perr.Error())
			return
		}
		r = r.WithContext(r.Context())
		r.URL.Path, r.URL.RawPath, r.URL.RawQuery, r.URL.ForceQuery = u.Path, u.RawPath, u.RawQuery, u.ForceQuery
		r.RequestURI = clean
		raw, _, _ = strings.Cut(clean, "?")
	}
	err := CheckPath(raw)
	if ep := r.URL.EscapedPath(); err == nil && ep != raw {
		err = CheckPath(ep)
	}
	if err != nil && !(r.Method == http.MethodOptions && target == "*") {
		s.reject(w, "bad_path", http.StatusBadRequest, err.Error())
		return
	}
	if s.rate != nil && !s.rate.allow(s.clientAddr(r)) {
		w.Header().Set("Retry-After", "1")
		s.reject(w, "rate_limited", http.StatusTooManyRequests, "too many requests")
		return
	}
	if s.cfg.MinSendRate > 0 {
		pw := newPaceWriter(w, s.cfg.MinSendRate, s.cfg.SendWindow)
		defer pw.done()
		w = pw
		if r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0 {
			r.Body = newPaceBody(r.Body, &pw.rc, s.cfg.MinSendRate, s.cfg.SendWindow)
		}
	}
	s.cfg.Handler.ServeHTTP(w, r)
}

func (s *Server) reject(w http.ResponseWriter, reason string, code int, msg string) {
	s.m.rejected.WithLabelValues(reason).Inc()
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	fmt.Fprintln(w, msg)
}

func clientIP(remote string) string {
	if host, _, err := net.SplitHostPort(remote); err == nil {
		return host
	}
	return remote
}

// CheckPath reports why an escaped request path would reach the origin in
// a form other than the one the client wrote, or mean something else to
// the origin than to the cache: a path that is not absolute; a dot segment
// ("." or "..", also percent-encoded), which an origin resolves and a cache
// key does not; an encoded slash or backslash (%2F, %5C), which an origin
// may decode into a separator; a raw backslash; NUL or any other control
// byte, raw or encoded. Such requests are refused (400) rather than
// normalised, so that one object never has two names. (The server removes
// plain "." segments before it calls CheckPath: see dropDotSegments.)
func CheckPath(p string) error {
	if p == "" {
		return nil // "*" or an authority form; net/http has refused what is wrong with those
	}
	if p[0] != '/' {
		return fmt.Errorf("path %q is not absolute", p)
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c < 0x20 || c == 0x7f:
			return fmt.Errorf("control byte %#02x in the path", c)
		case c == '\\':
			return fmt.Errorf("backslash in the path")
		case c == '%':
			if i+2 >= len(p) {
				return fmt.Errorf("truncated escape in the path")
			}
			v, ok := unhex2(p[i+1], p[i+2])
			if !ok {
				return fmt.Errorf("bad escape %q in the path", p[i:i+3])
			}
			switch {
			case v == '/' || v == '\\':
				return fmt.Errorf("encoded separator %q in the path", p[i:i+3])
			case v < 0x20 || v == 0x7f:
				return fmt.Errorf("encoded control byte %q in the path", p[i:i+3])
			}
		}
	}
	for seg := range strings.SplitSeq(p[1:], "/") {
		if d := dotSegment(seg); d {
			return fmt.Errorf("dot segment %q in the path", seg)
		}
	}
	return nil
}

// dropDotSegments removes the segments that are exactly "." (unescaped)
// from an absolute path, and reports whether there were any. ".." and
// escaped dots are left for CheckPath to refuse.
func dropDotSegments(p string) (string, bool) {
	if !strings.Contains(p, "/.") {
		return p, false
	}
	segs := strings.Split(p[1:], "/")
	out := make([]string, 0, len(segs))
	dropped := false
	for i, seg := range segs {
		if seg == "." {
			dropped = true
			if i == len(segs)-1 {
				out = append(out, "") // "/a/." is the directory "/a/"
			}
			continue
		}
		out = append(out, seg)
	}
	if !dropped {
		return p, false
	}
	return "/" + strings.Join(out, "/"), true
}

// dotSegment reports whether seg is "." or "..", spelt with escapes or not.
func dotSegment(seg string) bool {
	if len(seg) > len("%2e%2e") {
		return false
	}
	seg = strings.ReplaceAll(strings.ReplaceAll(seg, "%2e", "."), "%2E", ".")
	return seg == "." || seg == ".."
}

func unhex2(a, b byte) (byte, bool) {
	h, ok1 := unhex(a)
	l, ok2 := unhex(b)
	return h<<4 | l, ok1 && ok2
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
