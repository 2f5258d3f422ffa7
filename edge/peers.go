package edge

import (
	"encoding/json"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shoalcdn/shoal/swarm"
)

// servePeers returns the handler of /admin/peers: node's Report as JSON.
// gossip says whether membership is gossiped (else a static list).
func servePeers(node *swarm.Node, gossip bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(node.Report(gossip))
	}
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
