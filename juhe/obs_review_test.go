package juhe_test

import (
	"io"
	"net/http"
	"testing"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/twosell/twosell/juhe"
)

// README (Metrics): twosell_provider_calls_total's `code` is "the
// provider's error_code (`http_503` for a reply that was not the API's,
// `none` when no reply came; ...)". A gateway or the provider's front that
// answers HTTP 200 with a page that is not the API's (the simulator's
// "garbage" outage: 系统繁忙 in HTML) did reply, and not with the API's
// reply; metrics.go (outcomeOf/labels) drops a 2xx status and labels it
// code="none", class="transport": the same series as timeouts and refused
// connections, so an operator looks for a network fault while the
// provider's front answers every request.
func TestNonAPIReplyWith200IsNotLabelledNoReply(t *testing.T) {
	srv := newServer(t, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json;charset=utf-8")
		io.WriteString(w, "<html><body>系统繁忙，请稍后再试</body></html>\n")
	})
	reader := sdkmetric.NewManualReader()
	cfg := testConfig(srv.URL)
	cfg.MeterProvider = sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	cfg.Retries = -1
	c, err := juhe.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Query(t.Context(), "17312345678", "20240102"); err == nil {
		t.Fatalf("a body that is not JSON answered: %v", err)
	}
	if srv.requests.Load() == 0 {
		t.Fatal("no request reached the server")
	}
	calls := collect(t, reader)[juhe.MetricProviderCalls]
	sum, _ := calls.Data.(metricdata.Sum[int64])
	for _, dp := range sum.DataPoints {
		if code, _ := dp.Attributes.Value("code"); code.AsString() == "none" && dp.Value > 0 {
			t.Errorf("%d requests answered by HTTP 200 with a body that is not the API's counted as %s: "+
				"README: `none` is for when no reply came (want the status, as http_503 is)", dp.Value, attrString(dp.Attributes))
		}
	}
}
