package juhe_test

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/twosell/twosell/juhe"
)

// collect reads every metric of reader by name.
func collect(t *testing.T, reader sdkmetric.Reader) map[string]metricdata.Metrics {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := make(map[string]metricdata.Metrics)
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			out[m.Name] = m
		}
	}
	return out
}

// sumOf returns the int64 sum's point whose attributes are attrs (as
// key=value pairs), and whether there is one.
func sumOf(m metricdata.Metrics, attrs ...string) (int64, bool) {
	sum, ok := m.Data.(metricdata.Sum[int64])
	if !ok {
		return 0, false
	}
	for _, dp := range sum.DataPoints {
		if attrString(dp.Attributes) == strings.Join(attrs, ",") {
			return dp.Value, true
		}
	}
	return 0, false
}

func attrString(set attribute.Set) string {
	var parts []string
	for _, kv := range set.ToSlice() {
		parts = append(parts, string(kv.Key)+"="+kv.Value.Emit())
	}
	return strings.Join(parts, ",")
}

// The client counts every request by code and class, times it, counts
// retries, breaker refusals and transitions, and shows the breaker's state;
// no attribute carries the mobile or the key.
func TestClientMetrics(t *testing.T) {
	var fail atomic.Bool
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		switch {
		case fail.Load():
			reply(w, 10014, 0) // internal error: transient
		case r.FormValue("mobile") == "17312345600":
			reply(w, juhe.CodeNoRecord, 0)
		default:
			reply(w, 0, 1)
		}
	})
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	cfg := testConfig(srv.URL)
	cfg.MeterProvider = mp
	cfg.Retries = 1
	cfg.Breaker = juhe.BreakerConfig{Failures: 2, OpenFor: time.Hour}
	c, err := juhe.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()

	got := collect(t, reader)
	if v, ok := sumOf(got[juhe.MetricBreakerRejected]); !ok || v != 0 {
		t.Errorf("breaker refusals before any call: %d, %v; want 0 reported", v, ok)
	}
	if _, err := c.Query(ctx, testMobile, testDate); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Query(ctx, "17312345600", testDate); err != nil {
		t.Fatal(err)
	}
	fail.Store(true)
	// Two attempts (one retry), both faults: the breaker opens after the
	// second; the next query is refused without a request.
	if _, err := c.Query(ctx, testMobile, testDate); !juhe.IsTransient(err) {
		t.Fatalf("err %v, want transient", err)
	}
	if _, err := c.Query(ctx, testMobile, testDate); !juhe.IsUnavailable(err) {
		t.Fatalf("err %v, want unavailable (breaker open)", err)
	}

	got = collect(t, reader)
	calls := got[juhe.MetricProviderCalls]
	for _, want := range []struct {
		code, class string
		n           int64
	}{{"0", "ok", 1}, {"232703", "result", 1}, {"10014", "transient", 2}} {
		if v, _ := sumOf(calls, "class="+want.class, "code="+want.code); v != want.n {
			t.Errorf("calls{code=%s,class=%s} = %d, want %d", want.code, want.class, v, want.n)
		}
	}
	if v, _ := sumOf(got[juhe.MetricProviderRetries], "class=transient"); v != 1 {
		t.Errorf("retries = %d, want 1", v)
	}
	if v, _ := sumOf(got[juhe.MetricBreakerRejected]); v != 1 {
		t.Errorf("breaker refusals = %d, want 1", v)
	}
	if v, _ := sumOf(got[juhe.MetricBreakerTransitions], "to=open"); v != 1 {
		t.Errorf("transitions to open = %d, want 1", v)
	}
	hist, ok := got[juhe.MetricProviderDuration].Data.(metricdata.Histogram[float64])
	if !ok {
		t.Fatalf("%s is %T, want a histogram", juhe.MetricProviderDuration, got[juhe.MetricProviderDuration].Data)
	}
	var n uint64
	for _, dp := range hist.DataPoints {
		n += dp.Count
	}
	if n != 4 {
		t.Errorf("duration histogram counted %d requests, want 4", n)
	}
	gauge, ok := got[juhe.MetricBreakerState].Data.(metricdata.Gauge[int64])
	if !ok || len(gauge.DataPoints) != 1 || gauge.DataPoints[0].Value != 2 {
		t.Errorf("breaker state gauge = %+v, want 2 (open)", got[juhe.MetricBreakerState].Data)
	}
	for name, m := range got {
		dump := name + " " + strings.ReplaceAll(strings.ReplaceAll(attrDump(m), " ", ""), "\n", "")
		for _, secret := range []string{testMobile, "17312345600", testKey} {
			if strings.Contains(dump, secret) {
				t.Errorf("metric %s carries %q", name, secret)
			}
		}
	}
}

// attrDump lists the attributes of every data point of m.
func attrDump(m metricdata.Metrics) string {
	var b strings.Builder
	add := func(s attribute.Set) { b.WriteString(attrString(s) + ";") }
	switch d := m.Data.(type) {
	case metricdata.Sum[int64]:
		for _, dp := range d.DataPoints {
			add(dp.Attributes)
		}
	case metricdata.Histogram[float64]:
		for _, dp := range d.DataPoints {
			add(dp.Attributes)
		}
	case metricdata.Gauge[int64]:
		for _, dp := range d.DataPoints {
			add(dp.Attributes)
		}
	}
	return b.String()
}

func TestBreakerStateValue(t *testing.T) {
	for state, want := range map[string]int64{juhe.BreakerClosed: 0, juhe.BreakerHalfOpen: 1, juhe.BreakerOpen: 2} {
		if got := juhe.BreakerStateValue(state); got != want {
			t.Errorf("BreakerStateValue(%q) = %d, want %d", state, got, want)
		}
	}
}

// Error codes outside the document are labelled by number up to a bound,
// then as "other": a provider or gateway answering arbitrary codes must not
// make a series of each. (Suggested by review.)
func TestUnknownCodesLabelsAreBounded(t *testing.T) {
	var next atomic.Int64
	next.Store(90000)
	srv := newServer(t, func(w http.ResponseWriter, _ *http.Request) {
		reply(w, int(next.Add(1)), 0)
	})
	reader := sdkmetric.NewManualReader()
	cfg := testConfig(srv.URL)
	cfg.MeterProvider = sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	cfg.Retries = -1
	cfg.Breaker = juhe.BreakerConfig{Failures: 1000, OpenFor: time.Hour}
	c, err := juhe.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	const queries = 40
	for range queries {
		if _, err := c.Query(t.Context(), testMobile, testDate); err == nil {
			t.Fatal("an unknown code answered")
		}
	}
	calls := collect(t, reader)[juhe.MetricProviderCalls]
	sum, _ := calls.Data.(metricdata.Sum[int64])
	var series, total, other int64
	for _, dp := range sum.DataPoints {
		if code, _ := dp.Attributes.Value("code"); dp.Value > 0 {
			series++
			total += dp.Value
			if code.AsString() == "other" {
				other = dp.Value
			}
		}
	}
	if series != 17 || total != queries || other != queries-16 {
		t.Errorf("%d series counting %d calls (%d as other); want 16 codes and other, %d calls, %d as other", series, total, other, queries, queries-16)
	}
}
