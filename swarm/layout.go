package swarm

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/shoalcdn/shoal/erasure"
)

// HashBLAKE3 is the shard hash algorithm of this release, as a
// descriptor's hash byte names it.
const HashBLAKE3 = 1

// FleetLayout is what every member of a fleet must agree on to share
// shards: members that differ in any of it cut, hash or address segments
// differently, and each would read the other's shards as corrupt or
// missing. Members exchange it when they meet (StatHello, and gossip
// metadata); one that differs is incompatible.
type FleetLayout struct {
	// SegmentSize is the size of a segment in bytes.
	SegmentSize int64
	// K and M are the data and parity shards per segment.
	K, M int
	// Hash is the shard hash algorithm (HashBLAKE3).
	Hash int
	// Protocol is the peer protocol version (ProtocolVersion).
	Protocol int
}

// layoutOf returns the FleetLayout a node announces for l. A zero l
// announces nothing (the zero FleetLayout): a node of package tests that
// has no layout of its own.
func layoutOf(l erasure.Layout) FleetLayout {
	if l == (erasure.Layout{}) {
		return FleetLayout{}
	}
	return FleetLayout{SegmentSize: l.SegmentSize, K: l.Params.K, M: l.Params.M, Hash: HashBLAKE3, Protocol: ProtocolVersion}
}

// Known reports whether l was announced: a member of a release before
// the exchange, or one without a layout, announces none.
func (l FleetLayout) Known() bool { return l != FleetLayout{} }

// Compatible reports whether members with layouts l and o can share
// shards: equal, or either unknown (a member of an older release during a
// rolling upgrade is trusted to have the layout it was configured with).
func (l FleetLayout) Compatible(o FleetLayout) bool { return !l.Known() || !o.Known() || l == o }

func (l FleetLayout) String() string {
	if !l.Known() {
		return "unknown"
	}
	hash := fmt.Sprintf("hash(%d)", l.Hash)
	if l.Hash == HashBLAKE3 {
		hash = "blake3"
	}
	return fmt.Sprintf("segment-size=%d shards=%d+%d hash=%s protocol=%d", l.SegmentSize, l.K, l.M, hash, l.Protocol)
}

// Diff names the fields in which l and o differ, both values each, e.g.
// "segment size 4194304 here, 1048576 at the peer".
func (l FleetLayout) Diff(o FleetLayout) string {
	var s string
	add := func(what string, a, b any) {
		if s != "" {
			s += "; "
		}
		s += fmt.Sprintf("%s %v here, %v at the peer", what, a, b)
	}
	if l.SegmentSize != o.SegmentSize {
		add("segment size", l.SegmentSize, o.SegmentSize)
	}
	if l.K != o.K || l.M != o.M {
		add("shards", fmt.Sprintf("%d+%d", l.K, l.M), fmt.Sprintf("%d+%d", o.K, o.M))
	}
	if l.Hash != o.Hash {
		add("hash algorithm", l.Hash, o.Hash)
	}
	if l.Protocol != o.Protocol {
		add("protocol version", l.Protocol, o.Protocol)
	}
	return s
}

// hello is the payload of a StatHello and of its answer; see StatHello.
type hello struct {
	Self   string
	Layout FleetLayout
}

const helloVersion = 1

func (h hello) append(b []byte) []byte {
	b = append(b, helloVersion, byte(len(h.Self)))
	b = append(b, h.Self...)
	b = binary.BigEndian.AppendUint64(b, uint64(h.Layout.SegmentSize))
	return append(b, byte(h.Layout.K), byte(h.Layout.M), byte(h.Layout.Hash), byte(h.Layout.Protocol))
}

// parseHello decodes a hello; it trusts nothing in b. Bytes after the
// known fields are ignored: a later release may add some.
func parseHello(b []byte) (hello, error) {
	var h hello
	if len(b) < 2 || b[0] != helloVersion {
		return h, fmt.Errorf("%w: hello of %d bytes or unknown version", ErrFrame, len(b))
	}
	n := int(b[1])
	b = b[2:]
	if len(b) < n+12 {
		return h, fmt.Errorf("%w: truncated hello", ErrFrame)
	}
	h.Self = string(b[:n])
	if h.Self != "" {
		if err := checkHostPort(h.Self); err != nil {
			return h, fmt.Errorf("%w: hello address %q: %w", ErrFrame, h.Self, err)
		}
	}
	b = b[n:]
	size := binary.BigEndian.Uint64(b)
	if size > erasure.MaxSegmentSize {
		return h, fmt.Errorf("%w: hello segment size %d", ErrFrame, size)
	}
	h.Layout = FleetLayout{SegmentSize: int64(size), K: int(b[8]), M: int(b[9]), Hash: int(b[10]), Protocol: int(b[11])}
	return h, nil
}

// ErrIncompatible: the peer's FleetLayout differs from this node's; it
// is not used for shards nor asked to coordinate.
var ErrIncompatible = errors.New("swarm: peer's layout differs from this node's")
