package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/shoalcdn/shoal/erasure"
	"github.com/shoalcdn/shoal/manifest"
	"github.com/shoalcdn/shoal/origin"
)

func runOrigin(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("origin", flag.ContinueOnError)
	envUsage(fs)
	var (
		listen       = fs.String("listen", "127.0.0.1:9000", "HTTP listen address")
		dir          = fs.String("dir", "", "directory to serve (required)")
		cacheControl = fs.String("cache-control", "public, max-age=3600", "Cache-Control sent with every response; empty for none")
		signKey      = fs.String("sign-key", "", "if set, sign manifests on the fly with this key (from 'shoal keygen') for files that have none on disk")
		logger       = logFlags(fs, "json")
		signSegSize  = int64(erasure.DefaultSegmentSize)
	)
	fs.Var(sizeFlag{&signSegSize}, "sign-segment-size", "segment size of manifests signed on the fly; must match the edges' --segment-size")
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	log, err := logger(stderr)
	if err != nil {
		return err
	}
	if *dir == "" {
		return errors.New("--dir is required")
	}
	cfg := origin.ServerConfig{Dir: *dir, CacheControl: *cacheControl, Logger: log, SignSegmentSize: signSegSize}
	if *signKey != "" {
		if cfg.SignKey, err = manifest.ReadPrivateKey(*signKey); err != nil {
			return fmt.Errorf("--sign-key: %w", err)
		}
	}
	h, err := origin.NewServer(cfg)
	if err != nil {
		return err
	}
	defer h.Close()
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("--listen: %w", err)
	}
	tp, stopTracing, err := newTracerProvider(ctx, "shoal-origin", *listen, log)
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		stopTracing(sctx)
	}()
	srv := &http.Server{Handler: traced(tp, "origin.serve", h), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second, MaxHeaderBytes: 64 << 10}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info("origin serving", "listen", ln.Addr().String(), "dir", *dir)
	select {
	case <-ctx.Done():
	case err := <-errc:
		return err
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}

// traced wraps h in a server span per request that continues the caller's
// trace (W3C traceparent), so that an edge's origin fetch and the origin's
// work on it are one trace.
func traced(tp trace.TracerProvider, name string, h http.Handler) http.Handler {
	if _, off := tp.(noop.TracerProvider); off {
		return h // the untraced origin keeps sendfile and costs nothing
	}
	tracer := tp.Tracer("github.com/shoalcdn/shoal/cmd/shoal")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := propagation.TraceContext{}.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
		ctx, span := tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(
			attribute.String("http.request.method", r.Method), attribute.String("url.path", r.URL.Path),
			attribute.String("http.request.header.range", r.Header.Get("Range"))))
		defer span.End()
		sw := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		h.ServeHTTP(sw, r.WithContext(ctx))
		span.SetAttributes(attribute.Int("http.response.status_code", sw.code))
	})
}

type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (w *statusRecorder) WriteHeader(code int) {
	w.code = code
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusRecorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// ReadFrom keeps the underlying writer's sendfile path.
func (w *statusRecorder) ReadFrom(r io.Reader) (int64, error) { return io.Copy(w.ResponseWriter, r) }
