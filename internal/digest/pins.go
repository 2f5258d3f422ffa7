package digest

import (
	"context"
	"errors"
	"fmt"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/shoalcdn/shoal/erasure"
)

// Pins are the segment hashes (BLAKE3, as the fleet's descriptors) of
// object versions whose content was checked against its digest: a segment
// read later is checked against its pin, whoever sent it. Safe for
// concurrent use.
type Pins struct {
	c *lru.Cache[erasure.ObjectID, []erasure.Hash]
}

// NewPins keeps the pins of n objects at most.
func NewPins(n int) *Pins {
	c, _ := lru.New[erasure.ObjectID, []erasure.Hash](n)
	return &Pins{c: c}
}

// Add pins the segment hashes of object id.
func (p *Pins) Add(id erasure.ObjectID, hashes []erasure.Hash) { p.c.Add(id, hashes) }

// Get returns the pinned hashes of object id.
func (p *Pins) Get(id erasure.ObjectID) ([]erasure.Hash, bool) { return p.c.Get(id) }

// Remove unpins object id.
func (p *Pins) Remove(id erasure.ObjectID) { p.c.Remove(id) }

// ErrMismatch reports content that is not what its digest names.
var ErrMismatch = errors.New("digest: content does not match its digest")

// Check checks segment idx of a pinned object against its pin.
func Check(hashes []erasure.Hash, idx uint32, data []byte) error {
	if int(idx) >= len(hashes) || erasure.Sum(data) != hashes[idx] {
		return fmt.Errorf("%w: segment %d", ErrMismatch, idx)
	}
	return nil
}

// Whole reads an object's n segments in order with read, checks them
// against v, and returns their hashes, or ErrMismatch.
func Whole(ctx context.Context, v *Verifier, n int64, read func(ctx context.Context, idx uint32) ([]byte, error)) ([]erasure.Hash, error) {
	hashes := make([]erasure.Hash, n)
	for i := range n {
		data, err := read(ctx, uint32(i))
		if err != nil {
			return nil, err
		}
		v.Write(data)
		hashes[i] = erasure.Sum(data)
	}
	if !v.Match() {
		return nil, ErrMismatch
	}
	return hashes, nil
}
