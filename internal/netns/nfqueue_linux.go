package netns

import (
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// A Delayer holds the packets an iptables NFQUEUE rule hands it for a
// fixed time, then lets them through: latency on an emulated network where the kernel has no netem. It speaks
// nfnetlink_queue directly over a netlink socket made in the host's
// namespace, in copy-meta mode (packets stay in the kernel; only their ids
// come up), and answers with batch verdicts: accepting id n accepts every
// earlier packet still queued, so the kernel's queue stays in order and a
// netlink message lost to a full socket buffer costs nothing.
//
// The wire format (linux/netfilter/nfnetlink_queue.h), all integers of
// the nf headers big-endian, netlink's own host-endian:
//
//	nlmsghdr  len u32 | type u16 (subsys 3 << 8 | msg) | flags u16 | seq u32 | pid u32
//	nfgenmsg  family u8 | version u8 (0) | queue be16
//	attrs     len u16 | type u16 | payload, padded to 4 bytes
const (
	netlinkNetfilter = 12 // NETLINK_NETFILTER
	nfnlSubsysQueue  = 3

	nfqnlMsgPacket       = 0
	nfqnlMsgConfig       = 2
	nfqnlMsgVerdictBatch = 3

	nfqaPacketHdr  = 1 // in a packet: id be32, hw_protocol be16, hook u8
	nfqaVerdictHdr = 2 // in a verdict: verdict be32, id be32

	nfqaCfgCmd      = 1 // command u8, pad u8, pf be16
	nfqaCfgParams   = 2 // copy_range be32, copy_mode u8
	nfqaCfgQueueMax = 3 // be32
	nfqaCfgFlags    = 4 // be32
	nfqaCfgMask     = 5 // be32

	nfqnlCfgCmdBind   = 1
	nfqnlCopyMeta     = 1
	nfqaCfgFFailOpen  = 1 // accept rather than drop when the queue is full
	nfAccept          = 1
	nlmFRequest       = 1
	nlmsgHdrLen       = 16
	delayerQueueLen   = 1 << 15
	delayerSocketBuf  = 4 << 20
	delayerReadPeriod = 200 * time.Millisecond
)

// Delayer delays the packets of one NFQUEUE queue in one namespace.
type Delayer struct {
	fd      int
	queue   uint16
	delay   time.Duration
	pending chan delayed
	stop    atomic.Bool
	wg      sync.WaitGroup
	// delayed and early count the packets handled, and those let
	// through early because the pending queue was full.
	delayed, early atomic.Int64
}

type delayed struct {
	id  uint32
	due time.Time
}

// StartDelayer binds queue in namespace ns (a name under /run/netns) and
// delays its packets by d. An iptables rule in ns sends them to the queue
// (-j NFQUEUE --queue-num queue --queue-bypass); Network.Delay does both.
func StartDelayer(ns string, queue uint16, d time.Duration) (*Delayer, error) {
	fd := -1
	err := Do(ns, func() error {
		var err error
		fd, err = syscall.Socket(syscall.AF_NETLINK, syscall.SOCK_RAW|syscall.SOCK_CLOEXEC, netlinkNetfilter)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("netns: netlink socket in %s: %w", ns, err)
	}
	q := &Delayer{fd: fd, queue: queue, delay: d, pending: make(chan delayed, delayerQueueLen)}
	fail := func(err error) (*Delayer, error) {
		syscall.Close(fd)
		return nil, fmt.Errorf("netns: NFQUEUE %d in %s: %w", queue, ns, err)
	}
	if err := syscall.Bind(fd, &syscall.SockaddrNetlink{Family: syscall.AF_NETLINK}); err != nil {
		return fail(err)
	}
	syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_RCVBUFFORCE, delayerSocketBuf)
	tv := syscall.NsecToTimeval(delayerReadPeriod.Nanoseconds())
	if err := syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &tv); err != nil {
		return fail(err)
	}
	be32 := func(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
	for _, attrs := range [][]nlAttr{
		{{nfqaCfgCmd, []byte{nfqnlCfgCmdBind, 0, 0, 0}}},
		{{nfqaCfgParams, append(be32(0), nfqnlCopyMeta)}, {nfqaCfgQueueMax, be32(delayerQueueLen)},
			{nfqaCfgFlags, be32(nfqaCfgFFailOpen)}, {nfqaCfgMask, be32(nfqaCfgFFailOpen)}},
	} {
		if err := q.send(nfqnlMsgConfig, attrs, true); err != nil {
			return fail(err)
		}
	}
	q.wg.Go(q.read)
	q.wg.Go(q.release)
	return q, nil
}

type nlAttr struct {
	typ  uint16
	data []byte
}

// send sends one nfnetlink_queue message; with ack, it waits for the
// kernel's answer and returns its error.
func (q *Delayer) send(msg uint16, attrs []nlAttr, ack bool) error {
	b := make([]byte, nlmsgHdrLen, 64)
	b = append(b, syscall.AF_UNSPEC, 0)
	b = binary.BigEndian.AppendUint16(b, q.queue)
	for _, a := range attrs {
		b = binary.NativeEndian.AppendUint16(b, uint16(4+len(a.data)))
		b = binary.NativeEndian.AppendUint16(b, a.typ)
		b = append(b, a.data...)
		for len(b)%4 != 0 {
			b = append(b, 0)
		}
	}
	flags := uint16(nlmFRequest)
	if ack {
		flags |= syscall.NLM_F_ACK
	}
	binary.NativeEndian.PutUint32(b[0:], uint32(len(b)))
	binary.NativeEndian.PutUint16(b[4:], nfnlSubsysQueue<<8|msg)
	binary.NativeEndian.PutUint16(b[6:], flags)
	if err := syscall.Sendto(q.fd, b, 0, &syscall.SockaddrNetlink{Family: syscall.AF_NETLINK}); err != nil {
		return err
	}
	if !ack {
		return nil
	}
	buf := make([]byte, 4096)
	for {
		n, _, err := syscall.Recvfrom(q.fd, buf, 0)
		if err != nil {
			return err
		}
		for m := buf[:n]; len(m) >= nlmsgHdrLen; {
			l := int(binary.NativeEndian.Uint32(m))
			if l < nlmsgHdrLen || l > len(m) {
				break
			}
			if binary.NativeEndian.Uint16(m[4:]) == syscall.NLMSG_ERROR && l >= nlmsgHdrLen+4 {
				if errno := int32(binary.NativeEndian.Uint32(m[nlmsgHdrLen:])); errno != 0 {
					return syscall.Errno(-errno)
				}
				return nil
			}
			m = m[(l+3)&^3:]
		}
	}
}

// read takes the queued packets' ids as they come and hands them to
// release with their due time.
func (q *Delayer) read() {
	defer close(q.pending)
	buf := make([]byte, 1<<16)
	for !q.stop.Load() {
		n, _, err := syscall.Recvfrom(q.fd, buf, 0)
		now := time.Now()
		if err != nil {
			continue // the read timeout (to look at stop), or ENOBUFS: the next verdict covers what was lost
		}
		for m := buf[:n]; len(m) >= nlmsgHdrLen; {
			l := int(binary.NativeEndian.Uint32(m))
			if l < nlmsgHdrLen || l > len(m) {
				break
			}
			if binary.NativeEndian.Uint16(m[4:]) == nfnlSubsysQueue<<8|nfqnlMsgPacket {
				if id, ok := packetID(m[nlmsgHdrLen+4 : l]); ok {
					select {
					case q.pending <- delayed{id, now.Add(q.delay)}:
						q.delayed.Add(1)
					default: // full: let it through now rather than stall the link
						q.early.Add(1)
						q.verdict(id)
					}
				}
			}
			m = m[min(len(m), (l+3)&^3):]
		}
	}
}

// packetID finds NFQA_PACKET_HDR among a packet message's attributes.
func packetID(attrs []byte) (uint32, bool) {
	for len(attrs) >= 4 {
		l := int(binary.NativeEndian.Uint16(attrs))
		typ := binary.NativeEndian.Uint16(attrs[2:]) & 0x3fff
		if l < 4 || l > len(attrs) {
			return 0, false
		}
		if typ == nfqaPacketHdr && l >= 8 {
			return binary.BigEndian.Uint32(attrs[4:]), true
		}
		attrs = attrs[min(len(attrs), (l+3)&^3):]
	}
	return 0, false
}

// release lets packets through once they are due, the oldest first, as
// one batch verdict for every packet due.
func (q *Delayer) release() {
	for p := range q.pending {
		if d := time.Until(p.due); d > 0 {
			time.Sleep(d)
		}
		last := p.id
		for more := true; more; {
			select {
			case n, ok := <-q.pending:
				if !ok {
					more = false
					break
				}
				if d := time.Until(n.due); d > 0 {
					q.verdict(last)
					time.Sleep(d)
				}
				last = n.id
			default:
				more = false
			}
		}
		q.verdict(last)
	}
}

// verdict accepts packet id and every earlier one still queued.
func (q *Delayer) verdict(id uint32) {
	v := binary.BigEndian.AppendUint32(nil, nfAccept)
	v = binary.BigEndian.AppendUint32(v, id)
	q.send(nfqnlMsgVerdictBatch, []nlAttr{{nfqaVerdictHdr, v}}, false)
}

// Delayed counts the packets delayed so far; Early those let through at
// once because the pending queue was full (none, unless the link carries
// more than delayerQueueLen packets per delay).
func (q *Delayer) Delayed() int64 { return q.delayed.Load() }

// Early: see Delayed.
func (q *Delayer) Early() int64 { return q.early.Load() }

// Close stops delaying; packets still held are let through.
func (q *Delayer) Close() error {
	q.stop.Store(true)
	q.wg.Wait()
	return syscall.Close(q.fd)
}
