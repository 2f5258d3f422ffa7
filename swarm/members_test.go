package swarm

import (
	"io"
	"log/slog"
	"testing"
)

// TestGoodbyeAfterDeath: a member taken for dead (a false death under load,
// or its goodbye overtaken by the death) that then says goodbye is shown as
// left; a death after a goodbye does not undo it.
func TestGoodbyeAfterDeath(t *testing.T) {
	m := &membership{self: "127.0.0.1:1", log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	m.setStatic([]string{"127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"})
	state := func(addr string) MemberState { return stateOf(m.list(), addr) }

	m.remove("127.0.0.1:2", StateDead)
	m.remove("127.0.0.1:2", StateLeft)
	if st := state("127.0.0.1:2"); st != StateLeft {
		t.Errorf("dead, then goodbye: %q, want %q", st, StateLeft)
	}
	m.remove("127.0.0.1:3", StateLeft)
	m.remove("127.0.0.1:3", StateDead)
	if st := state("127.0.0.1:3"); st != StateLeft {
		t.Errorf("goodbye, then dead: %q, want %q", st, StateLeft)
	}
	m.remove("127.0.0.1:1", StateLeft)
	if st := state("127.0.0.1:1"); st != StateAlive {
		t.Errorf("this node: %q, want %q", st, StateAlive)
	}
}
