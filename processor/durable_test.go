package processor_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/twosell/twosell/processor"
	"github.com/twosell/twosell/processor/kafkatest"
)

// A paid answer's output is written only once the ledger holds the call:
// while the broker holds the ledger's records back, the lookups are done
// and their slots free, but no output appears; released, they all do.
func TestOutputWaitsForTheLedger(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 2)
	if h.kafka.Fake == nil {
		t.Skip("holds produce requests back with kfake's control functions")
	}
	ledgerTopic := h.kafka.Name("ledger")
	var calls atomic.Int64
	provider := processor.EnricherFunc(func(_ context.Context, l processor.Lookup) (processor.Result, error) {
		calls.Add(1)
		return fakeAnswer(l), nil
	})
	cost, err := processor.NewCostControl(provider, processor.CostConfig{
		Secret: []byte("s"),
		Ledger: &processor.LedgerConfig{ClientOpts: []kgo.Opt{kgo.SeedBrokers(h.kafka.Brokers...)}, Topic: ledgerTopic, CreateTopic: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := cost.Open(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cost.Close(context.Background()) })
	td, err := kadm.NewClient(h.kafka.Client()).ListTopics(t.Context(), ledgerTopic)
	if err != nil || !td.Has(ledgerTopic) {
		t.Fatalf("the ledger topic: %v", err)
	}
	ledgerID := td[ledgerTopic].ID // produce requests name topics by id from v13
	release := make(chan struct{})
	releaseLedger := sync.OnceFunc(func() { close(release) })
	t.Cleanup(releaseLedger) // before the cost control's Close, which flushes the ledger
	var held atomic.Int64
	h.kafka.Fake.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		h.kafka.Fake.KeepControl()
		for _, tp := range req.(*kmsg.ProduceRequest).Topics {
			if tp.Topic == ledgerTopic || tp.TopicID == ledgerID {
				held.Add(1)
				h.kafka.Fake.SleepControl(func() { <-release })
			}
		}
		return nil, nil, false // handled by the broker as usual
	})

	const n = 20
	in := h.produceEvents(n)
	cfg := h.config(cost)
	cfg.Ordering = processor.OrderingNone // else a key's next lookup waits for its output
	p, stop := h.start(cfg)
	defer stop()

	kafkatest.WaitFor(t, func() bool {
		return calls.Load() == n && held.Load() > 0 && p.Stats().InFlight == 0
	})
	// Nothing may come out meanwhile; a wrong engine would have written
	// the outputs right after the lookups.
	cl := h.kafka.Client(kgo.ConsumeTopics(h.out), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	early := cl.PollFetches(ctx).NumRecords()
	cancel()
	if early != 0 {
		t.Fatalf("%d outputs written while the ledger held their calls back", early)
	}
	releaseLedger()
	if out := h.kafka.Consume(t.Context(), countAtLeast(len(in)), h.out); len(out) != n {
		t.Fatalf("%d outputs after the ledger wrote, want %d", len(out), n)
	}
}

// A paid answer whose ledger write fails is kept: its output is written, and
// the failure counted and logged once per call, with its order id.
func TestLedgerWriteFailureKeepsTheAnswer(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 2)
	if h.kafka.Fake == nil {
		t.Skip("refuses the ledger's produce requests with kfake's control functions")
	}
	ledgerTopic := h.kafka.Name("ledger")
	var logs safeBuffer
	cost, err := processor.NewCostControl(processor.EnricherFunc(func(_ context.Context, l processor.Lookup) (processor.Result, error) {
		return fakeAnswer(l), nil
	}), processor.CostConfig{
		Secret: []byte("s"),
		Ledger: &processor.LedgerConfig{ClientOpts: []kgo.Opt{kgo.SeedBrokers(h.kafka.Brokers...)}, Topic: ledgerTopic, CreateTopic: true},
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := cost.Open(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cost.Close(context.Background()) })
	td, err := kadm.NewClient(h.kafka.Client()).ListTopics(t.Context(), ledgerTopic)
	if err != nil || !td.Has(ledgerTopic) {
		t.Fatalf("the ledger topic: %v", err)
	}
	ledgerID := td[ledgerTopic].ID
	h.kafka.Fake.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		h.kafka.Fake.KeepControl()
		pr := req.(*kmsg.ProduceRequest)
		writesLedger := false
		for _, tp := range pr.Topics {
			writesLedger = writesLedger || tp.Topic == ledgerTopic || tp.TopicID == ledgerID
		}
		if !writesLedger {
			return nil, nil, false
		}
		resp := pr.ResponseKind().(*kmsg.ProduceResponse)
		for _, tp := range pr.Topics {
			rt := kmsg.NewProduceResponseTopic()
			rt.Topic, rt.TopicID = tp.Topic, tp.TopicID
			for _, part := range tp.Partitions {
				rp := kmsg.NewProduceResponseTopicPartition()
				rp.Partition = part.Partition
				rp.ErrorCode = kerr.InvalidRecord.Code // not retried
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return resp, nil, true
	})

	const n = 10
	in := h.produceEvents(n)
	p, stop := h.start(h.config(cost))
	defer stop()
	if out := h.kafka.Consume(t.Context(), countAtLeast(len(in)), h.out); len(out) != n {
		t.Fatalf("%d outputs, want %d: a failed ledger write keeps the answer", len(out), n)
	}
	kafkatest.WaitFor(t, func() bool { return p.Stats().Produced == n })
	s := cost.CostStats()
	if s.PaidCalls != n || s.LedgerErrors != n {
		t.Errorf("%d paid calls, %d ledger errors; want %d of each (one per call, not per record)", s.PaidCalls, s.LedgerErrors, n)
	}
	if got := strings.Count(logs.String(), "a paid answer could not be written to the ledger"); got != n {
		t.Errorf("%d warnings, want %d:\n%s", got, n, logs.String())
	}
	if !strings.Contains(logs.String(), "order_id=") {
		t.Errorf("the warnings do not name the order id:\n%s", logs.String())
	}
}

// safeBuffer is a bytes.Buffer for concurrent writers.
type safeBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *safeBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *safeBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
