package processor_test

import (
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

// billedProvider answers every lookup (res 2, an order id per mobile) and
// counts the calls: each is billed.
type billedProvider struct {
	mu    sync.Mutex
	calls int
}

func (p *billedProvider) Enrich(_ context.Context, l processor.Lookup) (processor.Result, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls++
	return processor.Result{Source: "api", Mode: "plain", Status: processor.StatusNotRecycled, Res: 2,
		OrderID: "JH" + l.Mobile, Attempts: 1, Billable: 1}, nil
}

func (p *billedProvider) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls
}

// ledgerOutage opens cost controls with a budget of 1 whose ledger's
// writes the brokers refuse (NOT_ENOUGH_REPLICAS, retriable) while the
// returned flag is set.
type ledgerOutage struct {
	k        *kafkatest.Cluster
	topic    string
	provider *billedProvider
	logs     *safeBuffer
	refusing atomic.Bool
}

func newLedgerOutage(t *testing.T) *ledgerOutage {
	k := kafkatest.New(t)
	if k.Fake == nil {
		t.Skip("needs kfake's control functions")
	}
	o := &ledgerOutage{k: k, topic: k.Name("ledger"), provider: &billedProvider{}, logs: &safeBuffer{}}
	c := o.open(t, time.Second) // creates the topic
	c.Close(context.Background())
	td, err := kadm.NewClient(k.Client()).ListTopics(t.Context(), o.topic)
	if err != nil || !td.Has(o.topic) {
		t.Fatalf("ledger topic: %v", err)
	}
	id := td[o.topic].ID
	k.Fake.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		k.Fake.KeepControl()
		pr := req.(*kmsg.ProduceRequest)
		if o.refusing.Load() && kafkatest.WritesTopic(pr, o.topic, id) {
			return kafkatest.Refusal(pr, kerr.NotEnoughReplicas), nil, true
		}
		return nil, nil, false
	})
	return o
}

var outageDay = time.Date(2024, 6, 1, 12, 0, 0, 0, time.UTC)

func (o *ledgerOutage) open(t *testing.T, writeTimeout time.Duration) *processor.CostControl {
	t.Helper()
	c, err := processor.NewCostControl(o.provider, processor.CostConfig{
		Secret: []byte("s"), DailyBudget: 1, Location: time.UTC, Mode: "plain",
		Now:    func() time.Time { return outageDay },
		Logger: slog.New(slog.NewTextHandler(o.logs, nil)),
		Ledger: &processor.LedgerConfig{Topic: o.topic, ClientOpts: []kgo.Opt{kgo.SeedBrokers(o.k.Brokers...),
			// A refused write waits for a metadata refresh before its
			// retry: at most 5 s apart by default.
			kgo.MetadataMinAge(50 * time.Millisecond)},
			CreateTopic: true, WriteTimeout: writeTimeout},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Open(t.Context()); err != nil {
		t.Fatal(err)
	}
	return c
}

func (o *ledgerOutage) exported(t *testing.T) []string {
	t.Helper()
	var ids []string
	if err := processor.ReadLedgerCalls(t.Context(), []kgo.Opt{kgo.SeedBrokers(o.k.Brokers...)}, o.topic,
		func(c processor.LedgerCall) error { ids = append(ids, c.OrderID); return nil }); err != nil {
		t.Fatal(err)
	}
	return ids
}

// A paid call whose ledger write fails for longer than the write timeout (a
// broker restart, an ISR shrink) has its call record written again once the
// brokers take writes: the export has its order id, and a restart the same
// day counts it against the budget. Found by review: the record was never
// written, and a budget of 1 let a second paid call through after a restart.
func TestLedgerCallRecordIsWrittenAgainAfterAFailedWrite(t *testing.T) {
	t.Parallel()
	o := newLedgerOutage(t)
	a := o.open(t, time.Second)
	o.refusing.Store(true)
	r, err := a.Enrich(t.Context(), processor.Lookup{Mobile: "17300000001", Date: "20240101"})
	if err != nil || r.Source != "api" {
		t.Fatalf("first lookup: %+v %v", r, err)
	}
	kafkatest.WaitFor(t, func() bool { return a.CostStats().LedgerErrors == 1 })
	if err := a.LedgerUnwritable(); err == nil || !strings.Contains(err.Error(), "1 call records") {
		t.Errorf("LedgerUnwritable() = %v while a call record waits to be written again", err)
	}
	o.refusing.Store(false)
	kafkatest.WaitFor(t, func() bool { return a.LedgerUnwritable() == nil })
	a.Close(context.Background())
	if !strings.Contains(o.logs.String(), "is written now") {
		t.Errorf("no line says the call record is written now:\n%s", o.logs)
	}
	if ids := o.exported(t); len(ids) != 1 || ids[0] != r.OrderID {
		t.Errorf("the ledger's calls %q, want the paid call %s", ids, r.OrderID)
	}

	b := o.open(t, 0)
	defer b.Close(context.Background())
	if got := b.CostStats().BudgetRemaining; got != 0 {
		t.Errorf("after a restart, %d of the day's budget of 1 left, want 0", got)
	}
	_, _ = b.Enrich(t.Context(), processor.Lookup{Mobile: "17300000002", Date: "20240101"})
	if n := o.provider.count(); n != 1 {
		t.Errorf("%d paid calls on a day with a budget of 1", n)
	}
}

// A call record still unwritten when the ledger closes is logged as an
// error with its order id, to reconcile the provider's bill with.
func TestLedgerCallRecordNeverWrittenIsLoggedAtClose(t *testing.T) {
	t.Parallel()
	o := newLedgerOutage(t)
	a := o.open(t, time.Second)
	o.refusing.Store(true)
	r, err := a.Enrich(t.Context(), processor.Lookup{Mobile: "17300000003", Date: "20240101"})
	if err != nil {
		t.Fatal(err)
	}
	kafkatest.WaitFor(t, func() bool { return a.CostStats().LedgerErrors == 1 })
	a.Close(context.Background()) // the last try fails too
	logs := o.logs.String()
	if !strings.Contains(logs, "could not be written before closing") || !strings.Contains(logs, r.OrderID) {
		t.Errorf("no error names the call record never written (%s):\n%s", r.OrderID, logs)
	}
	o.refusing.Store(false)
	if ids := o.exported(t); len(ids) != 0 {
		t.Errorf("the ledger's calls %q, want none", ids)
	}
}

// A paid answer whose knowledge record was refused is not lost to the other
// instances: its call record, written again, carries the fact, and an
// instance that loads the ledger answers the number from it without paying.
// (The knowledge record itself is not written again; see ledgerRewrites.)
func TestFactOfAFailedKnowledgeRecordIsLearnedFromItsCallRecord(t *testing.T) {
	t.Parallel()
	o := newLedgerOutage(t)
	a := o.open(t, time.Second)
	o.refusing.Store(true)
	paid, err := a.Enrich(t.Context(), processor.Lookup{Mobile: "17300000004", Date: "20240101"})
	if err != nil || paid.Source != "api" {
		t.Fatalf("first lookup: %+v %v", paid, err)
	}
	kafkatest.WaitFor(t, func() bool { return a.CostStats().LedgerErrors == 1 })
	o.refusing.Store(false)
	kafkatest.WaitFor(t, func() bool { return a.LedgerUnwritable() == nil })
	defer a.Close(context.Background())
	for _, rec := range o.k.ConsumeAll(t.Context(), o.topic) {
		if strings.HasPrefix(string(rec.Key), "k/") {
			t.Fatalf("a knowledge record %s is in the ledger: the test would not show where the fact comes from", rec.Key)
		}
	}

	b := o.open(t, 0)
	defer b.Close(context.Background())
	// res 2 at 2024-01-01 (A ≤ then) answers every later date.
	r, err := b.Enrich(t.Context(), processor.Lookup{Mobile: "17300000004", Date: "20240301"})
	if err != nil || r.Source != "cache" || r.Status != processor.StatusNotRecycled || r.OrderID != paid.OrderID {
		t.Errorf("another instance's lookup: %+v %v; want %s from the cache, order id %s", r, err, processor.StatusNotRecycled, paid.OrderID)
	}
	if n := o.provider.count(); n != 1 {
		t.Errorf("%d paid calls, want 1: the fact was paid for again", n)
	}
}
