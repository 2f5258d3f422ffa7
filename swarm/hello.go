package swarm

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/quic-go/quic-go"
)

// Layout returns the layout this node announces to its peers.
func (n *Node) Layout() FleetLayout { return n.mem.layout }

// Meet dials peer unless connected (not waiting for the backoff of a
// failed peer), exchanging hellos, and returns the layout the peer
// announced (unknown from a release before the exchange). The error is a
// *ConnectError when the connection failed, and wraps ErrIncompatible
// when the layouts differ. `shoal check` uses it.
func (n *Node) Meet(ctx context.Context, peer string) (FleetLayout, error) {
	err := n.tr.probe(ctx, peer)
	return n.mem.layoutOf(peer), err
}

// greet sends this node's hello on c, a connection just dialled to peer,
// and records the peer's answer. It returns an error wrapping
// ErrIncompatible when the layouts differ; any other failure leaves the
// peer's layout unknown and the connection usable.
func (n *Node) greet(ctx context.Context, peer string, c *quic.Conn) error {
	theirs, err := n.sayHello(ctx, c)
	if err != nil && connectionFailed(c, err) {
		return err
	}
	if err != nil {
		// An older member answers with an error (an unknown mode): its
		// layout is unknown, and it is kept.
		n.log.Debug("peer did not answer hello: layout unknown", "peer", peer, "err", err)
		return nil
	}
	if !n.mem.peerLayout(peer, theirs.Layout, "dial") {
		return fmt.Errorf("%w: %s: %s", ErrIncompatible, peer, n.mem.layout.Diff(theirs.Layout))
	}
	return nil
}

// sayHello exchanges hellos on a stream of c.
func (n *Node) sayHello(ctx context.Context, c *quic.Conn) (hello, error) {
	st, err := c.OpenStreamSync(ctx)
	if err != nil {
		return hello{}, err
	}
	defer st.CancelRead(0)
	if dl, ok := ctx.Deadline(); ok {
		st.SetDeadline(dl)
	} else {
		st.SetDeadline(time.Now().Add(n.cfg.DialTimeout))
	}
	key := hello{Self: n.cfg.Self, Layout: n.mem.layout}.append(AppendStat(nil, StatHello))
	req := &Request{Op: OpStat, Payload: key}
	if _, err := st.Write(req.Append(nil)); err != nil {
		return hello{}, err
	}
	st.Close()
	br := bufio.NewReaderSize(st, 512)
	resp, err := ReadResponse(br, OpStat)
	if err != nil {
		return hello{}, err
	}
	if resp.Status != StatusOK {
		return hello{}, errors.New(resp.Message)
	}
	if resp.BodyLen > 1<<10 {
		return hello{}, fmt.Errorf("%w: hello answer of %d bytes", ErrFrame, resp.BodyLen)
	}
	body := make([]byte, resp.BodyLen)
	if err := readBody(br, body, nil); err != nil {
		return hello{}, err
	}
	return parseHello(body)
}

// answerHello answers a peer's StatHello: it records the layout the peer
// announced and says this node's.
func (n *Node) answerHello(remote string, payload []byte) ([]byte, error) {
	h, err := parseHello(payload)
	if err != nil {
		return nil, err
	}
	addr := h.Self
	if addr == "" {
		addr = remote
	}
	n.mem.peerLayout(addr, h.Layout, "accept")
	return hello{Self: n.cfg.Self, Layout: n.mem.layout}.append(nil), nil
}

// meetPeers dials every member of a static list that has no connection
// yet, so that the members compare layouts (and a certificate from
// another CA is logged) when the fleet starts rather than on the first
// request; then it goes on meeting, less and less often, those it could
// not reach and those kept out for their layout, until ctx ends.
func (n *Node) meetPeers(ctx context.Context) {
	wait := time.Second
	for {
		for _, p := range n.cfg.Peers {
			if p == "" || p == n.cfg.Self || (n.tr.dialled(p) != nil && !n.mem.isIncompatible(p)) {
				continue
			}
			pctx, cancel := context.WithTimeout(ctx, 2*n.cfg.DialTimeout)
			n.tr.probe(pctx, p) // failures are reported by the transport
			cancel()
			if ctx.Err() != nil {
				return
			}
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		wait = min(2*wait, time.Minute)
	}
}
