package sizedlru

import (
	"slices"
	"testing"
)

func TestCache(t *testing.T) {
	c := New[int](100, func(b []byte) int64 { return int64(len(b)) })
	c.Add(1, make([]byte, 40))
	c.Add(2, make([]byte, 40))
	c.Get(1)
	c.Add(3, make([]byte, 40)) // evicts 2, the least recently used
	if _, ok := c.Get(2); ok {
		t.Error("2 not evicted")
	}
	if _, ok := c.Get(1); !ok {
		t.Error("1 evicted")
	}
	c.Add(1, make([]byte, 10)) // replacing adjusts the size
	if b, n, _ := c.Stats(); b != 50 || n != 2 {
		t.Errorf("stats: %d bytes in %d, want 50 in 2", b, n)
	}
	c.Add(4, make([]byte, 101)) // larger than the budget: not stored
	if _, ok := c.Get(4); ok {
		t.Error("stored a value larger than the budget")
	}
	if b, _, _ := c.Stats(); b > 100 {
		t.Errorf("%d bytes held, budget 100", b)
	}
}

func TestCacheKeysAndPurge(t *testing.T) {
	c := New[string](100, func(n int64) int64 { return n })
	c.Add("a", 10)
	c.Add("b", 20)
	c.Add("c", 30)
	c.Get("a")
	if got, want := c.Keys(), []string{"b", "c", "a"}; !slices.Equal(got, want) {
		t.Errorf("keys: got %v, want %v (least recently used first)", got, want)
	}
	c.Add("d", 50) // evicts b
	c.Purge()
	if b, n, ev := c.Stats(); b != 0 || n != 0 || ev != 1 {
		t.Errorf("after Purge: %d bytes in %d, %d evictions, want 0 in 0, 1 (a purge is no eviction)", b, n, ev)
	}
	c.Add("e", 100)
	if b, n, _ := c.Stats(); b != 100 || n != 1 {
		t.Errorf("after Purge and Add: %d bytes in %d, want 100 in 1", b, n)
	}
}

func TestTwoQScanResistance(t *testing.T) {
	c := NewTwoQ[int](10, func(v int) int64 { return int64(v) })
	c.Add(1, 1)
	c.Get(1) // frequent
	for i := 2; i < 100; i++ {
		for _, v := range c.Add(i, 1) {
			if v == 0 {
				t.Fatal("evicted a zero-sized value")
			}
		}
	}
	if _, ok := c.Peek(1); !ok {
		t.Error("a scan evicted the frequently used entry")
	}
	if c.Bytes() > 10 || c.Len() > 10 {
		t.Errorf("%d bytes in %d entries, budget 10", c.Bytes(), c.Len())
	}
	// An entry evicted from recent and added again soon goes to frequent.
	c.Add(200, 1)
	for i := 300; i < 320; i++ {
		c.Add(i, 1)
	}
	c.Add(200, 1)
	for i := 400; i < 420; i++ {
		c.Add(i, 1)
	}
	if _, ok := c.Peek(200); !ok {
		t.Error("a ghost hit did not promote the entry to frequent")
	}
}

func TestTwoQSetLimit(t *testing.T) {
	c := NewTwoQ[int](100, func(v int) int64 { return int64(v) })
	for i := range 10 {
		c.Add(i, 10)
	}
	if ev := c.SetLimit(200); len(ev) != 0 || c.Limit() != 200 {
		t.Errorf("raising the limit evicted %d, limit %d; want 0, 200", len(ev), c.Limit())
	}
	ev := c.SetLimit(45)
	if len(ev) != 6 || c.Bytes() != 40 || c.Len() != 4 || c.Limit() != 45 {
		t.Errorf("lowering to 45: evicted %d, %d bytes in %d, limit %d; want 6, 40 in 4, 45", len(ev), c.Bytes(), c.Len(), c.Limit())
	}
	if got := len(c.Keys()); got != c.Len() {
		t.Errorf("%d keys for %d entries", got, c.Len())
	}
	if v, ok := c.Remove(9); !ok || v != 10 || c.Bytes() != 30 {
		t.Errorf("Remove(9): %d, %v, %d bytes left; want 10, true, 30", v, ok, c.Bytes())
	}
}
