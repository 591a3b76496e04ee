package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"

	"github.com/twosell/twosell/juhe"
)

// setupTracing builds the tracer provider. Spans are sampled as
// OTEL_TRACES_SAMPLER says (tracesSampler), by default as the input's
// trace was (its sampled flag), and a record with no trace is: an output
// carries a traceparent of its own, a child of the input's, sampled or
// not. They are exported only when the standard OTEL_* variables ask for it:
// OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT set, or
// OTEL_TRACES_EXPORTER=otlp. OTEL_TRACES_EXPORTER=none turns export off.
// Without any of them there is no exporter and no error.
//
// Exported spans pass through the process's redactor (secrets) first; extra
// adds options (tests add a span recorder).
func setupTracing(ctx context.Context, serviceName string, lookupEnv func(string) (string, bool), log *slog.Logger, extra ...sdktrace.TracerProviderOption) (*sdktrace.TracerProvider, error) {
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(semconv.ServiceName(serviceName)))
	if err != nil {
		return nil, fmt.Errorf("telemetry: %w", err)
	}
	if name, ok := lookupEnv("OTEL_SERVICE_NAME"); ok && name != "" {
		// The standard variable wins over the config file.
		res, _ = resource.Merge(res, resource.NewSchemaless(semconv.ServiceName(name)))
	}
	opts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res), sdktrace.WithSampler(tracesSampler(lookupEnv, log))}

	exporter, _ := lookupEnv("OTEL_TRACES_EXPORTER")
	exporter = strings.ToLower(strings.TrimSpace(exporter)) // enums are case-insensitive (the OTel spec)
	if exporter != "" && exporter != "otlp" && exporter != "none" {
		// The spec: an unrecognised value is warned of and ignored, not a
		// reason for the pipeline not to start.
		log.Warn("telemetry: OTEL_TRACES_EXPORTER is not supported; ignoring it (supported: otlp, none)", "value", exporter)
		exporter = ""
	}
	if disabled, _ := lookupEnv("OTEL_SDK_DISABLED"); strings.EqualFold(strings.TrimSpace(disabled), "true") {
		exporter = "none" // spans are still recorded, for the outputs' traceparent; none leaves the process
	}
	// Set and not empty: OpenTelemetry reads an empty variable as unset
	// (an empty endpoint started an exporter to localhost:4318).
	endpoint := nonEmpty(lookupEnv("OTEL_EXPORTER_OTLP_ENDPOINT"))
	tracesEndpoint := nonEmpty(lookupEnv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
	if exporter == "otlp" || (exporter == "" && (endpoint || tracesEndpoint)) {
		protocol, _ := lookupEnv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
		if strings.TrimSpace(protocol) == "" { // empty is unset, as for the endpoints
			protocol, _ = lookupEnv("OTEL_EXPORTER_OTLP_PROTOCOL")
		}
		if p := strings.ToLower(strings.TrimSpace(protocol)); p != "" && p != "http/protobuf" {
			log.Warn("telemetry: OTEL_EXPORTER_OTLP_PROTOCOL is not supported; exporting over http/protobuf (a collector's port 4318)", "value", protocol)
		}
		exp, err := otlptracehttp.New(ctx) // reads the OTEL_EXPORTER_OTLP_* variables itself
		if err != nil {
			return nil, fmt.Errorf("telemetry: OTLP exporter: %w", err)
		}
		opts = append(opts, sdktrace.WithBatcher(redactingExporter{exp, secrets}))
		log.Info("exporting traces over OTLP/HTTP")
	}
	// Export failures through the process's logger (structured, redacted),
	// at most once a minute: OpenTelemetry's default handler wrote each
	// failed batch to stderr as a plain line, a collector's reply included.
	otel.SetErrorHandler(&otelErrors{log: log})
	tp := sdktrace.NewTracerProvider(append(opts, extra...)...)
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	return tp, nil
}

// otelErrors logs OpenTelemetry's errors (failed exports) at WARN, the
// first at once and then at most one line a minute, counting the others.
type otelErrors struct {
	log        *slog.Logger
	mu         sync.Mutex
	last       time.Time
	suppressed int
}

// otelErrorsEvery is how often otelErrors logs at most.
const otelErrorsEvery = time.Minute

func (h *otelErrors) Handle(err error) {
	if msg := err.Error(); strings.HasPrefix(msg, "unsupported sampler: ") || strings.HasPrefix(msg, "parsing sampler argument: ") {
		// The SDK reads OTEL_TRACES_SAMPLER itself, and hands its
		// complaint here; tracesSampler reads it too, and warned of it.
		// Logged as an export failure, it sent an operator after an
		// exporter that worked (a walkthrough).
		return
	}
	h.mu.Lock()
	now := time.Now()
	if !h.last.IsZero() && now.Sub(h.last) < otelErrorsEvery {
		h.suppressed++
		h.mu.Unlock()
		return
	}
	suppressed := h.suppressed
	h.last, h.suppressed = now, 0
	h.mu.Unlock()
	h.log.Warn("telemetry: OpenTelemetry failed (traces are not exported while this lasts)", "err", err, "failures_not_logged", suppressed)
}

// shutdownTracing exports what is buffered, for at most 5 s: a collector
// that is down must not hold the exit.
func shutdownTracing(ctx context.Context, tp *sdktrace.TracerProvider) {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = tp.Shutdown(sctx)
}

// newLogger builds the process logger: JSON when w is not a terminal (or
// format is json), text otherwise. Every record passes through the
// process's redactor (secrets).
func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv, ReplaceAttr: durationText}
	var h slog.Handler
	switch strings.ToLower(format) {
	case "json":
		h = slog.NewJSONHandler(w, opts)
	case "text":
		h = slog.NewTextHandler(w, opts)
	case "", "auto":
		if isTerminal(w) {
			h = slog.NewTextHandler(w, opts)
		} else {
			h = slog.NewJSONHandler(w, opts)
		}
	default:
		return nil, errors.New("log format " + format + ": want auto, json or text")
	}
	return slog.New(redactingHandler{h, secrets}), nil
}

// durationText writes a duration attribute as Go writes it ("10ms"), as
// the text handler does: the JSON handler wrote bare nanoseconds
// ("took":10000000), which a reader had to count (found by review).
func durationText(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		return slog.String(a.Key, a.Value.Duration().String())
	}
	return a
}

// redactingExporter masks secrets in spans before they leave the process:
// names, attributes, events, links and status. The code that makes spans
// keeps secrets out of them in the first place (the tests record spans
// before this point and find none); this is the last line of defence.
type redactingExporter struct {
	next sdktrace.SpanExporter
	r    *juhe.Redactor
}

var _ sdktrace.SpanExporter = redactingExporter{}

func (e redactingExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	out := make([]sdktrace.ReadOnlySpan, len(spans))
	for i, s := range spans {
		// tracetest's SpanStub is the SDK's own way to copy a span into a
		// ReadOnlySpan with other contents.
		stub := tracetest.SpanStubFromReadOnlySpan(s)
		stub.Name = e.r.Redact(stub.Name)
		stub.Attributes = e.attrs(stub.Attributes)
		for j := range stub.Events {
			stub.Events[j].Name = e.r.Redact(stub.Events[j].Name)
			stub.Events[j].Attributes = e.attrs(stub.Events[j].Attributes)
		}
		for j := range stub.Links {
			stub.Links[j].Attributes = e.attrs(stub.Links[j].Attributes)
		}
		stub.Status.Description = e.r.Redact(stub.Status.Description)
		out[i] = stub.Snapshot()
	}
	return e.next.ExportSpans(ctx, out)
}

func (e redactingExporter) Shutdown(ctx context.Context) error { return e.next.Shutdown(ctx) }

// attrs returns kvs with their strings redacted, in a new slice.
func (e redactingExporter) attrs(kvs []attribute.KeyValue) []attribute.KeyValue {
	out := make([]attribute.KeyValue, len(kvs))
	for i, kv := range kvs {
		switch kv.Value.Type() {
		case attribute.STRING:
			kv = attribute.String(string(kv.Key), e.r.Redact(kv.Value.AsString()))
		case attribute.STRINGSLICE:
			ss := kv.Value.AsStringSlice()
			for j := range ss {
				ss[j] = e.r.Redact(ss[j])
			}
			kv = attribute.StringSlice(string(kv.Key), ss)
		}
		out[i] = kv
	}
	return out
}

func isTerminal(w io.Writer) bool {
	if u, ok := w.(interface{ Unwrap() io.Writer }); ok { // a writer over the terminal's (barLine)
		w = u.Unwrap()
	}
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	return terminal(f)
}

// nonEmpty reports whether a variable lookupEnv returned is set to
// something.
func nonEmpty(v string, ok bool) bool { return ok && v != "" }

// tracesSampler is the sampler OTEL_TRACES_SAMPLER and
// OTEL_TRACES_SAMPLER_ARG name, read through lookupEnv as the other OTEL_*
// variables are (the SDK read them from the process's environment itself,
// and a value it did not know it dropped without a word: found by review):
// parentbased_always_on by default, as the SDK's. A value twosell does not
// support is logged at WARN and the default kept, never a reason not to
// start.
func tracesSampler(lookupEnv func(string) (string, bool), log *slog.Logger) sdktrace.Sampler {
	name, _ := lookupEnv("OTEL_TRACES_SAMPLER")
	name = strings.ToLower(strings.TrimSpace(name))
	ratio := func() float64 {
		arg, _ := lookupEnv("OTEL_TRACES_SAMPLER_ARG")
		if strings.TrimSpace(arg) == "" {
			return 1
		}
		r, err := strconv.ParseFloat(strings.TrimSpace(arg), 64)
		if err != nil || r < 0 || r > 1 {
			log.Warn("telemetry: OTEL_TRACES_SAMPLER_ARG is not a ratio from 0 to 1; sampling every trace (1)", "value", arg)
			return 1
		}
		return r
	}
	switch name {
	case "", "parentbased_always_on":
		return sdktrace.ParentBased(sdktrace.AlwaysSample())
	case "always_on":
		return sdktrace.AlwaysSample()
	case "always_off":
		return sdktrace.NeverSample()
	case "traceidratio":
		return sdktrace.TraceIDRatioBased(ratio())
	case "parentbased_always_off":
		return sdktrace.ParentBased(sdktrace.NeverSample())
	case "parentbased_traceidratio":
		return sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio()))
	}
	log.Warn("telemetry: OTEL_TRACES_SAMPLER is not supported; sampling as the input's trace was (parentbased_always_on)",
		"value", name, "supported", "always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off, parentbased_traceidratio")
	return sdktrace.ParentBased(sdktrace.AlwaysSample())
}
