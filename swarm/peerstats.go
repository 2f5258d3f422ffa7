package swarm

import (
	"maps"
	"math"
	"sync"
	"time"
)

// peerHealth is what a node knows of each peer's health: the backoff
// after a failure (down-marking), and what it measured (payload bytes each
// way, recent shard throughput, decaying failures, shards that failed
// verification). The transport marks peers down and up; the client and
// the server report what they exchanged. It calls nothing else, so the
// transport may call it with its own lock held.
type peerHealth struct {
	mu    sync.Mutex
	down  map[string]downState
	stats map[string]*peerStats // measured, by peer address
	// zoneShards counts the shard bytes fetched from peers of this zone
	// [0] and of other zones [1].
	zoneShards [2]uint64
	// lastErr is each peer's last failed connection, by address (as
	// dialled, or the remote address of an accepted one).
	lastErr map[string]connectFailure
	// failures counts failed connections by reason.
	failures map[string]uint64
	// logged is when a failure of each peer and reason was last logged.
	logged map[string]time.Time
}

// connectFailure is a peer's last failed connection.
type connectFailure struct {
	err *ConnectError
	at  time.Time
}

// connectLogInterval is how often one peer's failures of one reason are
// logged: a peer that fails every dial would fill the log otherwise.
const connectLogInterval = time.Minute

// connectFailed records a failed connection and reports whether to log
// it: the first of its peer and reason in connectLogInterval.
func (h *peerHealth) connectFailed(e *ConnectError, now time.Time) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.failures[e.Reason]++
	h.lastErr[e.Peer] = connectFailure{err: e, at: now}
	k := e.Peer + "\x00" + e.Reason
	if t, ok := h.logged[k]; ok && now.Sub(t) < connectLogInterval {
		return false
	}
	if len(h.logged) > 4096 {
		// Accepted connections come from any address: forget the old.
		for k, t := range h.logged {
			if now.Sub(t) >= connectLogInterval {
				delete(h.logged, k)
			}
		}
	}
	h.logged[k] = now
	return true
}

// lastFailure returns peer's last failed connection, or nil.
func (h *peerHealth) lastFailure(peer string) (*ConnectError, time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	f := h.lastErr[peer]
	return f.err, f.at
}

// downState is a peer's backoff after a failure.
type downState struct {
	until   time.Time
	backoff time.Duration
}

// peerStats is what a node has measured of one peer: payload bytes each
// way, recent shard throughput, recent failures, and shards that failed
// verification.
type peerStats struct {
	sent, received uint64  // payload bytes (shards, segments, records)
	shards         uint64  // bytes of shards fetched that verified
	rate           float64 // bytes/s of recent shard bodies, smoothed; 0 unknown
	failures       float64 // recent failures, decaying with failureHalfLife
	lastFailure    time.Time
	corrupt        uint64
	avoidUntil     time.Time // after a corrupt shard
	inflight       int       // shard requests of this node to the peer not answered yet
}

const (
	// failureHalfLife is how fast a failure is forgiven in the ordering.
	failureHalfLife = 30 * time.Second
	// CorruptAvoidance is how long a peer that sent a shard failing
	// verification is not asked again.
	CorruptAvoidance = time.Minute
	// rateMinBytes: smaller bodies say more about latency than throughput.
	rateMinBytes = 32 << 10
	// failurePenalty is what one recent failure adds to a peer's cost.
	failurePenalty = 100 * time.Millisecond
	// inflightCost is what a shard request in flight adds to the cost of
	// a peer whose throughput is not known yet.
	inflightCost = 10 * time.Millisecond
)

func newPeerHealth() *peerHealth {
	return &peerHealth{
		down: make(map[string]downState), stats: make(map[string]*peerStats),
		lastErr: make(map[string]connectFailure), failures: make(map[string]uint64), logged: make(map[string]time.Time),
	}
}

// statsLocked returns peer's record, creating it; h.mu must be held.
func (h *peerHealth) statsLocked(peer string) *peerStats {
	s := h.stats[peer]
	if s == nil {
		s = &peerStats{}
		h.stats[peer] = s
	}
	return s
}

func (s *peerStats) decayedFailures(now time.Time) float64 {
	if s.failures == 0 {
		return 0
	}
	return s.failures * math.Exp2(-now.Sub(s.lastFailure).Seconds()/failureHalfLife.Seconds())
}

// markDown starts or lengthens peer's backoff: 0.5s, doubling to 30s.
func (h *peerHealth) markDown(peer string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	d := h.down[peer]
	d.backoff = min(max(2*d.backoff, 500*time.Millisecond), 30*time.Second)
	d.until = time.Now().Add(d.backoff)
	h.down[peer] = d
}

// up ends peer's backoff: a dial to it succeeded.
func (h *peerHealth) up(peer string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.down, peer)
}

// isDown reports whether peer is in its backoff at now.
func (h *peerHealth) isDown(peer string, now time.Time) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return now.Before(h.down[peer].until)
}

// usable reports whether peer is neither in its backoff nor avoided after
// a corrupt shard at now.
func (h *peerHealth) usable(peer string, now time.Time) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.stats[peer]
	return now.After(h.down[peer].until) && !(s != nil && now.Before(s.avoidUntil))
}

// observe records the outcome of a request to peer; sameZone says whether
// peer is in this node's zone.
func (h *peerHealth) observe(peer string, sameZone bool, op Op, result string, sent, received int, took time.Duration) {
	now := time.Now()
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.statsLocked(peer)
	s.sent += uint64(sent)
	s.received += uint64(received)
	switch result {
	case "ok":
		if op == OpGetShard {
			s.shards += uint64(received)
			if sameZone {
				h.zoneShards[0] += uint64(received)
			} else {
				h.zoneShards[1] += uint64(received)
			}
		}
		if op == OpGetShard && received >= rateMinBytes && took > 0 {
			r := float64(received) / took.Seconds()
			if s.rate == 0 {
				s.rate = r
			} else {
				s.rate = 0.8*s.rate + 0.2*r
			}
		}
	case "corrupt":
		s.corrupt++
		s.avoidUntil = now.Add(CorruptAvoidance)
		fallthrough
	case "error", "down":
		s.failures = s.decayedFailures(now) + 1
		s.lastFailure = now
	}
}

// countServed records payload bytes this node exchanged with peer as the
// server of a request.
func (h *peerHealth) countServed(peer string, sent, received int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.statsLocked(peer)
	s.sent += uint64(sent)
	s.received += uint64(received)
}

// measured returns peer's recent shard throughput (0: unknown) and its
// decayed failures at now.
func (h *peerHealth) measured(peer string, now time.Time) (rate, failures float64, inflight int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if s := h.stats[peer]; s != nil {
		return s.rate, s.decayedFailures(now), s.inflight
	}
	return 0, 0, 0
}

// asking counts a shard request to peer in flight until the function it
// returns is called.
func (h *peerHealth) asking(peer string) (done func()) {
	h.mu.Lock()
	h.statsLocked(peer).inflight++
	h.mu.Unlock()
	return func() {
		h.mu.Lock()
		h.statsLocked(peer).inflight--
		h.mu.Unlock()
	}
}

// fill sets the fields of p that peer health knows, at now.
func (h *peerHealth) fill(p *PeerInfo, now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if s := h.stats[p.Addr]; s != nil {
		p.PayloadSent, p.PayloadReceived = s.sent, s.received
		p.Throughput, p.Failures = s.rate, s.decayedFailures(now)
		p.CorruptShards, p.ShardBytesReceived = s.corrupt, s.shards
		if now.Before(s.avoidUntil) {
			p.AvoidedUntil = s.avoidUntil
		}
	}
	if d := h.down[p.Addr]; now.Before(d.until) {
		p.Down, p.DownUntil = true, d.until
	}
	if f := h.lastErr[p.Addr]; f.err != nil {
		p.LastError, p.LastErrorAt = f.err, f.at
	}
}

// PeerInfo is what a node knows about one member of the fleet.
type PeerInfo struct {
	// Addr is the member's peer address; Self marks this node.
	Addr string
	Self bool
	// Connected reports an open connection dialled to the member; RTT is
	// its smoothed round-trip time (zero without a connection).
	Connected bool
	RTT       time.Duration
	// Down reports that the member failed recently and is being skipped
	// until DownUntil.
	Down      bool
	DownUntil time.Time
	// BytesSent and BytesReceived count the QUIC payload exchanged on the
	// current connection (retransmissions included).
	BytesSent, BytesReceived uint64
	// Member is what membership says of the peer: ID, zone, state.
	Member Member
	// PayloadSent and PayloadReceived count the shard, segment and record
	// bytes exchanged with the peer since this node started, both as
	// client and as server.
	PayloadSent, PayloadReceived uint64
	// Throughput is the peer's recent shard throughput in bytes/s (zero
	// until measured); Failures its recent failures, decaying with a
	// half-life of 30s.
	Throughput float64
	Failures   float64
	// CorruptShards counts shards from the peer that failed verification;
	// AvoidedUntil is when it is asked again after the last one.
	CorruptShards uint64
	AvoidedUntil  time.Time
	// ShardBytesReceived counts the bytes of the shards fetched from the
	// peer that verified, since this node started.
	ShardBytesReceived uint64
	// LastError is the last failed connection with the peer (nil: none
	// since this node started), at LastErrorAt. It stays after the peer
	// recovers: compare LastErrorAt with Connected.
	LastError   *ConnectError
	LastErrorAt time.Time
	// Layout is what the peer said of its layout (unknown until they
	// met, or from a release before the exchange). Incompatible marks a
	// peer whose layout differs from this node's: it is kept out of
	// placement and coordination, listed here only.
	Layout       FleetLayout
	Incompatible bool
}

// ConnectFailures returns the failed connections with peers since this
// node started, by reason (the Reason constants).
func (n *Node) ConnectFailures() map[string]uint64 {
	h := n.health
	h.mu.Lock()
	defer h.mu.Unlock()
	return maps.Clone(h.failures)
}

// Peers returns every member with its connection state, in member order,
// then the members kept out for an incompatible layout.
func (n *Node) Peers() []PeerInfo {
	sus := n.mem.suspects()
	now := time.Now()
	v := n.mem.view.Load()
	out := make([]PeerInfo, 0, len(v.all)+len(v.incompatible))
	add := func(m Member, incompatible bool) {
		p := PeerInfo{Addr: m.Addr, Self: m.Addr == n.cfg.Self, Member: sus.apply(m), Incompatible: incompatible}
		p.Layout = n.mem.layoutOf(m.Addr)
		if p.Self {
			p.Layout = n.mem.layout
		}
		n.health.fill(&p, now)
		if c := n.tr.dialled(m.Addr); c != nil {
			st := c.ConnectionStats()
			p.Connected, p.RTT, p.BytesSent, p.BytesReceived = true, st.SmoothedRTT, st.BytesSent, st.BytesReceived
		}
		out = append(out, p)
	}
	for _, a := range v.all {
		add(v.byAddr[a], false)
	}
	for _, m := range v.incompatible {
		add(m, true)
	}
	return out
}

// Alive reports whether peer is worth asking now: it is a member, not in
// the backoff that follows a failure, nor avoided after sending a corrupt
// shard.
func (n *Node) Alive(peer string) bool {
	if peer == n.cfg.Self {
		return true
	}
	if _, member := n.mem.view.Load().byAddr[peer]; !member {
		return false // it left or died: not worth a dial
	}
	return n.health.usable(peer, time.Now())
}

// RTT returns the smoothed round-trip time to peer, or zero when there is
// no connection to it.
func (n *Node) RTT(peer string) time.Duration {
	c := n.tr.dialled(peer)
	if c == nil {
		return 0
	}
	return c.ConnectionStats().SmoothedRTT
}

// ShardBytesByZone returns the bytes of the shards this node fetched from
// peers that verified, since it started: from members of its own zone
// (same) and of other zones (other), each peer's zone as membership said
// when the shard arrived.
func (n *Node) ShardBytesByZone() (same, other uint64) {
	h := n.health
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.zoneShards[0], h.zoneShards[1]
}

// Cost estimates how long fetching size bytes from peer takes, for
// ordering holders: the smoothed RTT (when connected), the transfer at
// the peer's recent throughput, behind as many more as this node has
// shard requests in flight to it (the readers of a segment and of the
// ones read ahead spread over its holders rather than queue on the one
// measured fastest: an uplink busy with this node's requests is slower
// for the next; inflightCost each when its throughput is unknown), and
// 100ms per recent failure. A peer not connected yet counts a nominal 1ms
// RTT: optimistic, so that new peers get tried and measured.
func (n *Node) Cost(peer string, size int) time.Duration {
	if peer == n.cfg.Self {
		return 0
	}
	c := n.tr.dialled(peer)
	rate, fails, inflight := n.health.measured(peer, time.Now())
	cost := time.Millisecond
	if c != nil {
		cost = c.ConnectionStats().SmoothedRTT
	}
	if rate > 0 {
		cost += time.Duration(float64(1+inflight) * float64(size) / rate * float64(time.Second))
	} else {
		cost += time.Duration(inflight) * inflightCost
	}
	return cost + time.Duration(fails*float64(failurePenalty))
}
