package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
)

// setupTracing builds the tracer provider. Spans are always recorded (so
// that outputs carry a traceparent of their own, a child of the input's);
// they are exported only when the standard OTEL_* variables ask for it:
// OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT set, or
// OTEL_TRACES_EXPORTER=otlp. OTEL_TRACES_EXPORTER=none turns export off.
// Without any of them there is no exporter and no error.
func setupTracing(ctx context.Context, serviceName string, lookupEnv func(string) (string, bool), log *slog.Logger) (*sdktrace.TracerProvider, error) {
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(semconv.ServiceName(serviceName)))
	if err != nil {
		return nil, fmt.Errorf("telemetry: %w", err)
	}
	if name, ok := lookupEnv("OTEL_SERVICE_NAME"); ok && name != "" {
		// The standard variable wins over the config file.
		res, _ = resource.Merge(res, resource.NewSchemaless(semconv.ServiceName(name)))
	}
	opts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}

	exporter, _ := lookupEnv("OTEL_TRACES_EXPORTER")
	_, endpoint := lookupEnv("OTEL_EXPORTER_OTLP_ENDPOINT")
	_, tracesEndpoint := lookupEnv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
	switch {
	case exporter == "none":
	case exporter == "otlp" || (exporter == "" && (endpoint || tracesEndpoint)):
		protocol, ok := lookupEnv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
		if !ok {
			protocol, _ = lookupEnv("OTEL_EXPORTER_OTLP_PROTOCOL")
		}
		if protocol != "" && protocol != "http/protobuf" {
			return nil, fmt.Errorf("telemetry: OTEL_EXPORTER_OTLP_PROTOCOL %q is not supported; use http/protobuf (the collector's port 4318)", protocol)
		}
		exp, err := otlptracehttp.New(ctx) // reads the OTEL_EXPORTER_OTLP_* variables itself
		if err != nil {
			return nil, fmt.Errorf("telemetry: OTLP exporter: %w", err)
		}
		opts = append(opts, sdktrace.WithBatcher(exp))
		log.Info("exporting traces over OTLP/HTTP")
	case exporter != "":
		return nil, fmt.Errorf("telemetry: OTEL_TRACES_EXPORTER %q is not supported; use otlp or none", exporter)
	}
	tp := sdktrace.NewTracerProvider(opts...)
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	return tp, nil
}

// newLogger builds the process logger: JSON when w is not a terminal (or
// format is json), text otherwise.
func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch strings.ToLower(format) {
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "", "auto":
		if isTerminal(w) {
			return slog.New(slog.NewTextHandler(w, opts)), nil
		}
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, errors.New("log format " + format + ": want auto, json or text")
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
