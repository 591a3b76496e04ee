package juhe_test

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/twosell/twosell/juhe"
)

func attrs(s sdktrace.ReadOnlySpan) map[attribute.Key]attribute.Value {
	m := map[attribute.Key]attribute.Value{}
	for _, a := range s.Attributes() {
		m[a.Key] = a.Value
	}
	return m
}

func TestSpans(t *testing.T) {
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })

	var calls atomic.Int64
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			reply(w, 232701, 0)
			return
		}
		reply(w, 0, 1)
	})
	c := newClient(t, srv.URL, func(cfg *juhe.Config) {
		cfg.TracerProvider = tp
		cfg.Mode = juhe.ModeMD5
	})

	ctx, parent := tp.Tracer("test").Start(t.Context(), "process")
	if _, err := c.Query(ctx, testMobile, testDate); err != nil {
		t.Fatal(err)
	}
	parent.End()

	var query sdktrace.ReadOnlySpan
	var client []sdktrace.ReadOnlySpan
	for _, s := range sr.Ended() {
		switch {
		case s.Name() == "juhe.query":
			query = s
		case s.SpanKind() == trace.SpanKindClient:
			client = append(client, s)
		}
	}
	if query == nil {
		t.Fatal("no juhe.query span")
	}
	if query.Parent().SpanID() != parent.SpanContext().SpanID() {
		t.Error("juhe.query is not a child of the caller's span")
	}
	a := attrs(query)
	for k, want := range map[attribute.Key]any{
		"juhe.mode": "md5", "juhe.method": "POST", "juhe.attempts": int64(2),
		"juhe.error_code": int64(0), "juhe.status": "recycled", "juhe.breaker_state": "closed",
	} {
		if got := a[k].AsInterface(); got != want {
			t.Errorf("juhe.query %s = %v, want %v", k, got, want)
		}
	}
	retries := 0
	for _, ev := range query.Events() {
		if ev.Name == "juhe.retry" {
			retries++
		}
	}
	if retries != 1 {
		t.Errorf("%d juhe.retry events, want 1", retries)
	}
	if len(client) != 2 {
		t.Fatalf("%d client spans, want one per attempt (2)", len(client))
	}
	for _, s := range client {
		if s.Parent().SpanID() != query.SpanContext().SpanID() {
			t.Errorf("client span %q is not a child of juhe.query", s.Name())
		}
		if s.Name() != "POST /twoSellTel/queryEncry" {
			t.Errorf("client span name %q", s.Name())
		}
	}
}

func TestSpanOfAFailure(t *testing.T) {
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	srv := newServer(t, answering(10012))
	c := newClient(t, srv.URL, func(cfg *juhe.Config) { cfg.TracerProvider = tp })
	_, err := c.Query(t.Context(), testMobile, testDate)
	if !juhe.IsQuota(err) {
		t.Fatalf("err = %v", err)
	}
	for _, s := range sr.Ended() {
		if s.Name() != "juhe.query" {
			continue
		}
		a := attrs(s)
		if a["juhe.error_class"].AsString() != "quota" || a["juhe.error_code"].AsInt64() != 10012 {
			t.Errorf("attributes %v", s.Attributes())
		}
		if s.Status().Code != codes.Error || s.Status().Description != err.Error() {
			t.Errorf("status %+v", s.Status())
		}
		if len(s.Events()) != 1 || s.Events()[0].Name != "exception" {
			t.Errorf("events %v", s.Events())
		}
		return
	}
	t.Fatal("no juhe.query span")
}

// Nothing of the trace goes to the provider, a third party: not the
// input's baggage (from a Kafka header, it can carry a user's data), not the
// trace context. (Found by review: both were sent on traced calls.)
func TestNoTraceHeadersToTheProvider(t *testing.T) {
	prev := otel.GetTextMapPropagator()
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})) // as setupTracing
	t.Cleanup(func() { otel.SetTextMapPropagator(prev) })
	tp := sdktrace.NewTracerProvider()
	var got http.Header
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) { got = r.Header.Clone(); reply(w, 0, 1) })
	c := newClient(t, srv.URL, func(cfg *juhe.Config) { cfg.TracerProvider = tp })
	m, _ := baggage.NewMember("user.email", "someone@example.com")
	b, _ := baggage.New(m)
	ctx, span := tp.Tracer("t").Start(baggage.ContextWithBaggage(t.Context(), b), "process")
	defer span.End()
	if _, err := c.Query(ctx, testMobile, testDate); err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"Baggage", "Traceparent"} {
		if v := got.Get(h); v != "" {
			t.Errorf("the provider received %s: %s", h, v)
		}
	}
}
