package swarm

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// The codec of StatLease payloads and answers (their byte layout is in
// protocol.go, at StatLease). Records travel as opaque bytes: the edge
// encodes and checks them, this file frames them, so that the layout and
// its length checks sit beside the other Stat modes'.

// The kinds of a StatLease payload (LeaseMsg.Kind).
const (
	// LeaseAsk asks the key's coordinator for the lease; Member is the
	// asker.
	LeaseAsk = 1
	// LeaseHeader carries the record the holder's response header made
	// (sent again to renew the lease).
	LeaseHeader = 2
	// LeaseDone carries the final record (a pass record when the response
	// was not stored): the lease ends.
	LeaseDone = 3
	// LeaseAbort says the holder's fill of Key failed: the lease ends.
	LeaseAbort = 4
	// LeaseAgain is an ask from a member that could not reach Gone, the
	// holder it was sent to: the coordinator checks Gone and moves the
	// lease on if it is down.
	LeaseAgain = 5
	// LeaseFresh carries the record a 304 refreshed: as LeaseDone, but
	// nothing was streamed.
	LeaseFresh = 6
	// LeaseRenew is a holder's word that it still fills Key, of which it
	// has no record yet (a body of unknown length).
	LeaseRenew = 7
	// LeaseStale carries a record of a version of the fleet's own that
	// lost a segment: the coordinator forgets it.
	LeaseStale = 8
	// LeaseVary is a holder's word that Key's responses vary on Vary:
	// the lease ends, and the holder fills the variant under its own key.
	LeaseVary = 9
	// LeaseKnown is an ask from a member that knows how the key varies
	// and asks for the key's own variant.
	LeaseKnown = 10
)

// The kinds of an answer to a lease ask (LeaseAnswer.Kind).
const (
	// LeaseUsable answers with a usable record: read the object as usual.
	LeaseUsable = 0
	// LeaseGranted grants the lease: the asker fetches the key from the
	// origin. The record, when present, is the stale one the coordinator
	// holds, to revalidate.
	LeaseGranted = 1
	// LeaseFilling names the member filling the object (Holder) and its
	// record: read its segments with Fills at Holder.
	LeaseFilling = 2
	// LeaseVaries says how the key's responses vary (Vary): ask for the
	// key of the variant the request selects.
	LeaseVaries = 3
)

// MaxLeaseMember bounds a member name in a lease payload or answer (one
// length byte).
const MaxLeaseMember = 255

// ErrLease reports a malformed StatLease payload or answer.
var ErrLease = errors.New("swarm: malformed lease message")

// LeaseMsg is a StatLease payload (after the mode byte).
type LeaseMsg struct {
	// Kind is one of LeaseAsk ... LeaseKnown.
	Kind byte
	// Member is the asker or the holder (at most MaxLeaseMember bytes).
	Member string
	// Key is the cache key of the kinds that carry no record; "" when
	// decoded from one that does (the key is the record's).
	Key string
	// Gone is the unreachable holder of a LeaseAgain (at most
	// MaxLeaseMember bytes).
	Gone string
	// Vary is the Vary of a LeaseVary.
	Vary string
	// Record is the encoded record of LeaseHeader, LeaseDone, LeaseFresh
	// and LeaseStale. Encoded in place of Key when not nil; decoded, it
	// aliases the input.
	Record []byte
}

// Append appends m's encoding to b. Member and Gone longer than
// MaxLeaseMember are the caller's to refuse.
func (m *LeaseMsg) Append(b []byte) []byte {
	b = append(b, m.Kind, byte(len(m.Member)))
	b = append(b, m.Member...)
	if m.Kind == LeaseAgain {
		b = append(b, byte(len(m.Gone)))
		b = append(b, m.Gone...)
	}
	if m.Kind == LeaseVary {
		b = binary.AppendUvarint(b, uint64(len(m.Vary)))
		b = append(b, m.Vary...)
	}
	if m.Record != nil {
		return append(b, m.Record...)
	}
	return append(b, m.Key...)
}

// ParseLeaseMsg decodes a StatLease payload. It checks the framing (the
// lengths, a member, a key or a record as the kind wants), not the record.
func ParseLeaseMsg(b []byte) (*LeaseMsg, error) {
	if len(b) < 2 || len(b) < 2+int(b[1]) {
		return nil, fmt.Errorf("%w: %d bytes", ErrLease, len(b))
	}
	m := &LeaseMsg{Kind: b[0], Member: string(b[2 : 2+int(b[1])])}
	rest := b[2+int(b[1]):]
	if m.Member == "" {
		return nil, fmt.Errorf("%w: no member", ErrLease)
	}
	if m.Kind == LeaseAgain {
		if len(rest) == 0 || rest[0] == 0 || len(rest) < 1+int(rest[0]) {
			return nil, fmt.Errorf("%w: bad holder", ErrLease)
		}
		m.Gone, rest = string(rest[1:1+int(rest[0])]), rest[1+int(rest[0]):]
	}
	if m.Kind == LeaseVary {
		n, k := binary.Uvarint(rest)
		// A longer encoding of n than Append's would not re-encode to
		// the same bytes: a payload has one encoding.
		if k <= 0 || n == 0 || n > uint64(len(rest)-k) || k != uvarintLen(n) {
			return nil, fmt.Errorf("%w: bad vary", ErrLease)
		}
		m.Vary, rest = string(rest[k:k+int(n)]), rest[k+int(n):]
	}
	switch m.Kind {
	case LeaseAsk, LeaseAbort, LeaseAgain, LeaseRenew, LeaseVary, LeaseKnown:
		if len(rest) == 0 {
			return nil, fmt.Errorf("%w: no key", ErrLease)
		}
		m.Key = string(rest)
	case LeaseHeader, LeaseDone, LeaseFresh, LeaseStale:
		if len(rest) == 0 {
			return nil, fmt.Errorf("%w: no record", ErrLease)
		}
		m.Record = rest
	default:
		return nil, fmt.Errorf("%w: kind %d", ErrLease, m.Kind)
	}
	return m, nil
}

// uvarintLen is the length of binary.AppendUvarint's encoding of n.
func uvarintLen(n uint64) int {
	k := 1
	for ; n >= 0x80; n >>= 7 {
		k++
	}
	return k
}

// LeaseAnswer is the answer to a lease ask (LeaseAsk, LeaseAgain,
// LeaseKnown).
type LeaseAnswer struct {
	// Kind is one of LeaseUsable ... LeaseVaries.
	Kind byte
	// FromOrigin says, of a LeaseUsable, that the coordinator asked the
	// origin for the record.
	FromOrigin bool
	// Holder is the member filling the object, of a LeaseFilling (at
	// most MaxLeaseMember bytes).
	Holder string
	// Vary is how the key's responses vary, of a LeaseVaries.
	Vary string
	// Record is the encoded record of LeaseUsable and LeaseFilling, and
	// of a LeaseGranted that has one (nil when not). Decoded, it aliases
	// the input.
	Record []byte
}

// Append appends a's encoding to b. A LeaseUsable and a LeaseFilling
// need a Record; the kinds that carry none ignore it.
func (a *LeaseAnswer) Append(b []byte) []byte {
	b = append(b, a.Kind)
	switch a.Kind {
	case LeaseUsable:
		var flags byte
		if a.FromOrigin {
			flags = 1
		}
		b = append(b, flags)
	case LeaseFilling:
		b = append(b, byte(len(a.Holder)))
		b = append(b, a.Holder...)
	case LeaseGranted:
	case LeaseVaries:
		return append(b, a.Vary...)
	default:
		return b
	}
	return append(b, a.Record...)
}

// ParseLeaseAnswer decodes the answer to a lease ask. It checks the
// framing (the kind, flags, holder, a record where the kind wants one),
// not the record.
func ParseLeaseAnswer(b []byte) (*LeaseAnswer, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("%w: empty answer", ErrLease)
	}
	a := &LeaseAnswer{Kind: b[0]}
	rest := b[1:]
	switch a.Kind {
	case LeaseGranted:
		if len(rest) == 0 {
			return a, nil
		}
	case LeaseUsable:
		if len(rest) == 0 || rest[0]&^1 != 0 {
			return nil, fmt.Errorf("%w: bad flags", ErrLease)
		}
		a.FromOrigin = rest[0]&1 != 0
		rest = rest[1:]
	case LeaseVaries:
		if len(rest) == 0 {
			return nil, fmt.Errorf("%w: no vary", ErrLease)
		}
		a.Vary = string(rest)
		return a, nil
	case LeaseFilling:
		if len(rest) == 0 || len(rest) < 1+int(rest[0]) || rest[0] == 0 {
			return nil, fmt.Errorf("%w: bad holder", ErrLease)
		}
		a.Holder = string(rest[1 : 1+int(rest[0])])
		rest = rest[1+int(rest[0]):]
	default:
		return nil, fmt.Errorf("%w: answer %d", ErrLease, a.Kind)
	}
	if len(rest) == 0 {
		return nil, fmt.Errorf("%w: no record", ErrLease)
	}
	a.Record = rest
	return a, nil
}
