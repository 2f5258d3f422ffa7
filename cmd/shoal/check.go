package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
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
//
// Two flags of its own (checkFlags) fit it to where it runs: --outside
// for a `helm test` pod, which has an edge's flags but is no edge, and
// --remote-warnings for an init container, whose peers may still be
// starting (and which must not hold the rollout back for them).

// errCheckFailed reports a check with errors; the lines said which.
var errCheckFailed = errors.New("the check found errors")

// checkReport prints the findings of a check and counts the errors. Its
// zero value (no writer) prints nothing: `shoal edge` shares the calls.
type checkReport struct {
	w      io.Writer
	errors int
	// remoteWarnings makes what fails at peers and origins a warning
	// (--remote-warnings).
	remoteWarnings bool
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

// remoteFail reports what failed at a peer or an origin: an error, or a
// warning under --remote-warnings, where they may still be starting.
func (r *checkReport) remoteFail(what, msg string) {
	if r.remoteWarnings {
		r.warn(what, msg+" (a warning under --remote-warnings)")
		return
	}
	r.fail(what, msg)
}

// checkFlags are the flags of `shoal check` that `shoal edge` has not.
type checkFlags struct {
	// outside: the check runs outside the fleet (a `helm test` pod, an
	// operator's machine) with an edge's flags: its own address need not
	// be in --peers, and every peer is dialled, that one too.
	outside bool
	// remoteWarnings: peers and origins that fail are warnings; only the
	// configuration and the certificates are errors. For an init
	// container, which runs while its peers may still be starting.
	remoteWarnings bool
}

// add defines the flags on fs.
func (f *checkFlags) add(fs *flag.FlagSet) {
	fs.BoolVar(&f.outside, "outside", false, "check only: run outside the fleet with an edge's flags (a `helm test` pod): this address need not be in --peers, and every peer is dialled")
	fs.BoolVar(&f.remoteWarnings, "remote-warnings", false, "check only: peers and origins that fail are warnings, not errors; the configuration and certificates stay errors (an init container, while peers may still be starting)")
}

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
	flags         checkFlags
}

// run checks c, having found the configuration valid.
func (r *checkReport) run(ctx context.Context, c checkConfig) error {
	r.remoteWarnings = c.flags.remoteWarnings
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

// checkPeers dials every peer from a node of the same credentials and
// layout, on a port of its own, and compares layouts: those of --peers,
// or with --join those the seeds resolve to.
func (r *checkReport) checkPeers(ctx context.Context, c checkConfig) {
	peers := c.peers
	if c.gossip != nil {
		peers = r.checkSeeds(ctx, c)
	}
	var others []string
	for _, p := range peers {
		if p == c.self && !c.flags.outside {
			r.ok("peer "+p, "this edge (not dialled)")
		} else {
			others = append(others, p)
		}
	}
	if len(others) == 0 {
		if c.gossip == nil {
			r.ok("peers", "none: this edge is a fleet of one")
		}
		return
	}
	pc, err := net.ListenPacket("udp", ":0")
	if err != nil {
		r.fail("peers", fmt.Sprintf("opening a UDP socket to dial them: %v", err))
		return
	}
	defer pc.Close()
	self := c.self
	if c.flags.outside {
		// Not an edge: it says the port it dials from, so that no peer,
		// least of all one at this host's peer port, takes it for itself
		// or for another member.
		host, _, _ := net.SplitHostPort(c.self)
		self = net.JoinHostPort(host, strconv.Itoa(pc.LocalAddr().(*net.UDPAddr).Port))
	}
	node, err := swarm.New(swarm.Config{
		Self: self, Credentials: c.creds, Store: noShards{}, Layout: c.layout,
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
	// A fleet of hundreds behind a headless Service is dialled a few at a
	// time: a peer that does not answer costs the dial timeout, not the
	// sum of them. The lines come out in the order of the list.
	type met struct {
		layout swarm.FleetLayout
		err    error
	}
	results := make([]met, len(others))
	sem := make(chan struct{}, checkDials)
	var wg sync.WaitGroup
	for i, p := range others {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			results[i].layout, results[i].err = node.Meet(pctx, p)
		}()
	}
	wg.Wait()
	ours := node.Layout()
	for i, p := range others {
		theirs, err := results[i].layout, results[i].err
		var ce *swarm.ConnectError
		switch {
		case errors.Is(err, swarm.ErrIncompatible):
			r.remoteFail("peer "+p, fmt.Sprintf("layout differs: %s", ours.Diff(theirs)))
		case errors.As(err, &ce):
			r.remoteFail("peer "+p, fmt.Sprintf("%s: %s", ce.Reason, ce.Detail))
		case err != nil:
			r.remoteFail("peer "+p, err.Error())
		case !theirs.Known():
			r.warn("peer "+p, "connected with mutual TLS; it does not say its layout (a release before the exchange): check its --segment-size and --shards")
		default:
			r.ok("peer "+p, fmt.Sprintf("connected with mutual TLS, layout agrees (%s)", theirs))
		}
	}
}

// checkDials is how many peers the check dials at once.
const checkDials = 16

// checkSeeds resolves the gossip seeds and returns the peers to dial:
// each address a seed resolves to, at this edge's own peer port. The
// check does not join gossip (it would be placed), so it cannot learn the
// members' advertised addresses; it dials what the seeds resolve to, which
// in the Helm chart (a headless Service of every edge pod, one peer port
// for all) is every edge. A fleet whose edges listen on different peer
// ports is checked with --peers instead.
func (r *checkReport) checkSeeds(ctx context.Context, c checkConfig) []string {
	selfHost, port, err := net.SplitHostPort(c.self)
	if err != nil {
		r.fail("peers", fmt.Sprintf("this edge's peer address %q: %v", c.self, err))
		return nil
	}
	seen := map[string]bool{}
	var peers []string
	add := func(ip string) {
		p := net.JoinHostPort(ip, port)
		if ip == selfHost {
			p = c.self
		}
		if !seen[p] {
			seen[p] = true
			peers = append(peers, p)
		}
	}
	for _, s := range c.gossip.Join {
		host, _, _ := net.SplitHostPort(s)
		if net.ParseIP(host) != nil {
			r.ok("gossip seed "+s, "an address; its edge is dialled at the peer port "+port)
			add(host)
			continue
		}
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		addrs, err := net.DefaultResolver.LookupHost(rctx, host)
		cancel()
		if err != nil {
			r.remoteFail("gossip seed "+s, fmt.Sprintf("does not resolve: %v", err))
			continue
		}
		slices.Sort(addrs)
		r.ok("gossip seed "+s, fmt.Sprintf("resolves to %d addresses; each is dialled at the peer port %s", len(addrs), port))
		for _, a := range addrs {
			add(a)
		}
	}
	return peers
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
			r.remoteFail(name, fmt.Sprintf("GET %s: %v", req.URL, err))
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
