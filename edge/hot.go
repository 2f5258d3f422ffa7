package edge

import (
	"slices"
	"sync"
	"time"
)

// hotObjects keeps bytes served per object key with exponential decay
// (halved every halfLife), bounded to maxKeys keys: when full, the coolest
// half is dropped. It answers "what is this edge serving now".
type hotObjects struct {
	mu       sync.Mutex
	bytes    map[string]float64
	last     time.Time
	halfLife time.Duration
	maxKeys  int
}

func newHotObjects() *hotObjects {
	return &hotObjects{bytes: map[string]float64{}, last: time.Now(), halfLife: time.Minute, maxKeys: 4096}
}

// add counts n bytes served for key at now, a recent time.Now() (the
// caller's: clock reads cost on the serving path).
func (h *hotObjects) add(key string, n int, now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.decay(now)
	if _, ok := h.bytes[key]; !ok && len(h.bytes) >= h.maxKeys {
		h.prune()
	}
	h.bytes[key] += float64(n)
}

// decay halves every count once per elapsed halfLife.
func (h *hotObjects) decay(now time.Time) {
	for now.Sub(h.last) >= h.halfLife {
		for k, v := range h.bytes {
			if v < 1 {
				delete(h.bytes, k)
				continue
			}
			h.bytes[k] = v / 2
		}
		h.last = h.last.Add(h.halfLife)
	}
}

// prune drops the cooler half of the keys.
func (h *hotObjects) prune() {
	vals := make([]float64, 0, len(h.bytes))
	for _, v := range h.bytes {
		vals = append(vals, v)
	}
	slices.Sort(vals)
	cut := vals[len(vals)/2]
	for k, v := range h.bytes {
		if v <= cut {
			delete(h.bytes, k)
		}
	}
}

// HotObject is an object key with its recent, decayed bytes served.
type HotObject struct {
	Key   string  `json:"key"`
	Bytes float64 `json:"bytes"`
}

// top returns the n hottest keys, hottest first.
func (h *hotObjects) top(n int) []HotObject {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.decay(time.Now())
	out := make([]HotObject, 0, len(h.bytes))
	for k, v := range h.bytes {
		out = append(out, HotObject{k, v})
	}
	slices.SortFunc(out, func(a, b HotObject) int {
		switch {
		case a.Bytes > b.Bytes:
			return -1
		case a.Bytes < b.Bytes:
			return 1
		}
		return 0
	})
	return out[:min(n, len(out))]
}
