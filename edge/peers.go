package edge

import (
	"golang.org/x/time/rate"

	"encoding/json"
	"io"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shoalcdn/shoal/internal/throttle"
	"github.com/shoalcdn/shoal/swarm"
)

// peersDoc is the answer of /admin/peers.
type peersDoc struct {
	Self    string     `json:"self"`
	Zone    string     `json:"zone"`
	Gossip  bool       `json:"gossip"`
	Members []peerJSON `json:"members"`
}

// peerJSON is one member as /admin/peers shows it.
type peerJSON struct {
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
	LastError *peerError `json:"last_error,omitempty"`
	// Layout is what the member announced of its layout (absent until
	// they met, or from a release that does not say); Incompatible marks
	// a member whose layout differs from this edge's, kept out of
	// placement and coordination, and LayoutDiff says how.
	Layout       *layoutJSON `json:"layout,omitempty"`
	Incompatible bool        `json:"incompatible"`
	LayoutDiff   string      `json:"layout_diff,omitempty"`
}

// peerError is a failed connection as /admin/peers shows it.
type peerError struct {
	// Reason is the label of shoal_peer_connect_failures_total.
	Reason string `json:"reason"`
	// Side is "dial" or "accept".
	Side    string    `json:"side"`
	Message string    `json:"message"`
	At      time.Time `json:"at"`
}

// layoutJSON is a swarm.FleetLayout.
type layoutJSON struct {
	SegmentSize int64 `json:"segment_size"`
	K           int   `json:"k"`
	M           int   `json:"m"`
	Hash        int   `json:"hash"`
	Protocol    int   `json:"protocol"`
}

// servePeers returns the handler of /admin/peers: the members node knows,
// those in placement first, then those that recently died or left.
// gossip says whether membership is gossiped (else a static list).
func servePeers(node *swarm.Node, gossip bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		writePeers(w, node, gossip)
	}
}

func writePeers(w http.ResponseWriter, node *swarm.Node, gossip bool) {
	doc := peersDoc{Self: node.Self(), Zone: node.Zone(), Gossip: gossip}
	seen := map[string]bool{}
	for _, p := range node.Peers() {
		m := p.Member
		pj := peerJSON{
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
			pj.LastError = &peerError{Reason: e.Reason, Side: e.Side, Message: e.Error(), At: p.LastErrorAt.UTC()}
		}
		if l := p.Layout; l.Known() {
			pj.Layout = &layoutJSON{SegmentSize: l.SegmentSize, K: l.K, M: l.M, Hash: l.Hash, Protocol: l.Protocol}
		}
		if p.Incompatible {
			pj.Incompatible, pj.LayoutDiff = true, node.Layout().Diff(p.Layout)
		}
		seen[p.Addr] = true
		doc.Members = append(doc.Members, pj)
	}
	for _, m := range node.MemberList() {
		if !seen[m.Addr] && m.State != swarm.StateAlive {
			doc.Members = append(doc.Members, peerJSON{ID: m.ID, Addr: m.Addr, Zone: m.Zone, Gossip: m.Gossip, State: string(m.State), Since: m.Since.UTC()})
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(doc)
}

var (
	// peerCorruptDesc counts, per peer, the shards it sent that failed
	// verification (the swarm avoids such a peer for a while).
	peerCorruptDesc = prometheus.NewDesc("shoal_peer_corrupt_shards_total",
		"Shards received from each peer that failed verification.", []string{"peer"}, nil)
	// peerShardBytesDesc counts, per peer, the bytes of the verified
	// shards this edge fetched from it: where a reader's shards come from.
	peerShardBytesDesc = prometheus.NewDesc("shoal_peer_shard_bytes_total",
		"Bytes of verified shards fetched from each peer.", []string{"peer", "zone"}, nil)
	// zoneShardBytesDesc sums them by whether the peer is in this edge's
	// zone: placement keeps a zone's reads within it when it has enough
	// holders, and this shows it.
	zoneShardBytesDesc = prometheus.NewDesc("shoal_zone_shard_bytes_total",
		"Bytes of verified shards fetched from peers, by locality: same_zone (a peer of this edge's zone) or other_zone.", []string{"locality"}, nil)
	// connectFailuresDesc counts failed peer connections, both ways, by
	// why (swarm's Reason constants): a fleet whose members cannot
	// connect is not a fleet, whatever its clients see.
	connectFailuresDesc = prometheus.NewDesc("shoal_peer_connect_failures_total",
		"Failed connections with peers (dialled or accepted), by reason: unknown_authority, expired, not_yet_valid, peer_rejected, alpn, protocol_version, timeout, refused, resolve, other.", []string{"reason"}, nil)
	// incompatiblePeersDesc is the members kept out for their layout.
	incompatiblePeersDesc = prometheus.NewDesc("shoal_peers_incompatible",
		"Members whose layout (segment size, shards, hash, protocol version) differs from this edge's: not used for shards or coordination.", nil, nil)
)

// swarmCollector reports what the swarm measured of each peer.
type swarmCollector struct{ node *swarm.Node }

func (c swarmCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- peerCorruptDesc
	ch <- peerShardBytesDesc
	ch <- zoneShardBytesDesc
	ch <- connectFailuresDesc
	ch <- incompatiblePeersDesc
}

func (c swarmCollector) Collect(ch chan<- prometheus.Metric) {
	incompatible := 0
	for _, p := range c.node.Peers() {
		if p.Incompatible {
			incompatible++
		}
		if !p.Self {
			ch <- prometheus.MustNewConstMetric(peerCorruptDesc, prometheus.CounterValue, float64(p.CorruptShards), p.Addr)
			ch <- prometheus.MustNewConstMetric(peerShardBytesDesc, prometheus.CounterValue, float64(p.ShardBytesReceived), p.Addr, p.Member.Zone)
		}
	}
	same, other := c.node.ShardBytesByZone()
	ch <- prometheus.MustNewConstMetric(zoneShardBytesDesc, prometheus.CounterValue, float64(same), "same_zone")
	ch <- prometheus.MustNewConstMetric(zoneShardBytesDesc, prometheus.CounterValue, float64(other), "other_zone")
	for reason, n := range c.node.ConnectFailures() {
		ch <- prometheus.MustNewConstMetric(connectFailuresDesc, prometheus.CounterValue, float64(n), reason)
	}
	ch <- prometheus.MustNewConstMetric(incompatiblePeersDesc, prometheus.GaugeValue, float64(incompatible))
}

// limitOrigin paces the bytes read from the origin's responses by l, a
// bucket from throttle.New (nil: no limit), for every request of the
// edge: fills, record lookups and forwarded requests alike. The
// transports of several origins share one bucket.
func limitOrigin(next http.RoundTripper, l *rate.Limiter) http.RoundTripper {
	if l == nil {
		return next
	}
	return roundTripFunc(func(r *http.Request) (*http.Response, error) {
		resp, err := next.RoundTrip(r)
		if err != nil {
			return nil, err
		}
		if _, upgraded := resp.Body.(io.ReadWriteCloser); !upgraded {
			resp.Body = &limitedBody{Reader: throttle.Reader{Ctx: r.Context(), R: resp.Body, L: l}, c: resp.Body}
		}
		return resp, nil
	})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

type limitedBody struct {
	throttle.Reader
	c io.Closer
}

func (b *limitedBody) Close() error { return b.c.Close() }
