package edge

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/shoalcdn/shoal/swarm"
)

// Prefetch (preheat): POST /admin/prefetch on the admin listener starts a
// job that brings objects into the fleet before clients ask: each object's
// record is resolved at its coordinator and every segment is read through
// the fleet's read path, so a segment the fleet lacks is fetched once from
// the origin by its coordinator and its shards placed on their holders. A
// segment already in the fleet costs no origin traffic. The edge running
// the job does not keep the segments in its memory tier (prefetch must
// not flush what clients use); coordinators keep the ones they fill, as on
// any miss.
//
// A job reads prefetchWindow segments at a time, and all jobs of an edge
// share prefetchSlots, so prefetch never takes more than a few origin
// connections from clients (and --origin-limit, when set, bounds its
// bytes as it bounds all origin traffic).
const (
	prefetchWindow   = 4    // segments of one object in flight
	prefetchSlots    = 4    // segment reads in flight for all jobs of this edge
	prefetchMaxURLs  = 1000 // per job
	prefetchMaxJobs  = 100  // kept for GET; the oldest finished ones go first
	prefetchMaxBody  = 1 << 20
	prefetchSegRetry = 2 // tries per segment
)

// PrefetchRequest is the body of POST /admin/prefetch.
type PrefetchRequest struct {
	// URLs are request targets ("/r/app.tar") or absolute URLs, whose path
	// and query are used.
	URLs []string `json:"urls"`
	// Warm is "all" to also load every segment into every edge's memory
	// tier once the fleet has it, or "" (the default) not to.
	Warm string `json:"warm,omitempty"`
}

// PrefetchJob is the state of a job, as GET /admin/prefetch/{id} reports it.
type PrefetchJob struct {
	ID       string           `json:"id"`
	State    string           `json:"state"` // "running", "done" or "failed" (done with errors)
	Warm     string           `json:"warm,omitempty"`
	Created  time.Time        `json:"created"`
	Finished *time.Time       `json:"finished,omitempty"`
	Objects  []PrefetchObject `json:"objects"`
}

// PrefetchObject is the progress of one object of a job.
type PrefetchObject struct {
	URL      string `json:"url"`
	Size     int64  `json:"size"`     // -1 until known
	Segments int    `json:"segments"` // total, 0 until known
	Done     int    `json:"done"`     // segments in the fleet
	Bytes    int64  `json:"bytes"`    // of those segments
	// With warm=all: segment loads into an edge's memory tier to do
	// (segments × members) and done.
	WarmTotal int    `json:"warm_total,omitempty"`
	Warmed    int    `json:"warmed,omitempty"`
	Error     string `json:"error,omitempty"`
}

// prefetchConfig is what prefetch jobs use; New fills it, and Admin
// makes a prefetcher from it.
type prefetchConfig struct {
	node  *swarm.Node
	sites *sites
	// records resolves an object's record at its coordinator
	// (Edge.record, records.go).
	records recordLookup
	// segments reads a segment through the fleet's read path (reader).
	segments segmentSource
	bg       background // runs the jobs until Shutdown
	log      *slog.Logger
}

// recordLookup returns the record of key, fetching it if need be.
type recordLookup interface {
	record(ctx context.Context, key string, stale *Record) (*Record, bool, error)
}

// segmentSource reads one segment of r's object.
type segmentSource interface {
	segment(ctx context.Context, r *Record, idx uint32) ([]byte, string, error)
}

// prefetcher runs the prefetch jobs of one admin handler.
type prefetcher struct {
	prefetchConfig
	slots chan struct{}

	mu   sync.Mutex
	jobs map[string]*PrefetchJob
	ids  []string // creation order
}

func newPrefetcher(cfg prefetchConfig) *prefetcher {
	return &prefetcher{prefetchConfig: cfg, slots: make(chan struct{}, prefetchSlots), jobs: make(map[string]*PrefetchJob)}
}

func (p *prefetcher) routes(mux *http.ServeMux, token string) {
	mux.Handle("POST /admin/prefetch", requireTokenOrLoopback(token, http.HandlerFunc(p.create)))
	mux.Handle("GET /admin/prefetch/{id}", requireTokenOrLoopback(token, http.HandlerFunc(p.status)))
}

func (p *prefetcher) create(w http.ResponseWriter, r *http.Request) {
	req, err := parsePrefetchRequest(r)
	if err != nil {
		writeJSONError(w, http.StatusBadRequest, err.Error())
		return
	}
	var id [8]byte
	rand.Read(id[:])
	job := &PrefetchJob{ID: hex.EncodeToString(id[:]), State: "running", Warm: req.Warm, Created: time.Now().UTC()}
	keys := make([]string, len(req.URLs))
	for i, ref := range req.URLs {
		u, _ := url.Parse(ref) // parsePrefetchRequest checked it
		if keys[i], err = p.sites.keyForURL(u); err != nil {
			writeJSONError(w, http.StatusBadRequest, fmt.Sprintf("url %q: %v", ref, err))
			return
		}
		job.Objects = append(job.Objects, PrefetchObject{URL: keys[i], Size: -1})
	}
	p.mu.Lock()
	p.jobs[job.ID] = job
	p.ids = append(p.ids, job.ID)
	p.trimLocked()
	p.mu.Unlock()
	if !p.bg.goTracked(0, func(ctx context.Context) { p.run(ctx, job, keys) }) {
		writeJSONError(w, http.StatusServiceUnavailable, "the edge is shutting down")
		return
	}
	p.log.Info("prefetch started", "job", job.ID, "objects", len(keys))
	w.Header().Set("Location", "/admin/prefetch/"+job.ID)
	writeJSON(w, http.StatusAccepted, p.snapshot(job))
}

func parsePrefetchRequest(r *http.Request) (*PrefetchRequest, error) {
	req := &PrefetchRequest{}
	ct := r.Header.Get("Content-Type")
	switch {
	case strings.HasPrefix(ct, "application/json"):
		dec := json.NewDecoder(io.LimitReader(r.Body, prefetchMaxBody))
		dec.DisallowUnknownFields()
		if err := dec.Decode(req); err != nil {
			return nil, fmt.Errorf("body: %v", err)
		}
		if dec.More() {
			return nil, errors.New("body: more than one JSON value")
		}
	default:
		// url=...&url=... in the query or a form body.
		r.Body = http.MaxBytesReader(nil, r.Body, prefetchMaxBody)
		if err := r.ParseForm(); err != nil {
			return nil, fmt.Errorf("form: %v", err)
		}
		req.URLs = r.Form["url"]
		req.Warm = r.Form.Get("warm")
	}
	if req.Warm != "" && req.Warm != "all" {
		return nil, fmt.Errorf(`warm %q: "all" or nothing`, req.Warm)
	}
	if len(req.URLs) == 0 {
		return nil, errors.New(`no URLs: send {"urls": ["/path", ...]} as application/json, or url=/path parameters`)
	}
	if len(req.URLs) > prefetchMaxURLs {
		return nil, fmt.Errorf("%d URLs, at most %d per job", len(req.URLs), prefetchMaxURLs)
	}
	for i, s := range req.URLs {
		if !utf8.ValidString(s) {
			// JSON cannot carry such a string back (it would come back
			// with U+FFFD), and no request target holds raw bytes that
			// are not UTF-8 in practice: percent-encode them.
			return nil, fmt.Errorf("url %q: not valid UTF-8 (percent-encode other bytes)", s)
		}
		key, err := prefetchKey(s)
		if err != nil {
			return nil, fmt.Errorf("url %q: %v", s, err)
		}
		req.URLs[i] = key
	}
	return req, nil
}

// prefetchKey turns a URL or request target into its path and query,
// after "//" and its host when it has one (Edge.sites.keyForURL then
// makes the cache key clients' requests for it use).
func prefetchKey(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil {
		return "", err
	}
	if u.Scheme != "" && u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("scheme %q", u.Scheme)
	}
	if u.Path == "" || !strings.HasPrefix(u.Path, "/") {
		return "", errors.New("no absolute path")
	}
	if strings.ContainsAny(s, "\x00\r\n") {
		return "", errors.New("control characters")
	}
	if u.Host != "" {
		// url.Parse unescapes a host's %XX: bytes that are not UTF-8
		// would name no site, and could not travel in a JSON answer.
		if !utf8.ValidString(u.Host) {
			return "", errors.New("host is not valid UTF-8")
		}
		return "//" + u.Host + u.RequestURI(), nil
	}
	return u.RequestURI(), nil
}

func (p *prefetcher) status(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	job, ok := p.jobs[r.PathValue("id")]
	p.mu.Unlock()
	if !ok {
		writeJSONError(w, http.StatusNotFound, "no such prefetch job (jobs are kept in memory, the last 100)")
		return
	}
	writeJSON(w, http.StatusOK, p.snapshot(job))
}

func (p *prefetcher) snapshot(job *PrefetchJob) PrefetchJob {
	p.mu.Lock()
	defer p.mu.Unlock()
	c := *job
	c.Objects = append([]PrefetchObject(nil), job.Objects...)
	return c
}

// trimLocked drops the oldest finished jobs beyond prefetchMaxJobs.
func (p *prefetcher) trimLocked() {
	for i := 0; len(p.ids) > prefetchMaxJobs && i < len(p.ids); {
		if j := p.jobs[p.ids[i]]; j.State != "running" {
			delete(p.jobs, p.ids[i])
			p.ids = append(p.ids[:i], p.ids[i+1:]...)
			continue
		}
		i++
	}
}

func (p *prefetcher) run(ctx context.Context, job *PrefetchJob, keys []string) {
	failed := false
	for i, key := range keys {
		if err := p.object(ctx, job, i, key); err != nil {
			failed = true
			p.update(job, i, func(o *PrefetchObject) { o.Error = err.Error() })
			p.log.Warn("prefetch of an object failed", "job", job.ID, "key", key, "err", err)
		}
	}
	p.mu.Lock()
	now := time.Now().UTC()
	job.Finished = &now
	job.State = "done"
	if failed {
		job.State = "failed"
	}
	p.mu.Unlock()
	p.log.Info("prefetch finished", "job", job.ID, "state", job.State)
}

func (p *prefetcher) update(job *PrefetchJob, i int, f func(*PrefetchObject)) {
	p.mu.Lock()
	f(&job.Objects[i])
	p.mu.Unlock()
}

// object brings one object into the fleet.
func (p *prefetcher) object(ctx context.Context, job *PrefetchJob, i int, key string) error {
	rec, _, err := p.records.record(ctx, key, nil)
	if err != nil {
		return err
	}
	if rec.Pass {
		return errors.New("the origin's response may not be cached, so there is nothing to prefetch")
	}
	n := int(rec.Layout.Segments(rec.Size))
	p.update(job, i, func(o *PrefetchObject) { o.Size, o.Segments = rec.Size, n })
	ctx = withoutMemory(ctx)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	window := make(chan struct{}, prefetchWindow)
	errc := make(chan error, n)
	var wg sync.WaitGroup
	for idx := range n {
		select {
		case window <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-window }()
			_, size := rec.Layout.Segment(int64(idx), rec.Size)
			err := p.segment(ctx, rec, uint32(idx))
			if err != nil {
				errc <- fmt.Errorf("segment %d: %w", idx, err)
				cancel()
				return
			}
			p.update(job, i, func(o *PrefetchObject) { o.Done++; o.Bytes += size })
		}()
	}
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		return err
	}
	if job.Warm == "all" {
		return p.warmAll(ctx, job, i, rec)
	}
	return nil
}

// warmAll has every member of the fleet load every segment of rec into
// its memory tier (swarm.StatWarm), prefetchWindow loads at a time.
func (p *prefetcher) warmAll(ctx context.Context, job *PrefetchJob, i int, rec *Record) error {
	n := int(rec.Layout.Segments(rec.Size))
	members := p.node.Members()
	p.update(job, i, func(o *PrefetchObject) { o.WarmTotal = n * len(members) })
	ctx, cancel := context.WithCancel(keepMemory(ctx))
	defer cancel()
	window := make(chan struct{}, prefetchWindow)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	for _, m := range members {
		for idx := range n {
			select {
			case window <- struct{}{}:
			case <-ctx.Done():
				wg.Wait()
				return errors.Join(firstErr, ctx.Err())
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-window }()
				var err error
				if m == p.node.Self() {
					_, _, err = p.segments.segment(ctx, rec, uint32(idx))
				} else {
					_, err = p.node.Stat(ctx, m, (&fillRequest{Record: rec, Segment: uint32(idx)}).Append(swarm.AppendStat(nil, swarm.StatWarm)))
				}
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("warming segment %d at %s: %w", idx, m, err)
					}
					mu.Unlock()
					return // the other members go on: a dead one does not stop the rest
				}
				p.update(job, i, func(o *PrefetchObject) { o.Warmed++ })
			}()
		}
	}
	wg.Wait()
	return firstErr
}

// warm answers a swarm.StatWarm request: it reads the segment into this
// edge's memory tier.
func (rd *reader) warm(ctx context.Context, payload []byte) ([]byte, error) {
	f, err := parseFillRequest(payload)
	if err != nil {
		return nil, err
	}
	_, _, err = rd.segment(keepMemory(ctx), f.Record, f.Segment)
	return nil, err
}

// segment reads one segment through the fleet, holding a prefetch slot.
func (p *prefetcher) segment(ctx context.Context, rec *Record, idx uint32) error {
	var err error
	for range prefetchSegRetry {
		select {
		case p.slots <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
		_, _, err = p.segments.segment(ctx, rec, idx)
		<-p.slots
		if err == nil || ctx.Err() != nil {
			return err
		}
	}
	return err
}

type noMemoryKey struct{}

// withoutMemory marks a read whose segment the reading edge does not keep
// in its memory tier (prefetch).
func withoutMemory(ctx context.Context) context.Context {
	return context.WithValue(ctx, noMemoryKey{}, true)
}

// keepMemory undoes withoutMemory.
func keepMemory(ctx context.Context) context.Context {
	return context.WithValue(ctx, noMemoryKey{}, false)
}

func keepInMemory(ctx context.Context) bool {
	off, _ := ctx.Value(noMemoryKey{}).(bool)
	return !off
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func writeJSONError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}
