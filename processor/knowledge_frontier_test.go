package processor

import (
	"testing"
	"time"
)

// minuteAt is a fact at day n (testDay), given m minutes after t0.
func minuteAt(kind FactKind, n, m int, id string) Fact {
	return fact(kind, testDay(n), t0.Add(time.Duration(m)*time.Minute), id)
}

// A holder with A = day 0 until minute 10, when the number is re-issued
// with A = day 30. Before it, S (res 2 at day 10) and four newer, weaker
// res 2 (W1..W4, days 40..43) were given; after it, L (res 1 at day 20),
// which proves S stale (the number was re-issued after S), and Q (res 2 at
// day 35), which makes W1..W4 useless. Merged S first, the four W's drop
// S (the oldest of five) before L comes, L never meets it, and StaleBefore
// stays unset; merged L first, S is refused and StaleBefore is S's time.
// Then U (res 2 at day 25, minute -1: true before the re-issue, false now,
// and proven stale by S and L) was accepted by the first and answered day
// 27 "not_recycled", though A is day 30; the second refuses it. The final
// frontier is {Q} alone. (Found by review.) S dropped for room now moves
// StaleBefore to its time, as if proven stale.
func TestUpperBoundDroppedForRoomKeepsOlderOnesOut(t *testing.T) {
	s := minuteAt(FactNotAfter, 10, 0, "S")
	w := []Fact{minuteAt(FactNotAfter, 40, 1, "W1"), minuteAt(FactNotAfter, 41, 2, "W2"), minuteAt(FactNotAfter, 42, 3, "W3"), minuteAt(FactNotAfter, 43, 4, "W4")}
	l := minuteAt(FactAfter, 20, 20, "L")
	q := minuteAt(FactNotAfter, 35, 30, "Q")
	u := minuteAt(FactNotAfter, 25, -1, "U")
	sFirst := append(append([]Fact{s}, w...), l, q, u)
	lFirst := append(append([]Fact{l, s}, w...), q, u)
	var a, b Knowledge
	for _, f := range sFirst {
		a.Observe(f)
	}
	for _, f := range lFirst {
		b.Observe(f)
	}
	now := t0.Add(time.Hour)
	d := testDay(27) // A is day 30 now: not "not_recycled"
	fa, oka := a.Answer(d, now, ttl)
	fb, okb := b.Answer(d, now, ttl)
	if oka != okb || fa != fb || !a.StaleBefore.Equal(b.StaleBefore) {
		t.Errorf("order matters: S first answers %s with %v %s (StaleBefore %v); L first with %v %s (StaleBefore %v)",
			d, oka, fa.Kind, a.StaleBefore, okb, fb.Kind, b.StaleBefore)
	}
	if oka && fa.Kind == FactNotAfter {
		t.Errorf("S first: answers %s not_recycled from %s, a res 2 the facts prove stale (StaleBefore should be %v)", d, fa.OrderID, s.At)
	}
	// The same through the cache, as an instance reading the ledger's
	// call records in that order does.
	c := newKnowledgeCache(10)
	var key MobileKey
	for _, f := range sFirst {
		c.observe(key, f)
	}
	var r Result
	if ok := c.answer(key, d, func() time.Time { return now }, ttl, &r); ok && r.Status == StatusNotRecycled {
		t.Errorf("the cache answers %s with %+v, from a res 2 the facts prove stale", d, r)
	}
}

// Commit de75099 (never released) wrote tighter_not_after as one object; a
// later one made the same field an array, and a record of the first form
// did not decode at all (found by review). The array is older_not_after
// now: such a record reads as from a version without it, the bounds kept.
func TestLedgerRecordOfTheFirstTighterFormIsRead(t *testing.T) {
	v := `{"v":1,"instance":"old.1",` +
		`"after":{"kind":"recycled","date":"20190101","order_id":"JH0","mode":"plain","at":"2024-06-01T12:00:00Z"},` +
		`"not_after":{"kind":"not_recycled","date":"20230101","order_id":"JH2","mode":"plain","at":"2024-06-01T13:00:00Z"},` +
		`"tighter_not_after":{"kind":"not_recycled","date":"20200101","order_id":"JH1","mode":"plain","at":"2024-06-01T12:30:00Z"},` +
		`"bounds_at":"2024-06-01T13:00:00Z"}`
	var lk ledgerKnowledge
	if err := decodeLedgerKnowledge([]byte(v), &lk); err != nil {
		t.Fatalf("a record written by de75099 (tighter_not_after an object) is not read: %v", err)
	}
	k := lk.knowledge()
	if k.Lower.Kind != FactAfter || k.Upper.Kind != FactNotAfter {
		t.Errorf("bounds lost: %+v", k)
	}
}
