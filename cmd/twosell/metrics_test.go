package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/twosell/twosell/config"
	"github.com/twosell/twosell/juhe"
	"github.com/twosell/twosell/juhe/juhesim"
	"github.com/twosell/twosell/processor"
	"github.com/twosell/twosell/processor/kafkatest"
)

// get fetches url and returns the status and body.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode, string(body)
}

// scrape fetches a /metrics page.
func scrape(t *testing.T, url string) string {
	t.Helper()
	code, body := get(t, url)
	if code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, code, body)
	}
	return body
}

// samples parses Prometheus text: each sample line's series (name and
// labels, as written) to its value.
type samples map[string]float64

func parseSamples(t *testing.T, body string) samples {
	t.Helper()
	out := samples{}
	for line := range strings.Lines(body) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("sample %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// sum adds the samples of metric name whose series contain every one of
// labels (such as `status="recycled"`), and counts them.
func (s samples) sum(name string, labels ...string) (total float64, n int) {
	for series, v := range s {
		base, rest, _ := strings.Cut(series, "{")
		if base != name {
			continue
		}
		all := true
		for _, l := range labels {
			all = all && strings.Contains(rest, l)
		}
		if all {
			total += v
			n++
		}
	}
	return total, n
}

// An integration run scraped from outside: the counters follow the
// processor, the provider's calls are counted and timed, the group's lag
// is read per partition and drains to 0; /readyz is false before the
// processor joins its group, true while it runs, false while the breaker
// is open (on_unavailable: pause), and false for good once the provider
// answers fatally. No series carries a mobile or the key.
func TestMetricsAndReadiness(t *testing.T) {
	k := kafkatest.New(t)
	sim, url := newSim(t, juhesim.Faults{})
	cfg := testConfig(t, k, url, juhe.ModePlain)
	const n = 60
	evs := pipelineEvents(cfg.Kafka.InputTopic, n)
	k.Produce(records(evs)...)

	logs := &syncBuffer{}
	log := slog.New(slog.NewJSONHandler(logWriter{t, logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	tp := sdktrace.NewTracerProvider()
	ops, err := newOperations(log)
	if err != nil {
		t.Fatal(err)
	}
	defer ops.Close()
	ops.lagEvery = 20 * time.Millisecond
	client, err := newJuheClient(cfg, tp, ops.meterProvider(), log)
	if err != nil {
		t.Fatal(err)
	}
	proc, err := newProcessor(cfg, juheEnricher{client}, tp, log, ops.kafkaOpts()...)
	if err != nil {
		t.Fatal(err)
	}
	if err := ops.start(cfg, proc, client); err != nil {
		t.Fatal(err)
	}
	base := "http://" + ops.addr()
	metrics := func() samples { return parseSamples(t, scrape(t, base+pathMetrics)) }
	ready := func() (bool, string) {
		code, body := get(t, base+pathReadyz)
		return code == http.StatusOK, body
	}

	if code, _ := get(t, base+pathHealthz); code != http.StatusOK {
		t.Errorf("/healthz %d before the processor runs, want 200: the process is alive", code)
	}
	if ok, body := ready(); ok || !strings.Contains(body, "consumer group") {
		t.Errorf("/readyz before the processor joins its group: ready %v, %q", ok, body)
	}
	if m := metrics(); m["twosell_ready"] != 0 || m["twosell_fatal"] != 0 {
		t.Errorf("twosell_ready %v, twosell_fatal %v before the processor runs; want 0, 0", m["twosell_ready"], m["twosell_fatal"])
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	runErr := make(chan error, 1)
	go func() { runErr <- proc.Run(ctx) }()

	// Healthy: every event ends, the metrics agree with the processor.
	kafkatest.WaitFor(t, func() bool { s := proc.Stats(); return s.Produced+s.DeadLettered == n })
	kafkatest.WaitFor(t, func() bool {
		// Lag of each partition, read from the cluster, drains to 0 once
		// the finished offsets are committed.
		lag, parts := metrics().sum("twosell_consumer_lag", `topic="`+cfg.Kafka.InputTopic+`"`)
		return parts == 3 && lag == 0
	})
	if ok, body := ready(); !ok {
		t.Errorf("/readyz while healthy: %q", body)
	}
	s, m := proc.Stats(), metrics()
	checks := []struct {
		what      string
		got, want float64
	}{
		{"twosell_records_consumed_total", m["twosell_records_consumed_total"], float64(s.Consumed)},
		{"sum of twosell_records_produced_total", first(m.sum("twosell_records_produced_total")), float64(s.Produced)},
		{"twosell_records_produced_total{status=recycled}", m[`twosell_records_produced_total{status="recycled"}`], float64(s.ByStatus[processor.StatusRecycled])},
		{"twosell_dead_letters_total{class=invalid_date}", m[`twosell_dead_letters_total{class="invalid_date"}`], float64(s.ByErrorClass[processor.ClassInvalidDate])},
		{"provider calls answered", first(m.sum("twosell_provider_calls_total", `class="ok"`, `code="0"`)) + first(m.sum("twosell_provider_calls_total", `class="result"`)), float64(n - n/20)},
		{"provider call durations counted", first(m.sum("twosell_provider_call_duration_seconds_count")), float64(n - n/20)},
		{"twosell_breaker_state", m["twosell_breaker_state"], 0},
		{"twosell_ready", m["twosell_ready"], 1},
		{"twosell_fatal", m["twosell_fatal"], 0},
		{"twosell_held_partitions", m["twosell_held_partitions"], 0},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.what, c.got, c.want)
		}
	}
	if s.Consumed != n || s.ByErrorClass[processor.ClassInvalidDate] != n/20 {
		t.Errorf("stats %+v: want %d consumed, %d invalid dates", s, n, n/20)
	}
	for _, name := range []string{"twosell_commits_total", "messaging_kafka_fetch_records_count_total", "messaging_kafka_produce_records_count_total"} {
		if v, parts := m.sum(name); parts == 0 || v == 0 {
			t.Errorf("%s = %v over %d series, want counted", name, v, parts)
		}
	}
	if _, parts := m.sum("twosell_in_flight_records"); parts != 1 {
		t.Errorf("no twosell_in_flight_records")
	}
	if v, parts := m.sum("twosell_records_deleted_total"); parts != 1 || v != float64(s.Deleted) {
		t.Errorf("twosell_records_deleted_total = %v over %d series, want %d in one", v, parts, s.Deleted)
	}
	if v, parts := m.sum("twosell_records_written_before_total"); parts != 1 || v != float64(s.WrittenBefore) {
		t.Errorf("twosell_records_written_before_total = %v over %d series, want %d in one", v, parts, s.WrittenBefore)
	}
	if v, parts := m.sum("twosell_ledger_other_secret_total"); parts != 2 || v != 0 {
		t.Errorf("twosell_ledger_other_secret_total = %v over %d series, want 0 in two (read=load, read=follow)", v, parts)
	}
	if v, parts := m.sum("twosell_ledger_failing"); parts != 2 || v != 0 {
		t.Errorf("twosell_ledger_failing = %v over %d series, want 0 in two (op=read, op=write)", v, parts)
	}
	if v, parts := m.sum("twosell_provider_rate_per_second"); parts != 1 || v != s.ProviderRate {
		t.Errorf("twosell_provider_rate_per_second = %v over %d series, want %v in one", v, parts, s.ProviderRate)
	}
	if _, parts := m.sum("process_start_time_seconds"); parts != 1 {
		t.Errorf("no process_start_time_seconds (the process collector)")
	}

	// An outage: the breaker opens, records are held back, /readyz says so.
	if err := sim.SetFaults(juhesim.Faults{Outage: juhesim.Outage503}); err != nil {
		t.Fatal(err)
	}
	more := pipelineEvents(cfg.Kafka.InputTopic, 2*n)[n:]
	k.Produce(records(more)...)
	kafkatest.WaitFor(t, func() bool {
		ok, body := ready()
		return !ok && strings.Contains(body, "circuit breaker is open")
	})
	// The breaker opens first; a partition holds its record back when the
	// lookup in flight returns unavailable, a moment later.
	kafkatest.WaitFor(t, func() bool {
		m := metrics()
		return m["twosell_held_partitions"] >= 1 && m["twosell_paused_partitions"] >= 1
	})
	m = metrics()
	if v := first(m.sum("twosell_breaker_transitions_total", `to="open"`)); v < 1 {
		t.Errorf("twosell_breaker_transitions_total{to=open} = %v during the outage", v)
	}
	if v := first(m.sum("twosell_provider_calls_total", `code="http_503"`, `class="transport"`)); v < 1 {
		t.Errorf("no provider call counted as http_503/transport during the outage")
	}
	// Retries are counted when sent: most are refused by the breaker the
	// first attempts opened, and are not (they were, found by review:
	// retries equalled the failed calls).
	if retries, calls := first(m.sum("twosell_provider_retries_total", `class="transport"`)),
		first(m.sum("twosell_provider_calls_total", `class="transport"`)); retries >= calls {
		t.Errorf("%v retries counted for %v failed calls during the outage: a retry is a call", retries, calls)
	}
	if m["twosell_held_partitions"] < 1 || m["twosell_paused_partitions"] < 1 {
		t.Errorf("held %v, paused %v partitions during the outage; want at least 1 each",
			m["twosell_held_partitions"], m["twosell_paused_partitions"])
	}

	// A fatal answer (10001: the key is wrong): consumption stops for good.
	if err := sim.SetFaults(juhesim.Faults{ErrorRates: map[int]float64{10001: 1}}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-runErr:
		if !juhe.IsFatal(err) {
			t.Fatalf("Run returned %v, want the fatal provider error", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the processor did not stop on a fatal answer")
	}
	if ok, body := ready(); ok || !strings.Contains(body, "fatal") {
		t.Errorf("/readyz after a fatal error: ready %v, %q", ok, body)
	}
	m = metrics()
	if m["twosell_fatal"] != 1 || m["twosell_ready"] != 0 {
		t.Errorf("twosell_fatal %v, twosell_ready %v after a fatal error; want 1, 0", m["twosell_fatal"], m["twosell_ready"])
	}
	if v := first(m.sum("twosell_provider_calls_total", `code="10001"`, `class="fatal"`)); v < 1 {
		t.Errorf("the fatal answer was not counted")
	}

	body := scrape(t, base+pathMetrics)
	for _, e := range append(evs, more...) {
		if strings.Contains(body, e.mobile) {
			t.Fatalf("/metrics carries a mobile")
		}
	}
	if strings.Contains(body, testKey) || strings.Contains(body, testOpenID) {
		t.Fatalf("/metrics carries a secret")
	}

	// The log above debug: a line per change of state (rebalance, breaker,
	// holding records back, fatal), not per record; no mobile, no secret.
	var lines []string
	for line := range strings.Lines(logs.String()) {
		if !strings.Contains(line, `"level":"DEBUG"`) {
			lines = append(lines, line)
		}
	}
	info := strings.Join(lines, "")
	for _, want := range []string{"partitions assigned", "circuit breaker state changed", "holding records back", "FATAL"} {
		if !strings.Contains(info, want) {
			t.Errorf("no log line about %q", want)
		}
	}
	// The breaker's changes are many by design here (it is open for 50ms
	// at a time); the rest must not grow with the records.
	other := 0
	for _, l := range lines {
		if !strings.Contains(l, "circuit breaker state changed") {
			other++
		}
	}
	if other >= len(evs)/2 {
		t.Errorf("%d log lines above debug (besides the breaker's) for %d records: not one per change of state:\n%s", other, len(evs)+len(more), info)
	}
	for _, e := range append(evs, more...) {
		if strings.Contains(info, e.mobile) {
			t.Errorf("the log carries a mobile in clear")
			break
		}
	}
	if strings.Contains(logs.String(), testKey) || strings.Contains(logs.String(), testOpenID) {
		t.Errorf("the log carries a secret")
	}
}

func first(v float64, _ int) float64 { return v }

// telemetry.metrics_addr: empty serves nothing; an address in use is an
// error that names the setting.
func TestOperationsAddress(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for _, tt := range []struct {
		addr, wantErr string
	}{
		{"", ""},
		{busy.Addr().String(), "telemetry.metrics_addr (--metrics-addr)"},
	} {
		cfg := config.Default()
		cfg.Juhe.Key = testKey
		cfg.Telemetry.MetricsAddr = tt.addr
		if err := cfg.Validate("run"); err != nil {
			t.Fatal(err)
		}
		log := slog.New(slog.DiscardHandler)
		ops, err := newOperations(log)
		if err != nil {
			t.Fatal(err)
		}
		client, err := newJuheClient(&cfg, nil, ops.meterProvider(), log)
		if err != nil {
			t.Fatal(err)
		}
		proc, err := newProcessor(&cfg, juheEnricher{client}, sdktrace.NewTracerProvider(), log, ops.kafkaOpts()...)
		if err != nil {
			t.Fatal(err)
		}
		err = ops.start(&cfg, proc, client)
		switch {
		case tt.wantErr == "" && (err != nil || ops.addr() != ""):
			t.Errorf("metrics_addr %q: %v, serving on %q; want nothing served", tt.addr, err, ops.addr())
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("metrics_addr %q: %v, want an error naming %s", tt.addr, err, tt.wantErr)
		}
		ops.Close()
	}
}

// /healthz answers while the ledger loads (minutes, for a large one), so
// that a liveness probe does not kill the process in the middle of it, and
// /readyz says why it is not ready yet.
func TestHealthzWhileTheLedgerLoads(t *testing.T) {
	k := kafkatest.NewFake(t, nil)
	_, url := newSim(t, juhesim.Faults{})
	cfg := testConfig(t, k, url, juhe.ModePlain)
	// The ledger's load asks for the ledger's end offsets first: hold
	// every ListOffsets until the health endpoints were seen.
	release := make(chan struct{})
	k.Fake.ControlKey(int16(kmsg.ListOffsets), func(kmsg.Request) (kmsg.Response, error, bool) {
		k.Fake.KeepControl()
		k.Fake.SleepControl(func() { <-release })
		return nil, nil, false
	})
	logs := &syncBuffer{}
	ctx, stop := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- runProcessor(ctx, cfg, func(string) (string, bool) { return "", false }, logs) }()
	addr := regexp.MustCompile(`"msg":"serving /metrics, /healthz and /readyz","addr":"([^"]+)"`)
	var base string
	kafkatest.WaitFor(t, func() bool {
		m := addr.FindStringSubmatch(logs.String())
		if m != nil {
			base = "http://" + m[1]
		}
		return m != nil
	})
	if code, body := get(t, base+pathHealthz); code != http.StatusOK || body != "ok\n" {
		t.Errorf("/healthz while the ledger loads: %d %q, want 200 ok", code, body)
	}
	if code, body := get(t, base+pathReadyz); code != http.StatusServiceUnavailable || !strings.Contains(body, "loading the ledger") {
		t.Errorf("/readyz while the ledger loads: %d %q, want 503 saying so", code, body)
	}
	// The alerts and dashboards see it not ready, rather than not at all.
	// twosell_fatal too (a walkthrough found it absent then).
	loading := parseSamples(t, scrape(t, base+pathMetrics))
	for _, name := range []string{"twosell_ready", "twosell_fatal"} {
		if v, ok := loading[name]; !ok || v != 0 {
			t.Errorf("%s while the ledger loads: %v (present %v), want 0", name, v, ok)
		}
	}
	if strings.Contains(logs.String(), `"msg":"starting"`) {
		t.Fatal("the ListOffsets hold did not hold the ledger's load")
	}
	close(release)
	kafkatest.WaitFor(t, func() bool {
		code, _ := get(t, base+pathReadyz)
		return code == http.StatusOK
	})
	if ready := parseSamples(t, scrape(t, base+pathMetrics)); ready["twosell_ready"] != 1 || ready["twosell_fatal"] != 0 {
		t.Errorf("once ready: twosell_ready %v, twosell_fatal %v; want 1 and 0", ready["twosell_ready"], ready["twosell_fatal"])
	}
	stop()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
}
