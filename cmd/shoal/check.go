package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/shoalcdn/shoal/erasure"
	"github.com/shoalcdn/shoal/swarm"
)

// `shoal check` (runCheck, edge.go) takes the flags and environment of
// `shoal edge` and, instead of serving, says what an edge started with
// them would meet: the configuration (parsed, the environment and the
// conflicts checked, as the edge does), the certificates (chain to the
// fleet CA, expiry), every peer dialled over the real peer protocol with
// mutual TLS and its layout compared, and one request to the origin. One
// line per finding; any error makes the exit status 1. It is what nginx
// -t is to nginx: run it before a rollout, as an init container or a
// `helm test`.

// errCheckFailed reports a check with errors; the lines said which.
var errCheckFailed = errors.New("the check found errors")

// checkReport prints the findings of a check and counts the errors. Its
// zero value (no writer) prints nothing: `shoal edge` shares the calls.
type checkReport struct {
	w      io.Writer
	errors int
}

func (r *checkReport) line(level, what, msg string) {
	if level == "error" {
		r.errors++
	}
	if r.w != nil {
		fmt.Fprintf(r.w, "%-5s %s: %s\n", level, what, msg)
	}
}

func (r *checkReport) ok(what, msg string)   { r.line("ok", what, msg) }
func (r *checkReport) warn(what, msg string) { r.line("warn", what, msg) }
func (r *checkReport) fail(what, msg string) { r.line("error", what, msg) }

// checkConfig is what the check looks at, from the edge's flags.
type checkConfig struct {
	creds         *swarm.Credentials
	self          string
	peers         []string
	gossip        *swarm.GossipConfig
	layout        erasure.Layout
	origin        string
	sites         map[string]string
	clientCerts   []string
	clientKeys    []string
	originTimeout time.Duration
}

// run checks c, having found the configuration valid.
func (r *checkReport) run(ctx context.Context, c checkConfig) error {
	r.ok("configuration", fmt.Sprintf("flags and environment valid; segment-size=%d shards=%s", c.layout.SegmentSize, c.layout.Params))
	r.checkCerts(c)
	r.checkPeers(ctx, c)
	r.checkOrigins(ctx, c)
	if r.errors > 0 {
		return fmt.Errorf("%w: %d", errCheckFailed, r.errors)
	}
	return nil
}

// checkCerts checks the fleet certificate against the fleet CA and the
// expiry of every certificate.
func (r *checkReport) checkCerts(c checkConfig) {
	now := time.Now()
	leaf := c.creds.Leaf()
	if leaf == nil {
		r.fail("certificate peer", "the node certificate does not parse")
		return
	}
	inter := x509.NewCertPool()
	for _, der := range c.creds.Cert.Certificate[1:] {
		if ic, err := x509.ParseCertificate(der); err == nil {
			inter.AddCert(ic)
		}
	}
	_, err := leaf.Verify(x509.VerifyOptions{Roots: c.creds.CA, Intermediates: inter,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, CurrentTime: now})
	cas := make([]string, len(c.creds.CACerts))
	for i, ca := range c.creds.CACerts {
		cas[i] = fmt.Sprintf("%q (SHA-256 %s)", ca.Subject.String(), swarm.Fingerprint(ca))
	}
	switch {
	case err != nil && now.After(leaf.NotAfter):
		r.fail("certificate peer", fmt.Sprintf("expired at %s", leaf.NotAfter.UTC().Format(time.RFC3339)))
	case err != nil:
		r.fail("certificate peer", fmt.Sprintf("does not chain to the fleet CA %s: %v", strings.Join(cas, ", "), err))
	default:
		words, warn := expiryWords(leaf, now)
		msg := fmt.Sprintf("signed by the fleet CA %s; %s", strings.Join(cas, ", "), words)
		if warn {
			r.warn("certificate peer", msg)
		} else {
			r.ok("certificate peer", msg)
		}
	}
	for i, path := range c.clientCerts {
		what := "certificate " + path
		if i >= len(c.clientKeys) {
			r.fail(what, "no --tls-key for it")
			continue
		}
		pair, err := tls.LoadX509KeyPair(path, c.clientKeys[i])
		if err != nil {
			r.fail(what, err.Error())
			continue
		}
		cl, err := x509.ParseCertificate(pair.Certificate[0])
		if err != nil {
			r.fail(what, err.Error())
			continue
		}
		words, warn := expiryWords(cl, now)
		switch {
		case now.After(cl.NotAfter):
			r.fail(what, words)
		case warn:
			r.warn(what, words)
		default:
			r.ok(what, fmt.Sprintf("%s, %s", clientCertName(cl, path), words))
		}
	}
}

// checkPeers dials every peer of a static list from a node of the same
// credentials and layout, on a port of its own, and compares layouts.
func (r *checkReport) checkPeers(ctx context.Context, c checkConfig) {
	if c.gossip != nil {
		r.checkSeeds(ctx, c.gossip)
		return
	}
	var others []string
	for _, p := range c.peers {
		if p == c.self {
			r.ok("peer "+p, "this edge (not dialled)")
		} else {
			others = append(others, p)
		}
	}
	if len(others) == 0 {
		r.ok("peers", "none: this edge is a fleet of one")
		return
	}
	pc, err := net.ListenPacket("udp", ":0")
	if err != nil {
		r.fail("peers", fmt.Sprintf("opening a UDP socket to dial them: %v", err))
		return
	}
	defer pc.Close()
	node, err := swarm.New(swarm.Config{
		Self: c.self, Credentials: c.creds, Store: noShards{}, Layout: c.layout,
		Logger: slog.New(slog.DiscardHandler), DialTimeout: 3 * time.Second,
	})
	if err != nil {
		r.fail("peers", err.Error())
		return
	}
	served := make(chan error, 1)
	go func() { served <- node.Serve(pc) }()
	defer func() { node.Close(); <-served }()
	select {
	case <-node.Ready():
	case err := <-served:
		r.fail("peers", err.Error())
		return
	}
	ours := node.Layout()
	for _, p := range others {
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		theirs, err := node.Meet(pctx, p)
		cancel()
		var ce *swarm.ConnectError
		switch {
		case errors.Is(err, swarm.ErrIncompatible):
			r.fail("peer "+p, fmt.Sprintf("layout differs: %s", ours.Diff(theirs)))
		case errors.As(err, &ce):
			r.fail("peer "+p, fmt.Sprintf("%s: %s", ce.Reason, ce.Detail))
		case err != nil:
			r.fail("peer "+p, err.Error())
		case !theirs.Known():
			r.warn("peer "+p, "connected with mutual TLS; it does not say its layout (a release before the exchange): check its --segment-size and --shards")
		default:
			r.ok("peer "+p, fmt.Sprintf("connected with mutual TLS, layout agrees (%s)", theirs))
		}
	}
}

// checkSeeds resolves the gossip seeds: with --join, the members are
// those gossip finds, and the check does not join (it would be placed).
func (r *checkReport) checkSeeds(ctx context.Context, g *swarm.GossipConfig) {
	for _, s := range g.Join {
		host, _, _ := net.SplitHostPort(s)
		if net.ParseIP(host) != nil {
			r.ok("gossip seed "+s, "an address; members are found by gossip and not dialled by the check")
			continue
		}
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		addrs, err := net.DefaultResolver.LookupHost(rctx, host)
		cancel()
		if err != nil {
			r.fail("gossip seed "+s, fmt.Sprintf("does not resolve: %v", err))
			continue
		}
		r.ok("gossip seed "+s, fmt.Sprintf("resolves to %d addresses; members are found by gossip and not dialled by the check", len(addrs)))
	}
}

// checkOrigins sends one request to each origin: any HTTP answer says it
// is reachable.
func (r *checkReport) checkOrigins(ctx context.Context, c checkConfig) {
	origins := map[string]string{}
	if c.origin != "" {
		origins["origin"] = c.origin
	}
	for host, u := range c.sites {
		origins["origin "+host] = u
	}
	names := make([]string, 0, len(origins))
	for n := range origins {
		names = append(names, n)
	}
	slices.Sort(names)
	timeout := min(c.originTimeout, 10*time.Second)
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	client := &http.Client{Timeout: timeout, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, name := range names {
		u := origins[name]
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(u, "/")+"/", nil)
		if err != nil {
			r.fail(name, err.Error())
			continue
		}
		req.Header.Set("User-Agent", "shoal-check/"+versionString())
		resp, err := client.Do(req)
		if err != nil {
			r.fail(name, fmt.Sprintf("GET %s: %v", req.URL, err))
			continue
		}
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		level := r.ok
		if resp.StatusCode >= 500 {
			level = r.warn
		}
		level(name, fmt.Sprintf("GET %s answered %s", req.URL, resp.Status))
	}
}

// noShards is the shard store of the check's node: it holds nothing.
type noShards struct{}

func (noShards) Shard(erasure.ShardID) (*erasure.Descriptor, []byte, bool) { return nil, nil, false }
func (noShards) PutShard(erasure.ShardID, *erasure.Descriptor, []byte) error {
	return errors.New("check: stores no shards")
}
