package juhe_test

import (
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/twosell/twosell/juhe"
)

// Found by an operator drill (a provider outage): with the breaker opening during
// an outage, twosell_provider_retries_total{class="transport"} equalled
// twosell_provider_calls_total{class="transport"} (7 and 7; 257 and 257 with
// a slow provider), i.e. every failed request was counted as a retry even
// though the breaker refused the retry and no request was sent. README:
// "twosell_provider_retries_total: retries of transient faults inside a
// query". A retry the open breaker refuses is not a retry, just as one the
// retry gate refuses is not (TestRetriesNotCountedWhenGateRefuses).
func TestRetriesNotCountedWhenBreakerRefuses(t *testing.T) {
	var requests atomic.Int64
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		http.Error(w, "down", http.StatusServiceUnavailable) // transport: retried
	})
	reader := sdkmetric.NewManualReader()
	cfg := testConfig(srv.URL)
	cfg.MeterProvider = sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	cfg.Retries = 2
	cfg.Backoff, cfg.MaxBackoff = time.Millisecond, time.Millisecond
	cfg.Breaker = juhe.BreakerConfig{Failures: 1, OpenFor: time.Minute} // opens on the first fault
	c, err := juhe.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	a, qerr := c.Query(t.Context(), testMobile, testDate)
	if qerr == nil {
		t.Fatal("query succeeded during an outage")
	}
	m := collect(t, reader)
	retries, _ := sumOf(m[juhe.MetricProviderRetries], "class=transport")
	if requests.Load() != 1 || a.Attempts != 1 {
		t.Fatalf("requests %d, attempts %d; want 1 (the breaker opened after the first)", requests.Load(), a.Attempts)
	}
	if retries != 0 {
		t.Errorf("twosell_provider_retries_total{class=transport} = %d after 1 request and no retry sent (the open breaker refused it); want 0", retries)
	}
}
