package juhe

import (
	"context"
	"errors"
	"math"
	"strconv"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// meterName is the instrumentation scope of the client's metrics.
const meterName = "github.com/twosell/twosell/juhe"

// The instruments' names. A Prometheus exporter that adds the conventional
// suffixes shows them as twosell_provider_calls_total{code,class},
// twosell_provider_call_duration_seconds (a histogram, by class),
// twosell_provider_retries_total{class}, twosell_breaker_rejected_total,
// twosell_breaker_transitions_total{to} and twosell_breaker_state.
const (
	MetricProviderCalls      = "twosell.provider.calls"
	MetricProviderDuration   = "twosell.provider.call.duration"
	MetricProviderRetries    = "twosell.provider.retries"
	MetricBreakerRejected    = "twosell.breaker.rejected"
	MetricBreakerTransitions = "twosell.breaker.transitions"
	MetricBreakerState       = "twosell.breaker.state"
)

// BreakerStateValue is the value of the twosell.breaker.state gauge for a
// state name: 0 closed, 1 half-open, 2 open.
func BreakerStateValue(state string) int64 {
	switch state {
	case BreakerHalfOpen:
		return 1
	case BreakerOpen:
		return 2
	}
	return 0
}

// durationBuckets are the histogram's bounds in seconds: the provider answers
// in tens to hundreds of milliseconds, and an attempt times out after
// juhe.timeout (5s by default).
var durationBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// clientMetrics are a Client's instruments. Their attributes are the
// provider's error code and the class of the outcome, never the mobile, the
// key or the openid.
type clientMetrics struct {
	calls       metric.Int64Counter
	duration    metric.Float64Histogram
	retries     metric.Int64Counter
	rejected    metric.Int64Counter
	transitions metric.Int64Counter
	byOutcome   map[outcome]outcomeOpts // read-only after newClientMetrics

	// unknown: the error codes outside the document's table labelled by
	// their number so far; past maxUnknownCodes of them, "other". A
	// provider (or a gateway) answering arbitrary codes would otherwise
	// make a series of each.
	unknownMu sync.Mutex
	unknown   map[int]bool
}

// maxUnknownCodes bounds the unknown error codes labelled by number.
const maxUnknownCodes = 16

// newClientMetrics creates the instruments on mp (the global provider if
// nil) and registers the breaker-state gauge, which reads state at each
// collection. An instrument the SDK refuses is reported to otel's error
// handler and left as a no-op: metrics never stop queries.
func newClientMetrics(mp metric.MeterProvider, state func() string) *clientMetrics {
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	m := mp.Meter(meterName)
	var errs []error
	check := func(e error) { errs = append(errs, e) }
	cm := &clientMetrics{byOutcome: commonOutcomes()}
	var e error
	cm.calls, e = m.Int64Counter(MetricProviderCalls, metric.WithUnit("{call}"),
		metric.WithDescription("Requests sent to the juhe API, retries included, by the provider's error code and the outcome's class (ok, result, record, transient, quota, fatal, transport, unknown, canceled)."))
	check(e)
	cm.duration, e = m.Float64Histogram(MetricProviderDuration, metric.WithUnit("s"),
		metric.WithDescription("Duration of each request to the juhe API, until its whole reply was read, by the outcome's class."),
		metric.WithExplicitBucketBoundaries(durationBuckets...))
	check(e)
	cm.retries, e = m.Int64Counter(MetricProviderRetries, metric.WithUnit("{retry}"),
		metric.WithDescription("Retries of transient provider faults inside a query, by the class of the fault retried."))
	check(e)
	cm.rejected, e = m.Int64Counter(MetricBreakerRejected, metric.WithUnit("{call}"),
		metric.WithDescription("Queries the circuit breaker refused without sending a request (open, or half-open with its trial calls running)."))
	check(e)
	cm.transitions, e = m.Int64Counter(MetricBreakerTransitions, metric.WithUnit("{transition}"),
		metric.WithDescription("Changes of the circuit breaker's state, by the state entered (closed, half-open, open)."))
	check(e)
	// No unit: Prometheus' conventions would call a unit of 1 a ratio.
	_, e = m.Int64ObservableGauge(MetricBreakerState,
		metric.WithDescription("The circuit breaker's state now: 0 closed, 1 half-open, 2 open."),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			o.Observe(BreakerStateValue(state()))
			return nil
		}))
	check(e)
	if err := errors.Join(errs...); err != nil {
		otel.Handle(err)
	}
	// Counters appear at 0 from the start, so that rate() and alerts see
	// them before the first retry or refusal.
	cm.retries.Add(context.Background(), 0, metric.WithAttributes(classAttr.String(ClassTransient.String())))
	cm.rejected.Add(context.Background(), 0)
	for _, to := range []string{BreakerClosed, BreakerHalfOpen, BreakerOpen} {
		cm.transitions.Add(context.Background(), 0, metric.WithAttributes(toAttr.String(to)))
	}
	return cm
}

var (
	codeAttr  = attribute.Key("code")
	classAttr = attribute.Key("class")
	toAttr    = attribute.Key("to")
)

// call records one request sent: its outcome and its duration. The common
// outcomes' attribute sets are built once, by newClientMetrics: building them
// per call was a few allocations on every request.
func (cm *clientMetrics) call(ctx context.Context, a Answer, err error, d time.Duration) {
	o := outcomeOf(a, err)
	opts, ok := cm.byOutcome[o]
	if !ok {
		if o.class == ClassUnknown.String() && !cm.labelUnknown(o.code) {
			o.code = otherCode
		}
		opts = newOutcomeOpts(o)
	}
	cm.calls.Add(ctx, 1, opts.calls...)
	cm.duration.Record(ctx, d.Seconds(), opts.duration...)
}

// outcome is a request's outcome as the metrics label it (see labels),
// comparable and built without allocating.
type outcome struct {
	code   int    // the provider's error_code, 0 if none
	status int    // a non-2xx HTTP status, when there is no code
	class  string // see labels
}

// outcomeOpts are the measurement options of one outcome.
type outcomeOpts struct {
	calls    []metric.AddOption    // code and class
	duration []metric.RecordOption // class
}

func newOutcomeOpts(o outcome) outcomeOpts {
	code, class := o.labels()
	return outcomeOpts{
		calls:    []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(codeAttr.String(code), classAttr.String(class)))},
		duration: []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(classAttr.String(class)))},
	}
}

// commonOutcomes returns the options of every outcome but the rare ones (an
// unlisted error code, an HTTP status other than 2xx).
func commonOutcomes() map[outcome]outcomeOpts {
	m := map[outcome]outcomeOpts{}
	add := func(o outcome) { m[o] = newOutcomeOpts(o) }
	add(outcome{code: CodeOK, class: "ok"})
	add(outcome{code: CodeNoRecord, class: "result"})
	add(outcome{class: "canceled"})
	add(outcome{class: ClassTransport.String()})
	for code, info := range codeTable {
		add(outcome{code: code, class: info.class.String()})
	}
	return m
}

// outcomeOf returns a request's outcome: the provider's error_code (or the
// HTTP status of a reply that was not the API's, none when no reply came)
// and the design's class: ok, result (232703), record, transient, quota,
// fatal, transport, unknown, or canceled (the caller's own context).
func outcomeOf(a Answer, err error) outcome {
	if err == nil {
		if a.NoRecord {
			return outcome{code: CodeNoRecord, class: "result"}
		}
		return outcome{code: a.Code, class: "ok"}
	}
	e, ok := errors.AsType[*Error](err)
	if !ok {
		return outcome{class: "canceled"}
	}
	o := outcome{code: e.Code, class: e.Class.String()}
	if e.Code == 0 && e.HTTPStatus != 0 && (e.HTTPStatus < 200 || e.HTTPStatus > 299 || e.whole) {
		// A reply came, not the API's: its status, 2xx too when it came
		// whole (found by review: an HTML page with 200 was counted as no
		// reply, "none", with the timeouts and refused connections). A
		// 2xx reply cut off or timed out after its head stays "none": the
		// fault is the transport's.
		o.status = e.HTTPStatus
	}
	return o
}

// labels names an outcome as the metrics do: code is the error_code, or
// http_STATUS, or none.
func (o outcome) labels() (code, class string) {
	switch {
	case o.code == otherCode:
		code = "other"
	case o.code != 0 || o.class == "ok" || o.class == "result":
		code = strconv.Itoa(o.code)
	case o.status != 0:
		code = "http_" + strconv.Itoa(o.status)
	default:
		code = "none"
	}
	return code, o.class
}

// labelUnknown reports whether the unknown code gets a label of its own.
func (cm *clientMetrics) labelUnknown(code int) bool {
	cm.unknownMu.Lock()
	defer cm.unknownMu.Unlock()
	if cm.unknown[code] {
		return true
	}
	if len(cm.unknown) >= maxUnknownCodes {
		return false
	}
	if cm.unknown == nil {
		cm.unknown = make(map[int]bool)
	}
	cm.unknown[code] = true
	return true
}

// otherCode stands for the unknown codes past maxUnknownCodes.
const otherCode = math.MinInt

// retry records a retry of a fault of class c.
func (cm *clientMetrics) retry(ctx context.Context, c Class) {
	cm.retries.Add(ctx, 1, metric.WithAttributes(classAttr.String(c.String())))
}

// refused records a query the breaker refused.
func (cm *clientMetrics) refused(ctx context.Context) { cm.rejected.Add(ctx, 1) }

// transition records a change of the breaker's state.
func (cm *clientMetrics) transition(to string) {
	cm.transitions.Add(context.Background(), 1, metric.WithAttributes(toAttr.String(to)))
}
