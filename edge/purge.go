package edge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/shoalcdn/shoal/erasure"
	"github.com/shoalcdn/shoal/internal/httpcache"
	"github.com/shoalcdn/shoal/internal/sizedlru"
	"github.com/shoalcdn/shoal/store"
	"github.com/shoalcdn/shoal/swarm"
)

// Purge and invalidation, fleet-wide.
//
// The fleet needs no new peer operation for this: a purge is a Stat with
// its own mode (swarm.StatPurgeStamped, purgelog.go: the purge with its time,
// which members log and exchange so that one that was down learns it
// later), sent by the edge that takes it to every other member. Each
// member drops its records of the keys (in memory and on disk); the next
// request for one looks it up at the origin again, once for the fleet.
// Segments are left alone: they are named by the object's validator, so a
// new version is new segments, and the old ones age out of the stores.
// The older swarm.StatPurge and StatPurgePrefix are still answered, and
// sent when a stamped purge does not fit. A key fits: targets are at most
// swarm.MaxKey-1 bytes (ServeHTTP refuses longer ones).

// purger runs purges and invalidations: on this edge's records, told to
// every other member, logged and exchanged with peers (purgelog.go). It
// also holds the reverse proxy's response hook (afterForward), where
// unsafe methods invalidate and some forwarded responses are kept.
type purger struct {
	node    *swarm.Node
	entries *purgeLog // purges known, exchanged with peers (purgelog.go)
	// held are this edge's records in memory; store keeps them on disk.
	held  *sizedlru.Cache[string, *Record]
	store *store.Store
	sites *sites
	// records keeps a forwarded response's record (Edge.keepRecord,
	// records.go).
	records recordKeeper
	// placeBody wraps the body of a kept forwarded response, so that its
	// one segment is coded and placed like a fill once it has passed
	// (miss.go's segmentTee).
	placeBody func(rec *Record, body io.ReadCloser) io.ReadCloser
	bg        background
	// signing is set with Config.Trust: forwarded responses are not kept.
	signing bool
	// now is Config.Now: purge stamps are compared with Record.Fetched.
	now func() time.Time
	// layout, maxHeuristicFreshness and peerTimeout are Config's.
	layout                erasure.Layout
	maxHeuristicFreshness time.Duration
	peerTimeout           time.Duration
	log                   *slog.Logger
}

// recordKeeper keeps a record on this edge, in memory and on disk.
type recordKeeper interface {
	keepRecord(r *Record)
}

// purgeTimeout bounds how long a purge waits for the other members.
const purgeTimeout = time.Second

// PurgeResult says what a purge reached.
type PurgeResult struct {
	// Purged is how many records this edge dropped.
	Purged int `json:"purged"`
	// Members is how many other members were told.
	Members int `json:"members"`
	// Failed lists the members that could not be told, with the error.
	Failed map[string]string `json:"failed,omitempty"`
}

// Purge drops the record of key (or, with prefix, of every key that
// starts with it) on this edge and on every other member of the fleet,
// waiting at most a second for them.
func (e *Edge) Purge(ctx context.Context, key string, prefix bool) PurgeResult {
	return e.purger.purge(ctx, key, prefix)
}

func (p *purger) purge(ctx context.Context, key string, prefix bool) PurgeResult {
	// Logged, so that members that do not hear of it now learn it later
	// (purgelog.go).
	en := purgeEntry{Pattern: key, Prefix: prefix, At: p.now()}
	p.entries.Add(en)
	p.entries.Save()
	res := PurgeResult{Purged: p.purgeLocal(key, prefix)}
	payload := stampedPurge(en)
	if len(payload) > swarm.MaxKey {
		// Too long to carry its time: told the older way (receivers log
		// it with the time they receive it).
		payload = append(swarm.AppendStat(nil, swarm.StatPurge), key...)
		if prefix {
			payload = append(swarm.AppendStat(nil, swarm.StatPurgePrefix), key...)
		}
	}
	if len(payload) > swarm.MaxKey {
		return res // longer than any target: the fleet holds no such key
	}
	ctx, cancel := context.WithTimeout(ctx, purgeTimeout)
	defer cancel()
	var (
		mu sync.Mutex
		wg sync.WaitGroup
	)
	self := p.node.Self()
	for _, m := range p.node.Members() {
		if m == self {
			continue
		}
		res.Members++
		wg.Go(func() {
			if _, err := p.node.Stat(ctx, m, payload); err != nil {
				mu.Lock()
				defer mu.Unlock()
				if res.Failed == nil {
					res.Failed = map[string]string{}
				}
				res.Failed[m] = err.Error()
			}
		})
	}
	wg.Wait()
	if len(res.Failed) > 0 {
		p.log.WarnContext(ctx, "purge did not reach every member", "key", key, "prefix", prefix, "failed", res.Failed)
	}
	return res
}

// purgeLocal drops this edge's records of key, or of the keys starting
// with it, and returns how many it held.
func (p *purger) purgeLocal(key string, prefix bool) int {
	// A target's variants go with it (vary.go).
	keys := []string{key}
	for _, k := range p.held.Keys() {
		if prefix && strings.HasPrefix(k, key) || strings.HasPrefix(k, key+"\n") {
			keys = append(keys, k)
		}
	}
	n := 0
	for _, k := range keys {
		if _, ok := p.held.Get(k); ok {
			n++
		}
		p.held.Remove(k)
		p.store.ForgetRecord(k)
	}
	return n
}

// safeMethods are the methods that never invalidate (RFC 9110 §9.2.1);
// any other, known or not, does (RFC 9111 §4.4).
var safeMethods = map[string]bool{http.MethodGet: true, http.MethodHead: true, http.MethodOptions: true, http.MethodTrace: true}

type forwardedKey struct{}

// forwarded is what the reverse proxy's response hook needs to know of
// the client's request.
type forwarded struct {
	site         *site
	target, host string
	unsafe       bool
}

// afterForward adjusts a response forwarded from the origin: Via is added,
// Shoal-Cache-Control (for the edge alone) removed, and a non-error
// response to an unsafe method invalidates, fleet-wide, the target and
// the Location and Content-Location it names on the same host.
func (p *purger) afterForward(resp *http.Response) {
	resp.Header.Add("Via", httpcache.Via(resp.ProtoMajor, resp.ProtoMinor))
	resp.Header.Del(httpcache.ShoalCacheControl)
	f, ok := resp.Request.Context().Value(forwardedKey{}).(forwarded)
	if ok && !f.unsafe {
		p.keepForwarded(resp, f)
	}
	if !ok || !f.unsafe || resp.StatusCode >= 400 {
		return
	}
	keys := []string{f.site.key(f.target)}
	base, _ := url.Parse("http://" + f.host + f.target)
	for _, field := range []string{"Location", "Content-Location"} {
		v := resp.Header.Get(field)
		if v == "" || base == nil {
			continue
		}
		u, err := base.Parse(v)
		if err != nil || !strings.EqualFold(u.Host, f.host) && !strings.EqualFold(u.Host, f.site.client.Base().Host) {
			continue // another host: not this cache's to invalidate (RFC 9111 §4.4)
		}
		if k := u.RequestURI(); strings.HasPrefix(k, "/") && k != f.target {
			keys = append(keys, f.site.key(k))
		}
	}
	for _, k := range keys {
		p.bg.goTracked(p.peerTimeout, func(ctx context.Context) { p.purge(ctx, k, false) })
	}
}

// servePurge is POST /admin/purge: url= (an absolute URL or a
// request-target) purges one object, prefix= (a path prefix) every object
// under it, fleet-wide. It answers with a PurgeResult as JSON.
func (p *purger) servePurge(w http.ResponseWriter, r *http.Request) {
	keys, prefix, err := p.purgeKeys(r.FormValue("url"), r.FormValue("prefix"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var res PurgeResult
	for _, key := range keys {
		kr := p.purge(r.Context(), key, prefix)
		res.Purged += kr.Purged
		res.Members = kr.Members
		for m, err := range kr.Failed {
			if res.Failed == nil {
				res.Failed = map[string]string{}
			}
			res.Failed[m] = err
		}
	}
	w.Header().Set("Content-Type", "application/json")
	if len(res.Failed) > 0 {
		w.WriteHeader(http.StatusBadGateway)
	}
	json.NewEncoder(w).Encode(res)
}

// purgeKeys turns the purge parameters into the cache keys or key
// prefixes to purge. With several sites (origins.go), an absolute URL
// purges on its host's site, and a bare path or prefix on every site.
func (p *purger) purgeKeys(rawURL, rawPrefix string) ([]string, bool, error) {
	target, prefix, err := purgeTarget(rawURL, rawPrefix)
	if err != nil || p.sites.all != nil {
		return []string{target}, prefix, err
	}
	raw := rawURL + rawPrefix // one of them is empty
	if u, perr := url.Parse(raw); perr == nil && u.Host != "" && (rawPrefix == "" || u.Scheme != "") {
		s := p.sites.forHost(u.Host)
		if s == nil {
			return nil, false, fmt.Errorf("no origin for host %q", u.Host)
		}
		return []string{s.key(target)}, prefix, nil
	}
	var keys []string
	p.sites.each(func(s *site) { keys = append(keys, s.key(target)) })
	return keys, prefix, nil
}

// purgeTarget turns the purge parameters into a request target or target
// prefix: prefix= may also be an absolute URL.
func purgeTarget(rawURL, rawPrefix string) (string, bool, error) {
	switch {
	case rawURL != "" && rawPrefix != "":
		return "", false, errors.New("give url= or prefix=, not both")
	case rawURL != "":
		u, err := url.Parse(rawURL)
		if err != nil {
			return "", false, errors.New("url: " + err.Error())
		}
		k := u.RequestURI()
		if u.Scheme == "" && u.Host == "" {
			k = rawURL // a request-target: kept byte for byte, as the key is
		}
		if !strings.HasPrefix(k, "/") {
			return "", false, errors.New("url must be an absolute URL or start with /")
		}
		return k, false, nil
	case rawPrefix != "":
		if u, err := url.Parse(rawPrefix); err == nil && u.Host != "" && (u.Scheme == "http" || u.Scheme == "https") {
			rawPrefix = u.RequestURI()
		}
		if !strings.HasPrefix(rawPrefix, "/") {
			return "", false, errors.New("prefix must start with /")
		}
		return rawPrefix, true, nil
	}
	return "", false, errors.New("give url= or prefix=")
}

// keepForwarded stores on this edge a forwarded response of a status
// other than 200 that the fleet's own fetches could not get (they are
// ranges of a 200's body): a 301, a 404 or a 410 with freshness, say.
// It is small (one segment at most: newBodyRecord) and stored whole, its
// record kept here only, so that the next request here is a hit; the
// other members keep forwarding until they fetch it themselves. Only a
// plain GET's response is kept: no Range, preconditions or credentials,
// and no Vary (the request may have sent the fields it names).
func (p *purger) keepForwarded(resp *http.Response, f forwarded) {
	req := resp.Request
	switch {
	case req.Method != http.MethodGet, p.signing, resp.StatusCode == http.StatusOK,
		req.Header.Get("Range") != "", httpcache.HasConditionals(req.Header), req.Header.Get("Authorization") != "",
		len(resp.Header.Values("Vary")) > 0:
		return
	}
	key := f.site.key(f.target)
	if len(key) > swarm.MaxKey-1 {
		return
	}
	now := p.now()
	rec := newBodyRecord(key, resp.StatusCode, resp.Header, resp.ContentLength, "", p.layout, now, p.maxHeuristicFreshness)
	if rec == nil || rec.Status == 0 || !rec.Fresh(now) {
		return
	}
	p.records.keepRecord(rec)
	if vs := resp.Header["Cache-Status"]; len(vs) > 0 {
		vs[len(vs)-1] = fmt.Sprintf("shoal; fwd=miss; stored; fwd-status=%d; ttl=%d", rec.Status, int64(rec.Expires.Sub(now)/time.Second))
	}
	resp.Header.Set("Age", strconv.FormatInt(rec.Age, 10))
	if rec.Size == 0 {
		return
	}
	resp.Body = p.placeBody(rec, resp.Body)
}
