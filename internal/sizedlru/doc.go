// Package sizedlru holds caches bounded by the total size of their values
// (a cost function of each value, in bytes) rather than by their count:
// segments, records and shards differ in size by orders of magnitude, so a
// count bound says nothing about memory or disk.
//
// Cache is a least-recently-used map, safe for concurrent use: the edge
// keeps its decoded segments, object records and Vary index in it. TwoQ
// evicts by recency and frequency (2Q), so that a scan of one-off entries
// does not flush what is read repeatedly; it is not safe for concurrent use
// and hands back what it evicts, for the caller to release outside its own
// lock: the shard store indexes its files with it.
//
// Both are built on hashicorp/golang-lru/v2's simplelru.
package sizedlru
