package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

// otlpReceiver is a real OTLP trace endpoint on loopback, over HTTP
// (protobuf, POST /v1/traces) and gRPC (TraceService/Export): it decodes
// what the edges and the origin export and keeps the spans.
type otlpReceiver struct {
	coltracepb.UnimplementedTraceServiceServer
	mu    sync.Mutex
	spans []span
	http  *httptest.Server
	grpc  string // host:port of the gRPC server
}

type span struct {
	service, instance string
	name              string
	trace, id, parent string
	attrs             map[string]string
}

func startReceiver(t *testing.T) *otlpReceiver {
	t.Helper()
	r := &otlpReceiver{}
	r.http = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodPost || req.URL.Path != "/v1/traces" {
			http.Error(w, "not an OTLP trace export", http.StatusNotFound)
			return
		}
		b, err := io.ReadAll(req.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var msg coltracepb.ExportTraceServiceRequest
		if err := proto.Unmarshal(b, &msg); err != nil {
			t.Errorf("OTLP/HTTP: undecodable export (%s): %v", req.Header.Get("Content-Type"), err)
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.keep(&msg)
		out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.Write(out)
	}))
	t.Cleanup(r.http.Close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	coltracepb.RegisterTraceServiceServer(gs, r)
	go gs.Serve(ln)
	t.Cleanup(gs.Stop)
	r.grpc = ln.Addr().String()
	return r
}

// Export is the gRPC TraceService.
func (r *otlpReceiver) Export(_ context.Context, msg *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	r.keep(msg)
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

func (r *otlpReceiver) keep(msg *coltracepb.ExportTraceServiceRequest) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rs := range msg.GetResourceSpans() {
		res := attrMap(rs.GetResource().GetAttributes())
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				r.spans = append(r.spans, span{
					service: res["service.name"], instance: res["service.instance.id"],
					name:  s.GetName(),
					trace: hex.EncodeToString(s.GetTraceId()), id: hex.EncodeToString(s.GetSpanId()),
					parent: hex.EncodeToString(s.GetParentSpanId()),
					attrs:  attrMap(s.GetAttributes()),
				})
			}
		}
	}
}

func attrMap(kvs []*commonpb.KeyValue) map[string]string {
	m := map[string]string{}
	for _, kv := range kvs {
		v := kv.GetValue()
		switch x := v.GetValue().(type) {
		case *commonpb.AnyValue_StringValue:
			m[kv.GetKey()] = x.StringValue
		case *commonpb.AnyValue_IntValue:
			m[kv.GetKey()] = fmt.Sprint(x.IntValue)
		case *commonpb.AnyValue_BoolValue:
			m[kv.GetKey()] = fmt.Sprint(x.BoolValue)
		case *commonpb.AnyValue_DoubleValue:
			m[kv.GetKey()] = fmt.Sprint(x.DoubleValue)
		}
	}
	return m
}

// trace returns the spans of one trace received so far.
func (r *otlpReceiver) trace(id string) []span {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []span
	for _, s := range r.spans {
		if s.trace == id {
			out = append(out, s)
		}
	}
	return out
}

func find(spans []span, ok func(span) bool) []span {
	var out []span
	for _, s := range spans {
		if ok(s) {
			out = append(out, s)
		}
	}
	return out
}

func named(name string) func(span) bool { return func(s span) bool { return s.name == name } }

// tracedGet fetches url with a fresh traceparent and returns the trace ID.
func tracedGet(t *testing.T, url string, want object) string {
	t.Helper()
	var tid [16]byte
	var sid [8]byte
	rand.Read(tid[:])
	rand.Read(sid[:])
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("traceparent", fmt.Sprintf("00-%x-%x-01", tid, sid))
	resp, sum, n := fetch(t, newClient(), http.MethodGet, url, req.Header)
	checkWhole(t, url, want, resp, sum, n)
	return hex.EncodeToString(tid[:])
}

// TestE2ETraceAcrossFleet: one download through a 3-edge fleet gives one
// trace with spans from the edge the client asked, the other edges that
// filled or served shards, the origin fetch, and the origin itself, over
// OTLP/HTTP and OTLP/gRPC, configured only by OTEL_* variables.
func TestE2ETraceAcrossFleet(t *testing.T) {
	for _, protocol := range []string{"http/protobuf", "grpc"} {
		t.Run(protocol, func(t *testing.T) {
			rcv := startReceiver(t)
			endpoint := rcv.http.URL
			if protocol == "grpc" {
				endpoint = "http://" + rcv.grpc
			}
			env := func(service string) []string {
				return []string{
					"OTEL_EXPORTER_OTLP_ENDPOINT=" + endpoint,
					"OTEL_EXPORTER_OTLP_PROTOCOL=" + protocol,
					"OTEL_SERVICE_NAME=" + service,
					"OTEL_RESOURCE_ATTRIBUTES=deployment.environment=e2e",
					"OTEL_BSP_SCHEDULE_DELAY=100",
				}
			}
			www := t.TempDir()
			obj := writeObject(t, www, "/traced.bin", 6<<20, 77)
			f := &fleet{www: www}
			f.origin = startOriginEnv(t, www, env("shoal-origin"))
			f.proxy = startProxy(t, f.origin.url)
			for range 3 {
				f.peers = append(f.peers, freeUDP(t))
			}
			for i, peer := range f.peers {
				f.edges = append(f.edges, startEdge(t, edgeSpec{
					name: fmt.Sprintf("edge%d", i+1), origin: f.proxy.url, tlsDir: fleetTLS(t),
					peer: peer, peers: f.peers, env: env("shoal-edge"),
				}))
			}
			for _, e := range f.edges {
				e.waitReady(t)
			}

			// A cold read: the fills and the origin fetches are in this trace.
			cold := tracedGet(t, f.edges[0].url+obj.path, obj)
			f.waitPlaced(t, 6*6)
			// A warm read through another edge: shards from peers.
			warm := tracedGet(t, f.edges[1].url+obj.path, obj)

			var spans []span
			deadline := time.Now().Add(15 * time.Second)
			for {
				spans = rcv.trace(cold)
				w := rcv.trace(warm)
				if len(find(spans, named("origin.serve"))) > 0 && len(find(w, named("swarm.serve get_shard"))) > 0 &&
					len(find(spans, named("GET"))) > 0 && len(find(w, named("GET"))) > 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("spans not received within 15 s: cold trace %d spans, warm trace %d spans", len(spans), len(w))
				}
				time.Sleep(100 * time.Millisecond)
			}

			// The cold trace: the client's request on edge 1, its streamed
			// fill (one origin GET of the whole object by edge 1, cut and
			// coded as it arrives), and the origin's own span, all one
			// trace.
			root := find(spans, func(s span) bool { return s.name == "GET" && s.instance == f.edges[0].peer })
			if len(root) != 1 {
				t.Fatalf("cold trace: %d GET spans from edge 1, want 1; spans: %v", len(root), names(spans))
			}
			if root[0].attrs["http.response.status_code"] != "200" || !strings.Contains(root[0].attrs["shoal.cache_status"], "fwd=miss") {
				t.Errorf("request span attributes: %v", root[0].attrs)
			}
			if got := find(spans, named("origin.fetch")); len(got) == 0 {
				t.Errorf("cold trace has no origin.fetch span: %v", names(spans))
			}
			for _, s := range find(spans, named("origin.serve")) {
				if s.service != "shoal-origin" || s.attrs["http.request.method"] != "GET" || s.attrs["http.request.header.range"] != "" {
					t.Errorf("origin span: service %q, attributes %v; want one whole GET", s.service, s.attrs)
				}
			}
			for _, n := range []string{"erasure.encode"} {
				if len(find(spans, named(n))) == 0 {
					t.Errorf("cold trace has no %s span", n)
				}
			}

			// The warm trace: shard fetches on edge 2 with peer, RTT and
			// result, each served by a span on the peer that is its child.
			w := rcv.trace(warm)
			fetches := find(w, func(s span) bool { return s.name == "swarm.get_shard" && s.instance == f.edges[1].peer })
			if len(fetches) == 0 {
				t.Fatalf("warm trace has no shard fetch from edge 2: %v", names(w))
			}
			ids := map[string]span{}
			for _, s := range fetches {
				ids[s.id] = s
				if s.attrs["shoal.peer"] == "" || s.attrs["shoal.result"] == "" || s.attrs["shoal.peer.rtt_us"] == "" {
					t.Errorf("shard fetch attributes: %v", s.attrs)
				}
			}
			served := find(w, named("swarm.serve get_shard"))
			for _, s := range served {
				fetch, ok := ids[s.parent]
				if !ok {
					t.Errorf("a shard was served (on %s) under no shard fetch of edge 2", s.instance)
					continue
				}
				if s.instance == f.edges[1].peer || fetch.attrs["shoal.peer"] != s.instance {
					t.Errorf("served on %s for a fetch from %s", s.instance, fetch.attrs["shoal.peer"])
				}
			}
			if got := instances(w); len(got) < 2 {
				t.Errorf("warm trace spans come from %v, want edge 2 and its peers", got)
			}
			if dec := find(w, named("erasure.decode")); len(dec) == 0 {
				t.Error("warm trace has no decode span")
			}
		})
	}
}

func names(spans []span) []string {
	var out []string
	for _, s := range spans {
		out = append(out, s.instance+":"+s.name)
	}
	return out
}

func instances(spans []span) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range spans {
		if !seen[s.instance] {
			seen[s.instance] = true
			out = append(out, s.instance)
		}
	}
	return out
}

// TestTraceIDsInLogs: a line logged with a traced context names its trace.
func TestTraceIDsInLogs(t *testing.T) {
	for _, format := range []string{"json", "text"} {
		var buf bytes.Buffer
		log, err := newLogger(&buf, format, "info")
		if err != nil {
			t.Fatal(err)
		}
		tid, _ := trace.TraceIDFromHex("0af7651916cd43dd8448eb211c80319c")
		sid, _ := trace.SpanIDFromHex("b7ad6b7169203331")
		ctx := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled}))
		log.With("component", "x").InfoContext(ctx, "traced")
		log.Info("untraced")
		lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
		if len(lines) != 2 || !strings.Contains(lines[0], "0af7651916cd43dd8448eb211c80319c") || !strings.Contains(lines[0], "b7ad6b7169203331") {
			t.Errorf("%s: traced line %q", format, lines[0])
		}
		if strings.Contains(lines[1], "trace_id") {
			t.Errorf("%s: untraced line %q has a trace ID", format, lines[1])
		}
	}
}

// TestTracingOffWithoutEnvironment: no OTEL_* endpoint, no exporter.
func TestTracingOffWithoutEnvironment(t *testing.T) {
	for _, k := range []string{"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_TRACES_EXPORTER", "OTEL_SDK_DISABLED"} {
		t.Setenv(k, "")
	}
	log := slog.New(slog.DiscardHandler)
	tp, stop, err := newTracerProvider(t.Context(), "s", "i", log)
	if err != nil {
		t.Fatal(err)
	}
	defer stop(t.Context())
	if _, sp := tp.Tracer("x").Start(t.Context(), "y"); sp.IsRecording() {
		t.Error("a span records with tracing off")
	}
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1")
	t.Setenv("OTEL_TRACES_EXPORTER", "none")
	if tp, _, _ := newTracerProvider(t.Context(), "s", "i", log); tp == nil {
		t.Fatal("nil provider")
	} else if _, sp := tp.Tracer("x").Start(t.Context(), "y"); sp.IsRecording() {
		t.Error("OTEL_TRACES_EXPORTER=none still records")
	}
	t.Setenv("OTEL_TRACES_EXPORTER", "zipkin")
	if _, _, err := newTracerProvider(t.Context(), "s", "i", log); err == nil {
		t.Error("an unsupported exporter was accepted")
	}
}
