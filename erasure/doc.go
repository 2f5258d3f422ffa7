// Package erasure cuts objects into segments and codes each segment into
// Reed-Solomon shards, so that any k of its k+m shards rebuild it.
//
// It is pure computation: no I/O, no network, no context. The pieces are
//
//   - Layout: how an object of a given size is cut into fixed-size segments
//     and how many data (k) and parity (m) shards each segment becomes;
//   - Coder: encodes a segment into shards and rebuilds it from any k of them
//     (github.com/klauspost/reedsolomon, systematic: the k data shards are the
//     segment's own bytes, zero-padded at the end);
//   - Descriptor: a segment's length, k, m, shard length and a BLAKE3-256 hash
//     of every shard and of the whole segment, with a compact binary encoding.
//     Every shard is verified against its descriptor before it is used, stored
//     or served; a failure is an *IntegrityError that names the shard.
//
// The hash is BLAKE3-256 because it measured about twice as fast as SHA-256
// on the machines we run on (see BenchmarkHash and bench/README.md), and a
// 4 MiB segment is hashed twice (shards and segment) on every fill. Sum and
// Hasher compute it on the calling goroutine (hash.go): a third less CPU than
// the library's own fan-out of one goroutine per 16 KiB, on busy cores.
package erasure
