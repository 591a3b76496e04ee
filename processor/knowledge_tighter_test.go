package processor

import (
	"encoding/json"
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
	if k.Upper != weak || k.Tighter != strong {
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
	if live := k.Live(t0.Add(ttl.NotRecycled), ttl); live.Tighter.Kind != 0 || live.Upper != weak {
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
		if k.Tighter.Kind != 0 || k.Upper != weak || k.Lower != mid || !k.StaleBefore.Equal(strong.At) {
			t.Errorf("merged in the order %v: %+v; want A in (20210101, 20230101], the tighter one stale", []string{order[0].OrderID, order[1].OrderID, order[2].OrderID}, k)
		}
	}
}
