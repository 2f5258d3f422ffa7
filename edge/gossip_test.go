package edge

import (
	"context"
	"fmt"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/shoalcdn/shoal/origin"
	"github.com/shoalcdn/shoal/store"
	"github.com/shoalcdn/shoal/swarm"
)

// seedDNS answers the seed name with the loopback addresses of the edges
// started so far, as the DNS of a Kubernetes headless Service would.
type seedDNS struct {
	mu  sync.Mutex
	ips []string
}

func (d *seedDNS) lookup(ctx context.Context, host string) ([]string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if host != "shoal-edges.test" {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return slices.Clone(d.ips), nil
}

// newGossipCluster starts n edges that find each other by gossip through
// one DNS-style seed: edge i gossips on 127.0.0.(base+i) at one port.
// tweak, if not nil, adjusts each edge's Config.
func newGossipCluster(t testing.TB, o *testOrigin, n, base int, tweak func(i int, cfg *Config)) *cluster {
	t.Helper()
	creds, err := testCreds()
	if err != nil {
		t.Fatal(err)
	}
	c := &cluster{t: t, origin: o}
	dns := &seedDNS{}
	var port string
	for i := range n {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ip := fmt.Sprintf("127.0.0.%d", base+i)
		g := &swarm.GossipConfig{
			BindAddr:       ip + ":0",
			RejoinInterval: 500 * time.Millisecond,
			ProbeInterval:  400 * time.Millisecond,
			Resolve:        dns.lookup,
		}
		if port != "" {
			g.BindAddr = net.JoinHostPort(ip, port)
			g.Join = []string{"shoal-edges.test:" + port}
		}
		scfg := swarm.Config{Self: pc.LocalAddr().String(), Gossip: g, Credentials: creds, DialTimeout: 2 * time.Second}
		cfg := Config{
			Origin:      origin.ClientConfig{Base: o.srv.URL, Attempts: 2, Backoff: 10 * time.Millisecond, Timeout: 5 * time.Second},
			Swarm:       scfg,
			Layout:      testLayout,
			MemoryCache: 64 << 20,
			Store:       store.Config{Limit: 64 << 20},
			PeerTimeout: 2 * time.Second,
			Logger:      quietLogger().With("edge", i),
		}
		if tweak != nil {
			tweak(i, &cfg)
		}
		e, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		served := make(chan error, 1)
		go func() { served <- e.ServePeers(pc) }()
		te := &testEdge{Edge: e, url: serveClients(t, e, ln)}
		c.edges = append(c.edges, te)
		t.Cleanup(func() {
			if !te.closed {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				e.Shutdown(ctx)
			}
			pc.Close()
		})
		select {
		case <-e.Node().Ready():
		case err := <-served:
			t.Fatalf("edge %d: ServePeers: %v", i, err)
		}
		if port == "" {
			_, port, _ = net.SplitHostPort(e.Node().GossipAddr())
		}
		dns.mu.Lock()
		dns.ips = append(dns.ips, ip)
		dns.mu.Unlock()
	}
	t.Cleanup(c.shutdown) // runs before the edges' own cleanups
	c.waitMembers(10 * time.Second)
	return c
}

// waitMembers waits until every live edge sees exactly the live edges.
func (c *cluster) waitMembers(within time.Duration) {
	c.t.Helper()
	var want []string
	for _, e := range c.edges {
		if !e.closed {
			want = append(want, e.Node().Self())
		}
	}
	slices.Sort(want)
	deadline := time.Now().Add(within)
	for {
		ok := true
		for _, e := range c.edges {
			if !e.closed && !slices.Equal(e.Node().Members(), want) {
				ok = false
			}
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			for i, e := range c.edges {
				if !e.closed {
					c.t.Logf("edge %d sees %v", i, e.Node().Members())
				}
			}
			c.t.Fatalf("membership did not converge on %d edges within %v", len(want), within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// leave shuts edge i down gracefully: it leaves the fleet.
func (c *cluster) leave(i int) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c.edges[i].closed = true
	if err := c.edges[i].Shutdown(ctx); err != nil {
		c.t.Fatalf("edge %d: Shutdown: %v", i, err)
	}
}

func TestGossipFleetJoinLeaveCrash(t *testing.T) {
	for _, ranged := range []bool{true, false} {
		t.Run(fmt.Sprintf("ranged=%v", ranged), func(t *testing.T) { testGossipFleetJoinLeaveCrash(t, ranged) })
	}
}

func testGossipFleetJoinLeaveCrash(t *testing.T, ranged bool) {
	o := newTestOrigin(t, "public, max-age=3600")
	c := newGossipCluster(t, o, 8, 30, func(i int, cfg *Config) { cfg.RangedFills = ranged })
	const size = 3<<19 + 4321
	want := o.put(t, "/fleet.bin", size, 11)
	_, body := c.get(0, "/fleet.bin")
	sameBytes(t, "first read", body, want)
	segs := int(testLayout.Segments(size))
	// Every edge reads it; one whose shard push failed rebuilds its own.
	for i := 1; i < len(c.edges); i++ {
		_, body := c.get(i, "/fleet.bin")
		sameBytes(t, fmt.Sprintf("edge %d", i), body, want)
	}
	waitFor(t, func() bool { return storedShards(c) >= segs*6 })
	if got := o.bytes.Load(); got > size*11/10 {
		t.Errorf("origin sent %d bytes for a %d-byte object read through 8 edges, want at most 1.1x", got, size)
	}

	// A graceful leave: the others drop the edge and still serve it all.
	start := time.Now()
	c.leave(7)
	c.waitMembers(5 * time.Second)
	t.Logf("leave: membership converged in %v", time.Since(start).Round(time.Millisecond))
	_, body = c.get(4, "/fleet.bin")
	sameBytes(t, "after a leave, via edge 4", body, want)

	if got := o.bytes.Load(); got > size*11/10 {
		t.Errorf("origin sent %d bytes through a leave for a %d-byte object, want at most 1.1x", got, size)
	}
	// A crash: noticed by gossip within seconds.
	start = time.Now()
	c.kill(6)
	c.waitMembers(15 * time.Second)
	t.Logf("crash: membership converged in %v", time.Since(start).Round(time.Millisecond))
	clearMemory(c)
	for _, i := range []int{1, 5} {
		_, body = c.get(i, "/fleet.bin")
		sameBytes(t, fmt.Sprintf("after a crash, via edge %d", i), body, want)
	}
	// Reads between a change and its repair find the shards where the
	// placements before put them: the origin is not asked again. Known gap
	// of streamed fills (issue #16's notes): after a crash with the memory
	// tiers empty, one run in two refills 1 to 5 segments by range (up to
	// 2x in all), which ranged fills do not; bounded here, not hidden.
	limit := size * 11 / 10
	if !ranged {
		limit = size * 2
	}
	if got := o.bytes.Load(); got > int64(limit) {
		t.Errorf("origin sent %d bytes in all for a %d-byte object, want at most %d", got, size, limit)
	}
	t.Logf("origin sent %d bytes for a %d-byte object (%.2fx) through a leave and a crash", o.bytes.Load(), size, float64(o.bytes.Load())/size)
}

func TestZonesPlaceWithinZoneThenReadAcross(t *testing.T) {
	o := newTestOrigin(t, "public, max-age=3600")
	zone := func(i int) string { return []string{"zone-a", "zone-b"}[i%2] }
	c := newGossipCluster(t, o, 6, 40, func(i int, cfg *Config) { cfg.Swarm.Zone = zone(i) })
	const size = 2<<20 + 999
	want := o.put(t, "/zoned.bin", size, 12)
	segs := int(testLayout.Segments(size))
	zoneShards := func(z string) int {
		n := 0
		for i, e := range c.edges {
			if zone(i) == z && !e.closed {
				n += e.store.Stats().Shards
			}
		}
		return n
	}

	// Zone a reads first: its shards land in zone a only. (Each of its
	// edges reads, so that one whose push failed rebuilds its own shards.)
	_, body := c.get(0, "/zoned.bin")
	sameBytes(t, "first read in zone a", body, want)
	originBytes, originReqs := o.bytes.Load(), o.requests.Load()
	for _, i := range []int{2, 4} {
		_, body = c.get(i, "/zoned.bin")
		sameBytes(t, "other readers in zone a", body, want)
	}
	waitFor(t, func() bool { return zoneShards("zone-a") >= segs*6 })
	if n := zoneShards("zone-b"); n != 0 {
		t.Errorf("zone b stores %d shards of an object only zone a read", n)
	}

	// Zone b has no copy: it reads zone a's before the origin, and places
	// its own copy.
	_, body = c.get(1, "/zoned.bin")
	sameBytes(t, "first read in zone b", body, want)
	if got := o.bytes.Load() - originBytes; got != 0 {
		t.Errorf("zone b's first read cost %d origin bytes, want 0: zone a has the object", got)
	}
	if got := o.requests.Load() - originReqs; got != 0 {
		t.Errorf("zone b's first read made %d origin requests, want 0", got)
	}
	var acrossFills float64
	for _, e := range c.edges {
		acrossFills += counterValueLabel(t, e.Edge, "shoal_fills_total", "source", srcOtherZone)
	}
	if int(acrossFills) != segs {
		t.Errorf("fills from another zone: %v, want one per segment (%d)", acrossFills, segs)
	}
	for _, i := range []int{3, 5} {
		_, body = c.get(i, "/zoned.bin")
		sameBytes(t, "other readers in zone b", body, want)
	}
	waitFor(t, func() bool { return zoneShards("zone-b") >= segs*6 })

	// Zone b now serves on its own: with zone a gone and the memory tiers
	// empty, its edges read from zone b's shards, not the origin.
	for i := range c.edges {
		if zone(i) == "zone-a" {
			c.kill(i)
		}
	}
	c.waitMembers(15 * time.Second)
	clearMemory(c)
	for _, i := range []int{3, 5} {
		same := counterValueLabel(t, c.edges[i].Edge, "shoal_zone_shard_bytes_total", "locality", "same_zone")
		other := counterValueLabel(t, c.edges[i].Edge, "shoal_zone_shard_bytes_total", "locality", "other_zone")
		_, body = c.get(i, "/zoned.bin")
		sameBytes(t, fmt.Sprintf("zone b alone, edge %d", i), body, want)
		if d := counterValueLabel(t, c.edges[i].Edge, "shoal_zone_shard_bytes_total", "locality", "same_zone") - same; d <= 0 {
			t.Errorf("edge %d read from zone b's shards, but its same-zone shard bytes grew by %v", i, d)
		}
		if d := counterValueLabel(t, c.edges[i].Edge, "shoal_zone_shard_bytes_total", "locality", "other_zone") - other; d != 0 {
			t.Errorf("edge %d: %v shard bytes from another zone, with zone a gone", i, d)
		}
	}
	if got := o.bytes.Load() - originBytes; got != 0 {
		t.Errorf("zone b alone cost %d origin bytes, want 0", got)
	}
}

// counterValueLabel sums the series of counter name whose label has value;
// an empty label sums them all.
func counterValueLabel(t *testing.T, e *Edge, name, label, value string) float64 {
	t.Helper()
	fams, err := e.m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if label == "" { // every series of the counter
				sum += m.GetCounter().GetValue()
				continue
			}
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					sum += m.GetCounter().GetValue()
				}
			}
		}
	}
	return sum
}
