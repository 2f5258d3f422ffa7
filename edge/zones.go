package edge

import (
	"cmp"
	"context"
	"slices"
	"time"

	"go.opentelemetry.io/otel/attribute"

	"github.com/shoalcdn/shoal/erasure"
	"github.com/shoalcdn/shoal/swarm"
)

// srcOtherZone labels a fill satisfied by the holders of another zone.
const srcOtherZone = "other_zone"

// fromOtherZones is the second tier of a fill, before the origin: a zone
// whose holders lack a segment reads it from another zone's holders (the
// zones in name order), then places its shards within its own zone, so
// that the zone's next readers find them there. The coordinator runs it
// once per segment for the zone.
func (fr *filler) fromOtherZones(ctx context.Context, r *Record, id erasure.SegmentID) (*swarm.Segment, *placement, bool) {
	zones := fr.node.Zones()
	if len(zones) < 2 {
		return nil, nil, false
	}
	_, n := r.Layout.Segment(int64(id.Index), r.Size)
	total := r.Layout.Params.Total()
	for _, z := range zones[1:] {
		holders := fr.node.ZoneHolders(z, id, total)
		if len(holders) == 0 {
			continue
		}
		zctx, span := fr.tracer.Start(ctx, "edge.other_zone", traceAttrs(
			attribute.String("shoal.segment", id.String()), attribute.String("shoal.peer.zone", z)))
		data, d, _, err := fr.shards.gather(zctx, id, int(n), holders)
		span.End()
		if err != nil {
			if ctx.Err() != nil {
				return nil, nil, false
			}
			fr.log.DebugContext(ctx, "segment not in another zone", "zone", z, "segment", id.String(), "err", err)
			continue
		}
		ms := &memSegment{d: d, data: data}
		fr.mem.Add(id, ms)
		var p *placement
		shards, nd, err := fr.coder.Encode(data)
		if err == nil && nd.Equal(d) {
			p = fr.place(id, d, shards)
			ms.placed.Store(p)
		} else {
			fr.log.Warn("re-encoding a segment from another zone did not reproduce its descriptor", "segment", id.String(), "err", err)
		}
		return &swarm.Segment{Descriptor: d, Data: data, Source: srcPeer}, p, true
	}
	return nil, nil, false
}

// placeZoneCopy places a copy of segment id, read from a member of
// another zone (a streamed fill's filler), within this edge's zone, as
// fromOtherZones does for a coordinator: so that the zone serves it on its
// own. Several readers of one zone may each place it while the fill is in
// progress: the holders then store what they already have.
func (fr *filler) placeZoneCopy(id erasure.SegmentID, data []byte) {
	shards, d, err := fr.coder.Encode(data)
	if err != nil {
		fr.log.Warn("could not code a segment read from another zone", "segment", id.String(), "err", err)
		return
	}
	ms := &memSegment{d: d, data: data}
	ms.placed.Store(fr.place(id, d, shards))
	fr.mem.Add(id, ms)
}

// nearestFirst orders shard indices by the measured cost of fetching a
// shard of about size bytes from their holders: the holders are of one
// zone already, so this is smoothed RTT, recent throughput and failures.
// Ties keep shard order.
func (sr *shardReader) nearestFirst(holders []string, idx []int, size int) []int {
	cost := make(map[string]time.Duration, len(idx))
	for _, i := range idx {
		if _, ok := cost[holders[i]]; !ok {
			cost[holders[i]] = sr.node.Cost(holders[i], size)
		}
	}
	out := slices.Clone(idx)
	slices.SortStableFunc(out, func(a, b int) int { return cmp.Compare(cost[holders[a]], cost[holders[b]]) })
	return out
}
