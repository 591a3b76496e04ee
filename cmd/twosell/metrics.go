package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/otlptranslator"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kotel"
	"go.opentelemetry.io/otel/attribute"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/twosell/twosell/config"
	"github.com/twosell/twosell/juhe"
	"github.com/twosell/twosell/processor"
)

// The paths of the operations server.
const (
	pathMetrics = "/metrics" // Prometheus text format
	pathHealthz = "/healthz" // liveness: the process serves
	pathReadyz  = "/readyz"  // readiness: see health.ready
)

// lagRefresh is how often the consumer group's lag is read from the
// cluster: three small requests (describe the group, list end offsets,
// fetch its commits), less often than any sensible scrape interval needs.
const lagRefresh = 10 * time.Second

// operations is what twosell shows the people who run it: OpenTelemetry
// metrics exported in Prometheus format, liveness and readiness, on one
// HTTP server (telemetry.metrics_addr). Build it with newOperations before
// the clients (they record into its meter provider), then start it with
// the processor and the provider client, and Close it after Run returns.
//
// Metric names follow Prometheus conventions once exported; their
// attributes are statuses, classes, codes, topics and partitions, never a
// mobile, a key or an openid.
type operations struct {
	mp  *sdkmetric.MeterProvider
	reg *prometheus.Registry
	log *slog.Logger

	srv    *http.Server
	ln     net.Listener
	served chan error
	health atomic.Pointer[health] // nil until start: /readyz says starting

	lagClient *kgo.Client
	lag       *lagMonitor
	lagEvery  time.Duration // lagRefresh; tests shorten it
	stop      context.CancelFunc
	wg        sync.WaitGroup
}

// newOperations creates the meter provider and its Prometheus registry,
// which also holds the Go runtime and process collectors
// (process_start_time_seconds tells a restarting process).
func newOperations(log *slog.Logger) (*operations, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	exp, err := otelprom.New(
		otelprom.WithRegisterer(reg),
		// Prometheus' own conventions whatever the process-wide name
		// validation says: underscores, _total on counters, unit suffixes.
		otelprom.WithTranslationStrategy(otlptranslator.UnderscoreEscapingWithSuffixes),
		otelprom.WithoutScopeInfo(),
		otelprom.WithoutTargetInfo(),
	)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	o := &operations{mp: sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp)), reg: reg, log: log, lagEvery: lagRefresh}
	// twosell_ready from the start, as /readyz: 0 while the ledger loads
	// (before start), so that an instance stuck loading is not ready on
	// the dashboards and alerts rather than absent from them.
	m := o.mp.Meter("github.com/twosell/twosell/processor")
	// twosell_fatal too: 0 while the ledger loads (a walkthrough found it
	// absent then, as README promised otherwise).
	ready, err := m.Int64ObservableGauge(metricReady,
		metric.WithDescription("1 while this instance is ready (a member of the group, not fatal, breaker not open with on_unavailable: pause), else 0 (also while it starts: loading the ledger); as /readyz."))
	var fatal metric.Int64ObservableGauge
	if err == nil {
		fatal, err = m.Int64ObservableGauge(metricFatal,
			metric.WithDescription("1 once a fatal error stopped consumption (the process then exits), else 0."))
	}
	if err == nil {
		_, err = m.RegisterCallback(func(_ context.Context, ob metric.Observer) error {
			ok, _ := o.ready()
			ob.ObserveInt64(ready, boolValue(ok))
			h := o.health.Load()
			ob.ObserveInt64(fatal, boolValue(h != nil && h.proc.Err() != nil))
			return nil
		}, ready, fatal)
	}
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	return o, nil
}

// ready is /readyz's answer: not ready while starting (before start).
func (o *operations) ready() (bool, string) {
	if h := o.health.Load(); h != nil {
		return h.ready()
	}
	return false, "not ready: starting (loading the ledger)"
}

// meterProvider is where the clients record.
func (o *operations) meterProvider() metric.MeterProvider { return o.mp }

// kafkaOpts adds franz-go's own metrics (connections, bytes and records
// produced and fetched, by broker and topic) to a Kafka client.
func (o *operations) kafkaOpts() []kgo.Opt {
	return []kgo.Opt{kgo.WithHooks(kotel.NewMeter(kotel.MeterProvider(o.mp)))}
}

// metricsSetting is where run is given the metrics address.
const metricsSetting = "telemetry.metrics_addr (--metrics-addr)"

// listen, unless telemetry.metrics_addr is empty, serves /metrics,
// /healthz and /readyz on it from now on: before the ledger's load, which
// can take minutes, so that a liveness probe sees the process alive, and
// /readyz says why it is not ready yet. An address that cannot be listened
// on is an error. start calls it if it was not called.
//
// setting names where the address is set, for the error (metricsSetting,
// or dev's flag).
func (o *operations) listen(cfg *config.Config, setting string) error {
	if cfg.Telemetry.MetricsAddr == "" || o.ln != nil {
		return nil
	}
	ln, err := net.Listen("tcp", cfg.Telemetry.MetricsAddr)
	if err != nil {
		return inUse(fmt.Errorf("%s: %w", setting, err), "--metrics-addr")
	}
	o.ln = ln
	mux := http.NewServeMux()
	mux.Handle("GET "+pathMetrics, promhttp.HandlerFor(o.reg, promhttp.HandlerOpts{Registry: o.reg}))
	mux.HandleFunc("GET "+pathHealthz, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET "+pathReadyz, func(w http.ResponseWriter, _ *http.Request) {
		ok, why := o.ready()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		fmt.Fprintln(w, why)
	})
	o.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	o.served = make(chan error, 1)
	go func() { o.served <- o.srv.Serve(ln) }()
	o.log.Info("serving /metrics, /healthz and /readyz", "addr", ln.Addr().String())
	return nil
}

// start registers the processor's instruments and, unless
// telemetry.metrics_addr is empty, starts reading the group's lag and
// serving (listen) the processor's readiness on /readyz.
func (o *operations) start(cfg *config.Config, proc *processor.Processor, client *juhe.Client) error {
	h := &health{proc: proc, client: client, pause: cfg.Processing.OnUnavailable != config.OnUnavailableEmit}
	o.lag = &lagMonitor{group: cfg.Kafka.Group, topic: cfg.Kafka.InputTopic, log: o.log}
	if err := observeProcessor(o.mp, proc, o.lag, cfg.Juhe.DailyBudget, cfg.Ledger.Enabled); err != nil {
		return err
	}
	o.health.Store(h)
	if cfg.Telemetry.MetricsAddr == "" {
		return nil // nobody would see the lag: do not ask the cluster for it
	}
	if err := o.listen(cfg, metricsSetting); err != nil {
		return err
	}
	opts, err := kafkaOpts(cfg)
	if err != nil {
		return err
	}
	o.lagClient, err = kgo.NewClient(append(opts, kgo.WithLogger(processor.KafkaLogger(o.log.With("client", "lag reader"))))...)
	if err != nil {
		return fmt.Errorf("metrics: kafka client: %w", err)
	}
	o.lag.adm = kadm.NewClient(o.lagClient)
	ctx, cancel := context.WithCancel(context.Background())
	o.stop = cancel
	o.wg.Go(func() { o.lag.run(ctx, o.lagEvery) })
	return nil
}

// addr is the server's address, or "" when it is disabled.
func (o *operations) addr() string {
	if o.ln == nil {
		return ""
	}
	return o.ln.Addr().String()
}

// Close stops the server, the lag reader and the meter provider. It is safe
// to call whether or not start was called or succeeded.
func (o *operations) Close() {
	if o.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := o.srv.Shutdown(ctx); err != nil {
			o.srv.Close()
		}
		<-o.served
	} else if o.ln != nil {
		o.ln.Close() // start failed after listening
	}
	if o.stop != nil {
		o.stop()
	}
	o.wg.Wait()
	if o.lagClient != nil {
		o.lagClient.Close()
	}
	_ = o.mp.Shutdown(context.Background())
}

// health answers the readiness probe.
type health struct {
	proc   *processor.Processor
	client *juhe.Client
	pause  bool // processing.on_unavailable is pause: an open breaker stops the flow
}

// ready reports whether records flow through this instance, and why not:
// false while it is not a member of the consumer group, after a fatal
// error, while the breaker is open with on_unavailable: pause (records
// are held back), and while the ledger cannot be read or written. With
// on_unavailable: emit an open breaker still lets events through, as
// status unavailable.
func (h *health) ready() (bool, string) {
	switch {
	case h.proc.Err() != nil:
		// The error itself is in the log; an unauthenticated endpoint
		// shows no more than the fact.
		return false, "not ready: a fatal error stopped consumption (see the log)"
	case !h.proc.Connected():
		return false, "not ready: not a member of the consumer group (starting, rebalancing or disconnected)"
	case h.pause && h.client.BreakerState() == juhe.BreakerOpen:
		return false, "not ready: the provider's circuit breaker is open; records are held back"
	case h.proc.LedgerUnreadable() != nil:
		// Found by an operator drill: with the ledger topic deleted, the
		// outputs of paid answers stalled, waiting for their ledger
		// records, and /readyz said ready.
		return false, "not ready: the ledger topic cannot be read (see the log); paid answers may not be recorded, and their outputs wait"
	case h.proc.LedgerUnwritable() != nil:
		return false, "not ready: the ledger cannot be written (see the log): the brokers have answered none of its writes for 10 s, and the outputs of paid answers wait for them, or call records of paid calls wait to be written again"
	}
	return true, "ready"
}

// The processor's instruments; see observeProcessor.
const (
	metricConsumed    = "twosell.records.consumed"       // twosell_records_consumed_total
	metricProduced    = "twosell.records.produced"       // twosell_records_produced_total{status}
	metricDeadLetters = "twosell.dead_letters"           // twosell_dead_letters_total{class}
	metricCommits     = "twosell.commits"                // twosell_commits_total
	metricDeleted     = "twosell.records.deleted"        // twosell_records_deleted_total
	metricBefore      = "twosell.records.written_before" // twosell_records_written_before_total
	metricPaused      = "twosell.paused_partitions"      // twosell_paused_partitions
	metricHeld        = "twosell.held_partitions"        // twosell_held_partitions
	metricInFlight    = "twosell.in_flight_records"      // twosell_in_flight_records
	metricLag         = "twosell.consumer_lag"           // twosell_consumer_lag{topic,partition}
	metricReady       = "twosell.ready"                  // twosell_ready
	metricFatal       = "twosell.fatal"                  // twosell_fatal

	// The cost controls.
	metricPaidCalls    = "twosell.paid_calls"          // twosell_paid_calls_total
	metricCacheAnswers = "twosell.cache_answers"       // twosell_cache_answers_total{kind}
	metricCoalesced    = "twosell.coalesced"           // twosell_coalesced_total
	metricCacheEntries = "twosell.cache.entries"       // twosell_cache_entries
	metricCacheEvicted = "twosell.cache.evictions"     // twosell_cache_evictions_total
	metricBudgetLeft   = "twosell.budget_remaining"    // twosell_budget_remaining
	metricBudgetDaily  = "twosell.budget_daily_calls"  // twosell_budget_daily_calls
	metricSpend        = "twosell.spend_cny"           // twosell_spend_cny_total
	metricProviderRate = "twosell.provider_rate"       // twosell_provider_rate_per_second
	metricLedgerOther  = "twosell.ledger.other_secret" // twosell_ledger_other_secret_total{read}
	metricLedgerFail   = "twosell.ledger.failing"      // twosell_ledger_failing{op}
)

// statuses are reported from 0 before the first event of each, so that
// rate() and alerts see a series from the start; the first four are also
// the kinds of cache answer.
var statuses = []processor.Status{
	processor.StatusRecycled, processor.StatusNotRecycled, processor.StatusNoActivationDate,
	processor.StatusNoRecord, processor.StatusUnavailable, processor.StatusSkipped,
}

// observeProcessor registers observable instruments that read the
// processor's Stats, its health and the group's lag at each collection, so
// that the engine itself records nothing. dailyBudget is juhe.daily_budget
// (0: none), shown beside the remaining budget so that alerts can take a
// fraction of it; ledger says whether there is a ledger (ledger.enabled),
// whose failures are reported.
func observeProcessor(mp metric.MeterProvider, proc *processor.Processor, lag *lagMonitor, dailyBudget int, ledger bool) error {
	m := mp.Meter("github.com/twosell/twosell/processor")
	var errs []error
	counter := func(name, unit, desc string) metric.Int64ObservableCounter {
		c, err := m.Int64ObservableCounter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		errs = append(errs, err)
		return c
	}
	gauge := func(name, unit, desc string) metric.Int64ObservableGauge {
		g, err := m.Int64ObservableGauge(name, metric.WithUnit(unit), metric.WithDescription(desc))
		errs = append(errs, err)
		return g
	}
	var (
		consumed = counter(metricConsumed, "{record}", "Records received from the input topic.")
		produced = counter(metricProduced, "{record}", "Enriched events acknowledged by Kafka, by status.")
		dead     = counter(metricDeadLetters, "{record}", "Dead letters acknowledged by Kafka, by class.")
		commits  = counter(metricCommits, "{commit}", "Commits of input offsets (at-least-once: per partition; exactly-once: per transaction).")
		deleted  = counter(metricDeleted, "{record}", "Input records the broker deleted (retention) before the group read them, in the partitions this instance fetches: between the committed offset it fetched a partition at (at its start, or handed over by a rebalance) and the log start, or between where a lagging partition was and the log start.")
		before   = counter(metricBefore, "{record}", "Input records not processed because the partition's previous owner wrote them (outputs or dead letters) above its last commit, which named them: a revoke commits only up to a partition's first unfinished record.")
		paused   = gauge(metricPaused, "{partition}", "Partitions whose fetching is paused now (buffer full or provider unavailable).")
		held     = gauge(metricHeld, "{partition}", "Partitions holding a record back for the provider now.")
		inFlight = gauge(metricInFlight, "{record}", "Records being processed now.")
		lagGauge = gauge(metricLag, "{record}", "The consumer group's lag on the input topic per partition: end offset minus committed offset, as read from the cluster every 10s. Every instance reports the whole group's: aggregate with max by (topic, partition).")

		paid        = counter(metricPaidCalls, "{call}", "Provider requests of this instance that the provider may have billed: its answers, and the requests whose outcome is unknown (timed out, cut off).")
		cacheAnswer = counter(metricCacheAnswers, "{lookup}", "Lookups answered from knowledge (cache or ledger) without a paid call, by the answer's kind.")
		coalesced   = counter(metricCoalesced, "{lookup}", "Lookups that waited for another lookup's call of the same mobile instead of paying for their own.")
		entries     = gauge(metricCacheEntries, "{mobile}", "Mobiles the knowledge cache holds now; at most cache.max_entries.")
		evicted     = counter(metricCacheEvicted, "{mobile}", "Mobiles the knowledge cache forgot, least recently used first, to stay within cache.max_entries: a steady rate means the cache is smaller than the set of numbers seen, whose answers are then paid for again.")
		budgetLeft  = gauge(metricBudgetLeft, "{call}", "Paid calls left today for the whole deployment (juhe.daily_budget); absent without a budget.")
		budgetDaily = gauge(metricBudgetDaily, "{call}", "juhe.daily_budget: paid calls allowed per day; absent without a budget.")
		ledgerFail  = gauge(metricLedgerFail, "", "1 while the ledger cannot be read (op=read: fetches of some of its partitions fail, so other instances' answers are not learnt) or written (op=write: the brokers have answered none of its writes in flight for 10 s, and the outputs of paid answers wait for them, or call records of paid calls whose writes failed wait to be written again), else 0; absent without a ledger.")
		otherSecret = counter(metricLedgerOther, "{record}", "Ledger knowledge records written under another cache.secret, which answer nothing here: read=load while loading the ledger at start, read=follow while following it (an instance writing under another secret now: numbers are paid for twice).")
	)
	spend, err := m.Float64ObservableCounter(metricSpend,
		metric.WithDescription("Estimated spend on paid calls in CNY: paid calls times juhe.price_per_call."))
	errs = append(errs, err)
	providerRate, err := m.Float64ObservableGauge(metricProviderRate, metric.WithUnit("{call}/s"),
		metric.WithDescription("This instance's provider request rate limit now: its share of juhe.qps, or what the provider's request-limit refusals taught if lower; 0 when unlimited."))
	errs = append(errs, err)
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	_, err = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		s := proc.Stats()
		o.ObserveInt64(consumed, s.Consumed)
		for _, st := range statuses {
			if _, ok := s.ByStatus[st]; !ok {
				o.ObserveInt64(produced, 0, metric.WithAttributes(attribute.String("status", string(st))))
			}
		}
		for st, n := range s.ByStatus {
			o.ObserveInt64(produced, n, metric.WithAttributes(attribute.String("status", string(st))))
		}
		for class, n := range s.ByErrorClass {
			o.ObserveInt64(dead, n, metric.WithAttributes(attribute.String("class", class)))
		}
		o.ObserveInt64(commits, s.Commits)
		o.ObserveInt64(deleted, s.Deleted)
		o.ObserveInt64(before, s.WrittenBefore)
		o.ObserveInt64(paused, int64(s.PausedPartitions))
		o.ObserveInt64(held, int64(s.HeldPartitions))
		o.ObserveInt64(inFlight, int64(s.InFlight))
		for p, n := range lag.snapshot() {
			o.ObserveInt64(lagGauge, n, metric.WithAttributes(
				attribute.String("topic", lag.topic), attribute.String("partition", strconv.Itoa(int(p)))))
		}

		o.ObserveInt64(paid, s.PaidCalls)
		for _, kind := range statuses[:4] { // the kinds of answer: recycled ... no_record
			if _, ok := s.CacheAnswers[string(kind)]; !ok {
				o.ObserveInt64(cacheAnswer, 0, metric.WithAttributes(attribute.String("kind", string(kind))))
			}
		}
		for kind, n := range s.CacheAnswers {
			o.ObserveInt64(cacheAnswer, n, metric.WithAttributes(attribute.String("kind", kind)))
		}
		o.ObserveInt64(coalesced, s.Coalesced)
		o.ObserveInt64(entries, int64(s.CacheEntries))
		o.ObserveInt64(evicted, s.CacheEvictions)
		o.ObserveInt64(otherSecret, s.LedgerForeignLoaded, metric.WithAttributes(attribute.String("read", "load")))
		o.ObserveInt64(otherSecret, s.LedgerForeignFollowed, metric.WithAttributes(attribute.String("read", "follow")))
		if ledger {
			o.ObserveInt64(ledgerFail, boolValue(proc.LedgerUnreadable() != nil), metric.WithAttributes(attribute.String("op", "read")))
			o.ObserveInt64(ledgerFail, boolValue(proc.LedgerUnwritable() != nil), metric.WithAttributes(attribute.String("op", "write")))
		}
		o.ObserveFloat64(spend, s.SpendCNY)
		o.ObserveFloat64(providerRate, s.ProviderRate)
		if s.BudgetRemaining >= 0 && dailyBudget > 0 {
			o.ObserveInt64(budgetLeft, s.BudgetRemaining)
			o.ObserveInt64(budgetDaily, int64(dailyBudget))
		}
		return nil
	}, consumed, produced, dead, commits, deleted, before, paused, held, inFlight, lagGauge,
		paid, cacheAnswer, coalesced, entries, evicted, spend, providerRate, budgetLeft, budgetDaily, otherSecret, ledgerFail)
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	return nil
}

func boolValue(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// lagMonitor reads the consumer group's lag on the input topic from the
// cluster (kadm's Lag: the group's description, its committed offsets and
// the partitions' end offsets) and keeps the last reading for collection.
// Reading it here rather than at each scrape keeps scrapes fast and the
// cluster's load independent of how many scrapers there are.
type lagMonitor struct {
	adm          *kadm.Client
	group, topic string
	log          *slog.Logger

	mu      sync.Mutex
	lag     map[int32]int64
	failing bool // the last reading failed; logged once until one succeeds
}

// run reads the lag now and then every interval until ctx ends.
func (l *lagMonitor) run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		l.refresh(ctx, max(interval, 5*time.Second))
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// refresh reads the lag once. A failure keeps the last reading and is
// logged once, and again only after a success.
func (l *lagMonitor) refresh(ctx context.Context, timeout time.Duration) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	lags, err := l.adm.Lag(ctx, l.group)
	if err == nil {
		if g, ok := lags[l.group]; ok {
			err = g.Error()
		}
	}
	if errors.Is(err, kerr.GroupIDNotFound) {
		err, lags = nil, nil // the group has not been joined yet: no lag to show
	}
	if err != nil {
		if ctx.Err() != nil && errors.Is(err, context.Canceled) {
			return // stopping
		}
		l.mu.Lock()
		first := !l.failing
		l.failing = true
		l.mu.Unlock()
		if first {
			l.log.Warn("metrics: cannot read the consumer group's lag; twosell_consumer_lag keeps its last values", "group", l.group, "err", err)
		}
		return
	}
	m := make(map[int32]int64)
	for p, ml := range lags[l.group].Lag[l.topic] {
		if ml.Err == nil && ml.Lag >= 0 {
			m[p] = ml.Lag
		}
	}
	l.mu.Lock()
	if l.failing {
		l.log.Info("metrics: reading the consumer group's lag again", "group", l.group)
	}
	l.failing = false
	l.lag = m
	l.mu.Unlock()
}

// snapshot returns the last reading, by partition.
func (l *lagMonitor) snapshot() map[int32]int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lag // replaced, never changed in place
}
