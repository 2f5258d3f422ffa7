// Package swarm is the fleet: who the members are, which member holds which
// shard, and the QUIC peer protocol that moves shards between them.
//
// Membership is a static list in this version (Config.Peers). Placement is
// rendezvous hashing: for a segment, members are ranked by
// hash(member, segment); shard i lives on the member of rank i, wrapping
// when the fleet has fewer members than shards, and rank 0 is the segment's
// coordinator. No scheduler, no shared state: every node computes the same
// answer.
//
// The peer protocol runs over QUIC (quic-go, ALPN "shoal/1") with mutual
// TLS: both ends present a certificate signed by the fleet CA and accept
// nothing else. A Node keeps one connection per peer and opens one stream
// per request. The requests are GetShard, PutShard, Stat and Fill; the wire
// format is documented in protocol.go. Stat and Fill carry payloads that the
// edge defines and answers through a Handler; shards are served from a
// ShardStore. A peer that fails is marked down with exponential backoff so
// readers skip it without waiting.
package swarm
