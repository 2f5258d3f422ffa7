package digest

import (
	"crypto/sha256"
	"net/http"
	"strconv"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/sync/singleflight"
)

// Answer is what an origin said to a HEAD of a client's own target with
// the client's own credentials: whether the client may read it, and for a
// hub's file, the content address its redirect names.
type Answer struct {
	Status  int         // the HEAD's status
	FromHub bool        // with a hub's fields (X-Linked-Etag, X-Repo-Commit, X-Error-Code)
	Allowed bool        // 2xx or 3xx
	SHA256  string      // a hub redirect's X-Linked-Etag, hex; "" for none
	Hub     http.Header // with SHA256: the hub's fields of HubFields
	// ContentDigest is a registry's Docker-Content-Digest, "" for none.
	ContentDigest string
	until         time.Time
}

// HubFields are the fields of a hub's redirect that describe its file: its
// SHA-256 and size, its ETag, the revision's commit, its name.
var HubFields = []string{"X-Linked-Etag", "X-Linked-Size", "Etag", "X-Repo-Commit", "Content-Disposition"}

// AnswerOf reads the answer to a HEAD.
func AnswerOf(status int, h http.Header) Answer {
	a := Answer{Status: status, Allowed: status >= 200 && status < 400, ContentDigest: h.Get("Docker-Content-Digest")}
	for _, f := range []string{"X-Linked-Etag", "X-Repo-Commit", "X-Error-Code"} {
		a.FromHub = a.FromHub || h.Get(f) != ""
	}
	if status >= 300 && status < 400 {
		a.SHA256, _ = LinkedSHA256(h.Get("X-Linked-Etag"))
	}
	if a.SHA256 != "" {
		a.Hub = http.Header{}
		for _, f := range HubFields {
			if v := h.Get(f); v != "" {
				a.Hub.Set(f, v)
			}
		}
	}
	return a
}

// Answers remembers an origin's yeses per credential and target for a
// while, and asks once for concurrent askers. Safe for concurrent use.
type Answers struct {
	c     *lru.Cache[string, Answer]
	group singleflight.Group
	ttl   time.Duration
}

// NewAnswers remembers n yeses at most, each for ttl.
func NewAnswers(n int, ttl time.Duration) *Answers {
	c, _ := lru.New[string, Answer](n)
	return &Answers{c: c, ttl: ttl}
}

// Ask returns the answer for credential (an Authorization field, "" for
// none) and target (the site and request target), remembered or from head;
// cached says which. A no is never remembered, nor a yes unless remember.
func (a *Answers) Ask(credential, target string, remember bool, head func() (Answer, error)) (ans Answer, cached bool, err error) {
	sum := sha256.Sum256([]byte(credential))
	k := string(sum[:]) + "\x00" + target
	if ans, ok := a.c.Get(k); ok && time.Now().Before(ans.until) {
		return ans, true, nil
	}
	v, err, _ := a.group.Do(k, func() (any, error) {
		ans, err := head()
		if err == nil && ans.Allowed && remember {
			ans.until = time.Now().Add(a.ttl)
			a.c.Add(k, ans)
		}
		return ans, err
	})
	ans, _ = v.(Answer)
	return ans, false, err
}

// WriteHead answers a HEAD of a hub's file as its GET is answered through
// an edge (with the file, the redirect followed): 200 with the hub's
// fields and the file's length, never the redirect.
func (a Answer) WriteHead(w http.ResponseWriter) {
	for f, vs := range a.Hub {
		w.Header()[f] = vs
	}
	if size, err := strconv.ParseInt(a.Hub.Get("X-Linked-Size"), 10, 64); err == nil && size >= 0 {
		w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
	}
	w.Header().Set("Accept-Ranges", "bytes")
	w.WriteHeader(http.StatusOK)
}

// IsRegistry reports whether an answer to GET or HEAD /v2/ is an OCI
// distribution registry's: 200, or 401 (a challenge), with
// Docker-Distribution-API-Version.
func IsRegistry(status int, h http.Header) bool {
	return h.Get("Docker-Distribution-Api-Version") != "" && (status == http.StatusOK || status == http.StatusUnauthorized)
}

// contentFields are the response fields a record of content by digest
// keeps: about the content, the same for every reader. (The first
// reader's answer, relayed to it as it came, may carry more: a file name,
// storage's own fields.)
var contentFields = []string{"Content-Type", "Etag", "Last-Modified", "Docker-Content-Digest",
	"Docker-Distribution-Api-Version", "X-Linked-Etag", "X-Linked-Size", "Content-Length", "Content-Encoding"}

// ContentFields returns the fields of h a record of content by digest
// keeps, in a new header.
func ContentFields(h http.Header) http.Header {
	out := http.Header{}
	for _, f := range contentFields {
		if vs := h.Values(f); len(vs) > 0 {
			out[f] = vs
		}
	}
	return out
}

// Probes remember a yes or no about something (a site: is it a
// registry?) for a while, asked once for concurrent askers. The zero value
// is ready to use.
type Probes struct {
	m     sync.Map // key → probe
	group singleflight.Group
}

type probe struct {
	yes   bool
	until time.Time
}

// Is returns the answer for key, remembered or from ask: a yes or no for
// ttl, a failure (no) for ten seconds.
func (p *Probes) Is(key string, ttl time.Duration, ask func() (bool, error)) bool {
	if v, ok := p.m.Load(key); ok && time.Now().Before(v.(probe).until) {
		return v.(probe).yes
	}
	v, _, _ := p.group.Do(key, func() (any, error) {
		yes, err := ask()
		pr := probe{yes: yes, until: time.Now().Add(ttl)}
		if err != nil {
			pr = probe{until: time.Now().Add(10 * time.Second)}
		}
		p.m.Store(key, pr)
		return pr, nil
	})
	return v.(probe).yes
}
