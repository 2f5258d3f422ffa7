package edge

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shoalcdn/shoal/erasure"
	"github.com/shoalcdn/shoal/swarm"
)

// Placed fills. A segment's coordinator fetches it from the origin once
// for the fleet; the edges that asked it to Fill meanwhile used to receive
// the whole segment from it, so in a flash crowd the coordinator's uplink
// carried every site's copy while the other sites' uplinks idled. A Fill
// may instead ask for a placed answer: the coordinator answers with the
// segment's descriptor alone once its shards are on their holders (at
// least k of them), and the requester reads k shards from k holders like
// any other read (nearest first, hedged, each shard verified, the segment
// verified after decoding). Each site's copy is then uploaded by several
// holders, so the fleet's aggregate uplink carries the crowd. When the
// shards cannot be read after all (a holder died in between), the
// requester asks the coordinator again for the whole segment, which it
// still holds in memory.

// fillPlaced is set in the first byte of a Fill payload (the top bit of
// its segment index, which no layout reaches) to ask for a placed answer.
// An edge from before placed answers rejects such a payload as a malformed
// record, and the requester then asks again without it.
const fillPlaced = 0x80

func placedPayload(f *fillRequest) []byte {
	b := f.Append(nil)
	b[0] |= fillPlaced
	return b
}

// olderCoordinator reports whether err is the answer of an edge that
// does not know placed fills to a placed Fill payload.
func olderCoordinator(err error) bool {
	var re *swarm.RemoteError
	return errors.As(err, &re) && re.Status == swarm.StatusFailed && strings.Contains(re.Message, errRecord.Error())
}

// placement follows the shards of one segment that a fill puts on their
// holders: enough is closed once k of them are at their holders, done once
// every shard has been stored, pushed, or given up on.
type placement struct {
	k       int32
	pending atomic.Int32
	placed  atomic.Int32
	enough  chan struct{}
	done    chan struct{}
	lanes   chan struct{} // the pushes in flight (see push)
	// streamed: the segment of a streamed fill (placed through its
	// coordinator, or handed to this edge as that coordinator): its
	// placed answers wait however long the hand-off and the pushes take
	// (waitPlacedStreamed), even once the stream ended, rather than send
	// the whole segment through an uplink the placement already fills.
	streamed bool
}

func newPlacement(k, shards, lanes int) *placement {
	p := &placement{k: int32(k), enough: make(chan struct{}), done: make(chan struct{}), lanes: make(chan struct{}, max(lanes, 1))}
	p.pending.Store(int32(shards))
	if shards == 0 {
		close(p.done)
	}
	return p
}

// settle records the outcome of one shard.
func (p *placement) settle(ok bool) {
	if ok && p.placed.Add(1) == p.k {
		close(p.enough)
	}
	if p.pending.Add(-1) == 0 {
		close(p.done)
	}
}

// pushLanes is how many of one fill's shard pushes are in flight at once.
// The coordinator's uplink carries them all, and pushes sent together
// share it, so all of them (five of six shards) arrived at about the same
// time, late; sent two at a time, the first k are placed in about
// (k-1)/5 of that time (k = 4, m = 2), and the placed answer, which waits
// for k, leaves that much earlier. Two rather than one, so that one slow
// holder does not hold up the others.
const pushLanes = 2

// push sends one shard of p's segment to its holder, in one of p's lanes,
// within the learned timeout of a transfer its size (internal/latency), which
// starts once the lane is free.
func (fr *filler) push(ctx context.Context, p *placement, peer string, sid erasure.ShardID, d *erasure.Descriptor, data []byte) error {
	select {
	case p.lanes <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-p.lanes }()
	ctx, cancel := context.WithTimeout(ctx, fr.xfer.Timeout(len(data)))
	defer cancel()
	start := time.Now()
	err := fr.node.PutShard(ctx, peer, sid, d, data)
	fr.xfer.ObserveTransfer(ctx, len(data), start, err)
	return err
}

// waitPlaced waits, at most the timeout of k pushes (internal/latency), until k
// of p's shards of shardLen bytes are at their holders (true) or every
// shard is settled with fewer (false). The requester need not wait for the
// others: it reads the first k that answer.
func (fr *filler) waitPlaced(ctx context.Context, p *placement, shardLen int) bool {
	if p == nil {
		return false
	}
	t := time.NewTimer(fr.xfer.Timeout(int(p.k) * shardLen))
	defer t.Stop()
	select {
	case <-p.enough:
		return true
	case <-p.done:
		return p.placed.Load() >= p.k
	case <-t.C:
	case <-ctx.Done():
	}
	return false
}

// waitPlacedStreamed is waitPlaced for a segment of a streamed fill: it
// waits until k shards are placed or every shard settled, however long
// the pushes take (the asker's own timeouts bound it).
func (fr *filler) waitPlacedStreamed(ctx context.Context, p *placement, _ int) bool {
	if p == nil {
		return false
	}
	select {
	case <-p.enough:
		return true
	case <-p.done:
		return p.placed.Load() >= p.k
	case <-ctx.Done():
	}
	return false
}

// serveFill answers a peer's Fill: the whole segment, or, when the payload
// asks for it and the shards are placed, the descriptor alone.
func (fr *filler) serveFill(ctx context.Context, payload []byte) (*swarm.Segment, error) {
	placed := len(payload) > 0 && payload[0]&fillPlaced != 0
	if placed {
		payload = slices.Clone(payload)
		payload[0] &^= fillPlaced
	}
	f, err := parseFillRequest(payload)
	if err != nil {
		return nil, err
	}
	if _, _, err := fr.sites.split(f.Record.Key); err != nil {
		return nil, err
	}
	s, p, err := fr.fill(ctx, f.Record, f.Segment)
	if err != nil || !placed {
		return s, err
	}
	wait := fr.waitPlaced
	if sf, _ := fr.streams.filling(f.Record.ID()); sf != nil || p != nil && p.streamed {
		// A streamed fill's edge carries the whole object to the fleet
		// through its uplink: answering whole segments would carry it
		// once per asker. The asker waits for the shards instead.
		wait = fr.waitPlacedStreamed
	}
	if !wait(ctx, p, s.Descriptor.ShardLen) {
		fr.log.DebugContext(ctx, "segment not placed in time, answering the fill whole", "segment", f.Segment, "key", f.Record.Key, "known", p != nil)
		return s, nil
	}
	fr.m.placedFills.Inc()
	return &swarm.Segment{Descriptor: s.Descriptor, Source: s.Source}, nil
}

// fillAt asks coord, the segment's coordinator, to fill segment id of n
// bytes, for a placed answer first, and reads it: from the holders after a
// placed answer (avoid, when not empty, only when the others cannot
// answer), else from the answer itself.
func (rd *reader) fillAt(ctx context.Context, coord string, r *Record, id erasure.SegmentID, n int, holders []string, avoid string) (segRead, error) {
	req := &fillRequest{Record: r, Segment: id.Index}
	payload := req.Append(nil)
	if rd.placedFills {
		payload = placedPayload(req)
	}
	s, err := rd.fillWatched(ctx, coord, payload)
	if err != nil && rd.placedFills && olderCoordinator(err) {
		s, err = rd.fillWatched(ctx, coord, req.Append(nil))
	}
	if err != nil {
		return segRead{}, err
	}
	if err := checkFilled(s, r, id, n, coord); err != nil {
		return segRead{}, err
	}
	if s.Data == nil {
		var gerr error
		var data []byte
		var d *erasure.Descriptor
		if avoid != "" {
			data, d, _, gerr = rd.shards.gather(ctx, id, n, without(holders, avoid))
		}
		if avoid == "" || gerr != nil && ctx.Err() == nil {
			// One shard from the member avoided costs its uplink less than
			// the whole segment would.
			data, d, _, gerr = rd.shards.gather(ctx, id, n, holders)
		}
		if gerr == nil {
			if keepInMemory(ctx) {
				rd.mem.Add(id, &memSegment{d: d, data: data})
			}
			return segRead{data, fillSource(s)}, nil
		}
		if ctx.Err() != nil {
			return segRead{}, ctx.Err()
		}
		rd.log.DebugContext(ctx, "placed segment not readable from its holders, asking for it whole", "coordinator", coord, "segment", id.String(), "err", gerr)
		if s, err = rd.fillWatched(ctx, coord, req.Append(nil)); err != nil {
			return segRead{}, err
		}
		if err := checkFilled(s, r, id, n, coord); err != nil {
			return segRead{}, err
		}
		if s.Data == nil {
			return segRead{}, fmt.Errorf("edge: coordinator %s answered a whole-segment Fill of %v with a placed answer", coord, id)
		}
	}
	if keepInMemory(ctx) {
		rd.mem.Add(id, &memSegment{d: s.Descriptor, data: s.Data})
		rd.repair.filledAt(id, coord)
	}
	return segRead{s.Data, fillSource(s)}, nil
}

func checkFilled(s *swarm.Segment, r *Record, id erasure.SegmentID, n int, coord string) error {
	if s.Descriptor.Length != n || s.Descriptor.Params != r.Layout.Params {
		return fmt.Errorf("edge: coordinator %s sent segment %v of %d bytes, want %d", coord, id, s.Descriptor.Length, n)
	}
	return nil
}

// A Fill's answer takes as long as the coordinator's origin fetch and
// placement, so no byte flows meanwhile, and a coordinator that died
// without closing its connections (kill -9, a power cut) would hold its
// requesters until the QUIC idle timeout. With Config.FillProbe, while a
// Fill is unanswered the requester probes the coordinator every FillProbe:
// a live node answers a probe at once, however long its fill takes. One
// that answers neither of two probes in a row, each given 1.5 × FillProbe,
// is taken for dead, and the requester moves on to the next rank, which
// first looks for the segment at its holders. A slow but live coordinator
// is waited for, so the origin still sees one fetch per segment.

// errCoordinatorSilent: the segment's coordinator stopped answering.
var errCoordinatorSilent = errors.New("edge: segment coordinator stopped answering")

// fillWatched is node.Fill watched by probes (see Config.FillProbe).
func (rd *reader) fillWatched(ctx context.Context, coord string, payload []byte) (*swarm.Segment, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type answer struct {
		s   *swarm.Segment
		err error
	}
	if rd.fillProbe <= 0 {
		return rd.node.Fill(ctx, coord, payload)
	}
	ch := make(chan answer, 1)
	go func() {
		s, err := rd.node.Fill(ctx, coord, payload)
		ch <- answer{s, err}
	}()
	t := time.NewTimer(rd.fillProbe)
	defer t.Stop()
	for {
		select {
		case a := <-ch:
			return a.s, a.err
		case <-t.C:
		}
		// Two probes in a row must go unanswered: one can be lost to a
		// congested link or a stalled scheduler, and a live coordinator
		// given up for dead costs the origin a second fetch.
		if rd.alive(ctx, coord) || rd.alive(ctx, coord) {
			t.Reset(rd.fillProbe)
			continue
		}
		select {
		case a := <-ch: // answered meanwhile
			return a.s, a.err
		default:
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		cancel()
		<-ch
		rd.m.abandoned.Inc()
		return nil, fmt.Errorf("edge: fill at %s: %w", coord, errCoordinatorSilent)
	}
}

// alive reports whether peer answers a probe within 1.5 × FillProbe: a
// GetShard of a shard no segment has (the zero ID), which a live node
// answers "not found" from its index without touching a disk.
func (rd *reader) alive(ctx context.Context, peer string) bool {
	pctx, cancel := context.WithTimeout(ctx, rd.fillProbe*3/2)
	defer cancel()
	_, _, err := rd.node.GetShard(pctx, peer, erasure.ShardID{})
	var re *swarm.RemoteError
	return err == nil || errors.Is(err, swarm.ErrNotFound) || errors.As(err, &re)
}

// Streamed segments are placed by their coordinators. A streamed fill's
// edge has the whole object from the origin; pushing every shard of it
// itself would carry 1.5 times the object through its one uplink (k = 4,
// m = 2) while the other members' uplinks idle. It sends each segment
// once instead, to the segment's coordinator (swarm.StatPlace), which
// reads it with a Fill at the filler, checks that it codes to the
// filler's descriptor, keeps it in memory and places its shards from its
// own uplink: the filler's uplink carries the object once, and the
// placements spread over the fleet as the ranged fills' did. Readers of
// the stream still ask the filler, whose placed answer waits for the
// coordinator's. A coordinator that fails (down, of an older release,
// too slow) leaves the segment to the filler, which places it itself.

// placeLanes is how many of one stream's segments are handed to their
// coordinators at once. A lane is held for the coordinator's pull of the
// segment through the filler's uplink (its pushes go on after), so the
// pulls leave in order; four rather than two keep a fast uplink busy
// through the round trips between pulls (measured: 50/25 Mbit/s, 8 sites,
// 36 s against 39-41 s; 1 Gbit/s, 3 sites, 256 MiB, 10.6 s against 15.4 s).
const placeLanes = 4

// placeTimeout bounds one hand-off: the coordinator's pull of the segment
// and the placement of k of its shards.
const placeTimeout = 60 * time.Second

// handoffChoices is how many of a segment's first ranks the filler of a
// stream may hand it to. The coordinator of a segment pushes 1.5 times
// it (k = 4, m = 2) through its uplink, and with rank 0 alone the
// segments of one object fell unevenly: in an 8-site flash crowd of 16
// segments some sites placed four or five, others none, and the busiest
// uplinks (80-90 MiB against 40-50) set the crowd's time. Any member can
// place a segment (its holders are the ranks, whoever pushes to them),
// so each goes to the one of its first few ranks that took the fewest of
// the stream's segments so far.
const handoffChoices = 3

// handoffs is a stream's hand-offs of its segments to their
// coordinators: the lanes (placeLanes at a time) and how many each
// coordinator took.
type handoffs struct {
	lanes chan struct{}
	mu    sync.Mutex
	taken map[string]int
}

func newHandoffs() *handoffs {
	return &handoffs{lanes: make(chan struct{}, placeLanes), taken: map[string]int{}}
}

// pick returns the candidate (in rank order) that took the fewest
// segments, the first on a tie, and counts one more for it; "" for none.
func (h *handoffs) pick(candidates []string) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	best := ""
	for _, c := range candidates {
		if best == "" || h.taken[c] < h.taken[best] {
			best = c
		}
	}
	if best != "" {
		h.taken[best]++
	}
	return best
}

// placeStreamed places segment id of rec, being streamed by this edge,
// through a coordinator in this zone: of the segment's first
// handoffChoices ranks but this edge, the one that took the fewest of the
// stream's segments (handoffs.pick), at most placeLanes segments at a
// time; itself when it is alone, or when the coordinator fails. The
// placement it returns is settled once k shards are at their holders (or
// the placement gave up).
func (fr *filler) placeStreamed(rec *Record, id erasure.SegmentID, d *erasure.Descriptor, shards [][]byte, h *handoffs) *placement {
	self := fr.node.Self()
	var candidates []string
	for _, c := range fr.node.Rank(swarm.SegmentKey(id)) {
		// Not this edge, even where it ranks first: its uplink is the
		// stream's bottleneck, and placing a segment costs 1.5 times it.
		if c != self && fr.node.Alive(c) {
			if candidates = append(candidates, c); len(candidates) == handoffChoices {
				break
			}
		}
	}
	coord := h.pick(candidates)
	lanes := h.lanes
	if coord == "" || len(self) > swarm.MaxLeaseMember || rec.Size < 0 {
		return fr.place(id, d, shards)
	}
	msg := &swarm.PlaceMsg{Filler: self, Fill: (&fillRequest{Record: rec, Segment: id.Index}).Append(nil)}
	payload := msg.Append(swarm.AppendStat(nil, swarm.StatPlace))
	msg.Placed = true
	placed := msg.Append(swarm.AppendStat(nil, swarm.StatPlace))
	if len(placed) > swarm.MaxKey {
		return fr.place(id, d, shards)
	}
	p := newPlacement(1, 1, 1)
	p.streamed = true
	if !fr.bg.goTracked(0, func(ctx context.Context) {
		select {
		case lanes <- struct{}{}:
		case <-ctx.Done():
			p.settle(false)
			return
		}
		sctx, cancel := context.WithTimeout(ctx, placeTimeout)
		defer cancel()
		start := time.Now()
		_, err := fr.node.Stat(sctx, coord, payload)
		<-lanes
		took := time.Since(start)
		if err == nil {
			// The coordinator holds the segment and places it: asked
			// again, it answers once k shards are at their holders.
			_, err = fr.node.Stat(sctx, coord, placed)
		}
		fr.log.Debug("streamed segment handed to its coordinator", "coordinator", coord, "segment", id.String(), "pulled", took, "placed", time.Since(start), "err", err)
		if err == nil {
			fr.m.streamPlaced.WithLabelValues("coordinator").Inc()
			p.settle(true)
			return
		}
		fr.log.Debug("segment coordinator did not place a streamed segment, placing it here", "coordinator", coord, "segment", id.String(), "err", err)
		fr.m.streamPlaced.WithLabelValues("filler").Inc()
		local := fr.place(id, d, shards)
		select {
		case <-local.enough:
		case <-local.done:
		case <-ctx.Done():
		}
		p.settle(local.placed.Load() >= local.k)
	}) {
		return fr.place(id, d, shards)
	}
	return p
}

// take answers a swarm.StatPlace: as the coordinator of a segment being
// streamed by the member named, it reads the segment there (a whole
// Fill), checks that it codes to the descriptor it came with, keeps it in
// memory and starts placing its shards, and answers then: the filler's
// uplink is free for its next segment while this edge's pushes go on.
// Asked again with Placed, it answers once k shards are at their holders.
// Concurrent fills of the segment at this edge share the one read.
func (fr *filler) take(ctx context.Context, payload []byte) ([]byte, error) {
	if fr.refuseTake.Load() {
		return nil, fmt.Errorf("edge: stat mode %v not answered", swarm.StatPlace)
	}
	m, err := swarm.ParsePlaceMsg(payload)
	if err != nil {
		return nil, err
	}
	f, err := parseFillRequest(m.Fill)
	if err != nil {
		return nil, err
	}
	if _, _, err := fr.sites.split(f.Record.Key); err != nil {
		return nil, err
	}
	if m.Filler == fr.node.Self() {
		return nil, fmt.Errorf("edge: asked to place a segment of %s streamed by this edge", f.Record.Key)
	}
	r := f.Record
	id := erasure.SegmentID{Object: r.ID(), Index: f.Segment}
	ch := fr.fills.DoChan(string(swarm.SegmentKey(id)), func() (any, error) {
		if s, ok := fr.mem.Get(id); ok && s.d != nil {
			fr.m.fills.WithLabelValues(srcMemory).Inc()
			return filled{&swarm.Segment{Descriptor: s.d, Data: s.data, Source: srcMemory}, s.placed.Load()}, nil
		}
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), placeTimeout)
		defer cancel()
		return fr.pull(fctx, m.Filler, f)
	})
	var p *placement
	select {
	case res := <-ch:
		if res.Err != nil || !m.Placed {
			return nil, res.Err
		}
		p = res.Val.(filled).p
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if !fr.waitPlacedStreamed(ctx, p, 0) {
		return nil, fmt.Errorf("edge: segment %v not placed", id)
	}
	return nil, nil
}

// pull reads segment f.Segment of a streamed object from its filler,
// codes it, keeps it in memory and places its shards.
func (fr *filler) pull(ctx context.Context, from string, f *fillRequest) (filled, error) {
	r := f.Record
	id := erasure.SegmentID{Object: r.ID(), Index: f.Segment}
	_, n := r.Layout.Segment(int64(f.Segment), r.Size)
	s, err := fr.node.Fill(ctx, from, f.Append(nil))
	if err != nil {
		return filled{}, fmt.Errorf("edge: segment %v from its filler %s: %w", id, from, err)
	}
	if err := checkFilled(s, r, id, int(n), from); err != nil {
		return filled{}, err
	}
	if len(s.Data) != int(n) {
		return filled{}, fmt.Errorf("edge: filler %s answered segment %v with %d bytes, want %d", from, id, len(s.Data), n)
	}
	buf := make([]byte, fr.coder.EncodedLen(int(n)))
	copy(buf, s.Data)
	shards, d, err := fr.coder.EncodeInPlace(buf, int(n))
	if err != nil {
		return filled{}, err
	}
	if !d.Equal(s.Descriptor) {
		return filled{}, fmt.Errorf("edge: segment %v from %s does not code to the descriptor it came with", id, from)
	}
	ms := &memSegment{d: d, data: buf[:n:n], held: len(buf)}
	fr.mem.Add(id, ms)
	// The filler's shard last: its readers read the others' first.
	p := fr.placeLast(id, d, shards, from)
	p.streamed = true
	ms.placed.Store(p)
	fr.m.fills.WithLabelValues(srcPeer).Inc()
	return filled{&swarm.Segment{Descriptor: d, Data: ms.data, Source: srcPeer}, p}, nil
}
