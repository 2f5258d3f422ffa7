package edge

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/singleflight"

	"github.com/shoalcdn/shoal/erasure"
	"github.com/shoalcdn/shoal/internal/httpcache"
	"github.com/shoalcdn/shoal/internal/latency"
	"github.com/shoalcdn/shoal/internal/sizedlru"
	"github.com/shoalcdn/shoal/origin"
	"github.com/shoalcdn/shoal/store"
	"github.com/shoalcdn/shoal/swarm"
)

// errTooFewShards: the reachable holders could not supply k agreeing shards.
var errTooFewShards = errors.New("edge: too few shards reachable")

// errNotPlaced: more than m holders answered that they do not have their
// shard, so fewer than k exist (a gather's error wraps it along with
// errTooFewShards). Without it, the holders were slow or unreachable,
// which says nothing of whether the segment is still in the fleet.
var errNotPlaced = errors.New("edge: fewer than k shards placed")

// patientKey marks a context whose shard requests get patientFactor
// times the learned transfer timeout: a last try at the holders before a
// segment is declared lost.
type patientKey struct{}

const patientFactor = 4

func patiently(ctx context.Context) context.Context {
	return context.WithValue(ctx, patientKey{}, true)
}

// The read path below the object record is three roles, each with the
// collaborators it uses as fields and small interfaces for what it needs
// of the others:
//
//   - shardReader rebuilds a segment from the shards of its holders (this
//     edge's store first, then peers, hedged and verified): gather;
//   - reader serves a segment to a request: the memory tier, one read
//     per segment at a time, gather, then a Fill at the segment's
//     coordinator (fillAt, placement.go) or, when this edge is it, the
//     filler; with Config.Trust, the manifest check (signed.go);
//   - filler produces a segment as its coordinator, once per segment for
//     the fleet, and places its shards (fill, place, placement.go).

// background runs work that Shutdown waits for (tasks, background.go).
type background interface {
	// goTracked runs f on a goroutine Shutdown waits for, with timeout
	// (0: none but Shutdown's), and reports whether it did.
	goTracked(timeout time.Duration, f func(ctx context.Context)) bool
	// diskWrite runs f as a bounded background store write (with wait,
	// after waiting for a slot) and reports whether it did.
	diskWrite(wait bool, f func()) bool
}

// gatherer rebuilds a segment of n bytes from the shards of holders
// (shardReader.gather); fills and repair read segments through it.
type gatherer interface {
	gather(ctx context.Context, id erasure.SegmentID, n int, holders []string) ([]byte, *erasure.Descriptor, string, error)
}

// shardReader reads segments from the shards of their holders.
type shardReader struct {
	node   *swarm.Node
	store  *store.Store
	coder  *erasure.Coder
	params erasure.Params // the fleet's layout's
	hedge  *latency.HedgeTimer
	xfer   *latency.TransferClock // shard transfer timeouts
	m      *metrics
	log    *slog.Logger
	tracer trace.Tracer
	bg     background // rebuilt own shards are stored in the background
}

// segmentFiller produces a segment as its coordinator (filler.fill).
type segmentFiller interface {
	fill(ctx context.Context, r *Record, idx uint32) (*swarm.Segment, *placement, error)
	placeZoneCopy(id erasure.SegmentID, data []byte)
}

// placements is what the read path needs of repair (repair.go): the
// member sets the zone's shards were placed by before, and a note of the
// segments read through a Fill at another member.
type placements interface {
	previous() [][]string
	filledAt(seg erasure.SegmentID, coord string)
}

// streamLookup finds the streamed fills of objects (streamed.go): this
// edge's own, else the member filling one.
type streamLookup interface {
	filling(id erasure.ObjectID) (*streamFill, string)
	forgetFiller(id erasure.ObjectID)
}

// reader is the read path of one segment for a request.
type reader struct {
	node   *swarm.Node
	mem    *sizedlru.Cache[erasure.SegmentID, *memSegment]
	ids    objectIDs          // memo of Record.ID (objectids.go)
	reads  singleflight.Group // segment reads below the memory tier, by segment
	shards *shardReader
	filler segmentFiller
	repair placements
	signed *signed // nil unless Config.Trust is set
	// digests checks a segment of content by digest (registry.check).
	digests func(ctx context.Context, r *Record, idx uint32, data []byte) error
	// placedFills is !Config.DirectFills; fillProbe is Config.FillProbe.
	placedFills bool
	fillProbe   time.Duration
	streams     streamLookup // objects being filled, read from their stream
	m           *metrics
	log         *slog.Logger
	tracer      trace.Tracer
}

// segment returns segment idx of r's object and the tier it came from,
// checked against the object's signed manifest when the edge has trusted
// keys.
func (rd *reader) segment(ctx context.Context, r *Record, idx uint32) ([]byte, string, error) {
	data, src, err := rd.segmentAnySource(ctx, r, idx)
	if err == nil && rd.digests != nil && digestKey(r.Key) {
		if err := rd.digests(ctx, r, idx, data); err != nil {
			return nil, "", err
		}
	}
	if err != nil || rd.signed == nil {
		return data, src, err
	}
	return rd.signed.checkSigned(ctx, r, idx, data, src)
}

// segmentAnySource returns segment idx of r's object and the tier it came
// from: the memory tier, else one read per segment at a time on this edge,
// so that concurrent clients of the same object share it.
func (rd *reader) segmentAnySource(ctx context.Context, r *Record, idx uint32) (_ []byte, src string, err error) {
	id := erasure.SegmentID{Object: rd.ids.of(r), Index: idx}
	ctx, span := rd.tracer.Start(ctx, "edge.segment")
	recording := span.IsRecording() // attributes cost even when a no-op span drops them
	if recording {
		span.SetAttributes(attribute.String("shoal.object", r.Key), attribute.Int64("shoal.segment.index", int64(idx)))
	}
	start := time.Now()
	defer func() {
		if recording {
			span.SetAttributes(attribute.String("shoal.source", src))
		}
		if err != nil {
			span.SetStatus(codes.Error, err.Error())
		} else {
			rd.m.segmentTime(src).Observe(time.Since(start).Seconds())
		}
		span.End()
	}()
	if s, ok := rd.mem.Get(id); ok {
		return s.data, srcMemory, nil
	}
	ch := rd.reads.DoChan(string(swarm.SegmentKey(id)), func() (any, error) {
		// Detached from the first caller, so one client hanging up does not
		// fail the others; the segment lands in memory either way.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), segmentTimeout)
		defer cancel()
		return rd.readSegment(ctx, r, id)
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return nil, "", res.Err
		}
		out := res.Val.(segRead)
		return out.data, out.src, nil
	case <-ctx.Done():
		return nil, "", ctx.Err()
	}
}

// segmentTimeout bounds one segment read, whoever waits for it.
const segmentTimeout = 2 * time.Minute

type segRead struct {
	data []byte
	src  string
}

// readSegment is the read path below the memory tier: this edge's own
// shards; the holders' shards (k at a time, hedged); a Fill at the
// segment's coordinator, the first member in the segment's ranking that is
// not down (this edge itself at the latest, which fetches from the origin).
func (rd *reader) readSegment(ctx context.Context, r *Record, id erasure.SegmentID) (segRead, error) {
	var out segRead
	_, n := r.Layout.Segment(int64(id.Index), r.Size)
	if n == 0 {
		return out, fmt.Errorf("edge: segment %d out of range", id.Index)
	}
	holders := rd.node.Holders(id, r.Layout.Params.Total())
	if out, err, ok := rd.fromStream(ctx, r, id, int(n), holders); ok {
		return out, err
	}
	data, d, src, err := rd.shards.gather(ctx, id, int(n), holders)
	if err != nil && ctx.Err() == nil {
		data, d, src, err = rd.gatherPrevious(ctx, id, int(n), err)
	}
	if err == nil {
		if keepInMemory(ctx) {
			rd.mem.Add(id, &memSegment{d: d, data: data})
		}
		out = segRead{data, src}
		return out, nil
	}
	if ctx.Err() != nil {
		return out, ctx.Err()
	}
	rd.log.DebugContext(ctx, "segment not in the fleet, filling", "segment", id.String(), "err", err)

	self := rd.node.Self()
	for _, coord := range rd.node.Rank(swarm.SegmentKey(id)) {
		if coord == self {
			s, _, err := rd.filler.fill(ctx, r, id.Index)
			if err != nil {
				return out, err
			}
			out = segRead{s.Data, fillSource(s)}
			return out, nil
		}
		if !rd.node.Alive(coord) {
			continue
		}
		out, err := rd.fillAt(ctx, coord, r, id, int(n), holders, "")
		switch {
		case err == nil:
			return out, nil
		case ctx.Err() != nil:
			return out, ctx.Err()
		}
		var re *swarm.RemoteError
		if errors.As(err, &re) {
			// The coordinator is up and could not fill (the origin failed
			// or the object changed): asking the next would repeat that.
			return out, fmt.Errorf("edge: fill of %v at %s: %w", id, coord, err)
		}
		rd.log.WarnContext(ctx, "segment coordinator unreachable, trying the next", "coordinator", coord, "segment", id.String(), "err", err)
	}
	return out, fmt.Errorf("edge: segment %v: this edge is not a member of its own fleet", id) // unreachable: self is ranked
}

// fromStream reads a segment of an object being filled by a streamed
// fill (streamed.go): from this edge's stream, or with a Fill at the
// member filling it, never from the segment's coordinator, which would
// fetch a range of an object being filled. It reports false when the
// object is not being filled (or the stream no longer holds the
// segment): the usual path then reads it.
func (rd *reader) fromStream(ctx context.Context, r *Record, id erasure.SegmentID, n int, holders []string) (segRead, error, bool) {
	if rd.streams == nil {
		return segRead{}, nil, false
	}
	sf, holder := rd.streams.filling(id.Object)
	switch {
	case sf != nil:
		ms, err := sf.segment(ctx, id.Index)
		if errors.Is(err, errStreamEvicted) {
			return segRead{}, nil, false
		}
		if err != nil {
			return segRead{}, err, true
		}
		// Another request's fill: for this one, a hit (RFC 9211), from
		// memory.
		return segRead{ms.data, srcMemory}, nil, true
	case holder != "":
		// The filler's uplink carries the whole object into the fleet
		// while it streams: the segment's shards are read from the other
		// holders (its own only when they fail, by a whole Fill).
		out, err := rd.fillAt(ctx, holder, r, id, n, holders, holder)
		var re *swarm.RemoteError
		if err != nil && ctx.Err() == nil && !errors.As(err, &re) {
			// Unreachable (it died or shut down): the next request asks
			// the lease again, and this one reads the segment as any
			// other, from its holders, else with a Fill at its
			// coordinator (a ranged GET guarded by If-Range; a version
			// of the fleet's own cannot be, and fails). Its client may
			// have had the first segments already, from this edge's
			// memory: its response goes on rather than be cut.
			rd.streams.forgetFiller(id.Object)
			rd.log.InfoContext(ctx, "the filler of an object is unreachable, reading its segment from the fleet", "filler", holder, "segment", id.String(), "err", err)
			return segRead{}, nil, false
		}
		if err != nil {
			// This request fails (a slow filler is not a dead one); the
			// next asks the coordinator again (streamed.go).
			err = fmt.Errorf("edge: segment %v from its filler %s: %w", id, holder, err)
		} else if z := rd.node.ZoneOf(holder); z != rd.node.Zone() && len(rd.node.Zones()) > 1 {
			rd.filler.placeZoneCopy(id, out.data)
		}
		return out, err, true
	}
	// A stream that ended since the memory tier was looked at left its
	// segments there.
	if ms, ok := rd.mem.Get(id); ok {
		return segRead{ms.data, srcMemory}, nil, true
	}
	return segRead{}, nil, false
}

// without returns a copy of holders with member blanked out: an empty
// name, which no read asks.
func without(holders []string, member string) []string {
	out := slices.Clone(holders)
	for i, h := range out {
		if h == member {
			out[i] = ""
		}
	}
	return out
}

// fillSource maps where a coordinator found a segment to the label of the
// bytes this edge serves: whatever it had without the origin came from the
// fleet.
func fillSource(s *swarm.Segment) string {
	if s.Source == srcOrigin {
		return srcOrigin
	}
	return srcPeer
}

type shardResult struct {
	index  int
	d      *erasure.Descriptor
	data   []byte
	err    error
	peer   string
	hedged bool // asked for beyond the first k
}

// gather rebuilds a segment of n bytes from shards: this edge's own first,
// then from the holders, asking only as many as are still needed, one more
// after the hedge delay or after any failure. Shards are grouped by descriptor:
// only k shards that agree on one descriptor, each verified against it,
// are decoded, and the result is verified again, so no single peer can
// make this edge serve a wrong byte.
func (sr *shardReader) gather(ctx context.Context, id erasure.SegmentID, n int, holders []string) ([]byte, *erasure.Descriptor, string, error) {
	k, total := sr.params.K, sr.params.Total()
	self := sr.node.Self()
	groups := map[string]*shardGroup{}
	var ready *shardGroup
	add := func(i int, d *erasure.Descriptor, data []byte) {
		if d.Length != n || d.Params != sr.params {
			return
		}
		key := string(d.Append(nil))
		g := groups[key]
		if g == nil {
			g = &shardGroup{d: d, shards: make([][]byte, total)}
			groups[key] = g
		}
		if g.shards[i] == nil {
			g.shards[i] = data
			g.have++
		}
		if g.have >= k && ready == nil {
			ready = g
		}
	}
	var remote, ownMissing []int
	for i, h := range holders {
		if h != self {
			if sr.node.Alive(h) {
				remote = append(remote, i)
			}
			continue
		}
		if d, data, ok := sr.store.Shard(erasure.ShardID{Segment: id, Index: uint8(i)}); ok {
			add(i, d, data)
		} else {
			ownMissing = append(ownMissing, i)
		}
	}
	local := ready != nil
	if ready == nil && len(remote) > 1 {
		remote = sr.nearestFirst(holders, remote, n/k)
	}
	missing := false
	if ready == nil && len(remote) > 0 {
		missing = sr.fetchShards(ctx, id, (n+k-1)/k, holders, remote, add, func() int {
			if ready != nil {
				return 0
			}
			return k - maxHave(groups)
		})
	}
	if ready == nil && missing {
		return nil, nil, "", fmt.Errorf("%w: segment %v: %w", errTooFewShards, id, errNotPlaced)
	}
	if ready == nil {
		return nil, nil, "", fmt.Errorf("%w: segment %v", errTooFewShards, id)
	}
	_, dspan := sr.tracer.Start(ctx, "erasure.decode", traceAttrs(attribute.Int("shoal.bytes", n), attribute.Bool("shoal.local", local)))
	data, err := sr.coder.Decode(ready.d, ready.shards)
	dspan.End()
	if err != nil {
		return nil, nil, "", fmt.Errorf("edge: decoding %v: %w", id, err)
	}
	if len(ownMissing) > 0 {
		sr.repairOwn(id, ready.d, data, ownMissing)
	}
	if local {
		return data, ready.d, srcDisk, nil
	}
	return data, ready.d, srcPeer, nil
}

type shardGroup struct {
	d      *erasure.Descriptor
	shards [][]byte
	have   int
}

func maxHave(groups map[string]*shardGroup) int {
	m := 0
	for _, g := range groups {
		m = max(m, g.have)
	}
	return m
}

// fetchShards asks holders for the shards in candidates (indices, in order
// of preference), as many at a time as needed() says are missing, until
// needed() is zero or the candidates run out. add runs on this goroutine.
// Each request gets the learned timeout of a shard of shardLen bytes
// (internal/latency), patientFactor times it under a patient context. It
// reports whether it stopped because more than m holders said they do
// not have their shard.
func (sr *shardReader) fetchShards(ctx context.Context, id erasure.SegmentID, shardLen int, holders []string, candidates []int, add func(int, *erasure.Descriptor, []byte), needed func() int) (missing bool) {
	timeout := sr.xfer.Timeout(shardLen)
	if ctx.Value(patientKey{}) != nil {
		timeout *= patientFactor
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // cancels the requests still in flight once k arrived
	results := make(chan shardResult, len(candidates))
	next, inflight, first := 0, 0, needed()
	launch := func() bool {
		if next >= len(candidates) {
			return false
		}
		i, hedged := candidates[next], next >= first
		next++
		inflight++
		peer := holders[i]
		go func() {
			rctx, rcancel := context.WithTimeout(ctx, timeout)
			defer rcancel()
			start := time.Now()
			d, data, err := sr.node.GetShard(rctx, peer, erasure.ShardID{Segment: id, Index: uint8(i)})
			if err == nil {
				sr.hedge.Observe(time.Since(start))
			}
			sr.xfer.ObserveTransfer(rctx, shardLen, start, err)
			results <- shardResult{index: i, d: d, data: data, err: err, peer: peer, hedged: hedged}
		}()
		return true
	}
	for range first {
		launch()
	}
	hedge := time.NewTimer(sr.hedge.Delay())
	defer hedge.Stop()
	// More than m holders without their shard means fewer than k exist:
	// the segment is not (fully) placed yet, and asking the rest is waste.
	notFound, maxMissing := 0, sr.params.M
	for inflight > 0 {
		select {
		case r := <-results:
			inflight--
			if r.err != nil {
				if errors.Is(r.err, swarm.ErrNotFound) {
					if notFound++; notFound > maxMissing {
						return true
					}
				}
				var ie *erasure.IntegrityError
				if errors.As(r.err, &ie) {
					sr.m.corruptShards.WithLabelValues("peer").Inc()
					sr.log.WarnContext(ctx, "peer sent a corrupt shard", "peer", r.peer, "shard", r.index, "segment", id.String(), "err", r.err)
				}
				if launch() {
					sr.m.retries.Inc()
				}
				continue
			}
			add(r.index, r.d, r.data)
			need := needed()
			if need == 0 {
				if r.hedged {
					sr.m.hedgesWon.Inc()
				}
				return false
			}
			// Shards that disagree with the others leave a gap: keep
			// enough requests in flight to fill it.
			for inflight < need && launch() {
			}
		case <-hedge.C:
			// Re-armed: a holder may hold several of a segment's shards,
			// so the one extra request can go to the same slow peer.
			if launch() {
				sr.m.hedges.Inc()
				hedge.Reset(sr.hedge.Delay())
			}
		case <-ctx.Done():
			return false
		}
	}
	return false
}

// pushWait is how long a fill waits for a push slot before it drops the
// push: long enough to ride out a burst, short enough that slow holders do
// not hold up clients.
const pushWait = 500 * time.Millisecond

func (fr *filler) acquirePush() bool {
	select {
	case fr.pushSem <- struct{}{}:
		return true
	default:
	}
	t := time.NewTimer(pushWait)
	defer t.Stop()
	select {
	case fr.pushSem <- struct{}{}:
		return true
	case <-t.C:
		return false
	case <-fr.stop:
		return false
	}
}

// repairOwn rebuilds the shards this edge should hold of a segment it has
// just decoded but did not find in its store (lost, evicted, or deleted as
// corrupt) and stores them, in the background.
func (sr *shardReader) repairOwn(id erasure.SegmentID, d *erasure.Descriptor, seg []byte, missing []int) {
	if !sr.store.Writable() {
		return
	}
	sr.bg.diskWrite(false, func() {
		shards, nd, err := sr.coder.Encode(seg)
		if err != nil || !nd.Equal(d) {
			sr.log.Warn("re-encoding a segment did not reproduce its descriptor", "segment", id.String(), "err", err)
			return
		}
		for _, i := range missing {
			sid := erasure.ShardID{Segment: id, Index: uint8(i)}
			if err := sr.store.PutShard(sid, d, bytes.Clone(shards[i])); err != nil {
				return
			}
			sr.m.repairs.Inc()
		}
	})
}

// records is what a fill needs of the object records (records.go,
// vary.go).
type fillRecords interface {
	// forgetRecord drops r's record if it still names r's version.
	forgetRecord(r *Record)
	// fleetVariant reports whether the fleet can fetch the variant key.
	fleetVariant(key string) bool
}

// unplacer notes a segment whose fill could not place every shard
// (repairer.unplace), to be placed again.
type unplacer interface {
	unplace(seg erasure.SegmentID)
}

// filler fills segments as their coordinator: from memory, from the
// holders, from another zone, else from the origin, and places the
// shards on their holders (placement.go, zones.go).
type filler struct {
	node   *swarm.Node
	store  *store.Store
	coder  *erasure.Coder
	mem    *sizedlru.Cache[erasure.SegmentID, *memSegment]
	sites  *sites
	params erasure.Params
	xfer   *latency.TransferClock
	fills  singleflight.Group // segment fills as coordinator, by segment
	// pushSem holds the shard pushes to peers in flight.
	pushSem chan struct{}
	shards  gatherer
	records fillRecords
	repair  unplacer
	bg      background
	streams streamLookup // this edge's streamed fills answer Fills of their segments
	// holdersFirst: a segment's coordinator looks for it at its holders
	// before the origin even when it is the first of the ranking, as it
	// did not place it itself (a streamed fill did).
	holdersFirst bool
	// refuseTake answers StatPlace as an edge of a release before it
	// does (tests of the filler's fallback).
	refuseTake atomic.Bool
	stop       <-chan struct{} // closed at Shutdown
	m          *metrics
	log        *slog.Logger
	tracer     trace.Tracer
}

// fill produces a segment as its coordinator, once per segment at a time
// across all requesters: from memory if a previous fill left it there,
// else from the origin, placing the shards on their holders. The
// placement, when known, follows those shards (placement.go).
func (fr *filler) fill(ctx context.Context, r *Record, idx uint32) (_ *swarm.Segment, _ *placement, err error) {
	id := erasure.SegmentID{Object: r.ID(), Index: idx}
	ctx, span := fr.tracer.Start(ctx, "edge.fill", traceAttrs(
		attribute.String("shoal.object", r.Key), attribute.Int64("shoal.segment.index", int64(idx))))
	defer func() {
		if err != nil {
			span.SetStatus(codes.Error, err.Error())
		}
		span.End()
	}()
	if fr.streams != nil {
		// A segment of an object this edge is filling comes from its
		// stream once cut, never from a ranged fetch.
		if sf, _ := fr.streams.filling(id.Object); sf != nil {
			ms, err := sf.segment(ctx, idx)
			if err == nil {
				// The asker's request did not cause it: from the fleet.
				return &swarm.Segment{Descriptor: ms.d, Data: ms.data, Source: srcMemory}, ms.placed.Load(), nil
			}
			if !errors.Is(err, errStreamEvicted) {
				return nil, nil, err
			}
		}
	}
	ch := fr.fills.DoChan(string(swarm.SegmentKey(id)), func() (any, error) {
		if s, ok := fr.mem.Get(id); ok && s.d != nil {
			fr.m.fills.WithLabelValues(srcMemory).Inc()
			return filled{&swarm.Segment{Descriptor: s.d, Data: s.data, Source: srcMemory}, s.placed.Load()}, nil
		}
		// Detached: the fill serves every requester waiting on it.
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 60*time.Second)
		defer cancel()
		s, err := fr.placedMeanwhile(fctx, r, id)
		if err != nil && r.Streamed() && !errors.Is(err, errNotPlaced) && fctx.Err() == nil {
			// The holders were slow or unreachable, not without their
			// shards, and the fleet is this version's only source: one
			// more, patient, try before it is declared lost.
			s, err = fr.placedMeanwhile(patiently(fctx), r, id)
		}
		if err == nil {
			fr.m.fills.WithLabelValues(srcPeer).Inc()
			return filled{s, nil}, nil
		}
		if s, p, ok := fr.fromOtherZones(fctx, r, id); ok {
			fr.m.fills.WithLabelValues(srcOtherZone).Inc()
			return filled{s, p}, nil
		}
		s, p, err := fr.fetchAndPlace(fctx, r, idx)
		if err != nil {
			return nil, err
		}
		fr.m.fills.WithLabelValues(srcOrigin).Inc()
		return filled{s, p}, nil
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return nil, nil, res.Err
		}
		f := res.Val.(filled)
		span.SetAttributes(attribute.String("shoal.source", f.s.Source), attribute.Bool("shoal.coalesced", res.Shared))
		return f.s, f.p, nil
	case <-ctx.Done():
		return nil, nil, ctx.Err()
	}
}

// placedMeanwhile reads segment id from its holders when this edge fills
// it without being its first-ranked coordinator: the requester gave up on
// the members ranked above (dead, or silent on a congested link), and one
// of them may have placed the segment by now, in which case fetching it
// from the origin again would cost the origin a second copy.
func (fr *filler) placedMeanwhile(ctx context.Context, r *Record, id erasure.SegmentID) (*swarm.Segment, error) {
	if rank := fr.node.Rank(swarm.SegmentKey(id)); len(rank) == 0 || rank[0] == fr.node.Self() && !fr.holdersFirst {
		return nil, errNotPlaced // placed by this edge's own fills: not there
	}
	_, n := r.Layout.Segment(int64(id.Index), r.Size)
	data, d, _, err := fr.shards.gather(ctx, id, int(n), fr.node.Holders(id, r.Layout.Params.Total()))
	if err != nil {
		return nil, err
	}
	if keepInMemory(ctx) { // not for a prefetch (prefetch.go), as in readSegment
		fr.mem.Add(id, &memSegment{d: d, data: data})
	}
	return &swarm.Segment{Descriptor: d, Data: data, Source: srcPeer}, nil
}

// filled is the result of a fill: the segment and its placement.
type filled struct {
	s *swarm.Segment
	p *placement
}

// fetchAndPlace fetches segment idx from the origin, codes it, keeps it in
// the memory tier and sends each shard to its holder.
func (fr *filler) fetchAndPlace(ctx context.Context, r *Record, idx uint32) (*swarm.Segment, *placement, error) {
	id := erasure.SegmentID{Object: r.ID(), Index: idx}
	off, n := r.Layout.Segment(int64(idx), r.Size)
	ctx, span := fr.tracer.Start(ctx, "origin.fetch", traceAttrs(
		attribute.String("shoal.segment", id.String()), attribute.Int64("shoal.offset", off), attribute.Int64("shoal.bytes", n)))
	defer span.End()
	if r.Status != 0 {
		return nil, nil, fmt.Errorf("edge: a stored %d response to %s cannot be fetched by the fleet", r.Status, r.Key)
	}
	if r.Streamed() {
		// Its one response was its only source (Record.Validator): the
		// object is fetched again, as a new version.
		fr.records.forgetRecord(r)
		return nil, nil, fmt.Errorf("edge: segment %d of %s lost: %w (a version of the fleet's own is fetched whole)", idx, r.Key, swarm.ErrStale)
	}
	if digestKey(r.Key) {
		// Never made (streamResponse makes such records the fleet's own).
		return nil, nil, fmt.Errorf("edge: segment %d of registry content %s: its key is no origin target", idx, r.Key)
	}
	if httpcache.TargetOf(r.Key) != r.Key && !fr.records.fleetVariant(r.Key) {
		// A variant selected by fields the fleet does not send (vary.go):
		// a fetch of its own would get another one.
		return nil, nil, fmt.Errorf("edge: segment %d of a variant of %s cannot be fetched by the fleet", idx, httpcache.TargetOf(r.Key))
	}
	// The segment is read straight into the buffer its shards will live
	// in: systematic coding leaves the data shards as these very bytes.
	o, target, err := fr.sites.split(r.Key)
	if err != nil {
		return nil, nil, err
	}
	buf := make([]byte, fr.coder.EncodedLen(int(n)))
	if err := o.client.FetchVariantRange(ctx, target, httpcache.VariantFields(r.Key), r.IfRange(), r.Size, off, buf[:n]); err != nil {
		span.SetStatus(codes.Error, err.Error())
		if errors.Is(err, origin.ErrChanged) {
			// The object changed under the fleet: forget this version so the
			// next request looks it up again, and say so to whoever asked.
			fr.records.forgetRecord(r)
			return nil, nil, fmt.Errorf("edge: origin fetch of %s segment %d: %w: %w", r.Key, idx, swarm.ErrStale, err)
		}
		return nil, nil, fmt.Errorf("edge: origin fetch of %s segment %d: %w", r.Key, idx, err)
	}
	_, espan := fr.tracer.Start(ctx, "erasure.encode", traceAttrs(attribute.Int64("shoal.bytes", n)))
	shards, d, err := fr.coder.EncodeInPlace(buf, int(n))
	espan.End()
	if err != nil {
		return nil, nil, err
	}
	seg := buf[:n:n]
	ms := &memSegment{d: d, data: seg, held: len(buf)}
	fr.mem.Add(id, ms)
	p := fr.place(id, d, shards)
	ms.placed.Store(p)
	return &swarm.Segment{Descriptor: d, Data: seg, Source: srcOrigin}, p, nil
}

// place stores this edge's shards of a segment and pushes the others to
// their holders in the background, at most cap(pushSem) at a time; beyond
// that it drops them and counts it. The placement it returns follows them.
func (fr *filler) place(id erasure.SegmentID, d *erasure.Descriptor, shards [][]byte) *placement {
	return fr.placeLast(id, d, shards, "")
}

// placeLast is place with the shard of holder last, if it holds one, so
// that the k shards a placed answer waits for are on the others.
func (fr *filler) placeLast(id erasure.SegmentID, d *erasure.Descriptor, shards [][]byte, last string) *placement {
	self := fr.node.Self()
	holders := fr.node.Holders(id, len(shards))
	p := newPlacement(fr.params.K, len(holders), pushLanes)
	order := make([]int, 0, len(holders))
	for i, h := range holders {
		if h != last {
			order = append(order, i)
		}
	}
	for i, h := range holders {
		if h == last {
			order = append(order, i)
		}
	}
	for _, i := range order {
		h := holders[i]
		sid := erasure.ShardID{Segment: id, Index: uint8(i)}
		if h == self {
			// A copy: the shards share one allocation that should not stay
			// alive for one of them. The write (an fsync on disk) is off
			// the reader's path, but a disk that falls behind slows fills
			// down rather than lose the fleet's copies.
			data := bytes.Clone(shards[i])
			if !fr.bg.diskWrite(true, func() {
				err := fr.store.PutShard(sid, d, data)
				if err != nil {
					fr.log.Debug("own shard not stored", "shard", sid.String(), "err", err)
				}
				p.settle(err == nil)
			}) {
				fr.m.pushes.WithLabelValues("dropped").Inc()
				fr.repair.unplace(id)
				p.settle(false)
			}
			continue
		}
		if !fr.node.Alive(h) {
			fr.m.pushes.WithLabelValues("skipped").Inc()
			fr.repair.unplace(id)
			p.settle(false)
			continue
		}
		if !fr.acquirePush() {
			// A fill does not wait long for slow holders: the shards are
			// sent again later (repair.go), and a holder that misses its
			// shard rebuilds it when it next reads the segment.
			fr.m.pushes.WithLabelValues("dropped").Inc()
			fr.repair.unplace(id)
			p.settle(false)
			continue
		}
		data := shards[i]
		if !fr.bg.goTracked(0, func(ctx context.Context) {
			defer func() { <-fr.pushSem }()
			err := fr.push(ctx, p, h, sid, d, data)
			p.settle(err == nil)
			if err != nil {
				fr.m.pushes.WithLabelValues("error").Inc()
				fr.log.Debug("shard push failed", "peer", h, "shard", sid.String(), "err", err)
				fr.repair.unplace(id)
				return
			}
			fr.m.pushes.WithLabelValues("ok").Inc()
		}) {
			<-fr.pushSem
			p.settle(false)
		}
	}
	return p
}
