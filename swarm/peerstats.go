package swarm

import (
	"math"
	"time"

	"github.com/quic-go/quic-go"
)

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
}

const (
	// failureHalfLife is how fast a failure is forgiven in the ordering.
	failureHalfLife = 30 * time.Second
	// CorruptAvoidance is how long a peer that sent a shard failing
	// verification is not asked again.
	CorruptAvoidance = time.Minute
	// rateMinBytes: smaller bodies say more about latency than throughput.
	rateMinBytes = 32 << 10
)

// stats returns peer's record, creating it; n.mu must be held.
func (n *Node) statsLocked(peer string) *peerStats {
	s := n.stats[peer]
	if s == nil {
		s = &peerStats{}
		n.stats[peer] = s
	}
	return s
}

func (s *peerStats) decayedFailures(now time.Time) float64 {
	if s.failures == 0 {
		return 0
	}
	return s.failures * math.Exp2(-now.Sub(s.lastFailure).Seconds()/failureHalfLife.Seconds())
}

// observe records the outcome of a request to peer.
func (n *Node) observe(peer string, op Op, result string, sent, received int, took time.Duration) {
	now := time.Now()
	n.mu.Lock()
	defer n.mu.Unlock()
	s := n.statsLocked(peer)
	s.sent += uint64(sent)
	s.received += uint64(received)
	switch result {
	case "ok":
		if op == OpGetShard {
			s.shards += uint64(received)
			if n.ZoneOf(peer) == n.cfg.Zone {
				n.zoneShards[0] += uint64(received)
			} else {
				n.zoneShards[1] += uint64(received)
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

// ShardBytesByZone returns the bytes of the shards this node fetched from
// peers that verified, since it started: from members of its own zone
// (same) and of other zones (other), each peer's zone as membership said
// when the shard arrived.
func (n *Node) ShardBytesByZone() (same, other uint64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.zoneShards[0], n.zoneShards[1]
}

// countServed records payload bytes this node exchanged with peer as the
// server of a request.
func (n *Node) countServed(conn *quic.Conn, sent, received int) {
	peer := conn.RemoteAddr().String()
	n.mu.Lock()
	defer n.mu.Unlock()
	s := n.statsLocked(peer)
	s.sent += uint64(sent)
	s.received += uint64(received)
}

// avoided reports whether peer sent a corrupt shard recently; n.mu held.
func (n *Node) avoidedLocked(peer string, now time.Time) bool {
	s := n.stats[peer]
	return s != nil && now.Before(s.avoidUntil)
}

// Cost estimates how long fetching size bytes from peer takes, for
// ordering holders: the smoothed RTT (when connected), the transfer at
// the peer's recent throughput, and 100ms per recent failure. A peer not
// connected yet counts a nominal 1ms RTT: optimistic, so that new peers
// get tried and measured.
func (n *Node) Cost(peer string, size int) time.Duration {
	if peer == n.cfg.Self {
		return 0
	}
	n.mu.Lock()
	c := n.conns[peer]
	s := n.stats[peer]
	var rate, fails float64
	if s != nil {
		rate, fails = s.rate, s.decayedFailures(time.Now())
	}
	n.mu.Unlock()
	cost := time.Millisecond
	if c != nil && c.Context().Err() == nil {
		cost = c.ConnectionStats().SmoothedRTT
	}
	if rate > 0 {
		cost += time.Duration(float64(size) / rate * float64(time.Second))
	}
	return cost + time.Duration(fails*float64(failurePenalty))
}

// failurePenalty is what one recent failure adds to a peer's cost.
const failurePenalty = 100 * time.Millisecond
