package juhe_test

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/twosell/twosell/juhe"
)

// refusedRetry queries a provider whose every request fails with answer
// (a fault that is retried), with cfg tuned by tune, in ctx; the retry is
// to be refused. It returns the retries counted for class, the requests
// the provider saw and the query's attempts.
func refusedRetry(t *testing.T, ctx context.Context, answer http.HandlerFunc, tune func(*juhe.Config), class string) (retries, requests int64, attempts int) {
	t.Helper()
	var n atomic.Int64
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		answer(w, r)
	})
	reader := sdkmetric.NewManualReader()
	cfg := testConfig(srv.URL)
	cfg.MeterProvider = sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	cfg.Retries = 2
	cfg.Backoff, cfg.MaxBackoff = time.Millisecond, time.Millisecond
	if tune != nil {
		tune(&cfg)
	}
	c, err := juhe.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := c.Query(ctx, testMobile, testDate)
	retries, _ = sumOf(collect(t, reader)[juhe.MetricProviderRetries], "class="+class)
	return retries, n.Load(), a.Attempts
}

// A retry that is refused is never sent: twosell_provider_retries_total
// ("retries of transient faults inside a query", README) must not count it:
// refused by the caller's retry gate (budget spent, say), or by the breaker
// the first fault opened (found by an operator drill: in an outage, the
// retries counted equalled the failed calls, 7 and 7, and 257 and 257 with
// a provider slower than the timeout).
func TestRetriesNotCountedWhenRefused(t *testing.T) {
	gate := juhe.WithRetryGate(t.Context(), func(context.Context, bool) error { return errors.New("no budget left") })
	if retries, requests, attempts := refusedRetry(t, gate, func(w http.ResponseWriter, _ *http.Request) {
		reply(w, 10014, 0) // transient: would be retried
	}, nil, "transient"); retries != 0 || requests != 1 || attempts != 1 {
		t.Errorf("the gate refusing: %d retries counted, %d requests, %d attempts; want 0, 1, 1", retries, requests, attempts)
	}
	if retries, requests, attempts := refusedRetry(t, t.Context(), func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "down", http.StatusServiceUnavailable) // transport: would be retried
	}, func(c *juhe.Config) {
		c.Breaker = juhe.BreakerConfig{Failures: 1, OpenFor: time.Minute} // opens on the first fault
	}, "transport"); retries != 0 || requests != 1 || attempts != 1 {
		t.Errorf("the breaker refusing: %d retries counted, %d requests, %d attempts; want 0, 1, 1", retries, requests, attempts)
	}
}
