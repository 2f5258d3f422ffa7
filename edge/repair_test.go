package edge

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
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

// repairLogs keeps each edge's log, for the report of a repair that did
// not finish.
type repairLogs struct {
	mu   sync.Mutex
	bufs map[int]*bytes.Buffer
}

func (l *repairLogs) tweak(i int, cfg *Config) {
	cfg.RepairDelay = 300 * time.Millisecond
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.bufs == nil {
		l.bufs = map[int]*bytes.Buffer{}
	}
	l.bufs[i] = &bytes.Buffer{}
	h := slog.NewTextHandler(lockedWriter{&l.mu, l.bufs[i]}, &slog.HandlerOptions{Level: slog.LevelDebug})
	cfg.Logger = slog.New(h).With("edge", i)
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	if bytes.Contains(p, []byte("component=memberlist")) {
		return len(p), nil // gossip's own chatter
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(p)
}

// waitRepaired waits until every shard of the object is on its holder
// under the live edges' placement; if that does not happen within 30s it
// fails, naming each missing shard, its holder, the members responsible
// for it (the first survivor of its placement under each member set in
// sets, the one before the change first), each edge's repair metrics and
// its log.
func waitRepaired(t *testing.T, c *cluster, rec *Record, logs *repairLogs, sets ...[]string) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := start.Add(30 * time.Second)
	for {
		p, w := fullyPlaced(c, rec)
		if p == w {
			return time.Since(start)
		}
		if time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
			continue
		}
		name := map[string]string{}
		var live []string
		for i, e := range c.edges {
			name[e.Node().Self()] = fmt.Sprintf("edge %d", i)
			if !e.closed {
				live = append(live, e.Node().Self())
			}
		}
		slices.Sort(live)
		names := func(addrs []string) []string {
			var out []string
			for _, a := range addrs {
				out = append(out, name[a])
			}
			return out
		}
		total := testLayout.Params.Total()
		var missing []string
		for s := range testLayout.Segments(rec.Size) {
			seg := erasure.SegmentID{Object: rec.ID(), Index: uint32(s)}
			now := swarm.Holders(live, seg, total)
			var held []string
			for j, e := range c.edges {
				for i := range total {
					if !e.closed && e.store.Has(erasure.ShardID{Segment: seg, Index: uint8(i)}) {
						held = append(held, fmt.Sprintf("%d on edge %d", i, j))
					}
				}
			}
			for i, h := range now {
				if c.edges[edgeIndex(c, h)].store.Has(erasure.ShardID{Segment: seg, Index: uint8(i)}) {
					continue
				}
				if len(missing) == 0 || missing[len(missing)-1] != seg.String() {
					missing = append(missing, seg.String())
					t.Errorf("segment %s: the live edges hold shards %v (k=%d)", seg, held, testLayout.Params.K)
				}
				var resp []string
				for _, set := range sets {
					for _, old := range swarm.Holders(set, seg, total) {
						if slices.Contains(live, old) {
							resp = append(resp, name[old])
							break
						}
					}
				}
				t.Errorf("segment %d shard %d missing on %s (holders now %v; responsible by the sets before: %v)", s, i, name[h], names(now), resp)
			}
		}
		for i, e := range c.edges {
			if e.closed {
				continue
			}
			t.Logf("edge %d: sees %v; %v repair passes, %v segments rebuilt, %v failed, %v shards sent", i, names(e.Node().ZoneMembers()),
				counterValue(t, e.Edge, "shoal_repair_passes_total"),
				counterValueLabel(t, e.Edge, "shoal_repair_segments_total", "result", "rebuilt"),
				counterValueLabel(t, e.Edge, "shoal_repair_segments_total", "result", "failed"),
				counterValueLabel(t, e.Edge, "shoal_repair_shards_total", "result", "ok"))
		}
		// The lines of each edge's log about membership, repair and the
		// segments missing shards, with edges named.
		var pairs []string
		for a, n := range name {
			pairs = append(pairs, a, n)
		}
		rename := strings.NewReplacer(pairs...)
		logs.mu.Lock()
		for i := range c.edges {
			var lines []string
			for _, l := range strings.Split(logs.bufs[i].String(), "\n") {
				if strings.Contains(l, "member removed") || strings.Contains(l, "repair") ||
					slices.ContainsFunc(missing, func(s string) bool { return strings.Contains(l, s) }) {
					lines = append(lines, rename.Replace(l))
				}
			}
			t.Logf("edge %d log:\n%s", i, strings.Join(lines, "\n"))
		}
		logs.mu.Unlock()
		t.Fatalf("not every shard on its holder within 30s: %d of %d", p, w)
	}
}

func edgeIndex(c *cluster, addr string) int {
	for i, e := range c.edges {
		if e.Node().Self() == addr {
			return i
		}
	}
	return -1
}

func TestRepairAfterCrash(t *testing.T) {
	o := newTestOrigin(t, "public, max-age=3600")
	logs := &repairLogs{}
	c := newGossipCluster(t, o, 8, 60, logs.tweak)
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
	waitRepaired(t, c, rec, logs)
	originBytes := o.bytes.Load()
	placedBy := c.edges[0].Node().ZoneMembers()

	// Two edges crash. Placement moves the shards ranked at or below them;
	// the survivors rebuild those from the others and send them on.
	c.kill(2)
	c.kill(5)
	c.waitMembers(15 * time.Second)
	took := waitRepaired(t, c, rec, logs, placedBy)
	t.Logf("redundancy restored %v after membership converged", took.Round(10*time.Millisecond))

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
	logs := &repairLogs{}
	c := newGossipCluster(t, o, 8, 70, logs.tweak)
	placedBy := c.edges[0].Node().ZoneMembers()
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
	took := waitRepaired(t, c, rec, logs, placedBy)
	var pending, shards float64
	for _, e := range c.edges {
		if !e.closed {
			pending += gaugeValue(t, e.Edge, "shoal_repair_pending_segments")
			shards += counterValueLabel(t, e.Edge, "shoal_repair_shards_total", "result", "ok")
		}
	}
	t.Logf("full redundancy %v after membership converged; %v shards repaired; %v segments pending", took.Round(10*time.Millisecond), shards, pending)
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

// A segment whose fill left fewer than k shards in the fleet (pushes
// dropped or failed) is lost to the fleet's reads and to repair; its
// filler, which keeps it in memory, sends its shards again. With ranged
// fills the filler is the segment's coordinator; with streamed fills (the
// default) it is the edge that took the miss.
func TestUnderPlacedSegmentPlacedAgain(t *testing.T) {
	for _, ranged := range []bool{false, true} {
		t.Run(fmt.Sprintf("ranged=%v", ranged), func(t *testing.T) {
			o := newTestOrigin(t, "public, max-age=3600")
			c := newCluster(t, o, 4, func(cfg *Config) {
				cfg.RepairDelay = 100 * time.Millisecond
				cfg.RangedFills = ranged
			})
			want := o.put(t, "/under.bin", 300<<10, 71)
			_, body := c.get(0, "/under.bin")
			sameBytes(t, "first read", body, want)
			rec, ok := c.edges[0].records.Get("/under.bin")
			if !ok {
				t.Fatal("edge 0 has no record of what it served")
			}
			seg := erasure.SegmentID{Object: rec.ID(), Index: 0}
			filler := c.edges[0]
			if ranged {
				filler = c.edges[edgeIndex(c, c.edges[0].Node().Rank(swarm.SegmentKey(seg))[0])]
			}
			if _, ok := filler.mem.Get(seg); !ok {
				t.Fatal("the filler does not keep the segment it filled in memory")
			}
			segPlaced := func() bool {
				for i, h := range c.edges[0].Node().Holders(seg, testLayout.Params.Total()) {
					if !c.edges[edgeIndex(c, h)].store.Has(erasure.ShardID{Segment: seg, Index: uint8(i)}) {
						return false
					}
				}
				return true
			}
			waitFor(t, segPlaced)
			originBytes := o.bytes.Load()

			// Every shard lost, as if every push had failed.
			for _, e := range c.edges {
				for i := range testLayout.Params.Total() {
					e.store.Remove(erasure.ShardID{Segment: seg, Index: uint8(i)})
				}
			}
			if segPlaced() {
				t.Fatal("shards still placed after they were dropped")
			}
			filler.repair.unplace(seg)
			waitFor(t, segPlaced)
			if got := o.bytes.Load() - originBytes; got != 0 {
				t.Errorf("placing again cost %d origin bytes, want 0", got)
			}
		})
	}
}

// A filler that crashes right after a fill may leave its pushes
// unfinished: an edge that read the segment through a Fill at the filler
// sends its shards from its own memory tier once the filler is gone. With
// ranged fills the filler is the segment's coordinator, read through a
// Fill at it. Streamed fills (the default) end their lease only once their
// shards are at their holders, placing again what did not get there
// (streamed.go, talkLease): readers then read the holders, and a fill
// that crashes before is read again by the lease's next holder
// (TestStreamedFillFillerCrash).
func TestReaderPlacesWhenCoordinatorDies(t *testing.T) {
	for _, ranged := range []bool{true} {
		t.Run(fmt.Sprintf("ranged=%v", ranged), func(t *testing.T) {
			o := newTestOrigin(t, "public, max-age=3600")
			logs := &repairLogs{}
			c := newGossipCluster(t, o, 4, 80, func(i int, cfg *Config) {
				logs.tweak(i, cfg)
				cfg.RangedFills = ranged
				if !ranged {
					// The object's coordinator names the filler for the
					// lease's time after the fill, the origin timeout:
					// long enough for the read below on a loaded machine.
					cfg.Origin.Timeout = 30 * time.Second
				}
			})
			want := o.put(t, "/orphan.bin", 300<<10, 81)
			_, body := c.get(0, "/orphan.bin")
			sameBytes(t, "first read", body, want)
			rec, ok := c.edges[0].records.Get("/orphan.bin")
			if !ok {
				t.Fatal("edge 0 has no record of what it served")
			}
			waitRepaired(t, c, rec, logs)
			seg := erasure.SegmentID{Object: rec.ID(), Index: 0}
			filler := edgeIndex(c, c.edges[0].Node().Rank(swarm.SegmentKey(seg))[0])
			reader := (filler + 1) % len(c.edges)
			if !ranged {
				// Edge 0 filled; the reader must ask the object's
				// coordinator, which names edge 0: the coordinator itself,
				// or an edge the record was not replicated to.
				filler = 0
				ranks := c.edges[0].Node().RankAll([]byte("/orphan.bin"))
				for _, peer := range ranks {
					i := edgeIndex(c, peer)
					if _, held := c.edges[i].records.Get("/orphan.bin"); i != 0 && (!held || peer == ranks[0]) {
						reader = i
						break
					}
				}
			}

			// Every shard of the segment lost, as if the filler's pushes had
			// not been made; the reader gets it through a Fill at the filler,
			// from its memory tier.
			for _, e := range c.edges {
				for i := range testLayout.Params.Total() {
					e.store.Remove(erasure.ShardID{Segment: seg, Index: uint8(i)})
				}
			}
			c.edges[reader].mem.Purge()
			originBytes := o.bytes.Load()
			_, body = c.get(reader, "/orphan.bin")
			sameBytes(t, "read through the filler's fill", body, want)

			// The filler crashes: the reader places the segment.
			c.kill(filler)
			c.waitMembers(15 * time.Second)
			waitRepaired(t, c, rec, logs)
			if got := o.bytes.Load() - originBytes; got != 0 {
				t.Errorf("placing again cost %d origin bytes, want 0", got)
			}
		})
	}
}
