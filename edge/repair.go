package edge

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shoalcdn/shoal/erasure"
	"github.com/shoalcdn/shoal/internal/sizedlru"
	"github.com/shoalcdn/shoal/store"
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
	repairConfig

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

	// unplaced holds the segments whose fill could not send every shard
	// to its holder (a push dropped, failed or skipped), with the attempts
	// made to send them again; see replace.
	unplacedMu  sync.Mutex
	unplaced    map[erasure.SegmentID]int
	unplacedNew chan struct{}
	// filled notes the segments this edge read lately through a Fill at
	// another member, by that coordinator; see orphans.
	filled map[erasure.SegmentID]fillNote
}

type fillNote struct {
	coord string
	at    time.Time
}

// repairConfig is what a repairer is made of.
type repairConfig struct {
	node   *swarm.Node
	store  *store.Store
	mem    *sizedlru.Cache[erasure.SegmentID, *memSegment]
	coder  *erasure.Coder
	params erasure.Params
	reads  gatherer // segments are rebuilt from the old holders' shards
	// m has the pushes counter, shared with fills; the repairer registers
	// its own metrics in m.reg.
	m   *metrics
	log *slog.Logger
	// wake is what the swarm signals membership changes on.
	wake signal
	// delay is Config.RepairDelay: zero means 2s, negative turns repair
	// off; peerTimeout is Config.PeerTimeout.
	delay, peerTimeout time.Duration
}

func newRepairer(cfg repairConfig) *repairer {
	r := &repairer{
		repairConfig: cfg,

		unplaced:    map[erasure.SegmentID]int{},
		unplacedNew: make(chan struct{}, 1),
		filled:      map[erasure.SegmentID]fillNote{},
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
	r.m.reg.MustRegister(r.shards, r.segments, r.passes, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "shoal_repair_pending_segments", Help: "Segments of the current repair pass not yet looked at; 0 when redundancy is restored.",
	}, func() float64 { return float64(r.pending.Load()) }))
	return r
}

// signal wakes the repair loop: New makes it before the swarm, whose
// member changes notify it (the first as the swarm is made).
type signal chan struct{}

func newSignal() signal { return make(signal, 1) }

// notify wakes the repair loop; it never blocks (the swarm calls it with
// membership locked).
func (w signal) notify() {
	select {
	case w <- struct{}{}:
	default:
	}
}

// notify wakes the repair loop.
func (r *repairer) notify() { r.wake.notify() }

// run repairs after each change, once the member set has been still for
// the delay (a rolling restart or a lost rack is one burst of changes).
func (r *repairer) run(ctx context.Context) {
	if r.delay < 0 {
		return
	}
	initial := r.node.ZoneMembers()
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
		r.remember(r.node.ZoneMembers())
		for settled := false; !settled; {
			t := time.NewTimer(r.delay)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-r.wake:
				t.Stop()
				r.remember(r.node.ZoneMembers())
			case <-t.C:
				settled = true
			}
		}
		after := r.node.ZoneMembers()
		r.orphans(after)
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
				if interrupted || !slices.Equal(r.node.ZoneMembers(), after) {
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
	self := r.node.Self()
	total := r.params.Total()
	segs := map[erasure.SegmentID]erasure.ShardID{}
	for _, id := range r.store.IDs() {
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
	// One line per pass says what it did, for an operator (or a test)
	// asking why a segment was not repaired.
	mine, others := 0, 0
	defer func() {
		r.log.Info("repair pass", "gone", setMinus(before, after), "joined", setMinus(after, before), "members", len(after),
			"segments", len(segs), "responsible", mine, "left_to_others", others, "failed", len(failed))
	}()
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
			others++
			continue
		}
		mine++
		if err := r.segment(ctx, seg, held, old, now, moved); err != nil {
			r.segments.WithLabelValues("failed").Inc()
			r.log.Warn("repair of a segment failed", "segment", seg.String(), "err", err)
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
	d, _, ok := r.store.Shard(held)
	if !ok {
		return errShardGone
	}
	ctx, cancel := context.WithTimeout(ctx, segmentTimeout)
	defer cancel()
	// The survivors of the old placement first; then the new one and the
	// former ones, as shards placed while members changed may be anywhere.
	sets := [][]string{old, now}
	if h := r.history.Load(); h != nil {
		for _, set := range *h {
			sets = append(sets, swarm.Holders(set, seg, len(now)))
		}
	}
	n, hd := d.Length, d
	var data []byte
	var err error
	for _, holders := range sets {
		if data, d, _, err = r.reads.gather(ctx, seg, n, holders); err == nil || ctx.Err() != nil {
			break
		}
	}
	if err != nil {
		// Fewer than k shards in the fleet (a fill whose pushes failed):
		// this edge may still have the segment in its memory tier.
		s, ok := r.mem.Get(seg)
		if !ok || s.d == nil || !s.d.Equal(hd) {
			return err
		}
		data, d = s.data, s.d
	}
	shards, nd, err := r.coder.Encode(data)
	if err != nil {
		return err
	}
	if !nd.Equal(d) {
		return errReencode
	}
	self := r.node.Self()
	var pushErr error
	for _, i := range moved {
		sid := erasure.ShardID{Segment: seg, Index: uint8(i)}
		var err error
		if now[i] == self {
			if !r.store.Has(sid) {
				err = r.store.PutShard(sid, d, bytes.Clone(shards[i]))
			}
		} else {
			err = r.node.PutShard(ctx, now[i], sid, d, shards[i])
		}
		if err != nil {
			r.shards.WithLabelValues("error").Inc()
			r.log.Debug("repair push failed", "shard", sid.String(), "to", now[i], "err", err)
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

// setMinus returns the members of a not in b.
func setMinus(a, b []string) []string {
	var out []string
	for _, m := range a {
		if !slices.Contains(b, m) {
			out = append(out, m)
		}
	}
	return out
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
func (rd *reader) gatherPrevious(ctx context.Context, id erasure.SegmentID, n int, err error) ([]byte, *erasure.Descriptor, string, error) {
	if rd.repair == nil {
		return nil, nil, "", err
	}
	sets := rd.repair.previous()
	current := rd.node.ZoneMembers()
	tried := [][]string{current}
	for _, set := range sets {
		if len(set) < 2 || slices.ContainsFunc(tried, func(t []string) bool { return slices.Equal(t, set) }) {
			continue
		}
		tried = append(tried, set)
		data, d, src, perr := rd.shards.gather(ctx, id, n, swarm.Holders(set, id, rd.shards.params.Total()))
		if perr == nil {
			return data, d, src, nil
		}
		if ctx.Err() != nil {
			return nil, nil, "", ctx.Err()
		}
	}
	return nil, nil, "", err
}

// previous returns the member sets the zone's shards were placed by
// before the current one, newest first: the set before the latest change
// until its repair pass is done, then the history.
func (r *repairer) previous() [][]string {
	var sets [][]string
	if p := r.before.Load(); p != nil {
		sets = append(sets, *p)
	}
	if h := r.history.Load(); h != nil {
		sets = append(sets, *h...)
	}
	return sets
}

// maxPlaceAttempts bounds how often a segment's shards are sent again.
const maxPlaceAttempts = 6

// unplace records that a fill could not send every shard of seg to its
// holder; it never blocks.
func (r *repairer) unplace(seg erasure.SegmentID) {
	if r == nil || r.delay < 0 {
		return
	}
	r.unplacedMu.Lock()
	defer r.unplacedMu.Unlock()
	if _, ok := r.unplaced[seg]; !ok && len(r.unplaced) >= maxUnplaced {
		r.log.Debug("too many segments to place again: one is left as it is", "segment", seg.String())
		return
	}
	r.unplaced[seg] += 0
	select {
	case r.unplacedNew <- struct{}{}:
	default:
	}
}

// maxUnplaced bounds the segments waiting to be placed again.
const maxUnplaced = 4096

// replace sends the shards of segments whose fill could not place them
// all once more, from this edge's memory tier, to their holders under the
// current placement. A push dropped because too many were in flight, or
// failed because a holder was slow or dying, is otherwise made up only by
// that holder's next read of the segment; and when fewer than k of a
// segment's shards landed, by nobody: reads are served from the memory
// tier of the coordinator, which does not place again, and repair after a
// membership change cannot rebuild the segment from fewer than k shards.
// Attempts back off from the repair delay; a segment gone from memory is
// left (the next fill from the origin places it).
func (r *repairer) replace(ctx context.Context) {
	if r.delay < 0 {
		return
	}
	wait := r.delay
	for {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-r.unplacedNew:
			// Give the pushes of the burst time to finish.
			t.Stop()
			select {
			case <-ctx.Done():
				return
			case <-time.After(r.delay):
			}
		case <-t.C:
		}
		r.unplacedMu.Lock()
		todo := make(map[erasure.SegmentID]int, len(r.unplaced))
		for seg, n := range r.unplaced {
			todo[seg] = n
		}
		r.unplacedMu.Unlock()
		if len(todo) == 0 {
			wait = time.Hour
			continue
		}
		maxTried := 0
		for seg, n := range todo {
			if ctx.Err() != nil {
				return
			}
			err := r.placeAgain(ctx, seg)
			r.unplacedMu.Lock()
			switch {
			case err == nil || errors.Is(err, errNotInMemory) || n+1 >= maxPlaceAttempts:
				delete(r.unplaced, seg)
				if err != nil {
					r.log.Warn("segment not placed again", "segment", seg.String(), "attempts", n+1, "err", err)
				}
			default:
				r.unplaced[seg] = n + 1
				maxTried = max(maxTried, n+1)
			}
			r.unplacedMu.Unlock()
		}
		wait = r.delay << min(2*maxTried, 6)
	}
}

var (
	errNotInMemory = errors.New("edge: the segment is gone from the memory tier")
	errHolderDown  = errors.New("edge: a holder is down")
)

// placeAgain sends every shard of seg, re-encoded from the memory tier,
// to its holder under the current placement (storing this edge's own).
func (r *repairer) placeAgain(ctx context.Context, seg erasure.SegmentID) error {
	s, ok := r.mem.Get(seg)
	if !ok || s.d == nil {
		return errNotInMemory
	}
	shards, d, err := r.coder.Encode(s.data)
	if err != nil {
		return err
	}
	if !d.Equal(s.d) {
		return errReencode
	}
	self := r.node.Self()
	var pushErr error
	for i, h := range r.node.Holders(seg, len(shards)) {
		sid := erasure.ShardID{Segment: seg, Index: uint8(i)}
		if h == self {
			if !r.store.Has(sid) {
				if err := r.store.PutShard(sid, d, bytes.Clone(shards[i])); err != nil {
					pushErr = err
				}
			}
			continue
		}
		if !r.node.Alive(h) {
			pushErr = errHolderDown
			continue
		}
		pctx, cancel := context.WithTimeout(ctx, r.peerTimeout)
		err := r.node.PutShard(pctx, h, sid, d, shards[i])
		cancel()
		if err != nil {
			r.log.Debug("shard sent again: push failed", "shard", sid.String(), "to", h, "err", err)
			pushErr = err
			continue
		}
		r.m.pushes.WithLabelValues("ok").Inc()
	}
	return pushErr
}

// fillWatch is how long after a Fill at another member this edge stands
// ready to place the segment in the coordinator's stead: longer than it
// takes to notice a crash.
const fillWatch = time.Minute

// filledAt notes that this edge read seg through a Fill at coord and
// keeps it in memory.
func (r *repairer) filledAt(seg erasure.SegmentID, coord string) {
	if r == nil || r.delay < 0 {
		return
	}
	r.unplacedMu.Lock()
	defer r.unplacedMu.Unlock()
	if len(r.filled) >= maxUnplaced {
		r.pruneFilledLocked(time.Now())
		if len(r.filled) >= maxUnplaced {
			return
		}
	}
	r.filled[seg] = fillNote{coord, time.Now()}
}

func (r *repairer) pruneFilledLocked(now time.Time) {
	for seg, f := range r.filled {
		if now.Sub(f.at) > fillWatch {
			delete(r.filled, seg)
		}
	}
}

// orphans hands the segments this edge read lately through a Fill at a
// member that is gone to replace: a coordinator that crashes right after
// a fill leaves its pushes unfinished, maybe fewer than k shards in the
// fleet, and the readers' memory tiers the only full copies.
func (r *repairer) orphans(members []string) {
	r.unplacedMu.Lock()
	r.pruneFilledLocked(time.Now())
	var segs []erasure.SegmentID
	for seg, f := range r.filled {
		if !slices.Contains(members, f.coord) {
			segs = append(segs, seg)
			delete(r.filled, seg)
		}
	}
	r.unplacedMu.Unlock()
	for _, seg := range segs {
		r.unplace(seg)
	}
}
