package swarm

import (
	"encoding/hex"
	"errors"
	"reflect"
	"testing"
)

// leaseRecord stands for an encoded record: the codec carries it as is.
var leaseRecord = []byte{1, 0, 0, 2, '/', 'k', 0xee}

func TestLeaseMsgCodec(t *testing.T) {
	tests := []struct {
		m    LeaseMsg
		want string // hex
	}{
		{LeaseMsg{Kind: LeaseAsk, Member: "a:1", Key: "/k"}, "0103613a312f6b"},
		{LeaseMsg{Kind: LeaseAgain, Member: "a:1", Key: "/k", Gone: "b:2"}, "0503613a3103623a322f6b"},
		{LeaseMsg{Kind: LeaseHeader, Member: "a:1", Record: leaseRecord}, "0203613a3101000002" + "2f6bee"},
		{LeaseMsg{Kind: LeaseDone, Member: "a:1", Record: leaseRecord}, "0303613a3101000002" + "2f6bee"},
		{LeaseMsg{Kind: LeaseFresh, Member: "a:1", Record: leaseRecord}, "0603613a3101000002" + "2f6bee"},
		{LeaseMsg{Kind: LeaseAbort, Member: "a:1", Key: "/k"}, "0403613a312f6b"},
		{LeaseMsg{Kind: LeaseRenew, Member: "a:1", Key: "/k"}, "0703613a312f6b"},
		{LeaseMsg{Kind: LeaseStale, Member: "a:1", Record: leaseRecord}, "0803613a3101000002" + "2f6bee"},
		{LeaseMsg{Kind: LeaseVary, Member: "a:1", Key: "/k", Vary: "Accept"}, "0903613a3106416363657074" + "2f6b"},
		{LeaseMsg{Kind: LeaseKnown, Member: "a:1", Key: "/k"}, "0a03613a312f6b"},
	}
	for _, tt := range tests {
		b := tt.m.Append(nil)
		if got := hex.EncodeToString(b); got != tt.want {
			t.Errorf("kind %d: encodes as %s, want %s", tt.m.Kind, got, tt.want)
		}
		got, err := ParseLeaseMsg(b)
		if err != nil {
			t.Fatalf("kind %d: %v", tt.m.Kind, err)
		}
		if !reflect.DeepEqual(*got, tt.m) {
			t.Errorf("kind %d: got %+v, want %+v", tt.m.Kind, got, tt.m)
		}
	}
}

func TestLeaseAnswerCodec(t *testing.T) {
	tests := []struct {
		a    LeaseAnswer
		want string // hex
	}{
		{LeaseAnswer{Kind: LeaseGranted}, "01"},
		{LeaseAnswer{Kind: LeaseGranted, Record: leaseRecord}, "01" + "010000022f6bee"},
		{LeaseAnswer{Kind: LeaseUsable, FromOrigin: true, Record: leaseRecord}, "0001" + "010000022f6bee"},
		{LeaseAnswer{Kind: LeaseUsable, Record: leaseRecord}, "0000" + "010000022f6bee"},
		{LeaseAnswer{Kind: LeaseFilling, Holder: "b:2", Record: leaseRecord}, "0203623a32" + "010000022f6bee"},
		{LeaseAnswer{Kind: LeaseVaries, Vary: "Accept"}, "03416363657074"},
	}
	for _, tt := range tests {
		b := tt.a.Append(nil)
		if got := hex.EncodeToString(b); got != tt.want {
			t.Errorf("answer %d: encodes as %s, want %s", tt.a.Kind, got, tt.want)
		}
		got, err := ParseLeaseAnswer(b)
		if err != nil {
			t.Fatalf("answer %d: %v", tt.a.Kind, err)
		}
		if !reflect.DeepEqual(*got, tt.a) {
			t.Errorf("answer %d: got %+v, want %+v", tt.a.Kind, got, tt.a)
		}
	}
}

func TestLeaseCodecRejects(t *testing.T) {
	msgs := map[string][]byte{
		"empty":              {},
		"no member length":   {LeaseAsk},
		"short member":       {LeaseAsk, 4, 'a'},
		"no member":          {LeaseAsk, 0, '/', 'k'},
		"no key":             {LeaseAsk, 1, 'a'},
		"no record":          {LeaseDone, 1, 'a'},
		"unknown kind":       {11, 1, 'a', '/', 'k'},
		"kind 0":             {0, 1, 'a', '/', 'k'},
		"again without gone": {LeaseAgain, 1, 'a'},
		"again, empty gone":  {LeaseAgain, 1, 'a', 0, '/', 'k'},
		"again, short gone":  {LeaseAgain, 1, 'a', 5, 'b'},
		"vary empty":         {LeaseVary, 1, 'a', 0, '/', 'k'},
		"vary short":         {LeaseVary, 1, 'a', 9, 'x', '/', 'k'},
		"vary overlong":      {LeaseVary, 1, 'a', 0x81, 0x00, 'x', '/', 'k'},
		"vary no key":        {LeaseVary, 1, 'a', 1, 'x'},
	}
	for name, b := range msgs {
		if m, err := ParseLeaseMsg(b); !errors.Is(err, ErrLease) {
			t.Errorf("%s: got %+v, %v, want ErrLease", name, m, err)
		}
	}
	answers := map[string][]byte{
		"empty":               {},
		"unknown":             {4},
		"usable no flags":     {LeaseUsable},
		"usable bad flags":    {LeaseUsable, 2, 1},
		"usable no record":    {LeaseUsable, 1},
		"filling no holder":   {LeaseFilling},
		"filling empty":       {LeaseFilling, 0, 1},
		"filling short":       {LeaseFilling, 3, 'b'},
		"filling no record":   {LeaseFilling, 1, 'b'},
		"varies without vary": {LeaseVaries},
	}
	for name, b := range answers {
		if a, err := ParseLeaseAnswer(b); !errors.Is(err, ErrLease) {
			t.Errorf("answer %s: got %+v, %v, want ErrLease", name, a, err)
		}
	}
}

// FuzzLease checks that the lease decoders never panic and that what
// they accept encodes back to the same bytes: a payload has one encoding.
func FuzzLease(f *testing.F) {
	f.Add((&LeaseMsg{Kind: LeaseAsk, Member: "a:1", Key: "/k"}).Append(nil))
	f.Add((&LeaseMsg{Kind: LeaseAgain, Member: "a:1", Key: "/k", Gone: "b"}).Append(nil))
	f.Add((&LeaseMsg{Kind: LeaseDone, Member: "a:1", Record: leaseRecord}).Append(nil))
	f.Add((&LeaseMsg{Kind: LeaseVary, Member: "a:1", Key: "/k", Vary: "Accept"}).Append(nil))
	f.Add((&LeaseAnswer{Kind: LeaseFilling, Holder: "b:2", Record: leaseRecord}).Append(nil))
	f.Add((&LeaseAnswer{Kind: LeaseUsable, FromOrigin: true, Record: leaseRecord}).Append(nil))
	f.Add((&LeaseAnswer{Kind: LeaseGranted}).Append(nil))
	f.Add((&LeaseAnswer{Kind: LeaseVaries, Vary: "Accept"}).Append(nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		if m, err := ParseLeaseMsg(b); err == nil {
			if got := m.Append(nil); string(got) != string(b) {
				t.Fatalf("message %x re-encodes as %x", b, got)
			}
		} else if !errors.Is(err, ErrLease) {
			t.Fatalf("message %x: error %v is not ErrLease", b, err)
		}
		if a, err := ParseLeaseAnswer(b); err == nil {
			if got := a.Append(nil); string(got) != string(b) {
				t.Fatalf("answer %x re-encodes as %x", b, got)
			}
		} else if !errors.Is(err, ErrLease) {
			t.Fatalf("answer %x: error %v is not ErrLease", b, err)
		}
	})
}
