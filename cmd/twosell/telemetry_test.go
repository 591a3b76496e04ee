package main

import (
	"errors"
	"log/slog"
	"strings"
	"testing"

	"go.opentelemetry.io/otel"
)

func TestSetupTracing(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		wantErr string
		export  bool
		warn    string // a WARN the log must hold
	}{
		{"no OTEL variables: no exporter, no error", nil, "", false, ""},
		{"endpoint set: OTLP/HTTP exporter", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1"}, "", true, ""},
		{"endpoint empty: unset", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": ""}, "", false, ""},
		{"exporter none", map[string]string{"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1"}, "", false, ""},
		// The OTel spec: enum values are case-insensitive, and an unknown
		// one is warned of and ignored, never a reason not to start (found
		// by review: run refused to start).
		{"grpc: warned of, http/protobuf used", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "", true, "exporting over http/protobuf"},
		{"unknown exporter: warned of, ignored", map[string]string{"OTEL_TRACES_EXPORTER": "zipkin"}, "", false, "OTEL_TRACES_EXPORTER is not supported"},
		{"unknown exporter with an endpoint: OTLP", map[string]string{"OTEL_TRACES_EXPORTER": "console", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1"}, "", true, "ignoring it"},
		{"upper case", map[string]string{"OTEL_TRACES_EXPORTER": "OTLP", "OTEL_EXPORTER_OTLP_PROTOCOL": "HTTP/PROTOBUF"}, "", true, ""},
		{"SDK disabled", map[string]string{"OTEL_SDK_DISABLED": "TRUE", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1"}, "", false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lookup := func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok }
			var logged strings.Builder
			tp, err := setupTracing(t.Context(), "twosell-test", lookup, slog.New(slog.NewTextHandler(&logged, nil)))
			if exported := strings.Contains(logged.String(), "exporting traces"); err == nil && exported != tt.export {
				t.Errorf("exporting %v, want %v; log: %s", exported, tt.export, logged.String())
			}
			if tt.warn != "" && (!strings.Contains(logged.String(), "level=WARN") || !strings.Contains(logged.String(), tt.warn)) {
				t.Errorf("log %q lacks a WARN saying %q", logged.String(), tt.warn)
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one mentioning %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			// Spans are recorded even without an exporter: outputs need a
			// span context of their own to propagate.
			_, span := tp.Tracer("test").Start(t.Context(), "x")
			if !span.SpanContext().IsValid() || !span.IsRecording() {
				t.Error("spans are not recorded")
			}
			span.End()
		})
	}
}

// OpenTelemetry's errors (failed exports) go to the process's logger,
// structured and redacted, once a minute at most; its default handler wrote
// each failed batch to stderr as a plain line. (Found by review.)
func TestOTelErrorsAreLogged(t *testing.T) {
	var logged syncBuffer
	log := slog.New(slog.NewJSONHandler(&logged, nil))
	if _, err := setupTracing(t.Context(), "twosell-test", func(string) (string, bool) { return "", false }, log); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		otel.Handle(errors.New("traces export: failed to send: 401 Unauthorized"))
	}
	if n := strings.Count(logged.String(), `"msg":"telemetry: OpenTelemetry failed`); n != 1 || !strings.Contains(logged.String(), "401 Unauthorized") {
		t.Errorf("%d lines for 3 failures within a minute, want 1 naming the failure:\n%s", n, logged.String())
	}
}
