package edge

import (
	"sync/atomic"
	"time"
)

// testClock is a Config.Now for tests that need time to pass: it runs with
// the wall clock, plus an offset the test advances, so that expiry is
// reached without sleeping. Running with the wall clock keeps it
// consistent with what the edge cannot be told about: the Date fields the
// test origins send (wall time, to the second) and the timers of the
// peer protocol. Safe for concurrent use; the zero value is the wall
// clock.
type testClock struct{ offset atomic.Int64 }

// Now is the wall clock plus every Advance so far.
func (c *testClock) Now() time.Time { return time.Now().Add(time.Duration(c.offset.Load())) }

// Advance moves the clock d ahead of the wall clock.
func (c *testClock) Advance(d time.Duration) { c.offset.Add(int64(d)) }
