package processor

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/twosell/twosell/processor/kafkatest"
)

// Three truthful answers about a number re-issued between the second and
// the third (A0 = 20190101, then A1 = 20240501):
//
//	U3 res 2 at 20230628, t0      (A0 ≤ 20230628)
//	U2 res 2 at 20210215, t0+1h   (A0 ≤ 20210215)
//	L  res 1 at 20210809, t0+3h   (A1 > 20210809: re-issued since U2)
//
// Merged in the order given, 20240101 is unknown (a call: recycled, since
// A1 = 20240501). Merged U2, L, U3, the stale U3 comes back as the upper
// bound, and 20240101 is answered not_recycled from the cache: a wrong
// status, and two instances that merged the same facts disagree.
func reissueFacts() (u3, u2, l Fact) {
	return fact(FactNotAfter, "20230628", t0, "JH3"),
		fact(FactNotAfter, "20210215", t0.Add(time.Hour), "JH2"),
		fact(FactAfter, "20210809", t0.Add(3*time.Hour), "JH4")
}

func TestKnowledgeStaleUpperStaysOut(t *testing.T) {
	u3, u2, l := reissueFacts()
	now := t0.Add(4 * time.Hour)
	var inOrder, late Knowledge
	for _, f := range []Fact{u3, u2, l} {
		inOrder.Observe(f)
	}
	for _, f := range []Fact{u2, l, u3} {
		late.Observe(f)
	}
	_, ok1 := inOrder.Answer("20240101", now, ttl)
	f2, ok2 := late.Answer("20240101", now, ttl)
	if ok1 != ok2 {
		t.Errorf("same facts, other order: %v vs %v (%+v)", ok1, ok2, f2)
	}
	if ok2 && f2.Kind == FactNotAfter {
		t.Errorf("20240101 answered not_recycled from %+v, but L (newer) proves a re-issue after U2, itself newer than U3; A is 20240501", f2)
	}
}

// The same through the ledger: an instance follows a two-partition ledger
// where U3's call record (another instance's, written late, or on a
// partition read later) comes after L's.
func TestLedgerStaleUpperStaysOut(t *testing.T) {
	const m = "17300000010"
	k := kafkatest.New(t)
	topic := k.Name("ledger")
	k.CreateTopics(2, topic)
	clock := &fakeClock{t: t0.Add(4 * time.Hour)}
	p := &fakeProvider{activation: map[string]string{m: "20240501"}} // A now
	b := ledgerCost(t, k, topic, p, clock, nil)
	key := b.hasher.key(m).String()
	cl := k.Client(kgo.RecordPartitioner(kgo.ManualPartitioner()))
	call := func(f Fact, part int32, inst string) *kgo.Record {
		st, res := StatusNotRecycled, 2
		if f.Kind == FactAfter {
			st, res = StatusRecycled, 1
		}
		c := LedgerCall{Key: key, Day: "20240601", At: f.At, Date: f.Date, Status: st, Res: res, OrderID: f.OrderID, Mode: "plain", Instance: inst}
		return &kgo.Record{Topic: topic, Partition: part, Key: []byte("c/20240601/" + inst + "/" + f.OrderID), Value: c.appendJSON(nil),
			Headers: []kgo.RecordHeader{{Key: ledgerInstanceHeader, Value: []byte(inst)}}}
	}
	u3, u2, l := reissueFacts()
	if err := cl.ProduceSync(context.Background(), call(u2, 0, "test.q"), call(l, 0, "test.r")).FirstErr(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "b follows U2 and L", func() bool { kn, _ := b.Known(m); return kn.Lower.Kind != 0 })
	if err := cl.ProduceSync(context.Background(), call(u3, 1, "test.p")).FirstErr(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "b reads U3", func() bool { return b.CostStats().LedgerRecords >= 3 })
	r, err := b.Enrich(t.Context(), Lookup{Mobile: m, Date: "20240101"})
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != StatusRecycled {
		t.Errorf("20240101: %+v; want recycled (A is 20240501): U3 predates the re-issue that L proves", r)
	}
}
