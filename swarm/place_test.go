package swarm

import (
	"errors"
	"testing"
)

func TestPlaceMsgRoundTrip(t *testing.T) {
	for _, in := range []*PlaceMsg{
		{Filler: "10.0.0.1:7946", Fill: []byte{0, 0, 0, 3, 1, 2, 3}},
		{Placed: true, Filler: "b", Fill: []byte{9}},
	} {
		out, err := ParsePlaceMsg(in.Append(nil))
		if err != nil {
			t.Fatal(err)
		}
		if out.Placed != in.Placed || out.Filler != in.Filler || string(out.Fill) != string(in.Fill) {
			t.Fatalf("got %+v, want %+v", out, in)
		}
	}
	for _, bad := range [][]byte{nil, {0}, {0, 0}, {0, 0, 1}, {0, 3, 'a', 'b'}, {0, 1, 'a'}, {2, 1, 'a', 9}} {
		if _, err := ParsePlaceMsg(bad); !errors.Is(err, ErrPlace) {
			t.Errorf("ParsePlaceMsg(%x) = %v, want ErrPlace", bad, err)
		}
	}
}

// FuzzPlace checks that ParsePlaceMsg never panics, that what it accepts
// re-encodes byte for byte, and that its errors are ErrPlace.
func FuzzPlace(f *testing.F) {
	f.Add((&PlaceMsg{Filler: "a:1", Fill: []byte{0, 0, 0, 0, 1}}).Append(nil))
	f.Add((&PlaceMsg{Placed: true, Filler: "a:1", Fill: []byte{0, 0, 0, 0, 1}}).Append(nil))
	f.Add([]byte{})
	f.Add([]byte{255})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParsePlaceMsg(b)
		if err != nil {
			if !errors.Is(err, ErrPlace) {
				t.Fatalf("message %x: error %v is not ErrPlace", b, err)
			}
			return
		}
		if got := m.Append(nil); string(got) != string(b) {
			t.Fatalf("message %x re-encodes as %x", b, got)
		}
	})
}
