package sizedlru

import (
	"math"
	"sync"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// Cache is a least-recently-used map bounded by the total size of its
// values rather than by their count. It is safe for concurrent use.
type Cache[K comparable, V any] struct {
	mu        sync.Mutex
	lru       *simplelru.LRU[K, V]
	size      func(V) int64
	bytes     int64
	limit     int64
	evictions int64
}

// New returns a Cache that holds at most limit bytes, size giving the
// bytes of a value.
func New[K comparable, V any](limit int64, size func(V) int64) *Cache[K, V] {
	c := &Cache[K, V]{size: size, limit: limit}
	// The count bound is never the one that binds: the byte bound is.
	l, err := simplelru.NewLRU[K, V](math.MaxInt32, func(_ K, v V) { c.bytes -= c.size(v) })
	if err != nil {
		panic(err) // only for a non-positive size, which this is not
	}
	c.lru = l
	return c
}

// Get returns the value for k and marks it recently used.
func (c *Cache[K, V]) Get(k K) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Get(k)
}

// Add stores v under k, evicting the least recently used values until the
// total fits. A value larger than the whole budget is not stored.
func (c *Cache[K, V]) Add(k K, v V) {
	n := c.size(v)
	c.mu.Lock()
	defer c.mu.Unlock()
	if n > c.limit {
		c.lru.Remove(k)
		return
	}
	if old, ok := c.lru.Peek(k); ok {
		c.bytes -= c.size(old)
	}
	c.lru.Add(k, v)
	c.bytes += n
	for c.bytes > c.limit {
		if _, _, ok := c.lru.RemoveOldest(); !ok {
			break
		}
		c.evictions++
	}
}

// Remove drops k, if present.
func (c *Cache[K, V]) Remove(k K) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lru.Remove(k)
}

// Purge drops every value. It does not count them as evictions.
func (c *Cache[K, V]) Purge() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lru.Purge()
}

// Keys returns every key, least recently used first.
func (c *Cache[K, V]) Keys() []K {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Keys()
}

// Stats returns the bytes held, the number of values and the evictions so far.
func (c *Cache[K, V]) Stats() (bytes int64, n int, evictions int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.bytes, c.lru.Len(), c.evictions
}
