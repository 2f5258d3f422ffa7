package swarm

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/time/rate"

	"github.com/shoalcdn/shoal/erasure"
	"github.com/shoalcdn/shoal/internal/throttle"
)

// client makes the requests of the peer protocol: one stream per request
// on the transport's connection to the peer, the answer verified as it
// arrives, the outcome reported to peer health and to Config.OnRequest.
type client struct {
	tr     *transport
	health *peerHealth
	tracer trace.Tracer
	upload *rate.Limiter // paces PutShard bodies; nil: no limit
	// zoneOf is membership's zone of a peer, and zone this node's: for
	// the spans and the zone split of fetched shard bytes.
	zoneOf    func(peer string) string
	zone      string
	onRequest func(op Op, result string, bytes int, took time.Duration)
}

// Connect makes sure there is a connection to peer, dialling it if there
// is none. Requests dial on demand; Connect lets a caller pay for the
// handshake ahead of the first request.
func (n *Node) Connect(ctx context.Context, peer string) error {
	_, err := n.tr.conn(ctx, peer)
	return err
}

// GetShard fetches a shard from peer. The shard is verified against the
// descriptor that came with it; a mismatch is an *erasure.IntegrityError.
// The caller still checks that the descriptor is the one it expects.
func (n *Node) GetShard(ctx context.Context, peer string, id erasure.ShardID) (*erasure.Descriptor, []byte, error) {
	return n.client.getShard(ctx, peer, id, nil)
}

// GetShardInto is GetShard reading the shard into dst, which must be as
// long as the shard (the descriptor's ShardLen: the segment's length over
// k, rounded up), rather than into a new buffer: a reader that rebuilds a
// segment can have each data shard land in its place in the segment (see
// erasure.Coder.DecodeInPlace) and save an allocation and a copy. A shard of
// another length is an error, and dst is not written. On any error, dst's
// bytes are unspecified.
func (n *Node) GetShardInto(ctx context.Context, peer string, id erasure.ShardID, dst []byte) (*erasure.Descriptor, error) {
	if len(dst) == 0 {
		return nil, errors.New("swarm: GetShardInto: empty buffer")
	}
	d, _, err := n.client.getShard(ctx, peer, id, dst)
	return d, err
}

// PutShard pushes a shard to peer, which verifies it against d and stores it.
func (n *Node) PutShard(ctx context.Context, peer string, id erasure.ShardID, d *erasure.Descriptor, data []byte) error {
	return n.client.putShard(ctx, peer, id, d, data)
}

// Stat asks peer the question key encodes (a StatMode and its payload,
// see AppendStat) and returns the answer's payload.
func (n *Node) Stat(ctx context.Context, peer string, key []byte) ([]byte, error) {
	return n.client.stat(ctx, peer, key)
}

// Fill asks peer, a segment's coordinator, to produce the segment that
// payload names: the returned segment has been verified against the
// returned descriptor, or is a placed answer (Data nil, see Segment).
func (n *Node) Fill(ctx context.Context, peer string, payload []byte) (*Segment, error) {
	return n.client.fill(ctx, peer, payload)
}

func (c *client) getShard(ctx context.Context, peer string, id erasure.ShardID, dst []byte) (*erasure.Descriptor, []byte, error) {
	defer c.health.asking(peer)()
	resp, body, err := c.roundTrip(ctx, peer, &Request{Op: OpGetShard, Shard: id}, nil, dst, func(r *Response, sum erasure.Hash) error {
		if err := r.Descriptor.CheckShardSum(int(id.Index), r.BodyLen, sum); err != nil {
			return fmt.Errorf("swarm: shard %v from %s: %w", id, peer, err)
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return resp.Descriptor, body, nil
}

func (c *client) putShard(ctx context.Context, peer string, id erasure.ShardID, d *erasure.Descriptor, data []byte) error {
	if len(data) != d.ShardLen {
		return &erasure.IntegrityError{Shard: int(id.Index), Reason: "length"}
	}
	_, _, err := c.roundTrip(ctx, peer, &Request{Op: OpPutShard, Shard: id, Descriptor: d, BodyLen: len(data)}, data, nil, nil)
	return err
}

func (c *client) stat(ctx context.Context, peer string, key []byte) ([]byte, error) {
	if len(key) == 0 || len(key) > MaxKey {
		return nil, fmt.Errorf("swarm: stat: key of %d bytes (want 1..%d)", len(key), MaxKey)
	}
	_, body, err := c.roundTrip(ctx, peer, &Request{Op: OpStat, Payload: key}, nil, nil, nil)
	return body, err
}

func (c *client) fill(ctx context.Context, peer string, payload []byte) (*Segment, error) {
	if len(payload) == 0 || len(payload) > MaxPayload {
		return nil, fmt.Errorf("swarm: fill: payload of %d bytes (want 1..%d)", len(payload), MaxPayload)
	}
	resp, body, err := c.roundTrip(ctx, peer, &Request{Op: OpFill, Payload: payload}, nil, nil, func(r *Response, sum erasure.Hash) error {
		if r.BodyLen == 0 && r.Descriptor.Length > 0 {
			return nil // placed: the shards are verified as they are read
		}
		if err := r.Descriptor.CheckSegmentSum(r.BodyLen, sum); err != nil {
			return fmt.Errorf("swarm: segment from %s: %w", peer, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(body) == 0 && resp.Descriptor.Length > 0 {
		body = nil
	}
	return &Segment{Descriptor: resp.Descriptor, Data: body, Source: resp.Message}, nil
}

// roundTrip sends one request on a new stream and reads the response header
// and body. The body goes into a new buffer, or into into when that is not
// nil (which must then have the body's length). When verify is set, the
// body (even an empty one) is hashed as it arrives and verify judges the
// hash: a body that fails it is never returned.
func (c *client) roundTrip(ctx context.Context, peer string, req *Request, reqBody []byte, into []byte, verify func(*Response, erasure.Hash) error) (resp *Response, body []byte, err error) {
	start := time.Now()
	sentBody := 0
	zone := c.zoneOf(peer)
	ctx, span := c.tracer.Start(ctx, "swarm."+req.Op.String(), trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("shoal.peer", peer), attribute.String("shoal.peer.zone", zone)))
	defer func() {
		result := resultLabel(ctx, err)
		span.SetAttributes(attribute.String("shoal.result", result), attribute.Int("shoal.bytes", len(body)))
		if err != nil && result != "not_found" {
			span.SetStatus(codes.Error, err.Error())
		}
		span.End()
		took := time.Since(start)
		// The zone as membership says now, when the shard has arrived.
		c.health.observe(peer, c.zoneOf(peer) == c.zone, req.Op, result, sentBody, len(body), took)
		if c.onRequest != nil {
			c.onRequest(req.Op, result, len(body), took)
		}
	}()
	if span.SpanContext().IsValid() {
		tc := &traceCarrier{}
		traceContext.Inject(ctx, tc)
		req.TraceParent = tc.tp
	}
	conn, err := c.tr.conn(ctx, peer)
	if err != nil {
		return nil, nil, err
	}
	if span.IsRecording() {
		span.SetAttributes(attribute.Int64("shoal.peer.rtt_us", conn.ConnectionStats().SmoothedRTT.Microseconds()))
	}
	st, err := conn.OpenStreamSync(ctx)
	if err != nil {
		return nil, nil, c.tr.failed(ctx, peer, conn, fmt.Errorf("swarm: %v to %s: %w", req.Op, peer, err))
	}
	// Only writes carry ctx's deadline. A read deadline costs a timer
	// for every Read that waits, and a body arrives about a packet per
	// Read; the cancel below ends a waiting Read at the deadline as well,
	// with one timer per request.
	if dl, ok := ctx.Deadline(); ok {
		st.SetWriteDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() {
		st.CancelRead(2)
		st.CancelWrite(2)
	})
	defer stop()
	defer st.CancelRead(0) // no-op once the response is fully read
	hdr := req.Append(make([]byte, 0, 128+len(req.Payload)+MaxDescriptor))
	if _, err := st.Write(hdr); err != nil {
		return nil, nil, c.tr.failed(ctx, peer, conn, fmt.Errorf("swarm: %v to %s: %w", req.Op, peer, err))
	}
	if len(reqBody) > 0 {
		var err error
		if sentBody, err = throttle.Write(ctx, st, reqBody, c.upload); err != nil {
			return nil, nil, c.tr.failed(ctx, peer, conn, fmt.Errorf("swarm: %v to %s: %w", req.Op, peer, err))
		}
	}
	st.Close()
	br := bufio.NewReaderSize(st, 4<<10)
	resp, err = ReadResponse(br, req.Op)
	if err != nil {
		return nil, nil, c.tr.failed(ctx, peer, conn, fmt.Errorf("swarm: %v from %s: %w", req.Op, peer, err))
	}
	switch resp.Status {
	case StatusOK:
	case StatusNotFound:
		return nil, nil, fmt.Errorf("swarm: %v at %s: %w", req.Op, peer, ErrNotFound)
	default:
		return nil, nil, &RemoteError{Peer: peer, Op: req.Op, Status: resp.Status, Message: resp.Message}
	}
	switch {
	case into == nil:
		if resp.BodyLen > 0 {
			body = make([]byte, resp.BodyLen)
		}
	case len(into) == resp.BodyLen:
		body = into
	default:
		// Not the peer's fault: the caller expected another length (a
		// descriptor it did not expect either). The stream is cancelled.
		return nil, nil, fmt.Errorf("swarm: %v from %s: a body of %d bytes for a buffer of %d", req.Op, peer, resp.BodyLen, len(into))
	}
	var h *erasure.Hasher
	if verify != nil {
		h = hashers.Get().(*erasure.Hasher)
		defer hashers.Put(h)
	}
	if err := readBody(br, body, h); err != nil {
		return nil, nil, c.tr.failed(ctx, peer, conn, fmt.Errorf("swarm: %v body from %s: %w", req.Op, peer, err))
	}
	if verify != nil {
		if err := verify(resp, h.Sum()); err != nil {
			return nil, nil, err
		}
	}
	return resp, body, nil
}

// resultLabel names the outcome of a request for OnRequest, the spans and
// peer health.
func resultLabel(ctx context.Context, err error) string {
	var ie *erasure.IntegrityError
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, ErrNotFound):
		return "not_found"
	case errors.As(err, &ie):
		return "corrupt"
	case errors.Is(err, ErrPeerDown):
		return "down"
	case ctxErr(ctx) != nil:
		return "canceled"
	default:
		return "error"
	}
}
