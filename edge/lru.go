package edge

import (
	"math"
	"sync"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// sizedLRU is a least-recently-used map bounded by the total size of its
// values rather than by their count. It is safe for concurrent use.
type sizedLRU[K comparable, V any] struct {
	mu        sync.Mutex
	lru       *simplelru.LRU[K, V]
	size      func(V) int64
	bytes     int64
	limit     int64
	evictions int64
}

func newSizedLRU[K comparable, V any](limit int64, size func(V) int64) *sizedLRU[K, V] {
	c := &sizedLRU[K, V]{size: size, limit: limit}
	// The count bound is never the one that binds: the byte bound is.
	l, err := simplelru.NewLRU[K, V](math.MaxInt32, func(_ K, v V) { c.bytes -= c.size(v) })
	if err != nil {
		panic(err) // only for a non-positive size, which this is not
	}
	c.lru = l
	return c
}

func (c *sizedLRU[K, V]) Get(k K) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Get(k)
}

// Add stores v under k, evicting the least recently used values until the
// total fits. A value larger than the whole budget is not stored.
func (c *sizedLRU[K, V]) Add(k K, v V) {
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

func (c *sizedLRU[K, V]) Remove(k K) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lru.Remove(k)
}

// Stats returns the bytes held, the number of values and the evictions so far.
func (c *sizedLRU[K, V]) Stats() (bytes int64, n int, evictions int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.bytes, c.lru.Len(), c.evictions
}

// sized2Q is a 2Q cache bounded by the total size of its values: new
// entries enter a "recent" queue; an entry read again moves to a
// "frequent" queue; eviction takes from recent while it holds more than
// its share, so a scan of one-off objects cannot flush what is read
// repeatedly. Keys evicted from recent are remembered (without values) for
// a while, and an entry added again soon after goes straight to frequent.
// It is built from golang-lru/v2's simplelru; it is not safe for concurrent
// use (the Store guards it).
type sized2Q[K comparable, V any] struct {
	recent, frequent *simplelru.LRU[K, V]
	ghost            *simplelru.LRU[K, struct{}]
	size             func(V) int64
	recentBytes      int64
	frequentBytes    int64
	limit            int64
	// recentShare is the fraction of limit that recent may keep when
	// frequent wants room.
	recentShare float64
}

func newSized2Q[K comparable, V any](limit int64, size func(V) int64) *sized2Q[K, V] {
	c := &sized2Q[K, V]{size: size, limit: limit, recentShare: 0.25}
	c.recent, _ = simplelru.NewLRU[K, V](math.MaxInt32, nil)
	c.frequent, _ = simplelru.NewLRU[K, V](math.MaxInt32, nil)
	c.ghost, _ = simplelru.NewLRU[K, struct{}](1<<16, nil)
	return c
}

// Get returns the value for k and counts the access.
func (c *sized2Q[K, V]) Get(k K) (V, bool) {
	if v, ok := c.frequent.Get(k); ok {
		return v, true
	}
	if v, ok := c.recent.Peek(k); ok {
		c.recent.Remove(k)
		c.recentBytes -= c.size(v)
		c.frequent.Add(k, v)
		c.frequentBytes += c.size(v)
		return v, true
	}
	var zero V
	return zero, false
}

// Peek returns the value for k without counting an access.
func (c *sized2Q[K, V]) Peek(k K) (V, bool) {
	if v, ok := c.frequent.Peek(k); ok {
		return v, true
	}
	return c.recent.Peek(k)
}

// Add stores v under k and returns what it evicted to make room, for the
// caller to release outside its lock.
func (c *sized2Q[K, V]) Add(k K, v V) (evicted []V) {
	n := c.size(v)
	if n > c.limit {
		// Larger than the whole budget: not kept, and nothing evicted for it.
		if old, ok := c.Remove(k); ok {
			evicted = append(evicted, old)
		}
		return append(evicted, v)
	}
	if _, ok := c.Remove(k); ok {
		// Written again: as good as read again.
		c.frequent.Add(k, v)
		c.frequentBytes += n
	} else if c.ghost.Contains(k) {
		c.ghost.Remove(k)
		c.frequent.Add(k, v)
		c.frequentBytes += n
	} else {
		c.recent.Add(k, v)
		c.recentBytes += n
	}
	return c.shrink(c.limit)
}

// Remove drops k and returns its value.
func (c *sized2Q[K, V]) Remove(k K) (V, bool) {
	if v, ok := c.frequent.Peek(k); ok {
		c.frequent.Remove(k)
		c.frequentBytes -= c.size(v)
		return v, true
	}
	if v, ok := c.recent.Peek(k); ok {
		c.recent.Remove(k)
		c.recentBytes -= c.size(v)
		return v, true
	}
	var zero V
	return zero, false
}

// shrink evicts until the total is at most limit.
func (c *sized2Q[K, V]) shrink(limit int64) (evicted []V) {
	for c.recentBytes+c.frequentBytes > limit {
		fromRecent := c.recent.Len() > 0 &&
			(c.frequent.Len() == 0 || float64(c.recentBytes) > c.recentShare*float64(c.limit))
		if fromRecent {
			k, v, _ := c.recent.RemoveOldest()
			c.recentBytes -= c.size(v)
			c.ghost.Add(k, struct{}{})
			evicted = append(evicted, v)
			continue
		}
		_, v, ok := c.frequent.RemoveOldest()
		if !ok {
			break
		}
		c.frequentBytes -= c.size(v)
		evicted = append(evicted, v)
	}
	return evicted
}

// Bytes and Len report the total size and the number of entries.
func (c *sized2Q[K, V]) Bytes() int64 { return c.recentBytes + c.frequentBytes }
func (c *sized2Q[K, V]) Len() int     { return c.recent.Len() + c.frequent.Len() }

// Keys returns every key, least recently used first within each queue.
func (c *sized2Q[K, V]) Keys() []K { return append(c.recent.Keys(), c.frequent.Keys()...) }
