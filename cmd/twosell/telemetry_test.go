package main

import (
	"log/slog"
	"strings"
	"testing"
)

func TestSetupTracing(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		wantErr string
		export  bool
	}{
		{"no OTEL variables: no exporter, no error", nil, "", false},
		{"endpoint set: OTLP/HTTP exporter", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1"}, "", true},
		{"endpoint empty: unset", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": ""}, "", false},
		{"exporter none", map[string]string{"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1"}, "", false},
		{"grpc is refused with what to use", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "http/protobuf", false},
		{"unknown exporter", map[string]string{"OTEL_TRACES_EXPORTER": "zipkin"}, "otlp or none", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lookup := func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok }
			var logged strings.Builder
			tp, err := setupTracing(t.Context(), "twosell-test", lookup, slog.New(slog.NewTextHandler(&logged, nil)))
			if exported := strings.Contains(logged.String(), "exporting traces"); err == nil && exported != tt.export {
				t.Errorf("exporting %v, want %v; log: %s", exported, tt.export, logged.String())
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
