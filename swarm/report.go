package swarm

import "time"

// PeersReport is what a member knows of the fleet's members: the answer
// of an edge's /admin/peers, as JSON.
type PeersReport struct {
	Self    string       `json:"self"`
	Zone    string       `json:"zone"`
	Gossip  bool         `json:"gossip"`
	Members []PeerReport `json:"members"`
}

// PeerReport is one member in a PeersReport.
type PeerReport struct {
	ID   string `json:"id"`
	Addr string `json:"addr"`
	Zone string `json:"zone"`
	// Gossip is the member's gossip address, empty with a static list.
	Gossip string `json:"gossip,omitempty"`
	Self   bool   `json:"self,omitempty"`
	// State is what membership says: alive, suspect (missed its probes,
	// not yet declared dead; still in placement), dead or left.
	State string `json:"state"`
	// Since is when the member entered State, RFC 3339.
	Since time.Time `json:"since"`
	// Down is set while this edge skips the member after failures (until
	// DownUntil); Avoided while it skips it after a corrupt shard.
	Down         bool       `json:"down"`
	DownUntil    *time.Time `json:"down_until,omitempty"`
	Avoided      bool       `json:"avoided"`
	AvoidedUntil *time.Time `json:"avoided_until,omitempty"`
	Connected    bool       `json:"connected"`
	// RTTMillis is the QUIC smoothed round trip, when connected.
	RTTMillis float64 `json:"rtt_ms"`
	// ThroughputBps is the recent shard throughput from the member.
	ThroughputBps float64 `json:"throughput_bps"`
	// Failures is recent failures, decaying with a 30s half-life.
	Failures float64 `json:"failures"`
	// BytesSent and BytesReceived are the shard, segment and record bytes
	// exchanged with the member since this edge started.
	BytesSent     uint64 `json:"bytes_sent"`
	BytesReceived uint64 `json:"bytes_received"`
	CorruptShards uint64 `json:"corrupt_shards"`
	// ShardBytesReceived is the bytes of the verified shards this edge
	// fetched from the member.
	ShardBytesReceived uint64 `json:"shard_bytes_received"`
	// LastError is the member's last failed connection (null: none since
	// this edge started): why, in words and as a reason label.
	LastError *PeerErrorReport `json:"last_error,omitempty"`
	// Layout is what the member announced of its layout (absent until
	// they met, or from a release that does not say); Incompatible marks
	// a member whose layout differs from this edge's, kept out of
	// placement and coordination, and LayoutDiff says how.
	Layout       *LayoutReport `json:"layout,omitempty"`
	Incompatible bool          `json:"incompatible"`
	LayoutDiff   string        `json:"layout_diff,omitempty"`
}

// PeerErrorReport is a failed connection in a PeerReport.
type PeerErrorReport struct {
	// Reason is the label of shoal_peer_connect_failures_total.
	Reason string `json:"reason"`
	// Side is "dial" or "accept".
	Side    string    `json:"side"`
	Message string    `json:"message"`
	At      time.Time `json:"at"`
}

// LayoutReport is a FleetLayout in a PeerReport.
type LayoutReport struct {
	SegmentSize int64 `json:"segment_size"`
	K           int   `json:"k"`
	M           int   `json:"m"`
	Hash        int   `json:"hash"`
	Protocol    int   `json:"protocol"`
}

// Report returns what n knows of the fleet's members: those in placement
// first, then those that recently died or left. gossip says whether
// membership is gossiped (else a static list).
func (n *Node) Report(gossip bool) PeersReport {
	doc := PeersReport{Self: n.Self(), Zone: n.Zone(), Gossip: gossip}
	seen := map[string]bool{}
	for _, p := range n.Peers() {
		m := p.Member
		pj := PeerReport{
			ID: m.ID, Addr: p.Addr, Zone: m.Zone, Gossip: m.Gossip, Self: p.Self,
			State: string(m.State), Since: m.Since.UTC(),
			Down: p.Down, Connected: p.Connected,
			RTTMillis:     float64(p.RTT.Microseconds()) / 1000,
			ThroughputBps: p.Throughput, Failures: p.Failures,
			BytesSent: p.PayloadSent, BytesReceived: p.PayloadReceived,
			CorruptShards: p.CorruptShards, ShardBytesReceived: p.ShardBytesReceived,
		}
		if p.Down {
			t := p.DownUntil.UTC()
			pj.DownUntil = &t
		}
		if !p.AvoidedUntil.IsZero() {
			t := p.AvoidedUntil.UTC()
			pj.Avoided, pj.AvoidedUntil = true, &t
		}
		if e := p.LastError; e != nil {
			pj.LastError = &PeerErrorReport{Reason: e.Reason, Side: e.Side, Message: e.Error(), At: p.LastErrorAt.UTC()}
		}
		if l := p.Layout; l.Known() {
			pj.Layout = &LayoutReport{SegmentSize: l.SegmentSize, K: l.K, M: l.M, Hash: l.Hash, Protocol: l.Protocol}
		}
		if p.Incompatible {
			pj.Incompatible, pj.LayoutDiff = true, n.Layout().Diff(p.Layout)
		}
		seen[p.Addr] = true
		doc.Members = append(doc.Members, pj)
	}
	for _, m := range n.MemberList() {
		if !seen[m.Addr] && m.State != StateAlive {
			doc.Members = append(doc.Members, PeerReport{ID: m.ID, Addr: m.Addr, Zone: m.Zone, Gossip: m.Gossip, State: string(m.State), Since: m.Since.UTC()})
		}
	}
	return doc
}
