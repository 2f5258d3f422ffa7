package swarm

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/quic-go/quic-go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/time/rate"

	"github.com/shoalcdn/shoal/erasure"
	"github.com/shoalcdn/shoal/internal/throttle"
)

// ShardStore is what a node needs of the local shard store to answer
// GetShard and PutShard.
type ShardStore interface {
	// Shard returns a verified shard and its descriptor.
	Shard(id erasure.ShardID) (*erasure.Descriptor, []byte, bool)
	// PutShard stores a shard that has been verified against d.
	PutShard(id erasure.ShardID, d *erasure.Descriptor, data []byte) error
}

// Handler answers the requests whose meaning belongs to the edge: Stat
// (the questions of StatMode) and Fill (fetch and place one segment). The
// layouts of their payloads are in protocol.go; this package does not
// parse them. Return ErrNotFound for "not here".
type Handler interface {
	Stat(ctx context.Context, key []byte) ([]byte, error)
	Fill(ctx context.Context, payload []byte) (*Segment, error)
}

// server answers peers: it accepts their connections and streams on the
// transport, decodes each request, and answers it from the shard store
// (GetShard, PutShard) or the Handler (Stat, Fill).
type server struct {
	tr      *transport
	health  *peerHealth
	store   ShardStore
	handler Handler // nil: Stat and Fill are answered "not found"
	log     *slog.Logger
	tracer  trace.Tracer
	upload  *rate.Limiter // paces shard and segment answers; nil: no limit
	timeout time.Duration // Config.ServeTimeout
	// acceptCtx ends accepting connections and streams (Shutdown,
	// Close); serveCtx ends the requests being served (Close, or
	// Shutdown once drained or out of time).
	acceptCtx, serveCtx context.Context
	// hello answers a StatHello from the peer at the remote address
	// peer, whose payload (after the mode) is payload.
	hello func(peer string, payload []byte) ([]byte, error)
}

// serve accepts peers on ln until the node stops.
func (s *server) serve(ln *quic.Listener) error {
	for {
		conn, err := s.tr.accept(s.acceptCtx, ln)
		if err != nil {
			return err
		}
		go func() {
			defer s.tr.served()
			s.serveConn(conn)
		}()
	}
}

func (s *server) serveConn(conn *quic.Conn) {
	defer func() {
		// When the node stops, Shutdown or Close closes the connection,
		// after the last answers have gone out; else the connection died.
		if s.acceptCtx.Err() == nil {
			s.tr.forget(conn)
		}
	}()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		st, err := conn.AcceptStream(s.acceptCtx)
		if err != nil {
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.serveStream(conn, st)
		}()
	}
}

func (s *server) serveStream(conn *quic.Conn, st *quic.Stream) {
	defer st.Close()
	// The peer grants a new stream only when this one is done both ways,
	// and the receiving side is done only once its FIN has been read or
	// the read cancelled. The answer does not wait for the FIN, which may
	// come in a packet of its own, so without this every such request
	// would keep one of the MaxIncomingStreams until the connection died.
	// A no-op once Read has returned io.EOF.
	defer st.CancelRead(0)
	peer := conn.RemoteAddr().String()
	deadline := time.Now().Add(s.timeout)
	st.SetWriteDeadline(deadline)
	ctx, cancel := context.WithDeadline(s.serveCtx, deadline)
	defer cancel()
	// Reads end with ctx, by the cancel that ends them once answered
	// (code 0, as below), rather than by a read deadline: that costs a
	// timer for every Read that waits, and a pushed shard arrives about a
	// packet per Read.
	stopReads := context.AfterFunc(ctx, func() { st.CancelRead(0) })
	defer stopReads()
	br := bufio.NewReaderSize(st, 4<<10)
	req, err := ReadRequest(br)
	if err != nil {
		var se *quic.StreamError
		if errors.As(err, &se) && se.Remote && se.ErrorCode == 2 {
			// The requester gave up before sending it all (a hedged
			// request that lost, a client that went away): not a bad request.
			s.log.Debug("peer request cancelled by the requester", "peer", peer, "err", err)
			return
		}
		s.log.Warn("bad peer request", "peer", peer, "err", err)
		st.CancelRead(1)
		writeError(st, 0, StatusBadRequest, err)
		return
	}
	if !(req.Op == OpStat && len(req.Payload) > 0 && StatMode(req.Payload[0]) == StatHello) && conn.Context().Err() == nil {
		// A member that asks this node something on a live connection is
		// up: a backoff left from before (it restarted) would fail this
		// node's next requests to it at once, answers to its own among
		// them. Not on a handshake or a hello alone: a member being
		// stopped can still dial and greet, and reach here after its
		// death was seen.
		s.health.up(peer)
	}
	ctx = traceContext.Extract(ctx, &traceCarrier{tp: req.TraceParent})
	ctx, span := s.tracer.Start(ctx, "swarm.serve "+req.Op.String(), trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(attribute.String("shoal.peer", peer)))
	defer span.End()

	resp, body, status, err := s.answer(ctx, peer, req, br)
	if err != nil {
		writeError(st, req.Op, status, err)
		return
	}
	// What the store or handler gave must make a frame the peer accepts:
	// a nil descriptor would panic in Append, and a length the descriptor
	// contradicts would reach the peer as a malformed frame, not an error.
	if err := checkAnswer(req.Op, &resp); err != nil {
		s.log.Error("cannot answer peer", "peer", peer, "op", req.Op.String(), "err", err)
		writeError(st, req.Op, StatusFailed, err)
		return
	}
	hdr := resp.Append(make([]byte, 0, 64+MaxDescriptor), req.Op)
	if _, err := st.Write(hdr); err != nil {
		return
	}
	if len(body) > 0 {
		lim := s.upload
		if req.Op == OpStat {
			lim = nil // records are small and not what the limit is for
		}
		w, err := throttle.Write(ctx, st, body, lim)
		if !(req.Op == OpStat && StatMode(req.Payload[0]) == StatHello) {
			s.health.countServed(peer, w, 0) // payload bytes, not the greeting
		}
		if err != nil {
			s.log.Debug("peer went away mid-response", "peer", peer, "op", req.Op.String(), "err", err)
		}
	}
}

// answer dispatches req: it returns the OK answer's header and body, or
// the status and error to answer with instead. For a PutShard, the shard
// follows in br.
func (s *server) answer(ctx context.Context, peer string, req *Request, br *bufio.Reader) (Response, []byte, Status, error) {
	switch req.Op {
	case OpGetShard:
		trace.SpanFromContext(ctx).SetAttributes(attribute.String("shoal.shard", req.Shard.String()))
		d, data, ok := s.store.Shard(req.Shard)
		if !ok {
			return Response{}, nil, StatusNotFound, ErrNotFound
		}
		return Response{Descriptor: d, BodyLen: len(data)}, data, StatusOK, nil
	case OpPutShard:
		data := make([]byte, req.BodyLen)
		h := hashers.Get().(*erasure.Hasher)
		err := readBody(br, data, h)
		sum := h.Sum()
		hashers.Put(h)
		if err != nil {
			return Response{}, nil, StatusBadRequest, fmt.Errorf("reading shard: %w", err)
		}
		if err := req.Descriptor.CheckShardSum(int(req.Shard.Index), len(data), sum); err != nil {
			s.log.Warn("peer pushed a corrupt shard", "peer", peer, "shard", req.Shard.String(), "err", err)
			return Response{}, nil, StatusBadRequest, err
		}
		s.health.countServed(peer, 0, len(data))
		if err := s.store.PutShard(req.Shard, req.Descriptor, data); err != nil {
			return Response{}, nil, StatusFailed, err
		}
		return Response{}, nil, StatusOK, nil
	}
	// OpStat, OpFill: ReadRequest knows no other op.
	if req.Op == OpStat && StatMode(req.Payload[0]) == StatHello && s.hello != nil {
		body, err := s.hello(peer, req.Payload[1:])
		if err != nil {
			return Response{}, nil, StatusBadRequest, err
		}
		return Response{BodyLen: len(body)}, body, StatusOK, nil
	}
	if s.handler == nil {
		return Response{}, nil, StatusNotFound, ErrNotFound
	}
	var (
		resp Response
		body []byte
		err  error
	)
	if req.Op == OpStat {
		body, err = s.handler.Stat(ctx, req.Payload)
		resp.BodyLen = len(body)
	} else {
		var seg *Segment
		if seg, err = s.handler.Fill(ctx, req.Payload); err == nil {
			if seg == nil {
				err = errors.New("swarm: fill handler returned no segment")
			} else {
				resp = Response{Descriptor: seg.Descriptor, BodyLen: len(seg.Data), Message: seg.Source}
				body = seg.Data
			}
		}
	}
	if err != nil {
		status := StatusFailed
		var te interface{ Timeout() bool }
		switch {
		case errors.Is(err, ErrNotFound):
			status = StatusNotFound
		case errors.Is(err, ErrStale):
			status = StatusStale
		case errors.Is(err, context.DeadlineExceeded), errors.As(err, &te) && te.Timeout():
			status = StatusTimeout
		}
		if status != StatusNotFound {
			trace.SpanFromContext(ctx).SetStatus(codes.Error, err.Error())
		}
		return Response{}, nil, status, err
	}
	return resp, body, StatusOK, nil
}

// checkAnswer checks an OK response against the limits and lengths that
// ReadResponse enforces.
func checkAnswer(op Op, r *Response) error {
	switch op {
	case OpGetShard, OpFill:
		if r.Descriptor == nil {
			return fmt.Errorf("swarm: %v answer has no descriptor", op)
		}
		want := r.Descriptor.ShardLen
		if op == OpFill {
			want = r.Descriptor.Length
			if r.BodyLen == 0 {
				want = 0 // a placed answer
			}
		}
		if r.BodyLen != want {
			return fmt.Errorf("swarm: %v answer of %d bytes, descriptor says %d", op, r.BodyLen, want)
		}
	case OpStat:
		if r.BodyLen > MaxPayload {
			return fmt.Errorf("swarm: stat record of %d bytes exceeds %d", r.BodyLen, MaxPayload)
		}
	}
	return nil
}

// writeError answers a request with status and err's text.
func writeError(st *quic.Stream, op Op, status Status, err error) {
	r := Response{Status: status, Message: err.Error()}
	st.Write(r.Append(nil, op))
}
