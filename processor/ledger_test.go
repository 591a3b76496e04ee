package processor

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/twosell/twosell/processor/kafkatest"
)

// ledgerCost is a CostControl over p whose ledger is topic on k.
func ledgerCost(t *testing.T, k *kafkatest.Cluster, topic string, p Enricher, clock *fakeClock, change func(*CostConfig)) *CostControl {
	t.Helper()
	return newCost(t, p, clock, func(c *CostConfig) {
		c.Ledger = &LedgerConfig{ClientOpts: []kgo.Opt{kgo.SeedBrokers(k.Brokers...)}, Topic: topic, CreateTopic: true, Role: "test"}
		c.Logger = slog.New(slog.NewTextHandler(testLog{t}, nil))
		if change != nil {
			change(c)
		}
	})
}

type testLog struct{ t *testing.T }

func (w testLog) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(b), "\n"))
	return len(b), nil
}

// waitFor polls cond; the deadline only keeps a broken test from hanging.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached in 30s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// An answer one instance paid for is known to the others: to a running one
// as it follows the ledger, to a new one as soon as it has loaded it.
func TestLedgerSharesKnowledge(t *testing.T) {
	t.Parallel()
	k := kafkatest.New(t)
	topic := k.Name("ledger")
	clock := &fakeClock{t: t0}
	act := map[string]string{"17300000010": "20200315", "17300000011": ""}
	pa, pb, pc := &fakeProvider{activation: act}, &fakeProvider{activation: act}, &fakeProvider{activation: act}
	a := ledgerCost(t, k, topic, pa, clock, nil)
	b := ledgerCost(t, k, topic, pb, clock, nil)

	for _, l := range []Lookup{
		{Mobile: "17300000010", Date: "20200101"}, // res 1
		{Mobile: "17300000010", Date: "20210101"}, // res 2
		{Mobile: "17300000011", Date: "20210101"}, // res 3
		{Mobile: "17300000012", Date: "20210101"}, // no record
	} {
		if r, err := a.Enrich(t.Context(), l); err != nil || r.Source != SourceAPI {
			t.Fatalf("%+v: %+v %v", l, r, err)
		}
	}
	waitFor(t, "b follows a's answers", func() bool {
		kn, _ := b.Known("17300000010")
		_, ok := b.Known("17300000012")
		return kn.Lower.Kind != 0 && kn.Upper.Kind != 0 && ok
	})
	c := ledgerCost(t, k, topic, pc, clock, nil) // loaded before Open returned
	for _, inst := range []*CostControl{b, c} {
		for _, l := range []Lookup{
			{Mobile: "17300000010", Date: "20190101"},
			{Mobile: "17300000010", Date: "20230101"},
			{Mobile: "17300000011", Date: "20000101"},
			{Mobile: "17300000012", Date: "20000101"},
		} {
			if r, err := inst.Enrich(t.Context(), l); err != nil || r.Source != SourceCache {
				t.Errorf("%+v: %+v %v, want a cache answer", l, r, err)
			}
		}
	}
	if pb.count() != 0 || pc.count() != 0 {
		t.Errorf("b paid %d calls and c %d for what a knew", pb.count(), pc.count())
	}
	if a.CostStats().LedgerErrors != 0 {
		t.Error("ledger write errors")
	}

	// The audit trail: every paid call, by order id, without the number.
	var calls []LedgerCall
	err := ReadLedgerCalls(t.Context(), []kgo.Opt{kgo.SeedBrokers(k.Brokers...)}, topic, func(c LedgerCall) error {
		calls = append(calls, c)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(calls) != 4 {
		t.Fatalf("%d calls in the ledger, want 4: %+v", len(calls), calls)
	}
	orders := map[string]bool{}
	for _, c := range calls {
		orders[c.OrderID] = true
		if c.Day != "20240601" || c.Key == "" || !strings.HasPrefix(c.Instance, "test.") {
			t.Errorf("call %+v", c)
		}
	}
	if !orders["JH0001"] || !orders["JH0002"] || !orders["JH0003"] {
		t.Errorf("order ids %v", orders)
	}
	// Nowhere a number.
	cl := k.Client(kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	seen := 0
	for seen < 8 {
		fs := cl.PollFetches(t.Context())
		fs.EachRecord(func(r *kgo.Record) {
			seen++
			for _, m := range []string{"17300000010", "17300000011", "17300000012"} {
				if strings.Contains(string(r.Key)+string(r.Value), m) {
					t.Errorf("record %s %s holds a number", r.Key, r.Value)
				}
			}
		})
	}
}

// The day's paid calls are counted from the ledger: a running instance
// counts the others', a restarted one counts everyone's, res 3 and no record
// included.
func TestLedgerCountsTheBudget(t *testing.T) {
	t.Parallel()
	k := kafkatest.New(t)
	topic := k.Name("ledger")
	clock := &fakeClock{t: t0}
	p := &fakeProvider{activation: map[string]string{"17300000010": "20200315", "17300000011": ""}}
	budget := func(c *CostConfig) { c.DailyBudget = 5 }
	a := ledgerCost(t, k, topic, p, clock, budget)
	b := ledgerCost(t, k, topic, p, clock, budget)
	for _, m := range []string{"17300000010", "17300000011", "17300000012"} {
		if _, err := a.Enrich(t.Context(), Lookup{Mobile: m, Date: "20210101"}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "b counts a's calls", func() bool { return b.CostStats().BudgetRemaining == 2 })
	if _, err := b.Enrich(t.Context(), Lookup{Mobile: "17300000013", Date: "20210101"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a counts b's call", func() bool { return a.CostStats().BudgetRemaining == 1 })
	restarted := ledgerCost(t, k, topic, p, clock, budget)
	if got := restarted.CostStats().BudgetRemaining; got != 1 {
		t.Fatalf("a restarted instance has %d left, want 1", got)
	}
	// Tomorrow, the budget is whole again.
	clock.Add(24 * time.Hour)
	if got := restarted.CostStats().BudgetRemaining; got != 5 {
		t.Fatalf("next day: %d left, want 5", got)
	}
}

// The ledger topic is created compacted; a missing one is an error when it
// may not be created.
func TestLedgerTopic(t *testing.T) {
	t.Parallel()
	k := kafkatest.New(t)
	topic := k.Name("ledger")
	clock := &fakeClock{t: t0}
	c, err := NewCostControl(&fakeProvider{}, CostConfig{Secret: []byte("s"), Now: clock.Now,
		Ledger: &LedgerConfig{ClientOpts: []kgo.Opt{kgo.SeedBrokers(k.Brokers...)}, Topic: topic}})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Open(t.Context()); !errors.Is(err, ErrTopicMissing) {
		t.Fatalf("Open without CreateTopic on a missing topic: %v", err)
	}
	ledgerCost(t, k, topic, &fakeProvider{}, clock, nil)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	rcs, err := kadm.NewClient(k.Client()).DescribeTopicConfigs(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := rcs.On(topic, nil)
	if err != nil {
		t.Fatal(err)
	}
	policy := ""
	for _, c := range rc.Configs {
		if c.Key == "cleanup.policy" && c.Value != nil {
			policy = *c.Value
		}
	}
	if policy != "compact" {
		t.Errorf("cleanup.policy %q, want compact", policy)
	}
}

// Records that are not twosell's are ignored, not fatal.
func TestLedgerDecode(t *testing.T) {
	t.Parallel()
	l := newLedger(LedgerConfig{Topic: "x"}, slog.New(slog.DiscardHandler), nil)
	key := HashMobile([]byte("s"), "17300000010").String()
	for _, tt := range []struct {
		key, value string
		ok         bool
	}{
		{"k/" + key, `{"v":1,"instance":"x","after":{"kind":"recycled","date":"20200101","at":"2024-01-01T00:00:00Z"}}`, true},
		{"k/" + key, `{"v":2}`, false},
		{"k/" + key, `not json`, false},
		{"k/nothex", `{"v":1}`, false},
		{"c/20240101/run.abc/JH1", `{}`, true},
		{"c/2024/run.abc/JH1", `{}`, false},
		{"c/20240101/run.abc", `{}`, false},
		{"other", `{}`, false},
	} {
		if _, ok := l.decode([]byte(tt.key), []byte(tt.value)); ok != tt.ok {
			t.Errorf("decode(%q, %q) ok=%v, want %v", tt.key, tt.value, ok, tt.ok)
		}
	}
	// A fact in the wrong place is dropped.
	lk := ledgerKnowledge{After: &ledgerFact{Kind: "not_recycled", Date: "20200101"}}
	if k := lk.knowledge(); k.Lower.Kind != 0 {
		t.Errorf("a res 2 as a lower bound: %+v", k)
	}
}
