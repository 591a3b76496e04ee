package processor

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"

	"github.com/twosell/twosell/processor/kafkatest"
)

// ledgerCost is a CostControl over p whose ledger is topic on k.
func ledgerCost(t *testing.T, k *kafkatest.Cluster, topic string, p Enricher, clock *fakeClock, change func(*CostConfig)) *CostControl {
	t.Helper()
	return newCost(t, p, clock, func(c *CostConfig) {
		c.Ledger = &LedgerConfig{ClientOpts: []kgo.Opt{kgo.SeedBrokers(k.Brokers...)}, Topic: topic, CreateTopic: true, Role: "test"}
		c.Logger = slog.New(slog.NewTextHandler(&logLines{t: t}, nil))
		if change != nil {
			change(c)
		}
	})
}

// logLines logs what a logger writes to the test, and keeps it for the
// test to read.
type logLines struct {
	t  *testing.T
	mu sync.Mutex
	b  strings.Builder
}

func (w *logLines) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(b), "\n"))
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(b)
}

func (w *logLines) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
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

// A ledger whose last offset is a transaction marker (another writer's: a
// mirror in exactly-once mode, a restore) is loaded and exported: a marker
// is never returned as a record, and the readers waited for it for good.
func TestLedgerEndsInTransactionMarker(t *testing.T) {
	t.Parallel()
	k := kafkatest.New(t)
	topic := k.Name("ledger")
	clock := &fakeClock{t: t0}
	act := map[string]string{"17300000010": "20200315"}
	a := ledgerCost(t, k, topic, &fakeProvider{activation: act}, clock, nil)
	if _, err := a.Enrich(t.Context(), Lookup{Mobile: "17300000010", Date: "20200101"}); err != nil {
		t.Fatal(err)
	}
	a.Close(t.Context())
	for _, end := range []kgo.TransactionEndTry{kgo.TryAbort, kgo.TryCommit} {
		tx := k.Client(kgo.TransactionalID("mirror"), kgo.DefaultProduceTopic(topic))
		if err := tx.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		if err := tx.ProduceSync(t.Context(), &kgo.Record{Key: []byte("mirrored"), Value: []byte("x")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		if err := tx.EndTransaction(t.Context(), end); err != nil {
			t.Fatal(err)
		}
		tx.Close()
	}

	// Both would wait for good: bound them, to fail rather than hang.
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	n := 0
	if err := ReadLedgerCalls(ctx, []kgo.Opt{kgo.SeedBrokers(k.Brokers...)}, topic, func(LedgerCall) error { n++; return nil }); err != nil {
		t.Fatalf("export: %v", err)
	}
	if n != 1 {
		t.Errorf("export read %d calls, want 1", n)
	}
	p := &fakeProvider{activation: act}
	b, err := NewCostControl(p, CostConfig{Secret: []byte("test-secret"), Now: clock.Now, Mode: "plain",
		Logger: slog.New(slog.NewTextHandler(&logLines{t: t}, nil)),
		Ledger: &LedgerConfig{ClientOpts: []kgo.Opt{kgo.SeedBrokers(k.Brokers...)}, Topic: topic, Role: "test"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Open(ctx); err != nil {
		t.Fatalf("loading: %v", err)
	}
	defer b.Close(context.Background())
	if r, err := b.Enrich(t.Context(), Lookup{Mobile: "17300000010", Date: "20191231"}); err != nil || r.Source != SourceCache || p.count() != 0 {
		t.Errorf("after loading: %+v %v, %d paid calls; want a's answer from the ledger", r, err, p.count())
	}
}

// Call records another writer (a mirror in exactly-once mode) wrote in a
// transaction count once it commits; in one that aborted, they were never
// paid: neither the budget nor the export counts them, nor is their fact
// learned.
func TestLedgerReadsCommittedTransactionsOnly(t *testing.T) {
	t.Parallel()
	k := kafkatest.New(t)
	topic := k.Name("ledger")
	clock := &fakeClock{t: t0}
	act := map[string]string{"17300000010": "20200315", "17300000011": "20200315"}
	a := ledgerCost(t, k, topic, &fakeProvider{activation: act}, clock, nil)
	if _, err := a.Enrich(t.Context(), Lookup{Mobile: "17300000010", Date: "20200101"}); err != nil {
		t.Fatal(err)
	}
	a.Close(t.Context())

	// Call records as another instance would write them, of the other number.
	mirrored := func(id string) []*kgo.Record {
		call := LedgerCall{Key: HashMobile([]byte("test-secret"), "17300000011").String(), Day: "20240601", At: t0,
			Date: "20200101", Status: StatusRecycled, Res: 1, OrderID: id, Mode: "plain", Instance: "mirror.1"}
		return []*kgo.Record{{Key: []byte("c/20240601/mirror.1/" + id), Value: call.appendJSON(nil)}}
	}
	tx := k.Client(kgo.TransactionalID(k.Name("mirror")), kgo.DefaultProduceTopic(topic))
	for _, end := range []kgo.TransactionEndTry{kgo.TryAbort, kgo.TryCommit} {
		if err := tx.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		id := map[kgo.TransactionEndTry]string{kgo.TryAbort: "JH-aborted", kgo.TryCommit: "JH-committed"}[end]
		if err := tx.ProduceSync(t.Context(), mirrored(id)...).FirstErr(); err != nil {
			t.Fatal(err)
		}
		if err := tx.EndTransaction(t.Context(), end); err != nil {
			t.Fatal(err)
		}
	}

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var orders []string
	if err := ReadLedgerCalls(ctx, []kgo.Opt{kgo.SeedBrokers(k.Brokers...)}, topic, func(c LedgerCall) error {
		orders = append(orders, c.OrderID)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if slices.Sort(orders); !slices.Equal(orders, []string{"JH-committed", "JH0001"}) {
		t.Errorf("export lists %v, want JH0001 and the committed JH-committed", orders)
	}
	b := ledgerCost(t, k, topic, &fakeProvider{activation: act}, clock, func(c *CostConfig) { c.DailyBudget = 10 })
	if spent := b.budget.spent(); spent != 2 {
		t.Errorf("the budget counts %d calls, want 2 (the aborted one was never made)", spent)
	}
	if kn, ok := b.Known("17300000011"); !ok || kn.Lower.OrderID != "JH-committed" {
		t.Errorf("knowledge of the mirrored number: %+v, want the committed call's", kn)
	}
}

// A knowledge record is rewritten whole after each paid answer, from what
// the writer's cache holds: one written after the mobile was evicted holds
// only the new fact, and compaction keeps only it. The call records keep
// every fact, and an instance that loads the compacted ledger knows them
// all: nothing paid for is paid again.
func TestLedgerKeepsFactsACompactedKnowledgeRecordLost(t *testing.T) {
	t.Parallel()
	k := kafkatest.New(t)
	topic, compacted := k.Name("ledger"), k.Name("compacted")
	clock := &fakeClock{t: t0}
	act := map[string]string{"17300000010": "20200315", "17300000011": "20200315"}
	a := ledgerCost(t, k, topic, &fakeProvider{activation: act}, clock, func(c *CostConfig) { c.MaxEntries = 1 })
	for _, l := range []Lookup{
		{Mobile: "17300000010", Date: "20200101"}, // res 1: A > 20200101, for good
		{Mobile: "17300000011", Date: "20200101"}, // evicts ...10
		{Mobile: "17300000010", Date: "20210101"}, // res 2: rewrites ...10's knowledge without the res 1
	} {
		if _, err := a.Enrich(t.Context(), l); err != nil {
			t.Fatal(err)
		}
	}
	a.Close(t.Context())

	// What compaction leaves: the latest record of each key, in order.
	cl := k.Client(kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	var recs []*kgo.Record
	for len(recs) < 6 {
		recs = append(recs, cl.PollFetches(t.Context()).Records()...)
	}
	latest := map[string]int{}
	for i, r := range recs {
		latest[string(r.Key)] = i
	}
	k.CreateTopics(1, compacted)
	for i, r := range recs {
		if latest[string(r.Key)] == i {
			k.Produce(&kgo.Record{Topic: compacted, Key: r.Key, Value: r.Value, Headers: r.Headers})
		}
	}
	if got := len(latest); got != 5 {
		t.Fatalf("%d keys, want 5: 3 calls and 2 mobiles' knowledge", got)
	}

	p := &fakeProvider{activation: act}
	b := ledgerCost(t, k, compacted, p, clock, nil)
	for _, l := range []Lookup{
		{Mobile: "17300000010", Date: "20191231"}, // the res 1's
		{Mobile: "17300000010", Date: "20220101"}, // the res 2's
	} {
		if r, err := b.Enrich(t.Context(), l); err != nil || r.Source != SourceCache {
			t.Errorf("%+v: %+v %v; want an answer from what the ledger keeps", l, r, err)
		}
	}
	if n := p.count(); n != 0 {
		t.Errorf("%d paid calls for facts paid for before", n)
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

// Knowledge written under another cache secret can answer no lookup here:
// it is skipped and said to be, when another instance writes it while this
// one runs and when the ledger is loaded; the calls still count in the
// budget, which is the account's. Records written before the secret's id
// was (no header) are read as before.
func TestLedgerKnowledgeUnderAnotherSecret(t *testing.T) {
	t.Parallel()
	k := kafkatest.New(t)
	topic := k.Name("ledger")
	clock := &fakeClock{t: t0}
	act := map[string]string{"17300000010": "20200315"}
	pa, pb, pc := &fakeProvider{activation: act}, &fakeProvider{activation: act}, &fakeProvider{activation: act}
	other := []byte("another-secret")
	a := ledgerCost(t, k, topic, pa, clock, nil)
	bLog := &logLines{t: t}
	b := ledgerCost(t, k, topic, pb, clock, func(c *CostConfig) {
		c.Secret = other
		c.Logger = slog.New(slog.NewTextHandler(bLog, nil))
	})

	l := Lookup{Mobile: "17300000010", Date: "20200101"}
	if r, err := a.Enrich(t.Context(), l); err != nil || r.Source != SourceAPI {
		t.Fatalf("a: %+v %v", r, err)
	}
	waitFor(t, "b reads a's call and knowledge", func() bool { return b.ledger.read.Load() >= 2 })
	if _, ok := b.Known(l.Mobile); ok || b.CostStats().CacheEntries != 0 {
		t.Errorf("b learned knowledge written under another secret (%d mobiles known)", b.CostStats().CacheEntries)
	}
	if b.budget.spent() != 1 {
		t.Errorf("b counts %d calls paid today, want a's 1", b.budget.spent())
	}
	warning := "another instance writes to the ledger under a different cache.secret"
	if got := bLog.String(); strings.Count(got, warning) != 1 || !strings.Contains(got, a.ledger.instance) {
		t.Errorf("b's log does not say once which instance writes under another secret:\n%s", got)
	}
	if r, err := b.Enrich(t.Context(), l); err != nil || r.Source != SourceAPI || pb.count() != 1 {
		t.Fatalf("b: %+v %v, %d calls: b cannot know the answer, and pays", r, err, pb.count())
	}
	if _, err := b.Enrich(t.Context(), Lookup{Mobile: "17300000010", Date: "20210101"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a reads every record: its 2 and b's 4", func() bool { return a.ledger.read.Load() >= 6 })
	if sb, sa := b.CostStats(), a.CostStats(); sb.LedgerForeignFollowed != 1 || sa.LedgerForeignFollowed != 2 || sb.LedgerForeignLoaded+sa.LedgerForeignLoaded != 0 {
		t.Errorf("foreign knowledge records followed: b %d (want 1), a %d (want 2); loaded: %d and %d (want none)",
			sb.LedgerForeignFollowed, sa.LedgerForeignFollowed, sb.LedgerForeignLoaded, sa.LedgerForeignLoaded)
	}

	// A record of an older twosell, without the header, under b's secret.
	old := appendLedgerKnowledge([]byte(nil), "old", Knowledge{Lower: Fact{Kind: FactAfter, Date: "20200101", OrderID: "JH-old", At: t0}})
	k.Client().ProduceSync(t.Context(), &kgo.Record{
		Topic: topic, Key: []byte(ledgerKnowledgePrefix + HashMobile(other, "17300000020").String()), Value: old,
	})

	cLog := &logLines{t: t}
	c := ledgerCost(t, k, topic, pc, clock, func(c *CostConfig) {
		c.Secret = other
		c.Logger = slog.New(slog.NewTextHandler(cLog, nil))
	})
	if kn, ok := c.Known("17300000010"); !ok || kn.Upper.Kind == 0 {
		t.Errorf("c does not know what b, under its secret, paid for: %+v", kn)
	}
	if kn, ok := c.Known("17300000020"); !ok || kn.Lower.OrderID != "JH-old" {
		t.Errorf("c does not know what the record without a secret id says: %+v", kn)
	}
	if c.budget.spent() != 3 {
		t.Errorf("c counts %d calls paid today, want 3", c.budget.spent())
	}
	got := cLog.String()
	if !strings.Contains(got, "the ledger holds knowledge written under a different cache.secret") || !strings.Contains(got, "knowledge_records=1") {
		t.Errorf("c's log does not say that a knowledge record was written under another secret:\n%s", got)
	}
	if strings.Contains(got, warning) {
		t.Errorf("c warns of an instance writing now, but the record was there before it started:\n%s", got)
	}
	if pc.count() != 0 {
		t.Errorf("c paid %d calls", pc.count())
	}
	if s := c.CostStats(); s.LedgerForeignLoaded != 1 || s.LedgerForeignFollowed != 0 {
		t.Errorf("c: %d foreign knowledge records loaded (want a's 1), %d followed (want 0)", s.LedgerForeignLoaded, s.LedgerForeignFollowed)
	}
}

// A call record's key names its order id, or a sequence number when the
// call had none.
func TestLedgerKeyOrderID(t *testing.T) {
	for id, want := range map[string]string{"JH0001": "JH0001", "n12": "", "n": "n", "nope": "nope", "n1x": "n1x", "": ""} {
		if got := keyOrderID(id); got != want {
			t.Errorf("keyOrderID(%q) = %q, want %q", id, got, want)
		}
	}
}

// Requests whose outcome is unknown (Result.Billable beyond the answer) are
// paid: their budget units are spent, and each is written to the ledger as
// an "unavailable" call record, so that another instance's budget, and the
// bill's reconciliation, count them. Retries take a unit each (BeforeRetry),
// and a retry the budget has no unit for is not made.
func TestUncertainRequestsArePaid(t *testing.T) {
	k := kafkatest.New(t)
	topic := k.Name("ledger")
	clock := &fakeClock{t: time.Date(2024, 6, 1, 12, 0, 0, 0, time.UTC)}
	var retried []error
	p := EnricherFunc(func(ctx context.Context, l Lookup) (Result, error) {
		switch l.Mobile {
		case "17300000001": // two requests cut off, then an answer
			retried = append(retried, BeforeRetry(ctx), BeforeRetry(ctx))
			return Result{Status: StatusRecycled, Res: 1, OrderID: "JH1", Source: SourceAPI, Mode: "plain", Attempts: 3, Billable: 3}, nil
		default: // one request cut off, one refused with a known code
			retried = append(retried, BeforeRetry(ctx))
			return Result{Mode: "plain", Code: 232701, Attempts: 2, Billable: 1}, Unavailable(errors.New("cut off"))
		}
	})
	a := ledgerCost(t, k, topic, p, clock, func(c *CostConfig) { c.DailyBudget = 5 })
	if _, err := a.Enrich(t.Context(), Lookup{Mobile: "17300000001", Date: "20240101"}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Enrich(t.Context(), Lookup{Mobile: "17300000002", Date: "20240101"}); DispositionOf(err) != DispositionUnavailable {
		t.Fatalf("a failed lookup: %v", err)
	}
	if s := a.CostStats(); s.PaidCalls != 4 || s.UncertainCalls != 3 || s.BudgetSpentToday != 4 || s.BudgetRemaining != 1 {
		t.Fatalf("stats %+v; want 4 paid (3 of them uncertain), 1 of 5 left", s)
	}
	// The budget's last unit: a lookup gets its first request, not a retry.
	_, err := a.Enrich(t.Context(), Lookup{Mobile: "17300000003", Date: "20240101"})
	if DispositionOf(err) != DispositionUnavailable || !errors.Is(retried[len(retried)-1], ErrBudgetSpent) {
		t.Fatalf("lookup %v, its retry %v; want the retry refused for the budget", err, retried[len(retried)-1])
	}
	// Enrich returned once the ledger held the lookup's records, the
	// uncertain requests' included (Result.durable): they are all there.
	want := []string{"recycled", "unavailable", "unavailable", "unavailable", "unavailable"}
	var statuses []string
	if err := ReadLedgerCalls(t.Context(), []kgo.Opt{kgo.SeedBrokers(k.Brokers...)}, topic, func(c LedgerCall) error {
		statuses = append(statuses, string(c.Status))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	slices.Sort(statuses)
	if !slices.Equal(statuses, want) {
		t.Errorf("ledger call records %v, want %v", statuses, want)
	}
	b := ledgerCost(t, k, topic, &fakeProvider{}, clock, func(c *CostConfig) { c.DailyBudget = 5 })
	if s := b.CostStats(); s.BudgetSpentToday != 5 || s.BudgetRemaining != 0 {
		t.Errorf("another instance counts %d spent, %d left; want 5 and 0", s.BudgetSpentToday, s.BudgetRemaining)
	}
}

// A joined durable is done once every write is, with their errors; a
// callback registered before or after runs once.
func TestJoinDurable(t *testing.T) {
	if joinDurable(nil) != nil {
		t.Error("a join of nothing is not nil")
	}
	a := &durable{pending: 1}
	if joinDurable(a, nil) != a || joinDurable(nil, a) != a {
		t.Error("a join of one write is not that write")
	}
	b, c := &durable{pending: 1}, &durable{pending: 2}
	j := joinDurable(a, b, c)
	var called []error
	j.whenDone(func(err error) { called = append(called, err) })
	finish := func(d *durable, err error) {
		if then, err, done := d.settle(err); done {
			for _, f := range then {
				f(err)
			}
		}
	}
	refused := errors.New("refused")
	finish(a, nil)
	finish(c, refused)
	finish(b, nil)
	if len(called) != 0 {
		t.Fatalf("done with a write pending: %v", called)
	}
	finish(c, nil)
	if len(called) != 1 || !errors.Is(called[0], refused) {
		t.Fatalf("callbacks %v; want one, with the refusal", called)
	}
	if err := j.wait(t.Context()); !errors.Is(err, refused) {
		t.Errorf("wait: %v", err)
	}
	j.whenDone(func(err error) { called = append(called, err) })
	if len(called) != 2 {
		t.Errorf("a callback after the end ran %d times", len(called)-1)
	}
}

// An instance whose user may describe the ledger topic but not read it (an
// ACL left out) does not start: loading the ledger before consuming waited
// for ever, the client retrying the refused fetches, with only a warning a
// poll; it says what the user lacks now.
func TestLedgerLoadRefusedFetch(t *testing.T) {
	t.Parallel()
	k := kafkatest.NewDescribeOnly(t, "app", "app-pw")
	topic := k.Name("ledger")
	k.CreateTopics(1, topic)
	k.Produce(&kgo.Record{Topic: topic, Key: []byte("c/20240601/run.ffffffffffff/JH1"),
		Value: []byte(`{"key":"00","day":"20240601","at":"2024-06-01T04:00:00Z","date":"20240101","status":"recycled","res":1,"code":0,"order_id":"JH1","mode":"plain","instance":"run.ffffffffffff"}`)})

	c, err := NewCostControl(EnricherFunc(func(context.Context, Lookup) (Result, error) { return Result{}, nil }), CostConfig{
		Secret: []byte("s"), Logger: slog.New(slog.DiscardHandler),
		Ledger: &LedgerConfig{Topic: topic, ClientOpts: []kgo.Opt{kgo.SeedBrokers(k.Brokers...),
			kgo.SASL(plain.Auth{User: "app", Pass: "app-pw"}.AsMechanism())}},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute) // ends the hang the test is about, if it comes back
	defer cancel()
	err = c.Open(ctx)
	if err == nil {
		c.Close(context.Background())
	}
	if !errors.Is(err, kerr.TopicAuthorizationFailed) || !strings.Contains(err.Error(), "READ") || ctx.Err() != nil {
		t.Fatalf("Open: %v (deadline reached: %v); want the refused authorization and what the user needs", err, ctx.Err() != nil)
	}
}

// The cache learns a paid answer together with its ledger write: an answer
// from the entry in between (another partition's lookup of the number, from
// knowledge) was written at once, citing a paid call that a crash before
// the write would have left out of the ledger, while the call's own output
// waited for it. (Found reading the ledger's path, twentieth session.)
func TestCacheLearnsAPaidAnswerWithItsLedgerWrite(t *testing.T) {
	t.Parallel()
	k := kafkatest.New(t)
	clock := &fakeClock{t: t0}
	p := &fakeProvider{activation: map[string]string{"17300000010": "20200315"}}
	c := ledgerCost(t, k, k.Name("ledger"), p, clock, nil)
	answered := false
	var waits *durable
	c.afterObserve = func(key MobileKey) {
		var r Result
		answered = c.cache.answer(key, "20190101", clock.Now, c.cfg.TTL, &r) // res 1 at 20200101 implies it
		waits = r.durable
	}
	if r, err := c.Enrich(t.Context(), Lookup{Mobile: "17300000010", Date: "20200101"}); err != nil || r.Status != StatusRecycled {
		t.Fatalf("the paid lookup: %+v %v", r, err)
	}
	if !answered {
		t.Fatal("the cache did not answer from the paid answer")
	}
	if waits == nil {
		t.Fatal("an answer from the cache before the paid answer's ledger write does not wait for it")
	}
	if err := waits.wait(t.Context()); err != nil {
		t.Fatalf("the ledger write: %v", err)
	}
}
