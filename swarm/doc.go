// Package swarm is the fleet: who the members are, which member holds which
// shard, and the QUIC peer protocol that moves shards between them.
//
// Membership is either a static list (Config.Peers) or gossip
// (Config.Gossip): hashicorp/memberlist, with seeds re-resolved from DNS,
// an optional AES key, and node metadata carrying each member's ID, zone,
// QUIC peer address and protocol version. A member that leaves says so and
// is dropped at once; one that crashes is declared dead by probes within
// seconds. The member set is an immutable view swapped atomically, so the
// read path never waits for membership.
//
// Placement is rendezvous hashing within a zone: for a segment, the members
// of the reader's zone are ranked by hash(member, segment); shard i lives
// on the member of rank i, wrapping when the zone has fewer members than
// shards, and rank 0 is the segment's coordinator. Other zones are ranked
// the same way among their own members (ZoneHolders) and are the tier a
// coordinator reads before the origin. No scheduler, no shared state: every
// node computes the same answer, and a join or leave moves only the shards
// whose rank changed.
//
// The peer protocol runs over QUIC (quic-go, ALPN "shoal/1") with mutual
// TLS: both ends present a certificate signed by the fleet CA and accept
// nothing else. A Node keeps one connection per peer and opens one stream
// per request. The requests are GetShard, PutShard, Stat and Fill;
// protocol.go names every one with its byte layout, and every question a
// Stat asks (StatMode: resolve, replicate and refresh a record, purge,
// warm a segment, exchange purge logs), with its payload and answer. This
// package frames them and the edge answers them through a Handler; shards
// are served from a ShardStore. A Fill answer is the whole segment, or,
// when the edge's payload asked for it, a placed answer: the descriptor
// alone, the segment's shards being at their holders for the requester to
// read. A peer that fails is marked down with exponential backoff so
// readers skip it without waiting; one that sends a shard failing
// verification is avoided for a minute. What a node measures of each peer
// (smoothed RTT, shard throughput, decaying failures) orders holders
// nearest first (Cost), and an optional token bucket (Config.UploadLimit)
// paces the shard bytes it sends.
//
// Mistakes are loud. A failed connection, dialled or accepted, is
// classified (ConnectError: unknown authority naming both CAs, expired,
// rejected by the peer, ALPN, timeout, ...), logged once a minute per peer
// and reason, counted and kept as the peer's last error. Members exchange
// their FleetLayout (segment size, shards, hash, protocol version) when
// they meet, in a hello (StatHello; a static list is met at start) and in
// gossip metadata; one that differs is incompatible, kept out of
// placement and coordination and logged on both sides with both values,
// while one of an older release, which does not say, is kept.
//
// Files by concern: node.go (Node, Config, lifecycle), members.go and
// gossip.go (membership), placement.go (rendezvous hashing), peerstats.go
// (peer health: down-marking and measurements), transport.go (QUIC
// socket, listener, connections), batchread.go (the socket read in
// batches, Config.ReadBatchWait), client.go (the requests a node makes),
// server.go (the requests it answers), protocol.go (the wire format),
// tls.go (the fleet's certificates), connfail.go (why a connection
// failed), layout.go and hello.go (the layout agreement), lease.go (the
// fill lease's codec).
package swarm
