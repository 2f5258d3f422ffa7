package edge

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shoalcdn/shoal/erasure"
	"github.com/shoalcdn/shoal/swarm"
)

// repairer restores redundancy after the member set of this edge's zone
// changes. Placement is rank-based, so a leave, a death or a join moves
// the shards whose rank changed; for each segment this edge holds a shard
// of, the first holder of the old placement still alive is responsible:
// it gathers k shards from the old holders (the survivors), rebuilds the
// segment, and sends each moved shard to its new holder, one segment at a
// time and paced by the peer upload limit. Everyone computes the same
// responsible member, so each segment is repaired once, without the
// origin and without a scheduler.
type repairer struct {
	e     *Edge
	wake  chan struct{}
	delay time.Duration
	// before is the zone's member set the fleet's shards are placed by:
	// the set before the latest change until its repair pass is done.
	before atomic.Pointer[[]string]
	// history holds the last member sets the zone's placement followed,
	// newest first, the current one included: shards stay where a former
	// placement put them until evicted, and reads look there.
	history atomic.Pointer[[][]string]

	shards   *prometheus.CounterVec
	segments *prometheus.CounterVec
	pending  atomic.Int64
	passes   prometheus.Counter
}

func newRepairer(e *Edge) *repairer {
	r := &repairer{
		e:     e,
		wake:  make(chan struct{}, 1),
		delay: e.cfg.RepairDelay,
		shards: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_repair_shards_total", Help: "Shards rebuilt and sent to their new holder after a membership change, by result (ok, error).",
		}, []string{"result"}),
		segments: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_repair_segments_total", Help: "Segments this edge was responsible for repairing after a membership change, by result (rebuilt, failed).",
		}, []string{"result"}),
		passes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shoal_repair_passes_total", Help: "Repair passes over the shard store after membership changes.",
		}),
	}
	if r.delay == 0 {
		r.delay = 2 * time.Second
	}
	for _, l := range []string{"ok", "error"} {
		r.shards.WithLabelValues(l)
	}
	for _, l := range []string{"rebuilt", "failed"} {
		r.segments.WithLabelValues(l)
	}
	e.m.reg.MustRegister(r.shards, r.segments, r.passes, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "shoal_repair_pending_segments", Help: "Segments of the current repair pass not yet looked at; 0 when redundancy is restored.",
	}, func() float64 { return float64(r.pending.Load()) }))
	return r
}

// notify wakes the repair loop; it never blocks (the swarm calls it with
// membership locked).
func (r *repairer) notify() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// run repairs after each change, once the member set has been still for
// the delay (a rolling restart or a lost rack is one burst of changes).
func (r *repairer) run(ctx context.Context) {
	if r.delay < 0 {
		return
	}
	initial := r.e.node.ZoneMembers()
	r.before.Store(&initial)
	r.remember(initial)
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.wake:
		}
		// Reads look at every set seen, settled or not: shards may have
		// been placed by any of them.
		r.remember(r.e.node.ZoneMembers())
		for settled := false; !settled; {
			t := time.NewTimer(r.delay)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-r.wake:
				t.Stop()
				r.remember(r.e.node.ZoneMembers())
			case <-t.C:
				settled = true
			}
		}
		after := r.e.node.ZoneMembers()
		before := *r.before.Load()
		if slices.Equal(after, before) {
			continue
		}
		// Alone before (starting up, joining a fleet), this edge's shards
		// followed no placement the fleet shared: nothing to repair.
		if len(before) > 1 && len(after) > 1 {
			r.passes.Inc()
			failed := r.pass(ctx, before, after, nil)
			// Pushes fail when a holder is slow or dying: try the failed
			// segments again a few times, waiting longer each time, unless
			// the members change again.
			interrupted := false
			for wait := 4 * r.delay; len(failed) > 0 && wait <= 64*r.delay; wait *= 4 {
				t := time.NewTimer(wait)
				select {
				case <-ctx.Done():
					t.Stop()
					return
				case <-r.wake:
					t.Stop()
					interrupted = true
				case <-t.C:
				}
				if interrupted || !slices.Equal(r.e.node.ZoneMembers(), after) {
					interrupted = true
					r.notify() // the next round of the loop
					break
				}
				failed = r.pass(ctx, before, after, failed)
			}
			if interrupted && len(failed) > 0 {
				// The next pass starts from the same placement, so that it
				// covers what this one could not finish.
				continue
			}
		}
		r.before.Store(&after)
		r.remember(after)
	}
}

// pass repairs every segment the store holds a shard of whose placement
// differs between the member sets before and after (only those in only,
// when it is not nil), and returns those that failed.
func (r *repairer) pass(ctx context.Context, before, after []string, only map[erasure.SegmentID]bool) (failed map[erasure.SegmentID]bool) {
	e := r.e
	self := e.node.Self()
	total := e.cfg.Layout.Params.Total()
	segs := map[erasure.SegmentID]erasure.ShardID{}
	for _, id := range e.store.shardIDs() {
		if only == nil || only[id.Segment] {
			segs[id.Segment] = id
		}
	}
	r.pending.Store(int64(len(segs)))
	defer r.pending.Store(0)
	alive := make(map[string]bool, len(after))
	for _, m := range after {
		alive[m] = true
	}
	for seg, held := range segs {
		if ctx.Err() != nil {
			return failed
		}
		r.pending.Add(-1)
		old := swarm.Holders(before, seg, total)
		now := swarm.Holders(after, seg, total)
		var moved []int
		for i := range now {
			if i >= len(old) || old[i] != now[i] {
				moved = append(moved, i)
			}
		}
		if len(moved) == 0 {
			continue
		}
		var responsible string
		for _, h := range old {
			if alive[h] {
				responsible = h
				break
			}
		}
		if responsible != self {
			continue
		}
		if err := r.segment(ctx, seg, held, old, now, moved); err != nil {
			r.segments.WithLabelValues("failed").Inc()
			e.log.Warn("repair of a segment failed", "segment", seg.String(), "err", err)
			if failed == nil {
				failed = map[erasure.SegmentID]bool{}
			}
			failed[seg] = true
			continue
		}
		r.segments.WithLabelValues("rebuilt").Inc()
	}
	return failed
}

// segment rebuilds one segment from the surviving old holders and sends
// the moved shards to their new holders.
func (r *repairer) segment(ctx context.Context, seg erasure.SegmentID, held erasure.ShardID, old, now []string, moved []int) error {
	e := r.e
	d, _, ok := e.store.Shard(held)
	if !ok {
		return errShardGone
	}
	ctx, cancel := context.WithTimeout(ctx, segmentTimeout)
	defer cancel()
	// The survivors of the old placement first; then the new one and the
	// former ones, as shards placed while members changed may be anywhere.
	sets := [][]string{old, now}
	if h := e.repair.history.Load(); h != nil {
		for _, set := range *h {
			sets = append(sets, swarm.Holders(set, seg, len(now)))
		}
	}
	n := d.Length
	var data []byte
	var err error
	for _, holders := range sets {
		if data, d, _, err = e.gather(ctx, seg, n, holders); err == nil || ctx.Err() != nil {
			break
		}
	}
	if err != nil {
		return err
	}
	shards, nd, err := e.coder.Encode(data)
	if err != nil {
		return err
	}
	if !nd.Equal(d) {
		return errReencode
	}
	self := e.node.Self()
	var pushErr error
	for _, i := range moved {
		sid := erasure.ShardID{Segment: seg, Index: uint8(i)}
		var err error
		if now[i] == self {
			if !e.store.Has(sid) {
				err = e.store.PutShard(sid, d, bytes.Clone(shards[i]))
			}
		} else {
			err = e.node.PutShard(ctx, now[i], sid, d, shards[i])
		}
		if err != nil {
			r.shards.WithLabelValues("error").Inc()
			e.log.Debug("repair push failed", "shard", sid.String(), "to", now[i], "err", err)
			pushErr = err
			continue
		}
		r.shards.WithLabelValues("ok").Inc()
	}
	return pushErr
}

var (
	errShardGone = errors.New("edge: repair: the held shard is gone from the store")
	errReencode  = errors.New("edge: repair: re-encoding did not reproduce the descriptor")
)

// shardIDs lists the shards in the store.
func (s *Store) shardIDs() []erasure.ShardID {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.index.Keys()
}

// historyLen is how many former placements reads look at.
const historyLen = 4

// remember records a member set the zone's placement follows.
func (r *repairer) remember(members []string) {
	var h [][]string
	if p := r.history.Load(); p != nil {
		h = *p
	}
	if len(h) > 0 && slices.Equal(h[0], members) {
		return
	}
	nh := append([][]string{members}, h[:min(len(h), historyLen-1)]...)
	r.history.Store(&nh)
}

// gatherPrevious is the read path's answer to membership changes not yet
// repaired: when the current holders of a segment cannot supply k shards,
// it asks the holders of the placements before (those still members),
// newest first, who keep their shards until the repair has moved them and
// after. It returns err when none has the segment.
func (e *Edge) gatherPrevious(ctx context.Context, id erasure.SegmentID, n int, err error) ([]byte, *erasure.Descriptor, string, error) {
	if e.repair == nil {
		return nil, nil, "", err
	}
	var sets [][]string
	if p := e.repair.before.Load(); p != nil {
		sets = append(sets, *p)
	}
	if h := e.repair.history.Load(); h != nil {
		sets = append(sets, *h...)
	}
	current := e.node.ZoneMembers()
	tried := [][]string{current}
	for _, set := range sets {
		if len(set) < 2 || slices.ContainsFunc(tried, func(t []string) bool { return slices.Equal(t, set) }) {
			continue
		}
		tried = append(tried, set)
		data, d, src, perr := e.gather(ctx, id, n, swarm.Holders(set, id, e.cfg.Layout.Params.Total()))
		if perr == nil {
			return data, d, src, nil
		}
		if ctx.Err() != nil {
			return nil, nil, "", ctx.Err()
		}
	}
	return nil, nil, "", err
}
