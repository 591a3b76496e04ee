package processor_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	_ "time/tzdata"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/twosell/twosell/processor"
	"github.com/twosell/twosell/processor/kafkatest"
)

// fakeEnricher answers from the number's last digit: 0 → no record,
// 1–3 → res 1–3 (recycled, not recycled, no activation date), otherwise res 2.
func fakeAnswer(l processor.Lookup) processor.Result {
	res := processor.Result{Source: "api", Mode: "plain", OrderID: "JH-" + l.Mobile[7:] + "-" + l.Date, Attempts: 1}
	switch d := l.Mobile[10] - '0'; d {
	case 0:
		res.Status, res.Code, res.OrderID = processor.StatusNoRecord, 232703, ""
	case 1, 2, 3:
		res.Res = int(d)
		res.Status, _ = processor.StatusOfRes(res.Res)
	default:
		res.Res, res.Status = 2, processor.StatusNotRecycled
	}
	return res
}

type harness struct {
	t       *testing.T
	eos     bool // exactly-once delivery
	kafka   *kafkatest.Cluster
	in, out string
	dlq     string
	group   string
	spans   *tracetest.SpanRecorder
	tp      *sdktrace.TracerProvider
}

// bothModes runs a test once per delivery guarantee.
func bothModes(t *testing.T, test func(t *testing.T, eos bool)) {
	t.Run("at-least-once", func(t *testing.T) { test(t, false) })
	t.Run("exactly-once", func(t *testing.T) { test(t, true) })
}

func newHarness(t *testing.T, partitions int32) *harness { return newHarnessMode(t, partitions, false) }

func newHarnessMode(t *testing.T, partitions int32, eos bool) *harness {
	k := kafkatest.New(t)
	h := &harness{
		t: t, kafka: k, eos: eos,
		in: k.Name("registrations"), out: k.Name("enriched"), dlq: k.Name("dlq"),
		group: k.Name("twosell"),
		spans: tracetest.NewSpanRecorder(),
	}
	h.tp = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(h.spans))
	k.CreateTopics(partitions, h.in)
	return h
}

func (h *harness) config(e processor.Enricher) processor.Config {
	return processor.Config{
		ClientOpts:      []kgo.Opt{kgo.SeedBrokers(h.kafka.Brokers...)},
		Group:           h.group,
		InputTopic:      h.in,
		OutputTopic:     h.out,
		DLQTopic:        h.dlq,
		CreateTopics:    true,
		Codec:           processor.CodecConfig{Location: shanghai(h.t)},
		Enricher:        e,
		CommitInterval:  50 * time.Millisecond,
		RetryBackoff:    5 * time.Millisecond,
		MaxRetryBackoff: 20 * time.Millisecond,
		SessionTimeout:  6 * time.Second,
		TracerProvider:  h.tp,
		ExactlyOnce:     h.eos,
		TransactionalID: h.kafka.Name("txn"),
		// Short, so that a held batch aborts within the test.
		TransactionTimeout: 4 * time.Second,
		Logger:             slog.New(slog.NewTextHandler(testWriter{h.t}, &slog.HandlerOptions{Level: slog.LevelInfo})),
	}
}

// start runs a processor until the returned stop function is called; stop
// returns Run's error.
func (h *harness) start(cfg processor.Config) (*processor.Processor, func() error) {
	p, err := processor.New(cfg)
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	var once sync.Once
	var runErr error
	stop := func() error {
		once.Do(func() { cancel(); runErr = <-done })
		return runErr
	}
	h.t.Cleanup(func() { _ = stop() })
	return p, stop
}

func shanghai(t testing.TB) *time.Location {
	loc, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(b), "\n"))
	return len(b), nil
}

// event builds an input record; bad ones are dead-lettered.
func event(topic string, i int, bad bool) *kgo.Record {
	mobile := fmt.Sprintf("1731234%04d", i)
	value := fmt.Sprintf(`{"event_id":"e-%d","user_id":"u-%d","mobile":"+86 %s-%s-%s","registered_at":"2024-01-02T03:04:05+08:00","big":123456789012345678901234567890}`,
		i, i%7, mobile[:3], mobile[3:7], mobile[7:])
	if bad {
		value = fmt.Sprintf(`{"event_id":"e-%d","user_id":"u-%d","mobile":"12345","registered_at":"2024-01-02"}`, i, i%7)
	}
	return &kgo.Record{
		Topic: topic,
		Key:   []byte(fmt.Sprintf("u-%d", i%7)),
		Value: []byte(value),
		Headers: []kgo.RecordHeader{
			{Key: "origin", Value: []byte(fmt.Sprintf("test-%d", i))},
			{Key: "traceparent", Value: []byte(fmt.Sprintf("00-%032x-%016x-01", i+1, i+1))},
		},
	}
}

// produceEvents writes n valid events to the input topic.
func (h *harness) produceEvents(n int) []*kgo.Record {
	var recs []*kgo.Record
	for i := range n {
		recs = append(recs, event(h.in, i, false))
	}
	h.kafka.Produce(recs...)
	return recs
}

// eventID reads event_id from a value, also from values that are not JSON
// (a dead letter keeps the input byte for byte).
func eventID(t *testing.T, v []byte) string {
	var e struct {
		EventID string `json:"event_id"`
	}
	if err := json.Unmarshal(v, &e); err != nil {
		t.Fatalf("value %q: %v", v, err)
	}
	return e.EventID
}

func header(r *kgo.Record, key string) (string, bool) {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value), true
		}
	}
	return "", false
}

func headerCount(r *kgo.Record, key string) int {
	n := 0
	for _, h := range r.Headers {
		if h.Key == key {
			n++
		}
	}
	return n
}

func countAtLeast(n int) func([]*kgo.Record) bool {
	return func(recs []*kgo.Record) bool { return len(recs) >= n }
}

// hasEvent is a Consume condition: an output of the event id has come.
func hasEvent(t *testing.T, id string) func([]*kgo.Record) bool {
	return func(recs []*kgo.Record) bool {
		for _, r := range recs {
			if eventID(t, r.Value) == id {
				return true
			}
		}
		return false
	}
}

func TestEndToEnd(t *testing.T) {
	bothModes(t, func(t *testing.T, eos bool) {
		h := newHarnessMode(t, 3, eos)
		const n = 300
		var recs []*kgo.Record
		for i := range n {
			recs = append(recs, event(h.in, i, i%25 == 0))
		}
		h.kafka.Produce(recs...)
		_, stop := h.start(h.config(processor.EnricherFunc(func(_ context.Context, l processor.Lookup) (processor.Result, error) {
			return fakeAnswer(l), nil
		})))

		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		h.kafka.Consume(ctx, countAtLeast(n), h.out, h.dlq)
		if err := stop(); err != nil {
			t.Fatalf("Run: %v", err)
		}
		got := h.kafka.ConsumeAll(ctx, h.out, h.dlq)

		inputs := make(map[string]*kgo.Record)
		for i, r := range recs {
			inputs[fmt.Sprintf("e-%d", i)] = r
		}
		seen := make(map[string]int)
		for _, r := range got {
			id := eventID(t, r.Value)
			seen[id]++
			in := inputs[id]
			if in == nil {
				t.Fatalf("unknown event %q", id)
			}
			if string(r.Key) != string(in.Key) {
				t.Errorf("%s: key %q, want the input's %q", id, r.Key, in.Key)
			}
			if v, _ := header(r, "origin"); v != string(in.Headers[0].Value) {
				t.Errorf("%s: origin header %q, want %q", id, v, in.Headers[0].Value)
			}
			// The output's traceparent continues the input's trace.
			tp, _ := header(r, "traceparent")
			inTP := string(in.Headers[1].Value)
			if headerCount(r, "traceparent") != 1 || tp[3:35] != inTP[3:35] || tp == inTP {
				t.Errorf("%s: traceparent %q; want one, in the input's trace %s with a new span", id, tp, inTP[3:35])
			}
			i := 0
			fmt.Sscanf(id, "e-%d", &i)
			bad := i%25 == 0
			switch r.Topic {
			case h.out:
				if bad {
					t.Errorf("%s: a bad event was enriched", id)
				}
				checkOutput(t, r, in, fakeAnswer(processor.Lookup{Mobile: fmt.Sprintf("1731234%04d", i), Date: "20240102"}))
			case h.dlq:
				if !bad {
					t.Errorf("%s: a good event was dead-lettered: %v", id, r.Headers)
				}
				if string(r.Value) != string(in.Value) {
					t.Errorf("%s: dead letter value %q, want the input byte for byte", id, r.Value)
				}
				class, _ := header(r, processor.HeaderErrorClass)
				reason, _ := header(r, processor.HeaderError)
				src, _ := header(r, processor.HeaderSource)
				if class != processor.ClassInvalidMobile || !strings.Contains(reason, "mobile") || !strings.HasPrefix(src, h.in+"/") {
					t.Errorf("%s: dead letter class %q reason %q source %q", id, class, reason, src)
				}
			}
		}
		for id := range inputs {
			if seen[id] != 1 {
				t.Errorf("%s seen %d times, want exactly once", id, seen[id])
			}
		}

		// After a graceful stop, everything is committed.
		committed := h.kafka.CommittedOffsets(h.group, h.in)
		var total int64
		for _, o := range committed {
			total += o
		}
		if total != n {
			t.Errorf("committed offsets %v sum to %d, want %d", committed, total, n)
		}
	})
}

// checkOutput checks an enriched event against the input and the answer.
func checkOutput(t *testing.T, out, in *kgo.Record, want processor.Result) {
	t.Helper()
	var got map[string]json.RawMessage
	if err := json.Unmarshal(out.Value, &got); err != nil {
		t.Fatalf("output %q: %v", out.Value, err)
	}
	if string(got["big"]) != "123456789012345678901234567890" {
		t.Errorf("big number became %s", got["big"])
	}
	var ts struct {
		Schema  int    `json:"schema"`
		Status  string `json:"status"`
		Res     int    `json:"res"`
		Date    string `json:"date"`
		OrderID string `json:"order_id"`
		Source  string `json:"source"`
		Mode    string `json:"mode"`
		Checked string `json:"checked_at"`
	}
	if err := json.Unmarshal(got["twosell"], &ts); err != nil {
		t.Fatalf("twosell field %s: %v", got["twosell"], err)
	}
	if ts.Schema != 1 || ts.Status != string(want.Status) || ts.Res != want.Res || ts.Date != "20240102" ||
		ts.OrderID != want.OrderID || ts.Source != "api" || ts.Mode != "plain" || ts.Checked == "" {
		t.Errorf("twosell field %s, want status %s res %d order %q", got["twosell"], want.Status, want.Res, want.OrderID)
	}
	if s, _ := header(out, processor.HeaderStatus); s != string(want.Status) {
		t.Errorf("%s header %q, want %q", processor.HeaderStatus, s, want.Status)
	}
}

func TestFatalCommitsOnlyFinishedRecords(t *testing.T) {
	bothModes(t, func(t *testing.T, eos bool) {
		h := newHarnessMode(t, 1, eos)
		const n, fatalAt = 100, 30
		h.produceEvents(n)
		var calls atomic.Int64
		p, err := processor.New(h.config(processor.EnricherFunc(func(_ context.Context, l processor.Lookup) (processor.Result, error) {
			if calls.Add(1) > fatalAt {
				return processor.Result{}, processor.Fatal(errors.New("the provider rejected the API key"))
			}
			return fakeAnswer(l), nil
		})))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		// Run ends by itself with the fatal error.
		var fe *processor.FatalError
		if err := p.Run(ctx); !errors.As(err, &fe) {
			t.Fatalf("Run = %v, want a *FatalError", err)
		}
		committed := h.kafka.CommittedOffsets(h.group, h.in)[0]
		got := h.kafka.ConsumeAll(ctx, h.out)
		if eos {
			// The transaction holding the fatal record aborts whole:
			// what is committed is what a read_committed reader sees.
			if committed != int64(len(got)) || committed > fatalAt {
				t.Errorf("committed offset %d and %d outputs; want equal and at most %d", committed, len(got), fatalAt)
			}
			return
		}
		// Lookups overlap: the answered records are not a prefix. The
		// commit covers exactly the finished prefix.
		checkCommittedPrefix(t, committed, got)
		if committed > fatalAt || len(got) > fatalAt {
			t.Errorf("committed offset %d and %d outputs; at most %d lookups were answered", committed, len(got), fatalAt)
		}
	})
}

// checkCommittedPrefix checks that a single-partition commit covers only
// finished records: every record below it has an output, and the record at
// it has none (it was not finished when the commit was made, and nothing
// after a fatal error or a stop finishes it). Event e-i is at offset i.
func checkCommittedPrefix(t *testing.T, committed int64, outputs []*kgo.Record) {
	t.Helper()
	done := make(map[int64]bool)
	for _, r := range outputs {
		var i int64
		fmt.Sscanf(eventID(t, r.Value), "e-%d", &i)
		done[i] = true
	}
	for i := range committed {
		if !done[i] {
			t.Errorf("committed offset %d passes record %d, which has no output", committed, i)
		}
	}
	if done[committed] {
		t.Errorf("record %d has an output, but the commit stopped before it at %d", committed, committed)
	}
}

func TestHoldsRecordsWhileProviderUnavailable(t *testing.T) {
	bothModes(t, func(t *testing.T, eos bool) {
		h := newHarnessMode(t, 2, eos)
		const n = 40
		h.produceEvents(n)
		var down atomic.Bool
		down.Store(true)
		var failures atomic.Int64
		p, stop := h.start(h.config(processor.EnricherFunc(func(_ context.Context, l processor.Lookup) (processor.Result, error) {
			if down.Load() {
				failures.Add(1)
				return processor.Result{Mode: "plain"}, processor.Unavailable(errors.New("circuit breaker is open"))
			}
			return fakeAnswer(l), nil
		})))

		// Wait until both partitions hold a record and their fetching is paused.
		kafkatest.WaitFor(t, func() bool { s := p.Stats(); return s.HeldPartitions == 2 && s.PausedPartitions == 2 })
		if s := p.Stats(); s.Produced != 0 || s.DeadLettered != 0 {
			t.Fatalf("emitted while the provider was down: %+v", s)
		}
		down.Store(false)

		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		h.kafka.Consume(ctx, countAtLeast(n), h.out, h.dlq)
		kafkatest.WaitFor(t, func() bool { s := p.Stats(); return s.HeldPartitions == 0 && s.PausedPartitions == 0 })
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		got := h.kafka.ConsumeAll(ctx, h.out, h.dlq)
		seen := make(map[string]int)
		for _, r := range got {
			if r.Topic != h.out {
				t.Errorf("dead letter while holding: %v", r.Headers)
			}
			seen[eventID(t, r.Value)]++
		}
		if len(seen) != n || len(got) != n {
			t.Errorf("%d outputs of %d distinct events, want each of %d once", len(got), len(seen), n)
		}
		t.Logf("lookups refused while down: %d", failures.Load())
	})
}

// TestHeldRecordsComeBackWhenTheProviderSays: a provider that says when it
// can be called again (a circuit breaker open until then: UnavailableFor)
// has the held records tried again then, not after their backoff (an hour
// here: the outputs would not come).
func TestHeldRecordsComeBackWhenTheProviderSays(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 2)
	const n = 40
	h.produceEvents(n)
	var refused atomic.Int64
	cfg := h.config(processor.EnricherFunc(func(_ context.Context, l processor.Lookup) (processor.Result, error) {
		if refused.Add(1) <= 100 {
			return processor.Result{Mode: "plain"}, processor.UnavailableFor(errors.New("circuit breaker is open"), 5*time.Millisecond)
		}
		return fakeAnswer(l), nil
	}))
	cfg.RetryBackoff, cfg.MaxRetryBackoff = time.Hour, time.Hour
	p, stop := h.start(cfg)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second) // an hour's backoff would pass it
	defer cancel()
	h.kafka.Consume(ctx, countAtLeast(n), h.out)
	kafkatest.WaitFor(t, func() bool { s := p.Stats(); return s.HeldPartitions == 0 && s.PausedPartitions == 0 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if s := p.Stats(); s.Produced != n || refused.Load() < 100 {
		t.Errorf("%d outputs after %d calls, want %d after the 100 refused", s.Produced, refused.Load(), n)
	}
}

func TestEmitUnavailable(t *testing.T) {
	bothModes(t, func(t *testing.T, eos bool) {
		h := newHarnessMode(t, 1, eos)
		h.kafka.Produce(event(h.in, 1, false), event(h.in, 2, false))
		cfg := h.config(processor.EnricherFunc(func(context.Context, processor.Lookup) (processor.Result, error) {
			return processor.Result{Mode: "aes"}, processor.Unavailable(errors.New("quota"))
		}))
		cfg.EmitUnavailable = true
		_, stop := h.start(cfg)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		got := h.kafka.Consume(ctx, countAtLeast(2), h.out)
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		for _, r := range got {
			if s, _ := header(r, processor.HeaderStatus); s != "unavailable" || !strings.Contains(string(r.Value), `"status":"unavailable"`) {
				t.Errorf("output %s (status header %q), want status unavailable", r.Value, s)
			}
		}
	})
}

// A record held back after its number's call failed keeps its in-flight
// slot while it backs off, and so does each lookup that shared the failure.
// A record of that number that comes meanwhile is made the leader of the
// number's next call by its dispatcher (await), before it has a slot. The
// held records' retries take that call over rather than wait for it in the
// slots the leader waits for: they did, and nothing moved again.
func TestHeldRecordsTakeOverASlotlessLeadersCall(t *testing.T) {
	t.Parallel()
	for _, slots := range []int{1, 3} {
		t.Run(fmt.Sprintf("%d slots", slots), func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, 2)
			record := func(id string, partition int32) *kgo.Record {
				r := event(h.in, 1, false) // all of one number
				r.Value = bytes.Replace(r.Value, []byte(`"e-1"`), []byte(`"`+id+`"`), 1)
				r.Key, r.Partition = []byte("user-"+id), partition
				return r
			}
			var held []*kgo.Record
			for i := range slots {
				held = append(held, record(fmt.Sprintf("held-%d", i), 0))
			}
			var calls atomic.Int64
			gate := make(chan struct{})
			cost, err := processor.NewCostControl(processor.EnricherFunc(func(_ context.Context, l processor.Lookup) (processor.Result, error) {
				if calls.Add(1) == 1 {
					<-gate // until the others wait for it
					return processor.Result{}, processor.Unavailable(errors.New("a blip"))
				}
				return fakeAnswer(l), nil
			}), processor.CostConfig{Secret: []byte("s")})
			if err != nil {
				t.Fatal(err)
			}
			cfg := h.config(cost)
			cfg.MaxInFlight = slots
			cfg.RetryBackoff, cfg.MaxRetryBackoff = time.Second, time.Second // the leader comes first
			p, stop := h.start(cfg)
			defer stop() //nolint:errcheck // the outputs say it all
			cl := h.kafka.Client(kgo.RecordPartitioner(kgo.ManualPartitioner()))
			produceManually(t, cl, held)
			kafkatest.WaitFor(t, func() bool { return cost.CostStats().Coalesced == int64(slots-1) })
			close(gate)
			kafkatest.WaitFor(t, func() bool { return p.Holds(h.in, 0) == slots })
			produceManually(t, cl, []*kgo.Record{record("leader", 1)})
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			if got := h.kafka.Consume(ctx, countAtLeast(slots+1), h.out); len(got) != slots+1 {
				t.Errorf("%d outputs of %d; %d provider calls, %d in flight, %d calls pending",
					len(got), slots+1, calls.Load(), p.Stats().InFlight, cost.CallsInFlight())
			}
		})
	}
}

// A spent budget is on_budget's to answer, not on_unavailable's: with
// on_unavailable: emit and on_budget: pause, the records that need a paid
// call are held back until the budget renews, not written "unavailable"
// (and committed, never to be enriched).
func TestEmitUnavailableHoldsForTheBudget(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 1)
	h.produceEvents(5) // five numbers
	c, err := processor.NewCostControl(answer, processor.CostConfig{Secret: []byte("s"), DailyBudget: 2})
	if err != nil {
		t.Fatal(err)
	}
	cfg := h.config(c)
	cfg.Cost, cfg.EmitUnavailable = c, true
	p, stop := h.start(cfg)
	kafkatest.WaitFor(t, func() bool { s := p.Stats(); return s.HeldPartitions > 0 && s.Produced == 2 || s.Produced == 5 })
	s := p.Stats()
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if s.HeldPartitions == 0 || s.Produced != 2 || s.ByStatus[processor.StatusUnavailable] != 0 {
		t.Errorf("%d outputs (by status %v), %d partitions held; want the 2 the budget paid for, the rest held back",
			s.Produced, s.ByStatus, s.HeldPartitions)
	}
}

func TestRejectDeadLetters(t *testing.T) {
	bothModes(t, func(t *testing.T, eos bool) {
		h := newHarnessMode(t, 1, eos)
		h.kafka.Produce(event(h.in, 1, false))
		_, stop := h.start(h.config(processor.EnricherFunc(func(context.Context, processor.Lookup) (processor.Result, error) {
			return processor.Result{}, processor.Reject("bad_parameter", errors.New("juhe: the provider rejected the request parameters (232702 参数异常)"))
		})))
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		got := h.kafka.Consume(ctx, countAtLeast(1), h.dlq)
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		class, _ := header(got[0], processor.HeaderErrorClass)
		reason, _ := header(got[0], processor.HeaderError)
		if class != "bad_parameter" || !strings.Contains(reason, "232702") || !strings.Contains(reason, "173****0001") || strings.Contains(reason, "17312340001") {
			t.Errorf("dead letter class %q reason %q: want bad_parameter, the code and the mobile masked", class, reason)
		}
	})
}

func TestMissingInputTopic(t *testing.T) {
	h := newHarness(t, 1)
	cfg := h.config(processor.EnricherFunc(func(context.Context, processor.Lookup) (processor.Result, error) {
		return processor.Result{}, nil
	}))
	cfg.InputTopic = h.kafka.Name("no-such-topic")
	p, err := processor.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = p.Run(ctx)
	if !errors.Is(err, processor.ErrInputTopicMissing) || !strings.Contains(err.Error(), cfg.InputTopic) {
		t.Fatalf("Run = %v, want ErrInputTopicMissing naming %s", err, cfg.InputTopic)
	}
}

func TestMissingOutputTopicWithoutCreate(t *testing.T) {
	h := newHarness(t, 1)
	cfg := h.config(processor.EnricherFunc(func(context.Context, processor.Lookup) (processor.Result, error) {
		return processor.Result{}, nil
	}))
	cfg.CreateTopics = false
	p, err := processor.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.Run(ctx); !errors.Is(err, processor.ErrTopicMissing) || !strings.Contains(err.Error(), h.out) {
		t.Fatalf("Run = %v, want ErrTopicMissing naming %s", err, h.out)
	}
}

// A second member joining mid-stream takes partitions over through a
// revoke that finishes, flushes and commits: no event is lost or duplicated.
func TestRebalanceLosesAndDuplicatesNothing(t *testing.T) {
	bothModes(t, func(t *testing.T, eos bool) {
		h := newHarnessMode(t, 4, eos)
		const n = 1600 // enough that the second member joins while the first is busy, even on a loaded machine
		h.produceEvents(n)
		slow := processor.EnricherFunc(func(ctx context.Context, l processor.Lookup) (processor.Result, error) {
			select { // a provider with latency, so that work is in flight at the rebalance
			case <-time.After(5 * time.Millisecond):
			case <-ctx.Done():
				return processor.Result{}, ctx.Err()
			}
			return fakeAnswer(l), nil
		})
		// The members' logs, also kept to tell a lost session apart.
		var logs safeBuffer
		logger := slog.New(slog.NewTextHandler(io.MultiWriter(testWriter{t}, &logs), &slog.HandlerOptions{Level: slog.LevelInfo}))
		cfg := h.config(slow)
		cfg.MaxPollRecords = 20 // many transactions, so the rebalance lands mid-stream
		cfg.MaxInFlight = 2     // overlapping, but slow enough that the rebalance lands mid-stream
		cfg.Logger = logger
		p1, stop1 := h.start(cfg)
		kafkatest.WaitFor(t, func() bool { return p1.Stats().Produced >= n/8 })
		cfg2 := h.config(slow) // its own transactional id
		cfg2.MaxPollRecords, cfg2.MaxInFlight, cfg2.Logger = cfg.MaxPollRecords, cfg.MaxInFlight, logger
		p2, stop2 := h.start(cfg2)

		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		got := h.kafka.Consume(ctx, countAtLeast(n), h.out)
		if err := stop1(); err != nil {
			t.Fatal(err)
		}
		if err := stop2(); err != nil {
			t.Fatal(err)
		}
		got = h.kafka.ConsumeAll(ctx, h.out) // everything written, duplicates included
		s1, s2 := p1.Stats(), p2.Stats()
		t.Logf("first member produced %d, second %d", s1.Produced, s2.Produced)
		if s2.Produced == 0 {
			t.Fatal("the second member never got work: no rebalance happened mid-stream")
		}
		seen := make(map[string]int)
		for _, r := range got {
			seen[eventID(t, r.Value)]++
		}
		dups := 0
		for _, c := range seen {
			dups += c - 1
		}
		if len(seen) != n {
			t.Errorf("%d distinct events of %d; want all", len(seen), n)
		}
		// At-least-once, a member whose session expired (a machine stalled
		// past SessionTimeout) loses its partitions without a revoke, and
		// what it had not committed is delivered again: duplicates then are
		// the contract, not a bug. A rebalance alone duplicates nothing.
		sessionLost := strings.Contains(logs.String(), "partitions lost") ||
			strings.Contains(logs.String(), "not every output was acknowledged")
		switch {
		case dups != 0 && (eos || !sessionLost):
			t.Errorf("%d duplicates; want none", dups)
		case dups != 0:
			t.Logf("%d duplicates after a lost session or an unacknowledged revoke (see the WARN lines): delivered again, as at-least-once promises", dups)
		}
	})
}

// A stop finishes the records that later records overtook. Key ordering
// parks e-7 behind e-0 (both of user u-0) while e-8 (u-1) starts and is
// produced. Left unstarted at the stop, e-7 would hold the commit at 7, and
// e-8 would be produced again by whoever reads the partition next: a
// duplicate at a revoke of a busy partition (TestRebalanceLosesAndDuplicatesNothing
// saw one now and then on a real broker). The stop comes while e-7 is
// parked behind e-0, or once e-0 is done, while e-7 waits for an in-flight
// slot that e-9 and e-10 hold. Through the cost controls, e-7's paid call
// is made during the stop, though no other new one is
// (TestStopStartsNoNewPaidCall): the next owner would pay it all the same.
func TestStopFinishesOvertakenRecords(t *testing.T) {
	for _, tc := range []struct {
		name     string
		inFlight int
		cost     bool // through the cost controls: e-7's call is paid during the stop
	}{
		{"parked", 256, false},
		{"waiting for a slot", 2, false},
		{"paying during the stop", 256, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, 1)
			h.produceEvents(11) // e-i at offset i, key u-(i%7)
			// The lookups held until released, by the mobile's last digits.
			held := map[string]chan struct{}{
				"0000": make(chan struct{}), "0009": make(chan struct{}), "0010": make(chan struct{}),
			}
			var provider processor.Enricher = processor.EnricherFunc(func(ctx context.Context, l processor.Lookup) (processor.Result, error) {
				if release, ok := held[l.Mobile[7:]]; ok {
					select {
					case <-release:
					case <-ctx.Done():
						return processor.Result{}, ctx.Err()
					}
				}
				return fakeAnswer(l), nil
			})
			if tc.cost {
				cost := openCost(t, provider, processor.CostConfig{Secret: []byte("test-secret")})
				provider = cost
			}
			cfg := h.config(provider)
			cfg.MaxInFlight = tc.inFlight
			p, stop := h.start(cfg)
			// e-1 to e-6 and e-8 are produced; e-0, e-9 and e-10 are held
			// (with 2 slots, e-0 and e-9, and e-10 waits for a slot).
			kafkatest.WaitFor(t, func() bool { return p.Stats().Produced == 7 })
			last := []string{"0009", "0010"}
			if tc.inFlight == 2 {
				close(held["0000"]) // e-10 takes its slot; e-7 waits for one
				kafkatest.WaitFor(t, func() bool { s := p.Stats(); return s.Produced == 8 && s.InFlight == 2 })
			} else {
				last = append(last, "0000")
			}
			stopping := p.Stopping(h.in, 0)
			stopped := make(chan error, 1)
			go func() { stopped <- stop() }()
			<-stopping
			for _, m := range last { // finished within the stop's grace
				close(held[m])
			}
			if err := <-stopped; err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			var ids []string
			for _, r := range h.kafka.ConsumeAll(ctx, h.out) {
				ids = append(ids, eventID(t, r.Value))
			}
			slices.Sort(ids)
			if got, want := strings.Join(ids, " "), "e-0 e-1 e-10 e-2 e-3 e-4 e-5 e-6 e-7 e-8 e-9"; got != want {
				t.Errorf("outputs %s, want %s", got, want)
			}
			if committed := h.kafka.CommittedOffsets(h.group, h.in)[0]; committed != 11 {
				t.Errorf("committed offset %d, want 11: every record was produced", committed)
			}
		})
	}
}

// Stopping while the provider is down abandons the held records: Run
// returns cleanly and nothing unfinished is committed.
func TestStopWhileHolding(t *testing.T) {
	bothModes(t, func(t *testing.T, eos bool) {
		h := newHarnessMode(t, 1, eos)
		const n, answered = 20, 5
		h.produceEvents(n)
		var calls atomic.Int64
		cfg := h.config(processor.EnricherFunc(func(_ context.Context, l processor.Lookup) (processor.Result, error) {
			if calls.Add(1) > answered {
				return processor.Result{}, processor.Unavailable(errors.New("circuit breaker is open"))
			}
			return fakeAnswer(l), nil
		}))
		var logs safeBuffer
		cfg.Logger = slog.New(slog.NewTextHandler(io.MultiWriter(testWriter{t}, &logs), nil))
		p, stop := h.start(cfg)
		// Exactly-once, the held record's transaction holds the answered
		// ones too: nothing is produced until it commits.
		want := int64(answered)
		if eos {
			want = 0
		}
		kafkatest.WaitFor(t, func() bool { return p.Stats().HeldPartitions == 1 && p.Stats().Produced == want })
		if err := stop(); err != nil {
			t.Fatalf("Run = %v, want nil after a graceful stop", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		committed := h.kafka.CommittedOffsets(h.group, h.in)[0]
		got := h.kafka.ConsumeAll(ctx, h.out)
		if int64(len(got)) != want {
			t.Errorf("%d outputs, want %d", len(got), want)
		}
		checkCommittedPrefix(t, committed, got)
		// Stopping gives the held records up; the provider is still down.
		if strings.Contains(logs.String(), "the provider can be called again") || !strings.Contains(logs.String(), "held records given up") {
			t.Errorf("the log after stopping while holding:\n%s", logs.String())
		}
	})
}

// Stopping gives up the records still waiting for the provider's rate
// limit instead of paying for them during the grace period, which is for
// the calls already in flight; the records given up are not committed.
func TestStopStartsNoNewPaidCall(t *testing.T) {
	bothModes(t, func(t *testing.T, eos bool) {
		h := newHarnessMode(t, 1, eos)
		h.produceEvents(20) // 20 numbers: 20 calls, one a second
		var calls atomic.Int64
		first := make(chan struct{})
		provider := processor.EnricherFunc(func(_ context.Context, l processor.Lookup) (processor.Result, error) {
			if calls.Add(1) == 1 {
				close(first)
			}
			return fakeAnswer(l), nil
		})
		cost := openCost(t, provider, processor.CostConfig{Secret: []byte("test-secret"), QPS: 1})
		cfg := h.config(cost)
		cfg.ShutdownTimeout = 5 * time.Second // paying on through it would make 5 more calls
		// The first call, and the record after it waiting for the rate
		// limit: no record is overtaken (TestStopFinishesOvertakenRecords).
		cfg.MaxInFlight = 2
		_, stop := h.start(cfg)
		<-first
		if err := stop(); err != nil {
			t.Fatalf("Run = %v, want nil after a graceful stop", err)
		}
		// The second call may have begun before the stop on a slow machine.
		if n := calls.Load(); n > 2 {
			t.Errorf("%d paid calls, want 1 (2 at most): the records waiting for the rate limit were paid for while stopping", n)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		checkCommittedPrefix(t, h.kafka.CommittedOffsets(h.group, h.in)[0], h.kafka.ConsumeAll(ctx, h.out))
	})
}

// TestKafkaBroker names the broker the suite runs against, so that a CI log
// shows whether it was the embedded kfake or a real Kafka.
func TestKafkaBroker(t *testing.T) {
	k := kafkatest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	versions, err := kadm.NewClient(k.Client()).ApiVersions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	kind := "embedded kfake broker"
	if k.Real {
		kind = "real Kafka broker (KAFKA_BROKERS)"
	}
	versions.Each(func(v kadm.BrokerApiVersions) {
		t.Logf("%s at %v: API versions of Kafka %s", kind, k.Brokers, v.VersionGuess())
	})
}

// An input just under the record limit whose output would be over what a
// record may have is dead-lettered before producing, in both modes: a
// transaction never sees a record Kafka would refuse, so it never stops.
func TestOutputTooLargeIsDeadLettered(t *testing.T) {
	bothModes(t, func(t *testing.T, eos bool) {
		h := newHarnessMode(t, 1, eos)
		big := event(h.in, 1, false)
		big.Value = []byte(strings.Replace(string(big.Value), `"big":`, `"pad":"`+strings.Repeat("x", 999_600)+`","big":`, 1))
		h.kafka.Produce(big, event(h.in, 2, false))
		_, stop := h.start(h.config(processor.EnricherFunc(func(_ context.Context, l processor.Lookup) (processor.Result, error) {
			return fakeAnswer(l), nil
		})))
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		h.kafka.Consume(ctx, countAtLeast(2), h.out, h.dlq)
		if err := stop(); err != nil {
			t.Fatalf("Run = %v", err)
		}
		got := h.kafka.ConsumeAll(ctx, h.out, h.dlq)
		if len(got) != 2 {
			t.Fatalf("%d records, want the small event enriched and the big one dead-lettered", len(got))
		}
		dead := 0
		for _, r := range got {
			if r.Topic != h.dlq {
				continue
			}
			dead++
			class, _ := header(r, processor.HeaderErrorClass)
			reason, _ := header(r, processor.HeaderError)
			if class != processor.ClassOutputRejected || !strings.Contains(reason, "bytes") {
				t.Errorf("dead letter class %q reason %q", class, reason)
			}
		}
		if dead != 1 {
			t.Errorf("%d dead letters, want 1", dead)
		}
	})
}

// paddedEvent is event offset padded to about 3 KiB: its output and its
// dead letter with its bytes are over a producer limit of 3 KiB.
func paddedEvent(topic string, offset int) *kgo.Record {
	r := event(topic, offset, false)
	r.Value = bytes.Replace(r.Value, []byte(`"big":`), []byte(`"pad":"`+strings.Repeat("y", 3000)+`","big":`), 1)
	return r
}

// An output that Kafka refuses (larger than the producer's limit here; a
// topic's max.message.bytes does the same from the broker) is replaced by a
// dead letter, even with the producer's buffer full: produced from the
// refused output's promise, the dead letter waited for room that only that
// promise's return could make, and every acknowledgement stopped.
func TestRefusedOutputIsDeadLetteredWithAFullBuffer(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 1)
	refused := paddedEvent(h.in, 0)
	h.kafka.Produce(refused, event(h.in, 1, false))
	cfg := h.config(answer)
	cfg.ClientOpts = append(cfg.ClientOpts, kgo.ProducerBatchMaxBytes(3<<10), kgo.MaxBufferedRecords(1))
	_, stop := h.start(cfg)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	got := h.kafka.Consume(ctx, countAtLeast(2), h.out, h.dlq)
	if err := stop(); err != nil {
		t.Fatalf("Run = %v", err)
	}
	var dead []string
	for _, r := range got {
		if r.Topic == h.dlq { // without the input's bytes: too large for the dead-letter topic too
			class, _ := header(r, processor.HeaderErrorClass)
			src, _ := header(r, processor.HeaderSource)
			dead = append(dead, src+" "+class)
		}
	}
	if want := h.in + "/0/0 " + processor.ClassOutputRejected; len(got) != 2 || !slices.Equal(dead, []string{want}) {
		t.Errorf("%d records, dead letters %v; want e-1 enriched and offset 0 dead-lettered (%s)", len(got), dead, want)
	}
}

// Exactly-once, an output Kafka refuses cannot be replaced by a dead
// letter within the transaction, which must not commit (committed, the
// refused record's offset went with the others, without an output): the
// transaction aborts, and its retry dead-letters the record, as at least
// once. The processor goes on; the enricher is asked again on the retry.
func TestRefusedOutputIsDeadLetteredExactlyOnce(t *testing.T) {
	t.Parallel()
	h := newHarnessMode(t, 1, true)
	refused := paddedEvent(h.in, 0)
	h.kafka.Produce(refused, event(h.in, 1, false), event(h.in, 2, false))
	var asked atomic.Int32
	cfg := h.config(processor.EnricherFunc(func(ctx context.Context, l processor.Lookup) (processor.Result, error) {
		asked.Add(1)
		return answer.Enrich(ctx, l)
	}))
	cfg.ClientOpts = append(cfg.ClientOpts, kgo.ProducerBatchMaxBytes(3<<10))
	p, stop := h.start(cfg)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	got := h.kafka.Consume(ctx, countAtLeast(3), h.out, h.dlq) // read committed
	kafkatest.WaitFor(t, func() bool { return p.Stats().Commits > 0 })
	if err := stop(); err != nil {
		t.Fatalf("Run = %v", err)
	}
	var enriched, dead []string
	for _, r := range got {
		switch r.Topic {
		case h.out:
			enriched = append(enriched, eventID(t, r.Value))
		case h.dlq:
			class, _ := header(r, processor.HeaderErrorClass)
			src, _ := header(r, processor.HeaderSource)
			reason, _ := header(r, processor.HeaderError)
			dead = append(dead, src+" "+class)
			if !strings.Contains(reason, "Kafka refused the enriched event") {
				t.Errorf("dead letter reason %q", reason)
			}
		}
	}
	slices.Sort(enriched)
	if want := h.in + "/0/0 " + processor.ClassOutputRejected; len(got) != 3 || !slices.Equal(dead, []string{want}) || !slices.Equal(enriched, []string{"e-1", "e-2"}) {
		t.Errorf("%d records: enriched %v, dead letters %v; want e-1 and e-2 enriched and %s", len(got), enriched, dead, want)
	}
	if n := asked.Load(); n < 6 {
		t.Errorf("the enricher was asked %d times; the aborted transaction's records are processed again (want at least 6)", n)
	}
	offsets, err := kadm.NewClient(h.kafka.Client()).FetchOffsets(ctx, h.group)
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := offsets.Lookup(h.in, 0); !ok || o.At != 3 {
		t.Errorf("committed offset %v, want 3", o.At)
	}
	s := p.Stats()
	if s.Produced != 2 || s.DeadLettered != 1 {
		t.Errorf("stats: %d produced, %d dead-lettered; want 2 and 1 (the aborted transaction counts nothing)", s.Produced, s.DeadLettered)
	}
}

// A record whose output Kafka refused is dead-lettered on the retry, with
// the retry's own fault if the enricher now rejects it: the refusal does
// not relabel another dead letter.
func TestRefusedOutputRetryKeepsItsOwnFault(t *testing.T) {
	t.Parallel()
	h := newHarnessMode(t, 1, true)
	refused := paddedEvent(h.in, 0)
	h.kafka.Produce(refused)
	var calls atomic.Int32
	cfg := h.config(processor.EnricherFunc(func(ctx context.Context, l processor.Lookup) (processor.Result, error) {
		if calls.Add(1) > 1 {
			return processor.Result{}, processor.Reject("rejected_on_retry", errors.New("the provider rejects it now"))
		}
		return answer.Enrich(ctx, l)
	}))
	// The output and the dead letter with the input's bytes are too large.
	cfg.ClientOpts = append(cfg.ClientOpts, kgo.ProducerBatchMaxBytes(3<<10))
	_, stop := h.start(cfg)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	got := h.kafka.Consume(ctx, countAtLeast(1), h.out, h.dlq)
	if err := stop(); err != nil {
		t.Fatalf("Run = %v", err)
	}
	if len(got) != 1 || got[0].Topic != h.dlq {
		t.Fatalf("%d records, want one dead letter", len(got))
	}
	class, _ := header(got[0], processor.HeaderErrorClass)
	reason, _ := header(got[0], processor.HeaderError)
	if class != "rejected_on_retry" || !strings.Contains(reason, "the provider rejects it now") || strings.Contains(reason, "enriched event") {
		t.Errorf("dead letter %s: %q, want the retry's rejection", class, reason)
	}
}

// Without tracing (a no-op provider) each output carries its input's trace context unchanged, once.
func TestNoTracingKeepsTraceContext(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 2)
	cfg := h.config(processor.EnricherFunc(func(_ context.Context, l processor.Lookup) (processor.Result, error) {
		return fakeAnswer(l), nil
	}))
	cfg.TracerProvider = noop.NewTracerProvider()
	in := h.produceEvents(20)
	_, stop := h.start(cfg)
	defer stop()
	out := h.kafka.Consume(t.Context(), countAtLeast(len(in)), h.out)
	byID := map[string]*kgo.Record{}
	for _, r := range in {
		byID[eventID(t, r.Value)] = r
	}
	for _, r := range out {
		want, _ := header(byID[eventID(t, r.Value)], "traceparent")
		if got, _ := header(r, "traceparent"); got != want || headerCount(r, "traceparent") != 1 {
			t.Errorf("traceparent %q (%d of them), want the input's %q", got, headerCount(r, "traceparent"), want)
		}
	}
}

// OnRecord hears of one record in OnRecordEvery, timed from its start, and
// of every record that waited for the provider; a record answered from
// knowledge and not sampled costs no clock read and no call.
func TestOnRecordTimesOneInEvery(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 1)
	cost, err := processor.NewCostControl(processor.EnricherFunc(func(_ context.Context, l processor.Lookup) (processor.Result, error) {
		return fakeAnswer(l), nil
	}), processor.CostConfig{Secret: []byte("s")})
	if err != nil {
		t.Fatal(err)
	}
	cfg := h.config(cost)
	var mu sync.Mutex
	var got []processor.RecordTiming
	cfg.OnRecordEvery = 4
	cfg.OnRecord = func(rt processor.RecordTiming) {
		mu.Lock()
		got = append(got, rt)
		mu.Unlock()
	}
	p, stop := h.start(cfg)
	h.produceEvents(40) // 40 mobiles: 40 paid calls
	kafkatest.WaitFor(t, func() bool { return p.Stats().Produced == 40 })
	h.produceEvents(40) // the same lookups: answered from knowledge
	kafkatest.WaitFor(t, func() bool { return p.Stats().Produced == 80 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	mu.Lock()
	defer mu.Unlock()
	sampled, provider := 0, 0
	for _, rt := range got {
		if rt.Sampled {
			sampled++
		}
		if rt.Provider > 0 {
			provider++
		}
		if rt.Sampled == rt.Started.IsZero() || (rt.Sampled && rt.Added() < 0) {
			t.Errorf("%+v: a sampled record has a start and a latency, the others not", rt)
		}
		if rt.Acked.IsZero() || rt.Done < 1 || rt.Done > 80 {
			t.Errorf("%+v: acknowledged at a time, with 1 to 80 records done", rt)
		}
	}
	if len(got) != 50 || sampled != 20 || provider != 40 {
		t.Errorf("%d timings, %d sampled, %d that waited for the provider; want 50 (the 40 paid, 10 more sampled), 20 (one in 4), 40",
			len(got), sampled, provider)
	}
}

// openCost opens cost controls over provider with cfg for the test, closed
// at its end.
func openCost(t *testing.T, provider processor.Enricher, cfg processor.CostConfig) *processor.CostControl {
	t.Helper()
	cost, err := processor.NewCostControl(provider, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := cost.Open(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cost.Close(context.Background()) })
	return cost
}

// unreadableLedger is cost counters whose ledger cannot be read, nor
// written.
type unreadableLedger struct{ err error }

func (unreadableLedger) CostStats() processor.CostStats { return processor.CostStats{} }
func (u unreadableLedger) LedgerUnreadable() error      { return u.err }
func (u unreadableLedger) LedgerUnwritable() error      { return u.err }

// A processor says why its cost controls' ledger cannot be read or written
// (which /readyz reports), and nil without cost controls or when it can.
func TestProcessorSaysTheLedgerCannotBeRead(t *testing.T) {
	h := newHarness(t, 1)
	cfg := h.config(processor.EnricherFunc(func(context.Context, processor.Lookup) (processor.Result, error) {
		return processor.Result{}, nil
	}))
	for _, tc := range []struct {
		cost processor.CostReporter
		want error
	}{
		{nil, nil},
		{unreadableLedger{}, nil},
		{unreadableLedger{kerr.UnknownTopicID}, kerr.UnknownTopicID},
	} {
		cfg.Cost = tc.cost
		p, err := processor.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if got := p.LedgerUnreadable(); got != tc.want {
			t.Errorf("cost %v: LedgerUnreadable() = %v, want %v", tc.cost, got, tc.want)
		}
		if got := p.LedgerUnwritable(); got != tc.want {
			t.Errorf("cost %v: LedgerUnwritable() = %v, want %v", tc.cost, got, tc.want)
		}
	}
}
