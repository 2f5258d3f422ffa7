package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// newTracerProvider returns the tracer provider that the standard OTEL_*
// environment describes, and the function that flushes and stops it.
//
// Tracing is off (a no-op provider: no exporter, no goroutine, no cost
// beyond a branch) unless OTEL_EXPORTER_OTLP_ENDPOINT or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set, or OTEL_TRACES_EXPORTER=otlp;
// OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none keep it off. The
// exporter is OTLP over HTTP (protobuf) or, with
// OTEL_EXPORTER_OTLP_PROTOCOL=grpc, over gRPC; the exporters read their own
// OTEL_EXPORTER_OTLP_* settings (endpoint, headers, timeout, TLS). The
// sampler follows OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG (default:
// parent-based, always on); the resource OTEL_SERVICE_NAME and
// OTEL_RESOURCE_ATTRIBUTES, with service name service and
// service.instance.id instance as defaults.
func newTracerProvider(ctx context.Context, service, instance string, log *slog.Logger) (trace.TracerProvider, func(context.Context) error, error) {
	off := func(context.Context) error { return nil }
	exporter := strings.ToLower(strings.TrimSpace(os.Getenv("OTEL_TRACES_EXPORTER")))
	endpoint := os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
	switch {
	case strings.EqualFold(os.Getenv("OTEL_SDK_DISABLED"), "true"), exporter == "none":
		return noop.NewTracerProvider(), off, nil
	case exporter != "" && exporter != "otlp":
		return nil, nil, fmt.Errorf("OTEL_TRACES_EXPORTER=%q: only otlp and none are supported", exporter)
	case exporter == "" && !endpoint:
		return noop.NewTracerProvider(), off, nil
	}
	protocol := os.Getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
	if protocol == "" {
		protocol = os.Getenv("OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	var exp sdktrace.SpanExporter
	var err error
	switch protocol {
	case "", "http/protobuf":
		protocol = "http/protobuf"
		exp, err = otlptracehttp.New(ctx)
	case "grpc":
		exp, err = otlptracegrpc.New(ctx)
	default:
		return nil, nil, fmt.Errorf("OTEL_EXPORTER_OTLP_PROTOCOL=%q: want grpc or http/protobuf", protocol)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("OTLP trace exporter: %w", err)
	}
	// Later detectors win: the defaults first, then what the environment says.
	res, err := resource.New(ctx,
		resource.WithAttributes(attribute.String("service.name", service), attribute.String("service.instance.id", instance)),
		resource.WithTelemetrySDK(),
		resource.WithHost(),
		resource.WithFromEnv(),
	)
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return nil, nil, fmt.Errorf("OTEL resource: %w", err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	log.Info("tracing on", "protocol", protocol, "service", serviceName(res, service))
	return tp, tp.Shutdown, nil
}

func serviceName(res *resource.Resource, def string) string {
	if v, ok := res.Set().Value("service.name"); ok {
		return v.AsString()
	}
	return def
}
