package processor_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
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
