package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/twosell/twosell/config"
	"github.com/twosell/twosell/juhe"
	"github.com/twosell/twosell/juhe/juhesim"
	"github.com/twosell/twosell/processor"
	"github.com/twosell/twosell/processor/kafkatest"
)

// TestMain lets a test run this binary as "twosell": with TWOSELLTEST_MAIN=1
// the test binary is the command, so crash tests can SIGKILL a real process
// without a separate build.
func TestMain(m *testing.M) {
	if os.Getenv("TWOSELLTEST_MAIN") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

const (
	testKey    = "KEY-5e3c7a1f0d"
	testOpenID = "OPENID-9b2d44c1"
)

// newSim serves the simulator for the test's lifetime.
func newSim(t *testing.T, f juhesim.Faults) (*juhesim.Sim, string) {
	t.Helper()
	sim, err := juhesim.New(juhesim.Config{Keys: []string{testKey}, OpenID: testOpenID, Population: -1, Faults: f})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	return sim, srv.URL
}

// pipelineEvent is an input event whose outcome the test knows.
type pipelineEvent struct {
	id, mobile, date string // mobile normalized, date yyyymmdd
	bad              bool
	rec              *kgo.Record
}

// pipelineEvents builds n events over the simulator's rule (every case of
// it) in the formats producers use; every 20th is invalid.
func pipelineEvents(topic string, n int) []pipelineEvent {
	mobiles := juhesim.Population(n)
	evs := make([]pipelineEvent, n)
	for i := range n {
		m := mobiles[i]
		day := time.Date(2015+i%11, time.Month(1+i%12), 1+i%28, 12, 0, 0, 0, time.UTC)
		e := pipelineEvent{id: fmt.Sprintf("e-%05d", i), mobile: m, date: day.Format("20060102")}
		value := fmt.Sprintf(`{"event_id":%q,"mobile":"+86 %s-%s-%s","registered_at":%q,"n":12345678901234567890123}`,
			e.id, m[:3], m[3:7], m[7:], day.Format("2006-01-02"))
		if i%20 == 19 {
			e.bad = true
			value = fmt.Sprintf(`{"event_id":%q,"mobile":"%s","registered_at":"not a date"}`, e.id, m)
		}
		e.rec = &kgo.Record{
			Topic:   topic,
			Key:     []byte(fmt.Sprintf("u-%d", i%13)),
			Value:   []byte(value),
			Headers: []kgo.RecordHeader{{Key: "traceparent", Value: []byte(fmt.Sprintf("00-%032x-%016x-01", i+1, i+1))}},
		}
		evs[i] = e
	}
	return evs
}

// goodEvents is the first n events of pipelineEvents that are not bad:
// each makes a call.
func goodEvents(topic string, n int) []pipelineEvent {
	var evs []pipelineEvent
	for _, e := range pipelineEvents(topic, 2*n+2) {
		if !e.bad && len(evs) < n {
			evs = append(evs, e)
		}
	}
	return evs
}

func records(evs []pipelineEvent) []*kgo.Record {
	recs := make([]*kgo.Record, len(evs))
	for i, e := range evs {
		recs[i] = e.rec
	}
	return recs
}

// expectStatus is the status the simulator's rule gives.
func expectStatus(mobile, date string) string {
	code, res := juhesim.Expect(mobile, date)
	if code == 232703 {
		return string(processor.StatusNoRecord)
	}
	s, _ := processor.StatusOfRes(res)
	return string(s)
}

// testConfig is a validated configuration for the cluster and simulator.
func testConfig(t *testing.T, k *kafkatest.Cluster, simURL string, mode juhe.Mode) *config.Config {
	t.Helper()
	cfg := config.Default()
	cfg.Kafka.Brokers = k.Brokers
	cfg.Kafka.Group = k.Name("twosell")
	cfg.Kafka.InputTopic = k.Name("registrations")
	cfg.Kafka.OutputTopic = k.Name("enriched")
	cfg.Kafka.DLQTopic = k.Name("dlq")
	cfg.Ledger.Topic = k.Name("ledger") // a shared cluster: each test its own ledger
	cfg.Kafka.SessionTimeout = 6 * time.Second
	cfg.Juhe.URL = simURL
	cfg.Juhe.Key = testKey
	cfg.Juhe.OpenID = testOpenID
	cfg.Juhe.Mode = mode
	cfg.Juhe.Backoff = time.Millisecond
	cfg.Juhe.MaxBackoff = 5 * time.Millisecond
	cfg.Juhe.Breaker.OpenFor = 50 * time.Millisecond
	cfg.Processing.CommitInterval = 50 * time.Millisecond
	cfg.Processing.RetryBackoff = 5 * time.Millisecond
	cfg.Processing.MaxRetryBackoff = 50 * time.Millisecond
	cfg.Telemetry.MetricsAddr = "127.0.0.1:0" // tests run side by side
	if err := cfg.Validate("run"); err != nil {
		t.Fatal(err)
	}
	k.CreateTopics(3, cfg.Kafka.InputTopic)
	return &cfg
}

type logWriter struct {
	t   *testing.T
	all *syncBuffer
}

func (w logWriter) Write(b []byte) (int, error) {
	w.all.Write(b)
	w.t.Log(strings.TrimSuffix(string(b), "\n"))
	return len(b), nil
}

// checkOutcomes checks that every event ends exactly once, in the right
// topic with the simulator's status, the input's key and trace.
func checkOutcomes(t *testing.T, cfg *config.Config, evs []pipelineEvent, got []*kgo.Record, allowDuplicates bool) (duplicates int) {
	t.Helper()
	byID := make(map[string]pipelineEvent, len(evs))
	for _, e := range evs {
		byID[e.id] = e
	}
	seen := make(map[string]int)
	for _, r := range got {
		var v struct {
			EventID string `json:"event_id"`
			Twosell struct {
				Status string `json:"status"`
				Date   string `json:"date"`
			} `json:"twosell"`
		}
		if err := json.Unmarshal(r.Value, &v); err != nil {
			t.Fatalf("record %q: %v", r.Value, err)
		}
		e, ok := byID[v.EventID]
		if !ok {
			t.Fatalf("unknown event %q", v.EventID)
		}
		seen[e.id]++
		if string(r.Key) != string(e.rec.Key) {
			t.Errorf("%s: key %q, want %q", e.id, r.Key, e.rec.Key)
		}
		tp, _ := headerValue(r, "traceparent")
		if in := string(e.rec.Headers[0].Value); len(tp) != len(in) || tp[3:35] != in[3:35] {
			t.Errorf("%s: traceparent %q is not in the input's trace %q", e.id, tp, in)
		}
		switch {
		case e.bad && r.Topic != cfg.Kafka.DLQTopic:
			t.Errorf("%s: invalid event in %s", e.id, r.Topic)
		case !e.bad && r.Topic != cfg.Kafka.OutputTopic:
			reason, _ := headerValue(r, processor.HeaderError)
			t.Errorf("%s: valid event dead-lettered: %s", e.id, reason)
		case !e.bad:
			if want := expectStatus(e.mobile, e.date); v.Twosell.Status != want || v.Twosell.Date != e.date {
				t.Errorf("%s (%s on %s): status %q date %q, want %q", e.id, e.mobile, e.date, v.Twosell.Status, v.Twosell.Date, want)
			}
			if s, _ := headerValue(r, processor.HeaderStatus); s != v.Twosell.Status {
				t.Errorf("%s: status header %q, field %q", e.id, s, v.Twosell.Status)
			}
		}
	}
	for _, e := range evs {
		switch c := seen[e.id]; {
		case c == 0:
			t.Errorf("%s lost", e.id)
		case c > 1 && !allowDuplicates:
			t.Errorf("%s seen %d times", e.id, c)
		case c > 1:
			duplicates += c - 1
		}
	}
	return duplicates
}

func headerValue(r *kgo.Record, key string) (string, bool) {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value), true
		}
	}
	return "", false
}

// runInProcess runs the wired processor (juhe client, simulator, Kafka)
// until stop is called.
func runInProcess(t *testing.T, cfg *config.Config, logs *syncBuffer, opts ...sdktrace.TracerProviderOption) (*processor.Processor, *juhe.Client, func() error) {
	t.Helper()
	log := slog.New(slog.NewJSONHandler(logWriter{t, logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	tp := sdktrace.NewTracerProvider(opts...)
	client, err := newJuheClient(cfg, tp, nil, log)
	if err != nil {
		t.Fatal(err)
	}
	proc, err := newProcessor(cfg, juheEnricher{client}, tp, log)
	if err != nil {
		t.Fatal(err)
	}
	return proc, client, runUntilStopped(t, proc, func() {})
}

// runUntilStopped runs proc until the returned function is called (or the
// test ends); it then runs after and returns Run's error, once.
func runUntilStopped(t *testing.T, proc *processor.Processor, after func()) func() error {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- proc.Run(ctx) }()
	var stopped atomic.Bool
	var runErr error
	stop := func() error {
		if stopped.CompareAndSwap(false, true) {
			cancel()
			runErr = <-done
			after()
		}
		return runErr
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

func TestPipelineEveryMode(t *testing.T) {
	for _, mode := range juhe.Modes {
		t.Run(string(mode), func(t *testing.T) {
			k := kafkatest.New(t)
			sim, url := newSim(t, juhesim.Faults{})
			const n = 120
			cfg := testConfig(t, k, url, mode)
			evs := pipelineEvents(cfg.Kafka.InputTopic, n)
			for _, e := range evs {
				sim.Register(e.mobile) // the digest modes answer only numbers the provider knows
			}
			k.Produce(records(evs)...)
			logs := &syncBuffer{}
			_, _, stop := runInProcess(t, cfg, logs)

			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			k.Consume(ctx, func(r []*kgo.Record) bool { return len(r) >= n }, cfg.Kafka.OutputTopic, cfg.Kafka.DLQTopic)
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			checkOutcomes(t, cfg, evs, k.ConsumeAll(ctx, cfg.Kafka.OutputTopic, cfg.Kafka.DLQTopic), false)
			if got := sim.Stats().ByMode[string(mode)]; got < n*9/10 {
				t.Errorf("the simulator saw %d requests in mode %s, want the valid events'", got, mode)
			}
			for _, secret := range []string{testKey, testOpenID} {
				if strings.Contains(logs.String(), secret) {
					t.Errorf("a secret appears in the logs")
				}
			}
		})
	}
}

// An outage opens the breaker and pauses fetching; when the provider
// recovers, everything completes and nothing was emitted unchecked.
func TestPipelineOutage(t *testing.T) {
	k := kafkatest.New(t)
	sim, url := newSim(t, juhesim.Faults{Outage: juhesim.Outage503})
	const n = 60
	cfg := testConfig(t, k, url, juhe.ModePlain)
	evs := pipelineEvents(cfg.Kafka.InputTopic, n)
	k.Produce(records(evs)...)
	proc, client, stop := runInProcess(t, cfg, &syncBuffer{})

	kafkatest.WaitFor(t, func() bool {
		s := proc.Stats()
		return client.BreakerState() == "open" && s.PausedPartitions > 0 && s.HeldPartitions > 0
	})
	if s := proc.Stats(); s.Produced != 0 {
		t.Fatalf("produced %d events during the outage", s.Produced)
	}
	if err := sim.SetFaults(juhesim.Faults{}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	k.Consume(ctx, func(r []*kgo.Record) bool { return len(r) >= n }, cfg.Kafka.OutputTopic, cfg.Kafka.DLQTopic)
	kafkatest.WaitFor(t, func() bool { return client.BreakerState() == "closed" && proc.Stats().PausedPartitions == 0 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	checkOutcomes(t, cfg, evs, k.ConsumeAll(ctx, cfg.Kafka.OutputTopic, cfg.Kafka.DLQTopic), false)
	t.Logf("simulator: %+v", sim.Stats())
}

// child is "twosell run" as a separate process.
type child struct {
	cmd    *exec.Cmd
	stderr *syncBuffer
	done   chan error
}

func startChild(t *testing.T, cfg *config.Config, extraEnv ...string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "run",
		"--brokers", strings.Join(cfg.Kafka.Brokers, ","),
		"--group", cfg.Kafka.Group,
		"--input-topic", cfg.Kafka.InputTopic,
		"--output-topic", cfg.Kafka.OutputTopic,
		"--dlq-topic", cfg.Kafka.DLQTopic,
		"--juhe-url", cfg.Juhe.URL,
		"--juhe-mode", string(cfg.Juhe.Mode),
		"--metrics-addr", cfg.Telemetry.MetricsAddr,
		"--log-format", "json",
	)
	cmd.Env = append(os.Environ(),
		"TWOSELLTEST_MAIN=1",
		"TWOSELL_JUHE_KEY="+testKey,
		"TWOSELL_JUHE_OPENID="+testOpenID,
		"TWOSELL_LEDGER_TOPIC="+cfg.Ledger.Topic,
		"TWOSELL_KAFKA_SESSION_TIMEOUT=6s",
		"TWOSELL_PROCESSING_COMMIT_INTERVAL=50ms",
		"TWOSELL_PROCESSING_RETRY_BACKOFF=5ms",
		"TWOSELL_PROCESSING_MAX_RETRY_BACKOFF=50ms",
		"TWOSELL_JUHE_BACKOFF=1ms",
		"TWOSELL_JUHE_MAX_BACKOFF=5ms",
		"OTEL_TRACES_EXPORTER=none",
	)
	cmd.Env = append(cmd.Env, extraEnv...)
	c := &child{cmd: cmd, stderr: &syncBuffer{}, done: make(chan error, 1)}
	cmd.Stderr = c.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { c.done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-c.done
		if t.Failed() {
			t.Logf("twosell run stderr:\n%s", c.stderr.String())
		}
	})
	return c
}

// wait returns the child's exit status.
func (c *child) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-c.done:
	case <-time.After(90 * time.Second):
		t.Fatalf("twosell run did not exit; stderr:\n%s", c.stderr.String())
	}
	c.done <- nil // for the cleanup
	return c.cmd.ProcessState.ExitCode()
}

// Stop the process abruptly mid-stream (SIGKILL: no shutdown path at all)
// and start it again: nothing is lost.
func TestRunCrashLosesNothing(t *testing.T) {
	k := kafkatest.New(t)
	const n, answered = 1500, 400
	// The provider answers 400 requests, then hangs: the process is
	// certainly mid-stream, with lookups in flight, when it is killed.
	sim, url := newSim(t, juhesim.Faults{Outage: juhesim.OutageHang, AfterRequests: answered})
	cfg := testConfig(t, k, url, juhe.ModePlain)
	evs := pipelineEvents(cfg.Kafka.InputTopic, n)
	k.Produce(records(evs)...)

	first := startChild(t, cfg)
	kafkatest.WaitFor(t, func() bool { return sim.Stats().Requests > answered })
	if err := first.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	first.wait(t)
	before := len(k.ConsumeAll(t.Context(), cfg.Kafka.OutputTopic, cfg.Kafka.DLQTopic))
	if before >= n {
		t.Fatalf("all %d events were done before the kill; the test proves nothing", before)
	}

	if err := sim.SetFaults(juhesim.Faults{}); err != nil {
		t.Fatal(err)
	}
	second := startChild(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	k.Consume(ctx, func(recs []*kgo.Record) bool { return distinctEvents(t, recs) >= n }, cfg.Kafka.OutputTopic, cfg.Kafka.DLQTopic)
	if err := second.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := second.wait(t); code != 0 {
		t.Fatalf("twosell run exited %d after SIGTERM, want 0", code)
	}
	dups := checkOutcomes(t, cfg, evs, k.ConsumeAll(ctx, cfg.Kafka.OutputTopic, cfg.Kafka.DLQTopic), true)
	t.Logf("killed after %d of %d events were written; after the restart: none lost, %d duplicates (at-least-once re-delivers the in-flight window)", before, n, dups)
}

func distinctEvents(t *testing.T, recs []*kgo.Record) int {
	ids := make(map[string]bool)
	for _, r := range recs {
		var v struct {
			EventID string `json:"event_id"`
		}
		if err := json.Unmarshal(r.Value, &v); err != nil {
			t.Fatalf("record %q: %v", r.Value, err)
		}
		ids[v.EventID] = true
	}
	return len(ids)
}

// A SIGINT or SIGTERM while "twosell run" starts (the ledger's load can
// take seconds) is a stop like any other: exit 0, not a Kafka error.
func TestRunStoppedWhileStarting(t *testing.T) {
	k := kafkatest.New(t)
	_, url := newSim(t, juhesim.Faults{})
	cfg := testConfig(t, k, url, juhe.ModePlain)
	t.Setenv("TWOSELL_JUHE_KEY", testKey)
	ctx, cancel := context.WithCancel(t.Context())
	cancel() // the signal came before the ledger was loaded
	var stdout, stderr syncBuffer
	code := Main(ctx, []string{"run", "--brokers", strings.Join(cfg.Kafka.Brokers, ","), "--input-topic", cfg.Kafka.InputTopic,
		"--output-topic", cfg.Kafka.OutputTopic, "--dlq-topic", cfg.Kafka.DLQTopic, "--juhe-url", url, "--metrics-addr", ""}, &stdout, &stderr)
	if code != 0 || !strings.Contains(stderr.String(), "stopped before consuming") {
		t.Errorf("exit %d after a stop while starting, want 0:\n%s", code, stderr.String())
	}
}

// A fatal provider answer (10001: the key is wrong) stops consumption:
// "twosell run" exits non-zero with a message naming the cause, and nothing
// is committed past the last finished record.
func TestRunFatalExitsNonZero(t *testing.T) {
	k := kafkatest.New(t)
	const n, answered = 100, 30
	_, url := newSim(t, juhesim.Faults{ErrorRates: map[int]float64{10001: 1}, AfterRequests: answered})
	cfg := testConfig(t, k, url, juhe.ModePlain)
	evs := goodEvents(cfg.Kafka.InputTopic, n) // every event makes one call
	k.Produce(records(evs)...)

	c := startChild(t, cfg, "TWOSELL_PROCESSING_COMMIT_INTERVAL=10s") // only the final commit
	if code := c.wait(t); code == 0 {
		t.Fatalf("exit status 0 after a fatal error")
	}
	stderr := c.stderr.String()
	if !strings.Contains(stderr, "10001") || !strings.Contains(stderr, "juhe.key") {
		t.Errorf("stderr does not name the cause (10001, juhe.key):\n%s", stderr)
	}
	if strings.Contains(stderr, testKey) {
		t.Errorf("the key appears on stderr")
	}
	// Many lookups overlap, so the answered records are not a prefix of
	// each partition: the commit must cover exactly each partition's
	// finished prefix, and stop at a record with no output.
	committed := k.CommittedOffsets(cfg.Kafka.Group, cfg.Kafka.InputTopic)
	written := make(map[string]bool)
	outputs := k.ConsumeAll(t.Context(), cfg.Kafka.OutputTopic)
	for _, r := range outputs {
		var v struct {
			EventID string `json:"event_id"`
		}
		if err := json.Unmarshal(r.Value, &v); err != nil {
			t.Fatal(err)
		}
		written[v.EventID] = true
	}
	var total int64
	for _, e := range evs {
		at, p := e.rec.Offset, e.rec.Partition
		switch {
		case at < committed[p] && !written[e.id]:
			t.Errorf("partition %d committed to %d, past %s (offset %d), which has no output", p, committed[p], e.id, at)
		case at == committed[p] && written[e.id]:
			t.Errorf("partition %d committed to %d, but %s there has an output", p, committed[p], e.id)
		}
	}
	for _, o := range committed {
		total += o
	}
	if total > answered || len(outputs) > answered {
		t.Errorf("committed %d records and wrote %d outputs; the provider answered only %d", total, len(outputs), answered)
	}
}

// The process span continues the input's trace; the provider call and its
// HTTP request are its children; the output carries a new span of the same
// trace; no span carries the key, the openid or the mobile.
func TestPipelineTracing(t *testing.T) {
	k := kafkatest.New(t)
	_, url := newSim(t, juhesim.Faults{})
	cfg := testConfig(t, k, url, juhe.ModeAES)
	evs := pipelineEvents(cfg.Kafka.InputTopic, 1)
	k.Produce(records(evs)...)
	spans := tracetest.NewSpanRecorder()
	_, _, stop := runInProcess(t, cfg, &syncBuffer{}, sdktrace.WithSpanProcessor(spans))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out := k.Consume(ctx, func(r []*kgo.Record) bool { return len(r) >= 1 }, cfg.Kafka.OutputTopic)[0]
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	in := string(evs[0].rec.Headers[0].Value) // 00-trace-span-01
	traceID, inSpan := in[3:35], in[36:52]
	byName := make(map[string]sdktrace.ReadOnlySpan)
	for _, s := range spans.Ended() {
		byName[s.Name()] = s
		if s.SpanContext().TraceID().String() != traceID {
			continue
		}
		dump := fmt.Sprint(s.Name(), s.Attributes(), s.Events(), s.Status())
		for _, secret := range []string{testKey, testOpenID, evs[0].mobile} {
			if strings.Contains(dump, secret) {
				t.Errorf("span %s carries a secret or the mobile: %s", s.Name(), dump)
			}
		}
	}
	process := byName[cfg.Kafka.InputTopic+" process"]
	query := byName["juhe.query"]
	if process == nil || query == nil {
		t.Fatalf("spans %v: want a process span and a juhe.query span", keys(byName))
	}
	if process.SpanContext().TraceID().String() != traceID {
		t.Errorf("process span in trace %s, want the input's %s", process.SpanContext().TraceID(), traceID)
	}
	if query.Parent().SpanID() != process.SpanContext().SpanID() {
		t.Errorf("juhe.query's parent is not the process span")
	}
	var httpSpan sdktrace.ReadOnlySpan
	for _, s := range spans.Ended() {
		if s.SpanKind() == trace.SpanKindClient && s.Parent().SpanID() == query.SpanContext().SpanID() {
			httpSpan = s
		}
	}
	if httpSpan == nil {
		t.Errorf("no HTTP client span under juhe.query")
	}
	tp, _ := headerValue(out, "traceparent")
	if tp[3:35] != traceID || tp[36:52] == inSpan {
		t.Errorf("output traceparent %s: want trace %s with a span of its own", tp, traceID)
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
