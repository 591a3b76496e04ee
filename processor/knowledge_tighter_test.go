package processor

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"
)

// Two instances asked about one number at about the same time: this one
// learnt A ≤ 20200101, another, a little later, A ≤ 20230101 (each asked
// its own date before the other's answer reached it). The newer, weaker
// answer, read from the ledger, replaced the stronger one, which was still
// live, and a lookup of 20210101 was paid for again (found by review).
// Both are kept now: the stronger answers 20210101 until it expires.
func TestNewerWeakerUpperBoundKeepsTheStrongerOne(t *testing.T) {
	t.Parallel()
	const m = "17300000010"
	clock := &fakeClock{t: t0}
	p := &fakeProvider{activation: map[string]string{m: "20190101"}}
	c := newCost(t, p, clock, nil)
	r, err := c.Enrich(t.Context(), Lookup{Mobile: m, Date: "20200101"})
	if err != nil || r.Status != StatusNotRecycled || r.Source != SourceAPI {
		t.Fatalf("the first lookup: %+v %v", r, err)
	}
	clock.Add(time.Minute)
	c.apply(ledgerRecord{call: &ledgerCallKey{Day: "20240601", Instance: "other.y", ID: "a"}, key: c.hasher.key(m),
		fact: fact(FactNotAfter, "20230101", t0.Add(30*time.Second), "JH_OTHER"), hasFact: true})
	for _, d := range []string{"20210101", "20240101"} {
		r, err := c.Enrich(t.Context(), Lookup{Mobile: m, Date: d})
		if err != nil {
			t.Fatal(err)
		}
		if r.Source != SourceCache || r.Status != StatusNotRecycled {
			t.Errorf("a lookup of %s: %+v; want not_recycled from the cache", d, r)
		}
	}
	if n := p.count(); n != 1 {
		t.Errorf("%d paid calls; want 1", n)
	}
}

// The tighter upper bound answers the dates before the newer one's until
// it expires, in every form the knowledge takes; it goes with the facts
// that prove it stale, and a version that does not know it reads the
// ledger record without it.
func TestTighterUpperBound(t *testing.T) {
	t.Parallel()
	strong := fact(FactNotAfter, "20200101", t0, "U1")
	weak := fact(FactNotAfter, "20230101", t0.Add(time.Hour), "U2")
	var k Knowledge
	k.Observe(weak)
	k.Observe(strong)
	if k.Upper != weak || k.Tighter != [maxUppers - 1]Fact{strong} {
		t.Fatalf("knowledge %+v; want Upper %v and Tighter %v", k, weak.OrderID, strong.OrderID)
	}
	var lk ledgerKnowledge
	if err := decodeLedgerKnowledge(appendLedgerKnowledge(nil, "x", k), &lk); err != nil {
		t.Fatal(err)
	}
	var viaLedger Knowledge
	viaLedger.Merge(lk.knowledge())
	c := newKnowledgeCache(10)
	var key MobileKey
	c.merge(key, k)
	pk, _, _ := c.peek(key)
	for _, s := range []struct {
		at   time.Duration
		date string
		want string // the answering fact's order id ("": none)
	}{
		{2 * time.Hour, "20191231", ""},
		{2 * time.Hour, "20200101", "U1"},
		{2 * time.Hour, "20221231", "U1"},
		{2 * time.Hour, "20230101", "U2"},
		{ttl.NotRecycled - 1, "20210101", "U1"},
		{ttl.NotRecycled, "20210101", ""}, // the tighter one expired
		{ttl.NotRecycled, "20230101", "U2"},
	} {
		now := t0.Add(s.at)
		for form, kk := range map[string]Knowledge{"knowledge": k, "ledger": viaLedger, "cache": pk.unpack()} {
			f, ok := kk.Answer(s.date, now, ttl)
			if ok != (s.want != "") || f.OrderID != s.want {
				t.Errorf("%s at +%v, %s: %+v %v; want %q", form, s.at, s.date, f, ok, s.want)
			}
		}
		f, ok := pk.answerDay(dayOf(s.date), s.date, func() time.Time { return now }, ttl)
		if ok != (s.want != "") || f.OrderID != s.want {
			t.Errorf("packed at +%v, %s: %+v %v; want %q", s.at, s.date, f, ok, s.want)
		}
	}
	if live := k.Live(t0.Add(ttl.NotRecycled), ttl); live.Tighter[0].Kind != 0 || live.Upper != weak {
		t.Errorf("Live once the tighter expired: %+v; want only the newer", live)
	}

	// A version that does not know the field reads the rest.
	var old struct {
		V        int         `json:"v"`
		NotAfter *ledgerFact `json:"not_after"`
	}
	if err := json.Unmarshal(appendLedgerKnowledge(nil, "x", k), &old); err != nil || old.V != ledgerVersion || old.NotAfter == nil || old.NotAfter.OrderID != "U2" {
		t.Errorf("read without the field: %+v %v", old, err)
	}

	// A res 1 between them, newer than the tighter one only: re-issued
	// since it, which the newer upper bound does not contradict.
	mid := fact(FactAfter, "20210101", t0.Add(30*time.Minute), "L")
	for _, order := range [][]Fact{{strong, weak, mid}, {mid, strong, weak}, {weak, mid, strong}} {
		var k Knowledge
		for _, f := range order {
			k.Observe(f)
		}
		if k.Tighter[0].Kind != 0 || k.Upper != weak || k.Lower != mid || !k.StaleBefore.Equal(strong.At) {
			t.Errorf("merged in the order %v: %+v; want A in (20210101, 20230101], the tighter one stale", []string{order[0].OrderID, order[1].OrderID, order[2].OrderID}, k)
		}
	}
}

// Truthful answers, no two contradicting: A ≤ 20190101 until t0+1h, then
// the number is re-issued and A = 20200801. Three res 2 at growing dates
// and times, and a res 1 (20200601) given after the re-issue: it proves
// U1 stale, and agrees with U2 and U3. U2 (A ≤ 20210101) is live and the
// strongest bound not proven stale, so it should answer 20210601 in every
// order (Knowledge's doc: the result does not depend on the order of
// non-contradicting facts). When the res 1 comes after U1, U2 and U3, the
// one Tighter slot held U1 (U2 was discarded as weaker), the res 1 drops
// U1 as stale, and U2 is gone: 20210601 is paid for again, in some orders
// only; instances that read the same facts in another order disagree
// (found by review of the two-slot version).
func TestUpperBoundsOutliveTheStrongestProvenStale(t *testing.T) {
	t.Parallel()
	u1 := fact(FactNotAfter, "20200101", t0, "U1")
	u2 := fact(FactNotAfter, "20210101", t0.Add(2*time.Hour), "U2")
	u3 := fact(FactNotAfter, "20220101", t0.Add(3*time.Hour), "U3")
	l := fact(FactAfter, "20200601", t0.Add(150*time.Minute), "L")
	dates := []string{"20200601", "20210601", "20220601"}
	now := t0.Add(4 * time.Hour)
	want := fmt.Sprint([]string{"L", "U2", "U3"})
	for _, order := range permutations([]Fact{u1, u2, u3, l}) {
		var k Knowledge
		for _, f := range order {
			k.Observe(f)
		}
		if got := fmt.Sprint(answersOf(k, dates, now)); got != want {
			t.Errorf("observed in the order %v: answers %v for %v; want %v (knowledge %+v)", orderIDs(order), got, dates, want, k)
		}
	}
	// The same through Merge, as an instance holding U1..U3 merges another's
	// knowledge record holding the res 1.
	var x, y Knowledge
	for _, f := range []Fact{u1, u2, u3} {
		x.Observe(f)
	}
	y.Observe(l)
	x.Merge(y)
	if got := fmt.Sprint(answersOf(x, dates, now)); got != want {
		t.Errorf("merged: answers %v; want %v (knowledge %+v)", got, want, x)
	}
}

// Every upper bound is kept while it lives: U1 (20200101, t0), U2
// (20210101, t0+2d), U3 (20220101, t0+3d), truthful, no re-issue. With two
// slots, U2 was discarded when U3 arrived, U1 holding the other, and from
// t0+7d (U1 expired) to t0+9d 20210601 was paid for again, though U2
// answered it (found by review).
func TestEveryLiveUpperBoundAnswers(t *testing.T) {
	t.Parallel()
	day := 24 * time.Hour
	u1 := fact(FactNotAfter, "20200101", t0, "U1")
	u2 := fact(FactNotAfter, "20210101", t0.Add(2*day), "U2")
	u3 := fact(FactNotAfter, "20220101", t0.Add(3*day), "U3")
	now := t0.Add(8 * day)
	for _, order := range permutations([]Fact{u1, u2, u3}) {
		var k Knowledge
		for _, f := range order {
			k.Observe(f)
		}
		if f, ok := k.Answer("20210601", now, ttl); !ok || f.OrderID != "U2" {
			t.Errorf("observed in the order %v: 20210601 at t0+8d: %+v %v; want U2, live until t0+9d (knowledge %+v)", orderIDs(order), f, ok, k)
		}
	}
}

// answersOf returns what k answers for each date at now, by order id ("" none).
func answersOf(k Knowledge, dates []string, now time.Time) []string {
	var out []string
	for _, d := range dates {
		f, ok := k.Answer(d, now, ttl)
		if !ok {
			out = append(out, "")
			continue
		}
		out = append(out, f.OrderID)
	}
	return out
}

// permutations returns every order of fs.
func permutations(fs []Fact) [][]Fact {
	if len(fs) <= 1 {
		return [][]Fact{append([]Fact(nil), fs...)}
	}
	var out [][]Fact
	for i := range fs {
		rest := append(append([]Fact(nil), fs[:i]...), fs[i+1:]...)
		for _, p := range permutations(rest) {
			out = append(out, append([]Fact{fs[i]}, p...))
		}
	}
	return out
}

func orderIDs(fs []Fact) []string {
	var s []string
	for _, f := range fs {
		s = append(s, f.OrderID)
	}
	return s
}
