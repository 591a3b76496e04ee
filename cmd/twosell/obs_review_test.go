package main

import (
	"context"
	"log/slog"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/twosell/twosell/config"
	"github.com/twosell/twosell/juhe"
	"github.com/twosell/twosell/juhe/juhesim"
	"github.com/twosell/twosell/processor/kafkatest"
)

// README (Observability): "The Kafka client's own warnings and errors
// (prefixed `kafka:`) are logged the first time, then at most once every
// 30 s per message while they repeat, with how many were not logged
// (`repeated`): a broker that is down is retried several times a second."
// The lag reader's Kafka client (metrics.go, kgoWarnLogger) logs every one
// of them, prefixed "kafka (lag reader):": with the brokers down, each lag
// reading's retries log a line each.
func TestLagReaderKafkaWarningsAreThrottled(t *testing.T) {
	k := kafkatest.New(t)
	_, url := newSim(t, juhesim.Faults{})
	cfg := testConfig(t, k, url, juhe.ModePlain)
	logs := &syncBuffer{}
	ops := startedOperations(t, cfg, slog.New(slog.NewJSONHandler(logs, nil)))
	// The logger franz-go was given for the lag reader's client, as
	// franz-go calls it while a broker is down.
	kl, ok := ops.lagClient.OptValue(kgo.WithLogger).(kgo.Logger)
	if !ok || kl == nil {
		t.Fatal("the lag reader's client has no logger")
	}
	const msg = "unable to open connection to broker"
	for range 5 {
		kl.Log(kgo.LogLevelWarn, msg, "addr", "127.0.0.1:1", "broker", "seed_0", "err", "dial tcp 127.0.0.1:1: connect: connection refused")
	}
	var lines []string
	for l := range strings.Lines(logs.String()) {
		if strings.Contains(l, msg) {
			lines = append(lines, strings.TrimSpace(l))
		}
	}
	if len(lines) != 1 {
		t.Errorf("the same franz-go warning 5 times in a row logged %d times, want once (then at most every 30 s, with repeated):\n%s",
			len(lines), strings.Join(lines, "\n"))
	}
}

// Spans are sampled as the input's trace was (the OTel default,
// parentbased_always_on), or as OTEL_TRACES_SAMPLER says, read through
// run's lookupEnv as every other OTEL_* variable. Found by review: the
// README said spans are always recorded, while the SDK's default sampler
// followed the input's flag and read OTEL_TRACES_SAMPLER from the process's
// environment itself, a value it did not know dropped without a word.
func TestTracesSampler(t *testing.T) {
	notSampled := func(t *testing.T) context.Context { // the input's traceparent: 00-<trace>-<span>-00
		return propagation.TraceContext{}.Extract(t.Context(), propagation.MapCarrier{
			"traceparent": "00-0000000000000000000000000000abcd-00000000000000ef-00"})
	}
	start := func(t *testing.T, env map[string]string, parent context.Context) (trace.Span, string) {
		t.Setenv("OTEL_TRACES_SAMPLER", "always_off") // the process's own: not read
		var logged strings.Builder
		tp, err := setupTracing(t.Context(), "twosell-test", func(k string) (string, bool) { v, ok := env[k]; return v, ok },
			slog.New(slog.NewTextHandler(&logged, nil)))
		if err != nil {
			t.Fatal(err)
		}
		_, span := tp.Tracer("test").Start(parent, "registrations process")
		t.Cleanup(func() { span.End() }) // an ended span is no longer recording
		return span, logged.String()
	}
	t.Run("by default as the input's trace", func(t *testing.T) {
		span, _ := start(t, nil, notSampled(t))
		sc := span.SpanContext()
		if span.IsRecording() || sc.IsSampled() || !sc.IsValid() || sc.SpanID() == (trace.SpanID{0, 0, 0, 0, 0, 0, 0, 0xef}) {
			t.Errorf("a span under an input not sampled: recording %v, context %v; want not recorded, and a span id of its own for the output's traceparent",
				span.IsRecording(), sc)
		}
		if span, _ := start(t, nil, t.Context()); !span.IsRecording() {
			t.Error("a record with no trace is not recorded")
		}
	})
	t.Run("OTEL_TRACES_SAMPLER", func(t *testing.T) {
		if span, _ := start(t, map[string]string{"OTEL_TRACES_SAMPLER": "always_on"}, notSampled(t)); !span.IsRecording() {
			t.Error("always_on: a span under an input not sampled is not recorded")
		}
		if span, _ := start(t, map[string]string{"OTEL_TRACES_SAMPLER": "AlWays_Off"}, t.Context()); span.IsRecording() {
			t.Error("always_off (in any case): a span is recorded")
		}
		if span, _ := start(t, map[string]string{"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0"}, t.Context()); span.IsRecording() {
			t.Error("traceidratio 0: a span is recorded")
		}
	})
	t.Run("a value not supported is warned of", func(t *testing.T) {
		span, logged := start(t, map[string]string{"OTEL_TRACES_SAMPLER": "jaeger_remote"}, t.Context())
		if !span.IsRecording() || !strings.Contains(logged, "OTEL_TRACES_SAMPLER is not supported") {
			t.Errorf("jaeger_remote: recording %v, log %q; want the default kept and a warning", span.IsRecording(), logged)
		}
		span, logged = start(t, map[string]string{"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "2"}, t.Context())
		if !span.IsRecording() || !strings.Contains(logged, "OTEL_TRACES_SAMPLER_ARG is not a ratio") {
			t.Errorf("ratio 2: recording %v, log %q; want every trace sampled and a warning", span.IsRecording(), logged)
		}
	})
}

// README (Operating it, Metrics) lists what /metrics exports; the review
// asks that every metric the code exports be in that table. /metrics also
// exports promhttp_metric_handler_errors_total (metrics.go: promhttp's
// HandlerOpts.Registry registers it), which the table does not list, nor
// does any prefix row (go_*, process_*, messaging_kafka_*) cover it.
func TestEveryExportedMetricIsInTheREADMETable(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := strings.Cut(string(readme), "### Metrics\n")
	if !ok {
		t.Fatal("README has no Metrics section")
	}
	table, _, _ = strings.Cut(table, "\n###")
	var exact, prefixes []string
	for line := range strings.Lines(table) {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		first := strings.Split(line, "|")[1]
		for _, m := range regexp.MustCompile("`([a-z_*]+)`").FindAllStringSubmatch(first, -1) {
			if name, ok := strings.CutSuffix(m[1], "*"); ok {
				prefixes = append(prefixes, name)
			} else {
				exact = append(exact, m[1])
			}
		}
	}
	if len(exact) < 20 {
		t.Fatalf("read only %d metric names from README's table: %v", len(exact), exact)
	}

	k := kafkatest.New(t)
	_, url := newSim(t, juhesim.Faults{})
	cfg := testConfig(t, k, url, juhe.ModePlain)
	cfg.Juhe.DailyBudget = 100 // every optional metric present
	ops := startedOperations(t, cfg, slog.New(slog.DiscardHandler))
	body := scrape(t, "http://"+ops.addr()+pathMetrics)
	var undocumented []string
	for _, m := range regexp.MustCompile(`(?m)^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) `).FindAllStringSubmatch(body, -1) {
		name := m[1]
		documented := slices.Contains(exact, name)
		for _, p := range prefixes {
			documented = documented || strings.HasPrefix(name, p)
		}
		if !documented {
			undocumented = append(undocumented, name)
		}
	}
	if len(undocumented) > 0 {
		t.Errorf("/metrics exports metrics README's table does not list: %v", undocumented)
	}
}

// startedOperations starts the operations server (metrics, health) of a
// processor of cfg, as run does, and closes it at the test's end.
func startedOperations(t *testing.T, cfg *config.Config, log *slog.Logger) *operations {
	t.Helper()
	ops, err := newOperations(log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ops.Close() })
	client, err := newJuheClient(cfg, nil, ops.meterProvider(), log)
	if err != nil {
		t.Fatal(err)
	}
	proc, err := newProcessor(cfg, juheEnricher{client}, sdktrace.NewTracerProvider(), log, ops.kafkaOpts()...)
	if err != nil {
		t.Fatal(err)
	}
	if err := ops.start(cfg, proc, client); err != nil {
		t.Fatal(err)
	}
	return ops
}

// Found by a walkthrough: OTEL_TRACES_SAMPLER=bogus logged the warning
// tracesSampler gives, and then "OpenTelemetry failed (traces are not
// exported while this lasts)": the SDK reads the variable itself and hands
// its complaint to the error handler, which took it for a failed export,
// while traces were exported all along.
func TestBadSamplerIsNoExportFailure(t *testing.T) {
	for _, env := range []map[string]string{
		{"OTEL_TRACES_SAMPLER": "bogus"},
		{"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "abc"},
	} {
		t.Setenv("OTEL_TRACES_SAMPLER_ARG", "")
		for k, v := range env {
			t.Setenv(k, v) // the process's, which the SDK reads
		}
		var logged syncBuffer
		tp, err := setupTracing(t.Context(), "twosell-test", func(k string) (string, bool) { v, ok := env[k]; return v, ok },
			slog.New(slog.NewTextHandler(&logged, nil)))
		if err != nil {
			t.Fatal(err)
		}
		shutdownTracing(t.Context(), tp)
		if got := logged.String(); !strings.Contains(got, "OTEL_TRACES_SAMPLER") || strings.Contains(got, "traces are not exported") {
			t.Errorf("%v: %s; want the sampler's warning, and no export failure", env, got)
		}
	}
}
