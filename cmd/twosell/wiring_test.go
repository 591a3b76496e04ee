package main

import (
	"errors"
	"log/slog"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace/noop"

	"github.com/twosell/twosell/config"
	"github.com/twosell/twosell/juhe/juhesim"
	"github.com/twosell/twosell/processor"
)

// A call the open breaker refuses reaches the processor with when the
// breaker lets calls through again, so that held records come back then;
// a call that failed at the provider does not say.
func TestJuheEnricherSaysWhenTheBreakerLetsCallsThrough(t *testing.T) {
	sim, url := newSim(t, juhesim.Faults{Outage: juhesim.Outage503})
	cfg := config.Default()
	cfg.Juhe.URL, cfg.Juhe.Key, cfg.Juhe.OpenID = url, testKey, testOpenID
	cfg.Juhe.Retries = 0
	cfg.Juhe.Breaker.Failures, cfg.Juhe.Breaker.OpenFor = 1, time.Hour
	client, err := newJuheClient(&cfg, noop.NewTracerProvider(), nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	e := juheEnricher{client}
	l := processor.Lookup{Mobile: "13812345678", Date: "20240102"}
	for i, want := range []struct {
		retryIn bool
		what    string
	}{{false, "a 503"}, {true, "the open breaker's refusal"}} {
		_, err := e.Enrich(t.Context(), l)
		de, ok := errors.AsType[*processor.DispositionError](err)
		if !ok || de.Disposition != processor.DispositionUnavailable {
			t.Fatalf("call %d (%s): %v, want unavailable", i, want.what, err)
		}
		if got := de.RetryIn > 59*time.Minute && de.RetryIn <= time.Hour; got != want.retryIn || (!want.retryIn && de.RetryIn != 0) {
			t.Errorf("call %d (%s): RetryIn %v, want %v", i, want.what, de.RetryIn, map[bool]string{true: "open_for's rest (about 1h)", false: "none"}[want.retryIn])
		}
	}
	if n := sim.Stats().Requests; n != 1 {
		t.Errorf("the simulator had %d requests, want 1: juhe.retries 0 makes no retry, the open breaker no call", n)
	}
}

// juhe.retries is how many times a transient failure is retried: 0 makes
// none (the juhe client's own zero means its default, 2).
func TestJuheRetries(t *testing.T) {
	for _, retries := range []int{0, 1, 2} {
		sim, url := newSim(t, juhesim.Faults{Outage: juhesim.Outage503})
		cfg := config.Default()
		cfg.Juhe.URL, cfg.Juhe.Key, cfg.Juhe.OpenID = url, testKey, testOpenID
		cfg.Juhe.Retries, cfg.Juhe.Backoff, cfg.Juhe.MaxBackoff = retries, time.Millisecond, time.Millisecond
		client, err := newJuheClient(&cfg, noop.NewTracerProvider(), nil, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := (juheEnricher{client}).Enrich(t.Context(), processor.Lookup{Mobile: "13812345678", Date: "20240102"}); err == nil {
			t.Fatal("an answer from a provider answering 503")
		}
		if n := sim.Stats().Requests; n != int64(1+retries) {
			t.Errorf("juhe.retries %d: %d requests, want %d", retries, n, 1+retries)
		}
	}
}

// The pool of connections to the provider is sized to the concurrency
// (DESIGN, "Processing"): at least a connection per call in flight, more if
// juhe.max_conns asks (found by review: max_in_flight 600 with the default
// max_conns, 256, opened and closed a connection for every call beyond 256).
func TestJuhePoolKeepsAConnectionPerCallInFlight(t *testing.T) {
	for _, tt := range []struct{ maxConns, inFlight, want int }{
		{256, 256, 256},
		{256, 600, 600},
		{1000, 600, 1000},
	} {
		cfg := config.Default()
		cfg.Juhe.MaxConns, cfg.Processing.MaxInFlight = tt.maxConns, tt.inFlight
		if got := juhePool(&cfg); got != tt.want {
			t.Errorf("juhe.max_conns %d, processing.max_in_flight %d: a pool of %d; want %d", tt.maxConns, tt.inFlight, got, tt.want)
		}
	}
}
