// Package store is the durable, verified shard store of an edge: one file
// per shard, written crash-safely, bounded in bytes and evicting by
// recency and frequency (2Q), scrubbed in the background, and still
// serving reads when the disk is full or read-only. Every shard is
// verified against its erasure.Descriptor when it is read from its file;
// one that fails is deleted and counted, never served. The shards last
// read and verified stay in memory, bounded, so that a shard asked for by
// every peer of a crowd is read and hashed once, not once a request.
// Without a directory it keeps shards in memory.
//
// Beside the shards it keeps object records, as opaque bytes under their
// key: what a record is, which of two is newer and how long one is worth
// keeping is the caller's to say (package edge encodes them).
//
// It knows shards and files only: it imports erasure and
// internal/sizedlru, never the edge, the origin client or the swarm.
// Store satisfies swarm.ShardStore, which the edge checks.
package store
