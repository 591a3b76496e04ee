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

// A retry that the caller's retry gate refuses (budget spent, say) is never
// sent: twosell_provider_retries_total ("retries of transient faults inside
// a query", README) must not count it.
func TestRetriesNotCountedWhenGateRefuses(t *testing.T) {
	var requests atomic.Int64
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		reply(w, 10014, 0) // transient: would be retried
	})
	reader := sdkmetric.NewManualReader()
	cfg := testConfig(srv.URL)
	cfg.MeterProvider = sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	cfg.Retries = 2
	cfg.Backoff, cfg.MaxBackoff = time.Millisecond, time.Millisecond
	c, err := juhe.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := juhe.WithRetryGate(t.Context(), func(context.Context) error { return errors.New("no budget left") })
	a, _ := c.Query(ctx, testMobile, testDate)
	m := collect(t, reader)
	retries, _ := sumOf(m[juhe.MetricProviderRetries], "class=transient")
	if a.Attempts != 1 || requests.Load() != 1 {
		t.Fatalf("attempts %d, requests %d; want 1 (the gate refused the retry)", a.Attempts, requests.Load())
	}
	if retries != 0 {
		t.Errorf("twosell_provider_retries_total{class=transient} = %d after 1 request and no retry sent; want 0", retries)
	}
}
