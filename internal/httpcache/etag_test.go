package httpcache

import "testing"

func TestRFC9110ETagMatch_Section8_8_3_2(t *testing.T) {
	tests := []struct {
		list, etag string
		weak       bool
		want       bool
	}{
		{`"a"`, `"a"`, false, true},
		{`"a"`, `"a"`, true, true},
		{`W/"a"`, `"a"`, false, false},
		{`W/"a"`, `"a"`, true, true},
		{`"b", "a"`, `"a"`, false, true},
		{` "b" ,W/"a" `, `"a"`, true, true},
		{`*`, `"a"`, false, true},
		{`"b"`, `"a"`, true, false},
		{`"a`, `"a"`, true, false},
		{`a`, `"a"`, true, false},
		{`"b" junk, "a"`, `"a"`, true, false},
		{``, `"a"`, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.list, func(t *testing.T) {
			match := StrongMatch
			if tt.weak {
				match = WeakMatch
			}
			if got := etagListMatch(tt.list, tt.etag, match); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}
