package front

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// The client address behind a load balancer.
//
// A request's peer is the client unless the peer is a trusted proxy
// (Config.TrustedProxies). A trusted proxy says who its client was by
// appending it to X-Forwarded-For, or to Forwarded's for= (RFC 7239): each
// proxy appends its own peer, so the list reads client, proxy1, proxy2...
// and only the entries that trusted proxies appended can be believed.
// The client is therefore the rightmost entry that is not itself a trusted
// proxy; whatever stands left of it was written by that client and is
// ignored, so a client cannot pick its own address by sending the header.
// X-Forwarded-For is read when present, Forwarded otherwise: a proxy that
// writes Forwarded must drop a client's X-Forwarded-For.
//
// An entry that is not an address ("unknown", an obfuscated name, junk)
// ends the walk at the last trusted address seen: the clients behind it
// share that address's limits, which is safe (none of them can evade a
// limit by it) though coarse.

// ParseTrustedProxies parses a comma-separated list of CIDR prefixes or
// bare addresses (a /32 or /128), as --trusted-proxies takes it.
func ParseTrustedProxies(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if p, err := netip.ParsePrefix(f); err == nil {
			if p.Addr().Is4In6() {
				p = netip.PrefixFrom(p.Addr().Unmap(), max(0, p.Bits()-96))
			}
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil {
			return nil, fmt.Errorf("trusted proxy %q: not a CIDR prefix or an address", f)
		}
		a = a.Unmap().WithZone("")
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// trusted reports whether a is in one of the trusted prefixes.
func (s *Server) trusted(a netip.Addr) bool {
	for _, p := range s.cfg.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// clientAddr is the address of the client of r: its peer, or, when the
// peer is a trusted proxy, the one the proxies' headers name.
func (s *Server) clientAddr(r *http.Request) string {
	peer := clientIP(r.RemoteAddr)
	if len(s.cfg.TrustedProxies) == 0 {
		return peer
	}
	a, err := netip.ParseAddr(peer)
	if err != nil || !s.trusted(a.Unmap().WithZone("")) {
		return peer
	}
	var hops []string
	if xff := r.Header.Values("X-Forwarded-For"); len(xff) > 0 {
		for _, line := range xff {
			for h := range strings.SplitSeq(line, ",") {
				hops = append(hops, strings.TrimSpace(h))
			}
		}
	} else {
		hops = forwardedFor(r.Header.Values("Forwarded"))
	}
	last := a.Unmap().WithZone("")
	for i := len(hops) - 1; i >= 0; i-- {
		h, ok := parseHop(hops[i])
		if !ok {
			break
		}
		if !s.trusted(h) {
			return h.String()
		}
		last = h
	}
	return last.String()
}

// parseHop reads one X-Forwarded-For entry or Forwarded for= value: an
// address, an address with a port ("192.0.2.1:80", "[2001:db8::1]:80"), or
// a bracketed IPv6 address.
func parseHop(h string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(h); err == nil {
		return a.Unmap().WithZone(""), true
	}
	if ap, err := netip.ParseAddrPort(h); err == nil {
		return ap.Addr().Unmap().WithZone(""), true
	}
	if strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]") {
		if a, err := netip.ParseAddr(h[1 : len(h)-1]); err == nil {
			return a.Unmap().WithZone(""), true
		}
	}
	return netip.Addr{}, false
}

// forwardedFor returns the for= values of Forwarded fields (RFC 7239 §4),
// in order, unquoted. An element without for= gives "" (not an address,
// so the walk stops there).
func forwardedFor(fields []string) []string {
	var out []string
	for _, field := range fields {
		for _, elem := range splitQuoted(field, ',') {
			v := ""
			for _, pair := range splitQuoted(elem, ';') {
				k, val, ok := strings.Cut(strings.TrimSpace(pair), "=")
				if ok && strings.EqualFold(strings.TrimSpace(k), "for") {
					v = strings.TrimSpace(val)
					if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
						v = strings.ReplaceAll(v[1:len(v)-1], `\`, "")
					}
				}
			}
			out = append(out, v)
		}
	}
	return out
}

// splitQuoted splits s at sep outside double quotes.
func splitQuoted(s string, sep byte) []string {
	var out []string
	quoted, start := false, 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\' && quoted:
			i++
		case c == '"':
			quoted = !quoted
		case c == sep && !quoted:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

// logClient is what logs say of the client: the peer, and the client behind
// it when a trusted proxy names one.
func (s *Server) logClient(r *http.Request) []any {
	client := s.clientAddr(r)
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil && host == client {
		return []any{"remote", r.RemoteAddr}
	}
	return []any{"remote", r.RemoteAddr, "client", client}
}
