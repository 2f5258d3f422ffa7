package swarm

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/shoalcdn/shoal/erasure"
)

// BenchmarkGetShard fetches a 1 MiB shard (a 4 MiB segment coded 4+2)
// across loopback QUIC, verification included, one at a time and four in
// flight at once. Both ends run in this process, so cpu-s/GB is the cost
// of both ends together, comparable with raw quic-go's figure.
func BenchmarkGetShard(b *testing.B) {
	nodes := startNodes(b, 2, nil, nil)
	client, holder := nodes[0], nodes[1]
	shards, d := encodeSegment(b, erasure.Params{K: 4, M: 2}, 4<<20, 15)
	if d.ShardLen != 1<<20 {
		b.Fatalf("got shards of %d bytes, want 1 MiB", d.ShardLen)
	}
	ids := make([]erasure.ShardID, len(shards))
	for i := range shards {
		ids[i] = testShardID(0, uint8(i))
		holder.store.PutShard(ids[i], d, shards[i])
	}
	ctx := context.Background()
	// Warm up: dial, and let the flow-control windows grow.
	for _, id := range ids {
		if _, _, err := client.GetShard(ctx, holder.addr, id); err != nil {
			b.Fatal(err)
		}
	}
	logTransport(b, client.Node, holder.addr)

	b.Run("serial", func(b *testing.B) {
		b.SetBytes(1 << 20)
		b.ReportAllocs()
		cpu := startCPU()
		for b.Loop() {
			if _, _, err := client.GetShard(ctx, holder.addr, ids[0]); err != nil {
				b.Fatal(err)
			}
		}
		cpu.report(b, int64(b.N)<<20)
	})
	// Into one reused buffer, as a reader rebuilding segments in place does.
	b.Run("serial-into", func(b *testing.B) {
		b.SetBytes(1 << 20)
		b.ReportAllocs()
		dst := make([]byte, 1<<20)
		cpu := startCPU()
		for b.Loop() {
			if _, err := client.GetShardInto(ctx, holder.addr, ids[0], dst); err != nil {
				b.Fatal(err)
			}
		}
		cpu.report(b, int64(b.N)<<20)
	})
	b.Run("parallel4", func(b *testing.B) {
		const inFlight = 4
		b.SetBytes(inFlight << 20)
		b.ReportAllocs()
		errs := make([]error, inFlight)
		cpu := startCPU()
		for b.Loop() {
			var wg sync.WaitGroup
			for j := range inFlight {
				wg.Go(func() {
					_, _, errs[j] = client.GetShard(ctx, holder.addr, ids[j])
				})
			}
			wg.Wait()
			for _, err := range errs {
				if err != nil {
					b.Fatal(err)
				}
			}
		}
		cpu.report(b, int64(b.N)*inFlight<<20)
	})
	logTransport(b, client.Node, holder.addr)
}

// cpuClock measures the process's CPU time (user and system, every
// goroutine) over a benchmark.
type cpuClock struct{ start time.Duration }

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func startCPU() cpuClock { return cpuClock{processCPU()} }

// report adds cpu-s/GB: CPU seconds spent per 10⁹ bytes moved.
func (c cpuClock) report(b *testing.B, bytes int64) {
	if bytes > 0 {
		b.ReportMetric((processCPU()-c.start).Seconds()/(float64(bytes)/1e9), "cpu-s/GB")
	}
}

// logTransport logs what the QUIC connection to peer negotiated and how it
// fared: the cipher suite, GSO, the packets sent and lost.
func logTransport(b *testing.B, n *Node, peer string) {
	c := n.tr.dialled(peer)
	if c == nil {
		return
	}
	cs := c.ConnectionState()
	st := c.ConnectionStats()
	b.Logf("QUIC to %s: %s, GSO %v, RTT %v, cwnd %d, sent %d packets (%d B), received %d packets, lost %d",
		peer, tls.CipherSuiteName(cs.TLS.CipherSuite), cs.GSO, st.SmoothedRTT, st.CongestionWindow,
		st.PacketsSent, st.BytesSent, st.PacketsReceived, st.PacketsLost)
}

// BenchmarkRawQUIC is the floor under BenchmarkGetShard: the same sockets,
// TLS and quic.Config, one stream per 1 MiB answer, but no protocol, no
// verification and one reused receive buffer.
func BenchmarkRawQUIC(b *testing.B) {
	creds := testCreds(b)
	n, err := New(Config{Self: "raw", Credentials: creds, Store: newMemStore()})
	if err != nil {
		b.Fatal(err)
	}
	payload := testSegment(1<<20, 3)
	srv := listenUDP(b)
	cli := listenUDP(b)
	str := &quic.Transport{Conn: srv}
	ctr := &quic.Transport{Conn: cli}
	b.Cleanup(func() { str.Close(); ctr.Close() })
	ln, err := str.Listen(creds.ServerConfig(), n.tr.quic)
	if err != nil {
		b.Fatal(err)
	}
	go func() {
		for {
			c, err := ln.Accept(context.Background())
			if err != nil {
				return
			}
			go func() {
				for {
					st, err := c.AcceptStream(context.Background())
					if err != nil {
						return
					}
					go func() {
						var req [1]byte
						io.ReadFull(st, req[:])
						st.Write(payload)
						st.Close()
					}()
				}
			}()
		}
	}()
	ctx := context.Background()
	c, err := ctr.Dial(ctx, srv.LocalAddr(), creds.ClientConfig(), n.tr.quic)
	if err != nil {
		b.Fatal(err)
	}
	get := func(buf []byte) {
		st, err := c.OpenStreamSync(ctx)
		if err != nil {
			b.Fatal(err)
		}
		st.Write([]byte{1})
		st.Close()
		if _, err := io.ReadFull(st, buf); err != nil {
			b.Fatal(err)
		}
	}
	bufs := make([][]byte, 4)
	for i := range bufs {
		bufs[i] = make([]byte, len(payload))
		get(bufs[i])
	}
	b.Run("serial", func(b *testing.B) {
		b.SetBytes(1 << 20)
		cpu := startCPU()
		for b.Loop() {
			get(bufs[0])
		}
		cpu.report(b, int64(b.N)<<20)
	})
	b.Run("parallel4", func(b *testing.B) {
		b.SetBytes(4 << 20)
		cpu := startCPU()
		for b.Loop() {
			var wg sync.WaitGroup
			for j := range 4 {
				wg.Go(func() { get(bufs[j]) })
			}
			wg.Wait()
		}
		cpu.report(b, int64(b.N)*4<<20)
	})
}

func listenUDP(b testing.TB) *net.UDPConn {
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	pc.SetReadBuffer(8 << 20)
	pc.SetWriteBuffer(8 << 20)
	return pc
}
