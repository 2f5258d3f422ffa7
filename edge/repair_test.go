package edge

import (
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/shoalcdn/shoal/erasure"
	"github.com/shoalcdn/shoal/swarm"
)

// fullyPlaced reports whether every shard of the object's segments is on
// its holder under the live edges' current placement.
func fullyPlaced(c *cluster, r *Record) (placed, want int) {
	byAddr := map[string]*testEdge{}
	var members []string
	for _, e := range c.edges {
		if !e.closed {
			byAddr[e.Node().Self()] = e
			members = append(members, e.Node().Self())
		}
	}
	total := testLayout.Params.Total()
	for s := range testLayout.Segments(r.Size) {
		seg := erasure.SegmentID{Object: r.ID(), Index: uint32(s)}
		for i, h := range swarm.Holders(members, seg, total) {
			want++
			if e := byAddr[h]; e != nil && e.store.Has(erasure.ShardID{Segment: seg, Index: uint8(i)}) {
				placed++
			}
		}
	}
	return placed, want
}

func TestRepairAfterCrash(t *testing.T) {
	o := newTestOrigin(t, "public, max-age=3600")
	c := newGossipCluster(t, o, 8, 60, func(i int, cfg *Config) { cfg.RepairDelay = 300 * time.Millisecond })
	const size = 3<<19 + 1234
	want := o.put(t, "/repair.bin", size, 51)
	_, body := c.get(0, "/repair.bin")
	sameBytes(t, "first read", body, want)
	rec, ok := c.edges[0].records.Get("/repair.bin")
	if !ok {
		t.Fatal("edge 0 has no record of what it served")
	}
	// A push the fill could not make is made up by the holder's next
	// read: every edge reads once, so that placement is complete.
	for i := range c.edges {
		_, body := c.get(i, "/repair.bin")
		sameBytes(t, "placing", body, want)
	}
	waitFor(t, func() bool { p, w := fullyPlaced(c, rec); return p == w })
	originBytes := o.bytes.Load()

	// Two edges crash. Placement moves the shards ranked at or below them;
	// the survivors rebuild those from the others and send them on.
	c.kill(2)
	c.kill(5)
	c.waitMembers(15 * time.Second)
	start := time.Now()
	waitFor(t, func() bool { p, w := fullyPlaced(c, rec); return p == w })
	t.Logf("redundancy restored %v after membership converged", time.Since(start).Round(10*time.Millisecond))

	var shardsOK, segsRebuilt, segsFailed float64
	for _, e := range c.edges {
		if e.closed {
			continue
		}
		shardsOK += counterValueLabel(t, e.Edge, "shoal_repair_shards_total", "result", "ok")
		segsRebuilt += counterValueLabel(t, e.Edge, "shoal_repair_segments_total", "result", "rebuilt")
		segsFailed += counterValueLabel(t, e.Edge, "shoal_repair_segments_total", "result", "failed")
	}
	if shardsOK == 0 || segsRebuilt == 0 {
		t.Errorf("repair metrics: %v shards sent, %v segments rebuilt, %v failed", shardsOK, segsRebuilt, segsFailed)
	}
	// Each segment is repaired by one edge per change; the two deaths may
	// be noticed apart, as two changes.
	if segs := float64(testLayout.Segments(size)); segsRebuilt > 2*segs {
		t.Errorf("%v segment repairs for %v segments and two changes: some were repaired by several edges", segsRebuilt, segs)
	}
	t.Logf("repair: %v shards sent, %v segments rebuilt, %v attempts failed (retried)", shardsOK, segsRebuilt, segsFailed)
	if got := o.bytes.Load() - originBytes; got != 0 {
		t.Errorf("repair cost %d origin bytes, want 0", got)
	}

	// Every survivor reads it from the fleet, memory tiers emptied.
	clearMemory(c)
	for i, e := range c.edges {
		if e.closed {
			continue
		}
		_, body := c.get(i, "/repair.bin")
		sameBytes(t, "after repair", body, want)
	}
	if got := o.bytes.Load() - originBytes; got != 0 {
		t.Errorf("reads after the repair cost %d origin bytes, want 0", got)
	}
}

// The scenario, small: eight edges joined by gossip through one
// DNS-style seed; an object read cold through one edge while two others
// are killed mid-download comes through byte-identical, the origin sends
// it about once, and repair then restores full redundancy.
func TestKillTwoMidDownloadThenRepair(t *testing.T) {
	o := newTestOrigin(t, "public, max-age=3600")
	c := newGossipCluster(t, o, 8, 70, func(i int, cfg *Config) { cfg.RepairDelay = 300 * time.Millisecond })
	const size = 6<<20 + 4321
	want := o.put(t, "/big.bin", size, 61)

	resp, err := http.Get(c.edges[0].url + "/big.bin")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got := make([]byte, 0, size)
	buf := make([]byte, 64<<10)
	killed := false
	for {
		n, err := resp.Body.Read(buf)
		got = append(got, buf[:n]...)
		if !killed && len(got) >= size/3 {
			c.kill(3)
			c.kill(6)
			killed = true
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("after %d bytes: %v", len(got), err)
		}
	}
	sameBytes(t, "read while two edges died", got, want)
	if ob := o.bytes.Load(); ob > size*11/10 {
		t.Errorf("origin sent %d bytes for a %d-byte object, want at most 1.1x", ob, size)
	}
	t.Logf("origin sent %.3fx the object", float64(o.bytes.Load())/size)

	c.waitMembers(15 * time.Second)
	rec, ok := c.edges[0].records.Get("/big.bin")
	if !ok {
		t.Fatal("edge 0 has no record of what it served")
	}
	start := time.Now()
	deadline := start.Add(30 * time.Second)
	for {
		p, w := fullyPlaced(c, rec)
		if p == w {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("redundancy not restored: %d of %d shards on their holders", p, w)
		}
		time.Sleep(20 * time.Millisecond)
	}
	var pending, shards float64
	for _, e := range c.edges {
		if !e.closed {
			pending += gaugeValue(t, e.Edge, "shoal_repair_pending_segments")
			shards += counterValueLabel(t, e.Edge, "shoal_repair_shards_total", "result", "ok")
		}
	}
	t.Logf("full redundancy %v after membership converged; %v shards repaired; %v segments pending", time.Since(start).Round(10*time.Millisecond), shards, pending)
	if shards == 0 {
		t.Error("redundancy came back without a repaired shard counted")
	}
}

func gaugeValue(t *testing.T, e *Edge, name string) float64 {
	t.Helper()
	fams, err := e.m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() == name {
			return f.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}
