// Package edge is the HTTP front of a Shoal node: what clients talk to.
//
// An Edge answers GET and HEAD for objects the origin lets shared caches
// store by reading them through the fleet, segment by segment, and
// forwards every other request to the origin unchanged.
//
// A miss is one origin GET for the whole fleet (streamed.go, lease.go):
// the edge that took it asks the object's coordinator for the key's fill
// lease (swarm.StatLease), so that concurrent misses anywhere in the fleet
// collapse into one request, and the holder sends the client's own
// request (its end-to-end fields, without Range; its conditionals on a
// cold miss; the fleet's validators when it revalidates a stale copy, so
// that revalidation is a conditional GET) through the miss proxy
// (miss.go). The response header makes the record; the body streams to the
// client as it arrives while it is cut into segments, each coded, kept in
// memory and placed as it completes. A stream holds its latest streamKeep
// segments, and older ones its holders cannot serve yet, streamHold at
// most: past that the origin read waits. Other requests for the object, on
// this edge or others, read each segment from the filler as it is cut. No
// HEAD is sent that the client did not send: a HEAD miss is forwarded as a
// HEAD. A response without a validator, or of unknown length, gets a
// version of the fleet's own (Record.Streamed): a segment of it the fleet
// lost is never fetched by range but the object fetched again whole.
// Another storable status of one segment is stored from its body; a
// response that varies tells the target's coordinator how (vary.go) and is
// filled under its variant's key. Config.RangedFills (--ranged-fills in
// shoal edge), and --trust-key, keep the previous path instead: a HEAD at
// the object's coordinator, then the segments through step 5 below.
//
// For each segment of the requested range, pipelined a few segments ahead
// of the one being sent, the read path is:
//
//  1. the memory tier: decoded segments in an LRU bounded in bytes
//     (golang-lru/v2);
//  2. for an object being streamed, its filler: this edge's own stream,
//     or a Fill at the member filling it (never at the segment's
//     coordinator, which would fetch a range of an object being filled);
//  3. this edge's own shard store, if it holds k of the segment's shards;
//  4. the shards' holders over the swarm: ask the k that are needed, one
//     more after a hedge delay or a failure, verify each shard, take the
//     first k that agree on one descriptor, cancel the rest, decode;
//  5. a Fill at the segment's coordinator (the first member of the
//     segment's placement ranking that is not down, this edge at the
//     latest), for a segment the fleet lost (or every segment, with
//     RangedFills), which is one origin fetch per segment for the whole
//     fleet: it fetches the segment with a ranged GET guarded by If-Range
//     (never for a version of the fleet's own: swarm.ErrStale), codes
//     it, keeps it in memory, and pushes each shard to its holder. Pushes
//     it could not make (too many in flight, a slow or dying holder) are
//     made again from memory, with backoff; so are those of a coordinator
//     that crashes right after a fill, by the edges that read through it
//     (repair.go). Unless Config.DirectFills (--placed-fills=false in
//     shoal edge) the Fill asks for a placed answer (placement.go): once
//     k shards are at their holders the coordinator answers with the
//     segment's descriptor alone, and the requester reads k shards from k
//     holders as in step 4, so that in a flash crowd every site's copy is
//     uploaded by several holders, not all by the coordinator; a segment
//     whose shards could not be placed, or not read, comes whole in the
//     Fill's answer instead. With Config.FillProbe (--fill-probe, off by
//     default) the requester probes a coordinator whose Fill goes
//     unanswered; one that answers neither of two probes is taken for
//     dead and the next rank asked. A member that fills a segment it is not
//     the first-ranked coordinator of reads the segment's holders before
//     the origin (the one given up for dead may have placed it).
//
// Steps 2 to 5 run once per segment at a time on an edge, however many
// clients want it. A shard read or push is given PeerTimeout on fast
// links and, where transfers are seen to take longer, four times what the
// slowest recent ones took for its size (internal/latency); a fill pushes its
// shards two at a time, so that the first k are placed early.
//
// The object record (size, validators, headers, freshness) is local, else
// the coordinator's (a lease answer; with RangedFills a Stat, one HEAD per
// object per expiry for the fleet), replicated to the next two ranks.
//
// HTTP caching follows RFC 9111 (see the README's "HTTP semantics" for
// what is honoured and the deliberate deviations): what may be stored and
// its freshness (record.go, with the rules of internal/httpcache, where
// Shoal-Cache-Control, then CDN-Cache-Control, govern over Cache-Control);
// revalidation with conditional GETs under the lease and
// stale-while-revalidate (a streamed fill in the background) /
// stale-if-error (stale.go); ranges, merged and bounded, and
// multipart/byteranges (httpcache, served by http.go); invalidation by
// unsafe methods and purge, fleet-wide through a Stat mode (purge.go), with
// a purge log members exchange so that one that was down or cut off learns
// the purges it missed (purgelog.go); variants (vary.go); credentials
// (RFC 9111 §3.5: a stored response serves them only when marked shared,
// and a response to them not so marked is relayed only).
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
//     origins.go, admin.go): the HTTP front, object records, forwarding
//     and lifecycle;
//   - streamer (streamed.go, lease.go): streamed fills and their leases,
//     as a view of the Edge that keeps these methods out of its own set;
//   - tasks (background.go): background work that Shutdown cancels and
//     waits for, and the bound on background store writes;
//   - reader (segments.go, placement.go's fillAt): a segment for a
//     request, through memory, a stream, the holders and a Fill;
//   - shardReader (segments.go, zones.go's nearestFirst): a segment
//     rebuilt from its holders' shards, hedged with learned
//     timeouts (package internal/latency);
//   - filler (segments.go, placement.go, zones.go): fills as a segment's
//     coordinator and the placement of their shards;
//   - repairer (repair.go): redundancy after membership changes, and
//     pushes made again;
//   - signed (signed.go): checks against publishers' manifests;
//   - registry (registry.go): content origins name by digest (OCI
//     registries' blobs and manifests, model hubs' large files): keys by
//     digest, the origin's permission per credential, checks against the
//     digest, redirects followed by fills;
//   - purger (purge.go, purgelog.go): purges, the purge log its members
//     exchange, and invalidation by forwarded unsafe methods;
//   - statusPage and prefetcher (status.go, prefetch.go), one of each per
//     Admin handler, made from the configs New fills; /admin/peers
//     (peers.go) and the metrics' collectors (metrics.go) read the swarm
//     node and the store.
//
// Every response carries Cache-Status (RFC 9211): "hit" when the fleet had
// the record and the bytes (with a negative ttl when served stale),
// "fwd=miss; stored; fwd-status=200" when the origin was asked (a reader
// of another request's fill is a hit), "fwd=stale;
// fwd-status=304" after a revalidation, with detail=memory|disk|peer|origin
// naming the tier of the first segment, and "fwd=uri-miss", "fwd=method" or
// "fwd=bypass" for forwarded requests. Cached and forwarded responses carry
// Via; cached ones Age and the origin's Date. The metric
// shoal_served_bytes_total{source} counts every byte by its tier ("disk"
// is the edge's own shard store: on disk under a directory, see package store, or in
// memory without one).
package edge
