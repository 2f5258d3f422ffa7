package swarm

import (
	"bytes"
	"context"
	"io"
	"net"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"golang.org/x/net/ipv4"
)

func messages(n int) []ipv4.Message {
	ms := make([]ipv4.Message, n)
	for i := range ms {
		ms[i].Buffers = [][]byte{make([]byte, 1500)}
	}
	return ms
}

// After a batch that did not fill up, datagrams that stream in during the
// wait are read together; one that reaches an idle socket is read at once.
func TestBatchConnReadsTogether(t *testing.T) {
	uc := listenUDP(t)
	t.Cleanup(func() { uc.Close() })
	bc := newBatchConn(uc, 300*time.Millisecond).(*batchConn)
	send, err := net.Dial("udp", uc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer send.Close()
	ms := messages(8)

	// An idle socket: the first datagram is read as soon as it lands.
	go send.Write([]byte{0})
	start := time.Now()
	if n, err := bc.ReadBatch(ms, 0); n != 1 || err != nil {
		t.Fatalf("first read: %d datagrams, %v; want 1", n, err)
	}
	if !bc.short {
		t.Fatal("a batch of 1 of 8 is not marked short")
	}
	first := time.Since(start)

	// Five more, a few milliseconds apart, start right after it: the next
	// read waits, and takes them in one batch.
	go func() {
		for i := 1; i <= 5; i++ {
			send.Write([]byte{byte(i)})
			time.Sleep(5 * time.Millisecond)
		}
	}()
	n, err := bc.ReadBatch(ms, 0)
	if err != nil {
		t.Fatal(err)
	}
	if n != 5 {
		t.Fatalf("after a short batch, read %d datagrams at once, want the 5 sent during the wait", n)
	}
	for i := range n {
		if got := ms[i].Buffers[0][:ms[i].N]; !bytes.Equal(got, []byte{byte(i + 1)}) {
			t.Fatalf("datagram %d is %v, want [%d]", i, got, i+1)
		}
	}
	t.Logf("first datagram read after %v", first)

	// A full batch is read again without waiting.
	for i := range 8 {
		send.Write([]byte{byte(10 + i)})
	}
	time.Sleep(50 * time.Millisecond) // all eight in the socket
	bc.short = false
	if n, err := bc.ReadBatch(ms, 0); n != 8 || err != nil {
		t.Fatalf("read %d, %v; want a full batch of 8", n, err)
	}
	if bc.short {
		t.Fatal("a full batch is marked short: the next read would wait")
	}
}

// quic-go reads through the batching socket: a connection carries a
// 1 MiB stream both ways through it, byte for byte.
func TestBatchConnCarriesQUIC(t *testing.T) {
	creds := testCreds(t)
	n, err := New(Config{Self: "raw", Credentials: creds, Store: newMemStore()})
	if err != nil {
		t.Fatal(err)
	}
	srv := newBatchConn(listenUDP(t), DefaultReadBatchWait)
	cli := newBatchConn(listenUDP(t), DefaultReadBatchWait)
	str, ctr := &quic.Transport{Conn: srv}, &quic.Transport{Conn: cli}
	t.Cleanup(func() { str.Close(); ctr.Close() })
	ln, err := str.Listen(creds.ServerConfig(), n.tr.quic)
	if err != nil {
		t.Fatal(err)
	}
	payload := testSegment(1<<20, 7)
	go func() {
		c, err := ln.Accept(context.Background())
		if err != nil {
			return
		}
		st, err := c.AcceptStream(context.Background())
		if err != nil {
			return
		}
		got, _ := io.ReadAll(st)
		st.Write(got)
		st.Close()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := ctr.Dial(ctx, srv.LocalAddr(), creds.ClientConfig(), n.tr.quic)
	if err != nil {
		t.Fatal(err)
	}
	st, err := c.OpenStreamSync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		st.Write(payload)
		st.Close()
	}()
	got, err := io.ReadAll(st)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, payload) {
		t.Fatalf("echoed %d bytes, not the %d sent", len(got), len(payload))
	}
}
