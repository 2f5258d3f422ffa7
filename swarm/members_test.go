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
	n := &Node{cfg: Config{Self: "127.0.0.1:1"}, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	n.setStatic([]string{"127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"})
	state := func(addr string) MemberState { return stateOf(n.MemberList(), addr) }

	n.removeMember("127.0.0.1:2", StateDead)
	n.removeMember("127.0.0.1:2", StateLeft)
	if st := state("127.0.0.1:2"); st != StateLeft {
		t.Errorf("dead, then goodbye: %q, want %q", st, StateLeft)
	}
	n.removeMember("127.0.0.1:3", StateLeft)
	n.removeMember("127.0.0.1:3", StateDead)
	if st := state("127.0.0.1:3"); st != StateLeft {
		t.Errorf("goodbye, then dead: %q, want %q", st, StateLeft)
	}
	n.removeMember("127.0.0.1:1", StateLeft)
	if st := state("127.0.0.1:1"); st != StateAlive {
		t.Errorf("this node: %q, want %q", st, StateAlive)
	}
}
