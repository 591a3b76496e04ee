package main

import (
	"log/slog"
	"strings"
	"testing"
)

// README (Observability): a value twosell does not support ("a protocol
// other than http/protobuf") "is logged at WARN and ignored". The
// OpenTelemetry specification (and setupTracing itself, for the endpoint
// variables) reads a variable set to the empty string as unset, so an empty
// OTEL_EXPORTER_OTLP_TRACES_PROTOCOL must leave OTEL_EXPORTER_OTLP_PROTOCOL
// in force. setupTracing took the signal-specific variable as soon as it
// was set, even empty, so an operator's OTEL_EXPORTER_OTLP_PROTOCOL=grpc was
// silently replaced by http/protobuf, without the WARN the README promises.
// (Found by review.)
func TestEmptyTracesProtocolLeavesTheGeneralOne(t *testing.T) {
	env := map[string]string{
		"OTEL_EXPORTER_OTLP_ENDPOINT":        "http://127.0.0.1:1",
		"OTEL_EXPORTER_OTLP_PROTOCOL":        "grpc",
		"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "", // e.g. `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: ${X:-}` in a compose file
	}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	var logged strings.Builder
	tp, err := setupTracing(t.Context(), "twosell-test", lookup, slog.New(slog.NewTextHandler(&logged, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer shutdownTracing(t.Context(), tp)
	if !strings.Contains(logged.String(), "exporting traces over OTLP/HTTP") {
		t.Fatalf("no exporter: %s", logged.String())
	}
	if !strings.Contains(logged.String(), "level=WARN") || !strings.Contains(logged.String(), "exporting over http/protobuf") {
		t.Errorf("OTEL_EXPORTER_OTLP_PROTOCOL=grpc with an empty OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: no WARN that grpc is not supported; log:\n%s", logged.String())
	}
}
