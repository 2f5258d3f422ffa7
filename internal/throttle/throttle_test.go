package throttle

import (
	"bytes"
	"context"
	"io"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

func TestNewUnlimited(t *testing.T) {
	for _, n := range []int64{0, -1} {
		if l := New(n); l != nil {
			t.Errorf("New(%d): got a limiter, want nil (no limit)", n)
		}
	}
	if l := New(1); l == nil || l.Burst() < chunk {
		t.Errorf("New(1): burst %d, want at least one chunk", l.Burst())
	}
}

func TestWriteAndReadKeepEveryByte(t *testing.T) {
	src := make([]byte, 5*chunk+123)
	for i := range src {
		src[i] = byte(i * 7)
	}
	for _, l := range []*rate.Limiter{nil, rate.NewLimiter(rate.Inf, chunk)} {
		var buf bytes.Buffer
		n, err := Write(context.Background(), &buf, src, l)
		if err != nil || n != len(src) || !bytes.Equal(buf.Bytes(), src) {
			t.Errorf("Write: %d bytes, %v; same bytes: %v", n, err, bytes.Equal(buf.Bytes(), src))
		}
		got, err := io.ReadAll(&Reader{Ctx: context.Background(), R: bytes.NewReader(src), L: l})
		if err != nil || !bytes.Equal(got, src) {
			t.Errorf("Reader: %d bytes, %v", len(got), err)
		}
	}
}

// The pacing itself is checked with a limiter whose clock does not move:
// once the burst is spent, a write or read cannot go on, and returns when
// its context ends. No wall-clock speed is asserted.
func TestPacingStopsAtTheBucket(t *testing.T) {
	l := rate.NewLimiter(1, chunk) // one byte a second after the first chunk
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	var buf bytes.Buffer
	n, err := Write(ctx, &buf, make([]byte, 3*chunk), l)
	if err == nil || n != chunk || buf.Len() != chunk {
		t.Errorf("Write past the bucket: wrote %d, err %v; want exactly one chunk and an error", n, err)
	}

	l = rate.NewLimiter(1, chunk)
	ctx2, cancel2 := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel2()
	r := &Reader{Ctx: ctx2, R: bytes.NewReader(make([]byte, 3*chunk)), L: l}
	got, err := io.ReadAll(r)
	if err == nil || len(got) > 2*chunk {
		t.Errorf("Reader past the bucket: read %d, err %v; want at most two chunks and an error", len(got), err)
	}
}

func BenchmarkWriteUnlimited(b *testing.B) {
	src := make([]byte, 1<<20)
	l := rate.NewLimiter(rate.Inf, chunk)
	b.SetBytes(int64(len(src)))
	b.ReportAllocs()
	for b.Loop() {
		Write(context.Background(), io.Discard, src, l)
	}
}
