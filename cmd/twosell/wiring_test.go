package main

import (
	"log/slog"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace/noop"

	"github.com/twosell/twosell/config"
	"github.com/twosell/twosell/juhe/juhesim"
	"github.com/twosell/twosell/processor"
)

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
