package swarm

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoalcdn/shoal/erasure"
)

// syncBuffer is a bytes.Buffer for a logger written from many goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitFor polls cond every 20ms until it holds or d has passed.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestTwoCAsSayWhy starts two nodes whose certificates come from two CAs:
// each logs the unknown authority, naming both CAs' fingerprints, shows it
// as the peer's last error and counts it.
func TestTwoCAsSayWhy(t *testing.T) {
	creds := []*Credentials{testCreds(t), testCreds(t)}
	logs := []*syncBuffer{{}, {}}
	nodes := startNodes(t, 2, nil, func(i int, cfg *Config) {
		cfg.Credentials = creds[i]
		cfg.Logger = slog.New(slog.NewTextHandler(logs[i], nil))
	})
	for i, n := range nodes {
		other := nodes[1-i].addr
		waitFor(t, 5*time.Second, "node "+n.addr+" logs the unknown authority", func() bool {
			return strings.Contains(logs[i].String(), "reason="+ReasonUnknownAuthority)
		})
		log := logs[i].String()
		for _, want := range []string{Fingerprint(creds[0].CACerts[0]), Fingerprint(creds[1].CACerts[0]), "peer=" + other, "shoal fleet CA"} {
			if !strings.Contains(log, want) {
				t.Errorf("node %d's log does not name %q:\n%s", i, want, log)
			}
		}
		var last *ConnectError
		for _, p := range n.Peers() {
			if p.Addr == other {
				last = p.LastError
			}
		}
		if last == nil || last.Reason != ReasonUnknownAuthority || last.Side != "dial" {
			t.Errorf("node %d: peer's last error %+v, want an unknown authority on dial", i, last)
		}
		if got := n.ConnectFailures()[ReasonUnknownAuthority]; got == 0 {
			t.Errorf("node %d counts no unknown_authority failure: %v", i, n.ConnectFailures())
		}
	}
	// A request names it too.
	_, err := nodes[0].Stat(testContext(t), nodes[1].addr, []byte("k"))
	var ce *ConnectError
	if !errors.As(err, &ce) && !errors.Is(err, ErrPeerDown) {
		t.Errorf("Stat across CAs: got %v, want a ConnectError or ErrPeerDown", err)
	}
	// Logged once a minute per peer and reason, however often it fails.
	if n := strings.Count(logs[0].String(), "peer connection failed"); n != 1 {
		t.Errorf("node 0 logged %d failures, want 1", n)
	}
}

// TestAcceptSideNamesTheCA dials a node with a certificate from another CA
// that trusts the node's CA: the node (accept side) refuses it and says why.
func TestAcceptSideNamesTheCA(t *testing.T) {
	var log syncBuffer
	nodes := startNodes(t, 1, nil, func(_ int, cfg *Config) { cfg.Logger = slog.New(slog.NewTextHandler(&log, nil)) })
	srv := nodes[0]
	other := testCreds(t)
	// The dialler trusts the node's CA, but its own certificate is not
	// from it.
	other.CA = srv.cfg.Credentials.CA
	n := serveOne(t, Config{Credentials: other, Logger: slog.New(slog.DiscardHandler)})
	if _, err := n.Meet(testContext(t), srv.addr); err == nil {
		t.Fatal("a certificate of another CA was accepted")
	}
	waitFor(t, 5*time.Second, "the node logs the refused client", func() bool {
		return strings.Contains(log.String(), "side=accept") && strings.Contains(log.String(), "reason="+ReasonUnknownAuthority)
	})
	if !strings.Contains(log.String(), Fingerprint(other.CACerts[0])) {
		t.Errorf("accept side does not name the client's CA:\n%s", log.String())
	}
}

func TestVerifyChainReasons(t *testing.T) {
	creds := testCreds(t)
	leaf := creds.Leaf()
	chain := []*x509.Certificate{leaf}
	for _, tt := range []struct {
		name string
		now  time.Time
		want string
	}{
		{"valid", time.Now(), ""},
		{"expired", leaf.NotAfter.Add(24 * time.Hour), ReasonExpired},
		{"not yet valid", leaf.NotBefore.Add(-24 * time.Hour), ReasonNotYetValid},
	} {
		err := creds.verifyChain(chain, x509.ExtKeyUsageClientAuth, tt.now)
		var ce *certError
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%s: got %v, want nil", tt.name, err)
		case tt.want != "" && (!errors.As(err, &ce) || ce.reason != tt.want):
			t.Errorf("%s: got %v, want reason %s", tt.name, err, tt.want)
		}
	}
	if err := creds.verifyChain(nil, x509.ExtKeyUsageClientAuth, time.Now()); err == nil {
		t.Error("an empty chain verified")
	}
}

func TestClassifyDial(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want string
	}{
		{context.DeadlineExceeded, ReasonTimeout},
		{errors.New("something"), ReasonOther},
	} {
		if got := classifyDial("p:1", tt.err, nil).Reason; got != tt.want {
			t.Errorf("classifyDial(%v): got %s, want %s", tt.err, got, tt.want)
		}
	}
	if got := alertReasonOf(120); got != ReasonALPN {
		t.Errorf("alert 120: got %s, want %s", got, ReasonALPN)
	}
	if got := alertReasonOf(48); got != ReasonPeerRejected {
		t.Errorf("alert 48: got %s, want %s", got, ReasonPeerRejected)
	}
}

func alertReasonOf(a uint8) string { r, _ := alertReason(a); return r }

// TestLayoutMismatch starts two nodes of a static list with different
// segment sizes: each keeps the other out of placement, logs both values
// and shows it in Peers.
func TestLayoutMismatch(t *testing.T) {
	logs := []*syncBuffer{{}, {}}
	sizes := []int64{4 << 20, 1 << 20}
	nodes := startNodes(t, 2, nil, func(i int, cfg *Config) {
		cfg.Layout = erasure.Layout{SegmentSize: sizes[i], Params: erasure.DefaultParams}
		cfg.Logger = slog.New(slog.NewTextHandler(logs[i], nil))
	})
	for i, n := range nodes {
		waitFor(t, 5*time.Second, "node "+n.addr+" keeps the other out", func() bool { return len(n.Members()) == 1 })
		log := logs[i].String()
		if !strings.Contains(log, "4194304") || !strings.Contains(log, "1048576") || !strings.Contains(log, "layout differs") {
			t.Errorf("node %d's log does not give both segment sizes:\n%s", i, log)
		}
		if got := n.Rank([]byte("k")); len(got) != 1 || got[0] != n.addr {
			t.Errorf("node %d ranks %v, want itself alone", i, got)
		}
		if n.Alive(nodes[1-i].addr) {
			t.Errorf("node %d: the incompatible peer is alive for requests", i)
		}
		var found bool
		for _, p := range n.Peers() {
			if p.Addr == nodes[1-i].addr {
				found = true
				if !p.Incompatible || p.Layout.SegmentSize != sizes[1-i] {
					t.Errorf("node %d: peer shown as %+v, want incompatible with segment size %d", i, p, sizes[1-i])
				}
			}
		}
		if !found {
			t.Errorf("node %d does not list the incompatible peer", i)
		}
	}
	if _, err := nodes[0].Stat(testContext(t), nodes[1].addr, []byte("k")); !errors.Is(err, ErrIncompatible) {
		t.Errorf("Stat to an incompatible peer: got %v, want ErrIncompatible", err)
	}
}

// TestHelloFromOlderMember: a member that does not answer hellos (an
// older release) keeps being used, its layout unknown.
func TestHelloFromOlderMember(t *testing.T) {
	layout := erasure.Layout{SegmentSize: 4 << 20, Params: erasure.DefaultParams}
	// StatHello goes to the Handler, none: not found. Set before the node
	// serves (setting it after raced with the node's first requests).
	old := startNodes(t, 1, nil, func(_ int, cfg *Config) { cfg.Layout = layout; cfg.noHello = true })[0]
	n := serveOne(t, Config{Credentials: old.cfg.Credentials, Layout: layout, Peers: []string{old.addr}})
	got, err := n.Meet(testContext(t), old.addr)
	if err != nil {
		t.Fatalf("Meet: %v", err)
	}
	if got.Known() {
		t.Errorf("older member's layout: got %v, want unknown", got)
	}
	if len(n.Members()) != 2 {
		t.Errorf("members %v, want both", n.Members())
	}
}

// serveOne starts a node of cfg on a loopback socket of its own (Self is
// its address unless set) and stops it at the end of the test.
func serveOne(t *testing.T, cfg Config) *Node {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Self == "" {
		cfg.Self = pc.LocalAddr().String()
	}
	if cfg.Store == nil {
		cfg.Store = newMemStore()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	go n.Serve(pc)
	t.Cleanup(func() { n.Close(); pc.Close() })
	<-n.Ready()
	return n
}

func TestHelloRoundTrip(t *testing.T) {
	h := hello{Self: "10.0.0.1:7000", Layout: FleetLayout{SegmentSize: 4 << 20, K: 4, M: 2, Hash: HashBLAKE3, Protocol: ProtocolVersion}}
	got, err := parseHello(append(h.append(nil), 1, 2, 3)) // later fields ignored
	if err != nil || got != h {
		t.Errorf("got %+v, %v, want %+v", got, err, h)
	}
	for _, bad := range [][]byte{nil, {1}, {2, 0}, {1, 5, 'a'}} {
		if _, err := parseHello(bad); !errors.Is(err, ErrFrame) {
			t.Errorf("parseHello(%x): got %v, want ErrFrame", bad, err)
		}
	}
}

func FuzzHello(f *testing.F) {
	f.Add(hello{Self: "a:1", Layout: FleetLayout{SegmentSize: 1 << 20, K: 4, M: 2, Hash: 1, Protocol: 1}}.append(nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := parseHello(b)
		if err != nil {
			return
		}
		if got, err := parseHello(h.append(nil)); err != nil || got != h {
			t.Fatalf("round trip of %+v: got %+v, %v", h, got, err)
		}
	})
}
