package swarm

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoalcdn/shoal/erasure"
)

// testResolver is the DNS of a headless Service: one name, the addresses
// of every node started so far.
type testResolver struct {
	mu    sync.Mutex
	ips   []string
	calls int
}

func (r *testResolver) add(ip string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ips = append(r.ips, ip)
}

func (r *testResolver) lookup(ctx context.Context, host string) ([]string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	if host != "shoal-peers.test" {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return slices.Clone(r.ips), nil
}

// gossipFleet starts n nodes whose gossip listens on 127.0.0.(10+i) at one
// port, all joining the seed name "shoal-peers.test", which resolves to
// the nodes started so far, as the DNS of a headless Service would.
func gossipFleet(t *testing.T, n int, configure func(i int, cfg *Config)) ([]*testNode, *testResolver) {
	t.Helper()
	creds := testCreds(t)
	res := &testResolver{}
	var port string
	nodes := make([]*testNode, 0, n)
	for i := range n {
		ip := fmt.Sprintf("127.0.0.%d", 10+i)
		bind := ip + ":0"
		if port != "" {
			bind = net.JoinHostPort(ip, port)
		}
		tn := startNodes(t, 1, creds, func(_ int, cfg *Config) {
			cfg.Gossip = &GossipConfig{
				BindAddr:       bind,
				Join:           []string{"shoal-peers.test:" + port},
				RejoinInterval: 500 * time.Millisecond,
				ProbeInterval:  200 * time.Millisecond,
				Resolve:        res.lookup,
			}
			if port == "" {
				cfg.Gossip.Join = nil // the first node waits to be joined
			}
			if configure != nil {
				configure(i, cfg)
			}
		})[0]
		if port == "" {
			_, port, _ = net.SplitHostPort(tn.GossipAddr())
		}
		res.add(ip)
		nodes = append(nodes, tn)
	}
	return nodes, res
}

// waitMembers waits until every node in nodes sees exactly want as members.
func waitMembers(t *testing.T, nodes []*testNode, want []string, within time.Duration) {
	t.Helper()
	want = slices.Sorted(slices.Values(want))
	deadline := time.Now().Add(within)
	for {
		ok := true
		for _, n := range nodes {
			if !slices.Equal(n.Members(), want) {
				ok = false
				break
			}
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			for i, n := range nodes {
				t.Logf("node %d (%s) sees %v", i, n.addr, n.Members())
			}
			t.Fatalf("members did not converge on %v within %v", want, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func addrsOf(nodes []*testNode) []string {
	var out []string
	for _, n := range nodes {
		out = append(out, n.addr)
	}
	return out
}

func TestGossipJoinLeaveCrash(t *testing.T) {
	nodes, res := gossipFleet(t, 8, nil)
	waitMembers(t, nodes, addrsOf(nodes), 10*time.Second)

	// Every member computes the same placement.
	seg := erasure.SegmentID{Index: 7}
	want := nodes[0].Holders(seg, 6)
	for i, n := range nodes {
		if got := n.Holders(seg, 6); !slices.Equal(got, want) {
			t.Errorf("node %d: holders %v, node 0 says %v", i, got, want)
		}
	}
	res.mu.Lock()
	calls := res.calls
	res.mu.Unlock()
	if calls < 7 {
		t.Errorf("the seed name was resolved %d times, want at least once per node", calls)
	}

	// A graceful leave is seen at once as "left".
	start := time.Now()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if err := nodes[7].Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	rest := nodes[:7]
	waitMembers(t, rest, addrsOf(rest), 5*time.Second)
	t.Logf("leave seen by all in %v", time.Since(start).Round(time.Millisecond))
	if st := stateOf(nodes[0].MemberList(), nodes[7].addr); st != StateLeft {
		t.Errorf("a member that left is %q, want %q", st, StateLeft)
	}

	// A crash (no goodbye) is noticed by probes within seconds.
	start = time.Now()
	nodes[6].stop()
	rest = nodes[:6]
	waitMembers(t, rest, addrsOf(rest), 15*time.Second)
	t.Logf("crash seen by all in %v", time.Since(start).Round(time.Millisecond))
	if st := stateOf(nodes[0].MemberList(), nodes[6].addr); st != StateDead {
		t.Errorf("a crashed member is %q, want %q", st, StateDead)
	}
	for _, gone := range []string{nodes[6].addr, nodes[7].addr} {
		if nodes[0].Alive(gone) {
			t.Errorf("a member that is gone (%s) is still worth asking", gone)
		}
	}
	if got := nodes[0].ZoneMembers(); !slices.Equal(got, slices.Sorted(slices.Values(addrsOf(rest)))) {
		t.Errorf("zone members %v, want the six left", got)
	}
	// Rendezvous: the members left keep their order, so only the shards
	// ranked at or below a gone member move.
	before := Rank(addrsOf(nodes), SegmentKey(seg))
	before = slices.DeleteFunc(before, func(a string) bool { return a == nodes[6].addr || a == nodes[7].addr })
	if got := nodes[0].Rank(SegmentKey(seg)); !slices.Equal(got, before) {
		t.Errorf("after the departures the ranking is %v, want %v", got, before)
	}
}

// TestGossipSuspect: a member that stops answering is first suspect, and
// still in placement, in MemberList and Peers, then dead and out; the
// others are never dead. It also guards memberlistStates, which
// reads memberlist's internals: an upgrade that changes them fails here.
func TestGossipSuspect(t *testing.T) {
	nodes, _ := gossipFleet(t, 4, nil)
	waitMembers(t, nodes, addrsOf(nodes), 10*time.Second)
	if states := memberlistStates(nodes[0].mem.ml); len(states) != 4 {
		t.Fatalf("memberlist's node table as read: %v, want 4 nodes", states)
	}
	crashed := nodes[3]
	crashed.stop()
	start := time.Now()
	var sawSuspect, sawDead bool
	var suspectSince time.Time
	for deadline := time.Now().Add(15 * time.Second); !sawDead && time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		ms := nodes[0].MemberList()
		switch st := stateOf(ms, crashed.addr); st {
		case StateSuspect:
			if !sawSuspect {
				t.Logf("suspect after %v", time.Since(start).Round(time.Millisecond))
				for _, m := range ms {
					if m.Addr == crashed.addr {
						suspectSince = m.Since
					}
				}
			}
			sawSuspect = true
			if !slices.Contains(nodes[0].Members(), crashed.addr) {
				t.Errorf("a suspect member is out of placement")
			}
			var inPeers MemberState
			for _, p := range nodes[0].Peers() {
				if p.Addr == crashed.addr {
					inPeers = p.Member.State
				}
			}
			if inPeers != StateSuspect && inPeers != StateDead && inPeers != "" {
				t.Errorf("Peers says %q of a member MemberList says is suspect", inPeers)
			}
		case StateDead:
			sawDead = true
			t.Logf("dead after %v", time.Since(start).Round(time.Millisecond))
		case StateAlive:
		default:
			t.Fatalf("the crashed member is %q", st)
		}
		for _, n := range nodes[:3] {
			// Suspect for a moment is possible on a loaded machine; dead is not.
			if st := stateOf(ms, n.addr); st != StateAlive && st != StateSuspect {
				t.Errorf("live member %s is %q", n.addr, st)
			}
		}
	}
	if !sawSuspect || !sawDead {
		t.Fatalf("the crashed member: suspect seen %v, dead seen %v; want both", sawSuspect, sawDead)
	}
	if suspectSince.Before(start) {
		t.Errorf("suspect since %v, before the crash at %v", suspectSince, start)
	}
	if slices.Contains(nodes[0].Members(), crashed.addr) {
		t.Error("a dead member is still in placement")
	}
}

func stateOf(ms []Member, addr string) MemberState {
	for _, m := range ms {
		if m.Addr == addr {
			return m.State
		}
	}
	return ""
}

func TestGossipZonesAndMetadata(t *testing.T) {
	nodes, _ := gossipFleet(t, 4, func(i int, cfg *Config) {
		cfg.Zone = []string{"zone-a", "zone-b"}[i%2]
		cfg.Gossip.NodeID = "edge-" + strconv.Itoa(i)
	})
	waitMembers(t, nodes, addrsOf(nodes), 10*time.Second)
	for i, n := range nodes {
		if got, want := n.Zones(), []string{n.Zone(), map[string]string{"zone-a": "zone-b", "zone-b": "zone-a"}[n.Zone()]}; !slices.Equal(got, want) {
			t.Errorf("node %d: zones %v, want %v", i, got, want)
		}
		for _, h := range n.Holders(erasure.SegmentID{Index: 3}, 6) {
			if n.ZoneOf(h) != n.Zone() {
				t.Errorf("node %d in %s: holder %s is in %q", i, n.Zone(), h, n.ZoneOf(h))
			}
		}
		other := n.Zones()[1]
		for _, h := range n.ZoneHolders(other, erasure.SegmentID{Index: 3}, 6) {
			if n.ZoneOf(h) != other {
				t.Errorf("node %d: holder %s of zone %s is in %q", i, h, other, n.ZoneOf(h))
			}
		}
	}
	ms := nodes[0].MemberList()
	if len(ms) != 4 {
		t.Fatalf("got %d members, want 4", len(ms))
	}
	for _, m := range ms {
		i := slices.Index(addrsOf(nodes), m.Addr)
		if i < 0 || m.ID != "edge-"+strconv.Itoa(i) || m.Zone != nodes[i].Zone() || m.State != StateAlive || m.Gossip == "" {
			t.Errorf("member %+v does not describe node %d", m, i)
		}
	}
}

func TestGossipEncryptedFleetRefusesOutsiders(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 32)
	nodes, _ := gossipFleet(t, 3, func(i int, cfg *Config) {
		cfg.Gossip.SecretKey = key
		if i == 2 {
			cfg.Gossip.SecretKey = bytes.Repeat([]byte{8}, 32)
		}
	})
	waitMembers(t, nodes[:2], addrsOf(nodes[:2]), 10*time.Second)
	// Give the outsider a few rejoin rounds: it must stay alone.
	time.Sleep(time.Second)
	if got := nodes[2].Members(); len(got) != 1 {
		t.Errorf("a node with another key joined: it sees %v", got)
	}
	if got := nodes[0].Members(); len(got) != 2 {
		t.Errorf("a node with another key was let in: members %v", got)
	}
}

func TestGossipStaticStillWorks(t *testing.T) {
	nodes := startNodes(t, 3, nil, func(i int, cfg *Config) { cfg.Zone = "ignored-for-static" })
	for _, n := range nodes {
		if got := n.Members(); len(got) != 3 {
			t.Errorf("static member list: got %v", got)
		}
		if n.GossipAddr() != "" {
			t.Errorf("gossip is on without GossipConfig")
		}
	}
}

func TestGossipConfigChecked(t *testing.T) {
	for _, g := range []GossipConfig{
		{},
		{BindAddr: "nope"},
		{BindAddr: "127.0.0.1:0", Join: []string{"seed-without-port"}},
		{BindAddr: "127.0.0.1:0", Join: []string{"seed:99999"}},
		{BindAddr: "127.0.0.1:0", SecretKey: make([]byte, 17)},
		{BindAddr: "127.0.0.1:0", AdvertiseAddr: "name:7946"},
		{BindAddr: "127.0.0.1:0", NodeID: strings.Repeat("x", 200)},
	} {
		_, err := New(Config{Self: "127.0.0.1:1", Credentials: testCreds(t), Store: newMemStore(), Gossip: &g})
		if err == nil {
			t.Errorf("%+v: accepted", g)
		}
	}
	if _, err := New(Config{Self: "127.0.0.1:1", Credentials: testCreds(t), Store: newMemStore(), Zone: strings.Repeat("z", 64)}); err == nil {
		t.Error("a 64-byte zone was accepted")
	}
}

func TestParseGossipKey(t *testing.T) {
	raw := []byte("0123456789abcdef0123456789ABCDEF")
	b64 := base64.StdEncoding.EncodeToString(raw)
	for _, tc := range []struct {
		in   string
		want []byte
	}{
		{b64 + "\n", raw},
		{"  " + base64.StdEncoding.EncodeToString(raw[:16]) + "\r\n", raw[:16]},
		{string([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 255}), []byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 255}},
		{base64.StdEncoding.EncodeToString(raw[:20]), nil},
		{"too short", nil},
		{"", nil},
	} {
		got, err := ParseGossipKey([]byte(tc.in))
		if tc.want == nil {
			if err == nil {
				t.Errorf("%q: got key %x, want an error", tc.in, got)
			}
			continue
		}
		if err != nil || !bytes.Equal(got, tc.want) {
			t.Errorf("%q: got %x, %v, want %x", tc.in, got, err, tc.want)
		}
	}
	p := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(p, []byte(b64+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := LoadGossipKey(p); err != nil || !bytes.Equal(got, raw) {
		t.Errorf("LoadGossipKey: got %x, %v", got, err)
	}
	if _, err := LoadGossipKey(p + ".missing"); err == nil {
		t.Error("a missing key file was accepted")
	}
}

func TestDecodeMeta(t *testing.T) {
	good, err := nodeMeta{Version: ProtocolVersion, ID: "a", Addr: "10.0.0.1:7000", Zone: "z"}.encode(512)
	if err != nil {
		t.Fatal(err)
	}
	if m, err := decodeMeta(good); err != nil || m.Addr != "10.0.0.1:7000" || m.Zone != "z" {
		t.Errorf("round trip: got %+v, %v", m, err)
	}
	for _, bad := range []string{
		``, `{`, `[]`, `{"v":2,"id":"a","addr":"h:1"}`, `{"v":1,"addr":"h:1"}`,
		`{"v":1,"id":"a","addr":"h"}`, `{"v":1,"id":"a","addr":":1"}`, `{"v":1,"id":"a","addr":"h:0"}`,
		`{"v":1,"id":"a","addr":"h:1","zone":"` + strings.Repeat("z", 64) + `"}`,
	} {
		if m, err := decodeMeta([]byte(bad)); err == nil {
			t.Errorf("%s: accepted as %+v", bad, m)
		}
	}
	if _, err := (nodeMeta{Version: 1, ID: strings.Repeat("x", 600), Addr: "h:1"}).encode(512); err == nil {
		t.Error("metadata over the limit was encoded")
	}
}

func FuzzDecodeMeta(f *testing.F) {
	good, _ := nodeMeta{Version: ProtocolVersion, ID: "a", Addr: "10.0.0.1:7000", Zone: "z"}.encode(512)
	f.Add(good)
	f.Add([]byte(`{"v":1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeMeta(b)
		if err != nil {
			return
		}
		again, err := m.encode(1 << 20)
		if err != nil {
			t.Fatal(err)
		}
		m2, err := decodeMeta(again)
		if err != nil || m2 != m {
			t.Fatalf("round trip: %+v became %+v, %v", m, m2, err)
		}
	})
}
