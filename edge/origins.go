package edge

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/shoalcdn/shoal/internal/httpcache"
	"github.com/shoalcdn/shoal/origin"
)

// Several origins (Config.Origins). One fleet can front several sites,
// each its own origin, chosen by the request's Host:
//
//   - Host names match case-insensitively, without their port and a
//     trailing dot: "DL.Example.com:8080" is the site "dl.example.com".
//   - "*" is the default site: it serves every Host not listed, all such
//     hosts sharing its cache keys (as an edge with one origin does).
//     Without it, a request for a Host not listed is answered 421
//     Misdirected Request and never reaches any origin.
//   - Cache keys are per site: "//" + host + request target (the
//     network-path form, which no request target of a site can be once
//     prefixed), so the same path on two sites is two objects, with their
//     own records, placement and shards. The default site's keys are
//     "//*" + target.
//
// An edge with one origin for every host (Config.Origin.Base) keys by the
// request target alone, as it always has: records kept on disk stay valid.
//
// Every edge of a fleet must have the same sites: placement hashes the key,
// and a peer asked about a key of a site it does not know (a Stat or a
// Fill) answers with errUnknownSite rather than fetch it from elsewhere.

// errUnknownSite: a key or request names a site this edge has no origin for.
var errUnknownSite = errors.New("edge: no origin for this host")

// site is one origin the edge fronts.
type site struct {
	// name is "" for the one origin of every host, else the lower-case
	// host name, or "*".
	name   string
	client *origin.Client
	proxy  *httputil.ReverseProxy // requests forwarded unchanged

	missOnce sync.Once
	missRP   *httputil.ReverseProxy // forwarded misses (miss.go)
}

// key returns the cache key of a request target on s.
func (s *site) key(target string) string {
	if s.name == "" {
		return target
	}
	return "//" + s.name + target
}

// sites are the origins of an edge: one for every host, or one per host.
type sites struct {
	all    *site            // the origin of every host, or nil
	byHost map[string]*site // else, by normalised host name ("*": any other)
}

// newSites builds the origin clients and reverse proxies of cfg.Origin or
// cfg.Origins; each client's transport is wrapped by wrap (counting, limit).
func newSites(cfg Config, wrap func(http.RoundTripper) http.RoundTripper, newProxy func(*site, http.RoundTripper) *httputil.ReverseProxy) (*sites, error) {
	mk := func(name, base string) (*site, error) {
		ocfg := cfg.Origin
		ocfg.Base = base
		if ocfg.Logger == nil {
			ocfg.Logger = cfg.Logger
		}
		oc, err := origin.NewClient(ocfg)
		if err != nil {
			return nil, err
		}
		ocfg.Transport = wrap(oc.Transport())
		s := &site{name: name}
		if s.client, err = origin.NewClient(ocfg); err != nil {
			return nil, err
		}
		s.proxy = newProxy(s, ocfg.Transport)
		return s, nil
	}
	if len(cfg.Origins) == 0 {
		s, err := mk("", cfg.Origin.Base)
		if err != nil {
			return nil, err
		}
		return &sites{all: s}, nil
	}
	if cfg.Origin.Base != "" {
		return nil, errors.New("edge: set Origin.Base or Origins, not both (a default origin is Origins[\"*\"])")
	}
	ss := &sites{byHost: map[string]*site{}}
	hosts := make([]string, 0, len(cfg.Origins))
	for h := range cfg.Origins {
		hosts = append(hosts, h)
	}
	slices.Sort(hosts)
	for _, h := range hosts {
		name := h
		if h != "*" {
			name = normalHost(h)
			if name == "" || strings.ContainsAny(name, "/*\\?#@ \t\r\n") {
				return nil, fmt.Errorf("edge: origin host %q: not a host name", h)
			}
		}
		if _, dup := ss.byHost[name]; dup {
			return nil, fmt.Errorf("edge: origin host %q given twice", name)
		}
		s, err := mk(name, cfg.Origins[h])
		if err != nil {
			return nil, fmt.Errorf("edge: origin of %s: %w", name, err)
		}
		ss.byHost[name] = s
	}
	return ss, nil
}

// normalHost returns a Host field's host name as sites match it: lower
// case, without port or trailing dot.
func normalHost(h string) string {
	if host, _, err := net.SplitHostPort(h); err == nil {
		h = host
	} else if strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]") {
		h = h[1 : len(h)-1]
	}
	return strings.TrimSuffix(strings.ToLower(h), ".")
}

// forHost returns the site serving requests with Host field host, or nil.
func (ss *sites) forHost(host string) *site {
	if ss.all != nil {
		return ss.all
	}
	if s, ok := ss.byHost[normalHost(host)]; ok {
		return s
	}
	return ss.byHost["*"]
}

// split returns the site of a cache key and the request target to send to
// that site's origin (without a variant's fields: httpcache.VariantFields).
func (ss *sites) split(key string) (*site, string, error) {
	key = httpcache.TargetOf(key)
	if ss.all != nil {
		return ss.all, key, nil
	}
	rest, ok := strings.CutPrefix(key, "//")
	i := strings.IndexByte(rest, '/')
	if !ok || i <= 0 {
		return nil, "", fmt.Errorf("%w: key %.80q names no site", errUnknownSite, key)
	}
	s, ok := ss.byHost[rest[:i]]
	if !ok {
		return nil, "", fmt.Errorf("%w: %q (every edge of a fleet needs the same --origin)", errUnknownSite, rest[:i])
	}
	return s, rest[i:], nil
}

// keyForURL returns the cache key of a URL or request target given to the
// admin API (prefetch): an absolute URL selects its host's site; a bare
// target is only enough for an edge with one origin for every host.
func (ss *sites) keyForURL(u *url.URL) (string, error) {
	if ss.all != nil {
		return u.RequestURI(), nil
	}
	if u.Host == "" {
		return "", errors.New("this edge fronts several sites: give an absolute URL (http://host/path)")
	}
	s := ss.forHost(u.Host)
	if s == nil {
		return "", fmt.Errorf("no origin for host %q", u.Host)
	}
	return s.key(u.RequestURI()), nil
}

// each calls f for every site.
func (ss *sites) each(f func(*site)) {
	if ss.all != nil {
		f(ss.all)
		return
	}
	for _, s := range ss.byHost {
		f(s)
	}
}

// siteOf returns the site of a client request, or nil.
func (e *Edge) siteOf(r *http.Request) *site { return e.sites.forHost(r.Host) }

// misdirected answers a request for a Host no origin is configured for.
func misdirected(w http.ResponseWriter, r *http.Request) {
	httpError(w, http.StatusMisdirectedRequest, fmt.Sprintf("this CDN serves no site named %q", normalHost(r.Host)))
}

// newProxy returns the reverse proxy that forwards requests to s's origin
// unchanged, over rt.
func (e *Edge) newProxy(s *site, rt http.RoundTripper) *httputil.ReverseProxy {
	base := s.client.Base()
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(base)
			pr.SetXForwarded()
			pr.Out.Header.Add("Via", httpcache.Via(pr.In.ProtoMajor, pr.In.ProtoMinor))
		},
		Transport:     s.client.Limited(rt), // held to --origin-concurrency with the fills
		FlushInterval: -1,
		ModifyResponse: func(resp *http.Response) error {
			if t, ok := resp.Request.Context().Value(headerTimerKey{}).(*time.Timer); ok {
				t.Stop()
			}
			if v, ok := resp.Request.Context().Value(cacheStatusKey{}).(string); ok {
				resp.Header.Add("Cache-Status", v)
			}
			e.purger.afterForward(resp)
			return nil
		},
		ErrorHandler: e.proxyError,
	}
}

// proxyError answers a request the origin could not be reached for.
func (e *Edge) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	e.log.WarnContext(r.Context(), "forwarding to the origin failed", "method", r.Method, "target", r.URL.RequestURI(), "err", err)
	if v, ok := r.Context().Value(cacheStatusKey{}).(string); ok {
		w.Header().Set("Cache-Status", v)
	}
	if errors.Is(context.Cause(r.Context()), errHeaderTimeout) {
		err = context.DeadlineExceeded // a 504
	}
	httpError(w, originStatus(err), "origin unreachable")
}
