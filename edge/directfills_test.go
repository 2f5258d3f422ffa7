package edge

import "testing"

// TestDirectFills: placed fills are the default (as in shoal edge), so the
// path that Config.DirectFills keeps (--placed-fills=false: the
// coordinator answers a Fill with the whole segment) is checked here. A
// cold read through one edge of four gets the object's bytes, the origin
// sends it about once, and no coordinator answered a placed Fill.
func TestDirectFills(t *testing.T) {
	o := newTestOrigin(t, "public, max-age=3600")
	c := newCluster(t, o, 4, func(cfg *Config) { cfg.DirectFills = true })
	const size = 3<<20 + 777
	want := o.put(t, "/direct.bin", size, 6)
	_, got := c.get(0, "/direct.bin")
	sameBytes(t, "cold read", got, want)
	if n, limit := o.bytes.Load(), int64(size*11/10); n > limit {
		t.Errorf("origin sent %d bytes for %d, want at most %d", n, size, limit)
	}
	for i, e := range c.edges {
		if n := counterValue(t, e.Edge, "shoal_fills_placed_total"); n != 0 {
			t.Errorf("edge %d answered %v placed Fills, want none", i, n)
		}
	}
	_, got = c.get(1, "/direct.bin")
	sameBytes(t, "second edge", got, want)
}
