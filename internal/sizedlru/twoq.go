package sizedlru

import (
	"math"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// TwoQ is a 2Q cache bounded by the total size of its values: new entries
// enter a "recent" queue; an entry read again moves to a "frequent" queue;
// eviction takes from recent while it holds more than its share, so a scan
// of one-off objects cannot flush what is read repeatedly. Keys evicted
// from recent are remembered (without values) for a while, and an entry
// added again soon after goes straight to frequent.
//
// It is not safe for concurrent use: its owner guards it, and releases
// what Add and SetLimit evict outside its lock.
type TwoQ[K comparable, V any] struct {
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

// NewTwoQ returns a TwoQ that holds at most limit bytes, size giving the
// bytes of a value.
func NewTwoQ[K comparable, V any](limit int64, size func(V) int64) *TwoQ[K, V] {
	c := &TwoQ[K, V]{size: size, limit: limit, recentShare: 0.25}
	c.recent, _ = simplelru.NewLRU[K, V](math.MaxInt32, nil)
	c.frequent, _ = simplelru.NewLRU[K, V](math.MaxInt32, nil)
	c.ghost, _ = simplelru.NewLRU[K, struct{}](1<<16, nil)
	return c
}

// Get returns the value for k and counts the access.
func (c *TwoQ[K, V]) Get(k K) (V, bool) {
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
func (c *TwoQ[K, V]) Peek(k K) (V, bool) {
	if v, ok := c.frequent.Peek(k); ok {
		return v, true
	}
	return c.recent.Peek(k)
}

// Add stores v under k and returns what it evicted to make room, for the
// caller to release outside its lock.
func (c *TwoQ[K, V]) Add(k K, v V) (evicted []V) {
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
func (c *TwoQ[K, V]) Remove(k K) (V, bool) {
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

// Limit returns the byte budget.
func (c *TwoQ[K, V]) Limit() int64 { return c.limit }

// SetLimit changes the byte budget and returns what it evicted to fit a
// lower one, for the caller to release outside its lock.
func (c *TwoQ[K, V]) SetLimit(limit int64) (evicted []V) {
	c.limit = limit
	return c.shrink(limit)
}

// shrink evicts until the total is at most limit.
func (c *TwoQ[K, V]) shrink(limit int64) (evicted []V) {
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

// Bytes returns the total size of the values held.
func (c *TwoQ[K, V]) Bytes() int64 { return c.recentBytes + c.frequentBytes }

// Len returns the number of values held.
func (c *TwoQ[K, V]) Len() int { return c.recent.Len() + c.frequent.Len() }

// Keys returns every key, least recently used first within each queue
// (recent's, then frequent's).
func (c *TwoQ[K, V]) Keys() []K { return append(c.recent.Keys(), c.frequent.Keys()...) }
