package swarm

import (
	"net"
	"time"

	"golang.org/x/net/ipv4"
)

// Receiving in batches. quic-go's socket reader takes what the socket
// holds (recvmmsg, up to 8 datagrams) and blocks for more. While shards
// stream in over shaped links, datagrams arrive one at a time, each a
// wake-up of the reader, of the connection's loop, which acknowledges
// every second packet, and of the goroutine that sends that ACK: the
// edges of a flash crowd spent most of their CPU waking up, not on bytes
// (bench/README.md, issue #19). batchConn makes the reader wait a little
// after a batch that did not fill up before it reads again, so that the
// datagrams of that time are read, unpacked and acknowledged together.
// A full batch is read again at once, so a fast link is not held back,
// and a datagram that arrives at an idle socket wakes the reader at once:
// only datagrams that follow within the wait of the one before are
// delayed, by at most the wait.

// DefaultReadBatchWait is Config.ReadBatchWait's default.
const DefaultReadBatchWait = 5 * time.Millisecond

// batchConn is a UDP socket that quic-go reads through ReadBatch (its
// optimised path for *net.UDPConn stays: GSO, ECN and the buffer sizes
// come from the embedded socket).
type batchConn struct {
	*net.UDPConn
	batch *ipv4.PacketConn
	wait  time.Duration
	short bool // the last batch did not fill up
}

// newBatchConn wraps uc, or returns it as it is when wait is not
// positive.
func newBatchConn(uc *net.UDPConn, wait time.Duration) net.PacketConn {
	if wait <= 0 {
		return uc
	}
	return &batchConn{UDPConn: uc, batch: ipv4.NewPacketConn(uc), wait: wait}
}

// ReadBatch reads the datagrams the socket holds into ms, after waiting
// c.wait if the last read did not fill its batch. quic-go calls it from
// one goroutine.
func (c *batchConn) ReadBatch(ms []ipv4.Message, flags int) (int, error) {
	if c.short {
		time.Sleep(c.wait)
	}
	n, err := c.batch.ReadBatch(ms, flags)
	c.short = n < len(ms)
	return n, err
}
