// Package edge is the HTTP front of a Shoal node: what clients talk to.
//
// An Edge answers GET and HEAD for objects the origin lets shared caches
// store by reading them through the fleet, segment by segment, and
// forwards every other request to the origin unchanged. For each segment of
// the requested range, pipelined a few segments ahead of the one being
// sent, the read path is:
//
//  1. the memory tier: decoded segments in an LRU bounded in bytes
//     (golang-lru/v2);
//  2. this edge's own shard store, if it holds k of the segment's shards;
//  3. the shards' holders over the swarm: ask the k that are needed, one
//     more after a hedge delay or a failure, verify each shard, take the
//     first k that agree on one descriptor, cancel the rest, decode;
//  4. a Fill at the segment's coordinator (the first member of the
//     segment's placement ranking that is not down, this edge at the
//     latest), which is one origin fetch per segment for the whole fleet:
//     it fetches the segment with a ranged GET guarded by If-Range, codes
//     it, keeps it in memory, and pushes each shard to its holder. Pushes
//     it could not make (too many in flight, a slow or dying holder) are
//     made again from memory, with backoff; so are those of a coordinator
//     that crashes right after a fill, by the edges that read through it
//     (repair.go). Unless Config.DirectFills (--placed-fills=false in
//     shoal edge) the Fill asks for a placed answer (placement.go): once
//     k shards are at their holders the coordinator answers with the
//     segment's descriptor alone, and the requester reads k shards from k
//     holders as in step 3, so that in a flash crowd every site's copy is
//     uploaded by several holders, not all by the coordinator; a segment
//     whose shards could not be placed, or not read, comes whole in the
//     Fill's answer instead. With Config.FillProbe (--fill-probe, off by
//     default) the requester probes a coordinator whose Fill goes
//     unanswered; one that answers neither of two probes is taken for
//     dead and the next rank asked. A member that fills a segment it is
//     not the first-ranked coordinator of reads the segment's holders
//     before the origin (the one given up for dead may have placed it).
//
// Steps 2 to 4 run once per segment at a time on an edge, however many
// clients want it. A shard read or push is given PeerTimeout on fast
// links and, where transfers are seen to take longer, four times what the
// slowest recent ones took for its size (internal/latency); a fill pushes its
// shards two at a time, so that the first k are placed early.
//
// The object record (size, validators, headers, freshness) comes the same
// way: local, else the object's coordinator (one HEAD per object per
// expiry for the fleet, replicated to the next two ranks), else the origin.
//
// HTTP caching follows RFC 9111 (see the README's "HTTP semantics" for
// what is honoured and the deliberate deviations): what may be stored and
// its freshness (record.go, with the rules of internal/httpcache, where
// Shoal-Cache-Control, then CDN-Cache-Control, govern over Cache-Control);
// revalidation with conditional HEADs at the object's coordinator and
// stale-while-revalidate / stale-if-error (stale.go); ranges, merged and
// bounded, and multipart/byteranges (httpcache, served by http.go); invalidation by unsafe
// methods and purge, fleet-wide through a Stat mode (purge.go), with a
// purge log members exchange so that one that was down or cut off learns
// the purges it missed (purgelog.go); variants (vary.go). An edge that is a fleet of its own forwards a GET miss as the
// client's own request, one origin request per miss, and stores the
// response from it (miss.go).
//
// With Config.StreamedFills (--streamed-fills, opt-in in this version), a
// GET miss is one origin GET instead: a fill lease at the object's
// coordinator (lease.go) lets one edge fetch the key for the fleet, and
// its response streams to the client while it is cut, coded and placed;
// other requests read its segments from that edge as they are cut
// (streamed.go).
//
// One edge can front several sites (Config.Origins, origins.go): the
// request's Host, matched case-insensitively and without its port, selects
// the origin, "*" any other Host; a Host with no origin gets 421. Cache keys
// are then "//host" + target, so each site's objects are apart; with one
// origin (Config.Origin) the key is the target alone.
//
// # Roles
//
// Edge is split by role, so that each part can be read alone. Edge holds
// the roles and wires them in New; a role holds the leaf collaborators it
// uses (the swarm node, the shard store, the coder, the memory tier, the
// metrics, the logger) and, for what it needs of another role, a small
// interface of its own, never the Edge:
//
//   - Edge (edge.go, http.go, miss.go, records.go, stale.go, vary.go,
//     origins.go, admin.go, lease.go, streamed.go): the HTTP front, object records, forwarding
//     and lifecycle;
//   - tasks (background.go): background work that Shutdown cancels and
//     waits for, and the bound on background store writes;
//   - reader (segments.go, placement.go's fillAt): a segment for a
//     request, through memory, the holders and a Fill;
//   - shardReader (segments.go, zones.go's nearestFirst): a segment
//     rebuilt from its holders' shards, hedged with learned
//     timeouts (package internal/latency);
//   - filler (segments.go, placement.go, zones.go): fills as a segment's
//     coordinator and the placement of their shards;
//   - repairer (repair.go): redundancy after membership changes, and
//     pushes made again;
//   - signed (signed.go): checks against publishers' manifests;
//   - purger (purge.go, purgelog.go): purges, the purge log its members
//     exchange, and invalidation by forwarded unsafe methods;
//   - statusPage and prefetcher (status.go, prefetch.go), one of each per
//     Admin handler, made from the configs New fills; /admin/peers
//     (peers.go) and the metrics' collectors (metrics.go) read the swarm
//     node and the store.
//
// Every response carries Cache-Status (RFC 9211): "hit" when the fleet had
// the record and the bytes (with a negative ttl when served stale),
// "fwd=miss; stored; fwd-status=200" when the origin was asked, "fwd=stale;
// fwd-status=304" after a revalidation, with detail=memory|disk|peer|origin
// naming the tier of the first segment, and "fwd=uri-miss", "fwd=method" or
// "fwd=bypass" for forwarded requests. Cached and forwarded responses carry
// Via; cached ones Age and the origin's Date. The metric
// shoal_served_bytes_total{source} counts every byte by its tier ("disk"
// is the edge's own shard store: on disk under a directory, see package store, or in
// memory without one).
package edge
