// Package latency learns how long the fleet's shard transfers take, so
// that the edge's waits follow the links instead of constants: when to
// hedge a shard read (HedgeTimer, from recent fetch times) and how long a
// shard read or push may take before it is given up (TransferClock, from
// recent transfer times per byte). Both are safe for concurrent use and
// hold no global state.
package latency
