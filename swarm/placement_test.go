package swarm

import (
	"encoding/binary"
	"fmt"
	"slices"
	"testing"

	"github.com/shoalcdn/shoal/erasure"
)

func testMembers(n int) []string {
	m := make([]string, n)
	for i := range m {
		m[i] = fmt.Sprintf("10.0.0.%d:7946", i+1)
	}
	return m
}

func testKey(i int) []byte {
	return binary.BigEndian.AppendUint64([]byte("key/"), uint64(i))
}

func TestRankPermutationAndDeterministic(t *testing.T) {
	for _, n := range []int{0, 1, 2, 3, 8, 10} {
		members := testMembers(n)
		for i := range 100 {
			key := testKey(i)
			got := Rank(members, key)
			if again := Rank(members, key); !slices.Equal(got, again) {
				t.Fatalf("%d members, key %d: got %v then %v", n, i, got, again)
			}
			sorted := slices.Clone(got)
			slices.Sort(sorted)
			want := slices.Clone(members)
			slices.Sort(want)
			if !slices.Equal(sorted, want) {
				t.Fatalf("%d members, key %d: got %v, not a permutation of %v", n, i, got, members)
			}
		}
	}
}

func TestRankIndependentOfInputOrder(t *testing.T) {
	members := testMembers(10)
	reversed := slices.Clone(members)
	slices.Reverse(reversed)
	rotated := append(slices.Clone(members[3:]), members[:3]...)
	before := slices.Clone(members)
	for i := range 200 {
		key := testKey(i)
		want := Rank(members, key)
		for _, in := range [][]string{reversed, rotated} {
			if got := Rank(in, key); !slices.Equal(got, want) {
				t.Fatalf("key %d: got %v for input %v, want %v", i, got, in, want)
			}
		}
	}
	if !slices.Equal(members, before) {
		t.Errorf("Rank changed its input: got %v, want %v", members, before)
	}
}

func TestRankRemoveMember(t *testing.T) {
	members := testMembers(10)
	gone := members[4]
	rest := slices.Delete(slices.Clone(members), 4, 5)
	moved := 0
	for i := range 1000 {
		key := testKey(i)
		before := Rank(members, key)
		after := Rank(rest, key)
		// Rendezvous hashing: the remaining members keep their relative
		// order, so only the keys the departed member led change leader.
		want := slices.DeleteFunc(slices.Clone(before), func(m string) bool { return m == gone })
		if !slices.Equal(after, want) {
			t.Fatalf("key %d: got %v, want %v", i, after, want)
		}
		if before[0] != after[0] {
			moved++
			if before[0] != gone {
				t.Fatalf("key %d moved from %s to %s though %s left", i, before[0], after[0], gone)
			}
		}
	}
	// About a tenth of the keys were led by the member that left.
	if moved < 50 || moved > 150 {
		t.Errorf("got %d of 1000 keys moved, want about 100", moved)
	}
}

func TestRankBalance(t *testing.T) {
	members := testMembers(8)
	const keys = 10_000
	leads := map[string]int{}
	for i := range keys {
		leads[Rank(members, testKey(i))[0]]++
	}
	for _, m := range members {
		share := float64(leads[m]) / keys
		if share < 0.08 || share > 0.17 {
			t.Errorf("%s leads %.1f%% of keys, want 8%%..17%%", m, 100*share)
		}
	}
}

func TestHolders(t *testing.T) {
	seg := erasure.SegmentID{Object: erasure.ObjectID(erasure.Sum([]byte("object"))), Index: 3}
	tests := []struct {
		name    string
		members int
		total   int
	}{
		{"fewer members than shards", 3, 6},
		{"as many members as shards", 6, 6},
		{"more members than shards", 10, 6},
		{"one member", 1, 6},
		{"no shards", 3, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			members := testMembers(tt.members)
			rank := Rank(members, SegmentKey(seg))
			got := Holders(members, seg, tt.total)
			if len(got) != tt.total {
				t.Fatalf("got %d holders, want %d", len(got), tt.total)
			}
			for i := range got {
				if want := rank[i%len(rank)]; got[i] != want {
					t.Errorf("holder[%d]: got %s, want %s", i, got[i], want)
				}
			}
		})
	}
	if got := Holders(nil, seg, 6); got != nil {
		t.Errorf("Holders with no members: got %v, want nil", got)
	}
}

func TestSegmentKey(t *testing.T) {
	a := erasure.SegmentID{Object: erasure.ObjectID(erasure.Sum([]byte("a"))), Index: 1}
	b := a
	b.Index = 2
	ka, kb := SegmentKey(a), SegmentKey(b)
	if len(ka) != erasure.HashSize+4 {
		t.Errorf("got a key of %d bytes, want %d", len(ka), erasure.HashSize+4)
	}
	if string(ka) == string(kb) {
		t.Errorf("segments %v and %v share the key %x", a, b, ka)
	}
}

func BenchmarkRank(b *testing.B) {
	members := testMembers(8)
	seg := erasure.SegmentID{Object: erasure.ObjectID(erasure.Sum([]byte("object")))}
	key := SegmentKey(seg)
	b.ReportAllocs()
	for b.Loop() {
		Rank(members, key)
	}
}
