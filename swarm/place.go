package swarm

import (
	"errors"
	"fmt"
)

// The codec of StatPlace payloads (their byte layout is in protocol.go, at
// StatPlace). The fill request travels as opaque bytes: the edge encodes
// and checks it.

// ErrPlace reports a malformed StatPlace payload.
var ErrPlace = errors.New("swarm: malformed place message")

// PlaceMsg is a StatPlace payload (after the mode byte).
type PlaceMsg struct {
	// Placed asks for the answer once k of the segment's shards are at
	// their holders, rather than once the coordinator holds the segment.
	Placed bool
	// Filler is the member that streams the object and holds the segment
	// (1..MaxLeaseMember bytes).
	Filler string
	// Fill is the encoded fill request naming the segment; decoded, it
	// aliases the input.
	Fill []byte
}

// Append appends m's encoding to b. A Filler of 0 or more than
// MaxLeaseMember bytes is the caller's to refuse.
func (m *PlaceMsg) Append(b []byte) []byte {
	var flags byte
	if m.Placed {
		flags |= 1
	}
	b = append(b, flags, byte(len(m.Filler)))
	b = append(b, m.Filler...)
	return append(b, m.Fill...)
}

// ParsePlaceMsg decodes a StatPlace payload. It checks the framing (known
// flags, a filler, a fill request that is not empty), not the fill
// request.
func ParsePlaceMsg(b []byte) (*PlaceMsg, error) {
	if len(b) < 2 || b[0]&^1 != 0 {
		return nil, fmt.Errorf("%w: %d bytes", ErrPlace, len(b))
	}
	m := &PlaceMsg{Placed: b[0]&1 != 0}
	b = b[1:]
	if b[0] == 0 || len(b) < 1+int(b[0]) {
		return nil, fmt.Errorf("%w: bad filler", ErrPlace)
	}
	m.Filler, m.Fill = string(b[1:1+int(b[0])]), b[1+int(b[0]):]
	if len(m.Fill) == 0 {
		return nil, fmt.Errorf("%w: no fill request", ErrPlace)
	}
	return m, nil
}
