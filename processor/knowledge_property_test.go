package processor

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// A provider whose holder's activation date A grows at re-issues: answers
// given at random times, merged in random order, through every form the
// knowledge takes (Knowledge, packed cache, ledger record); every answer
// the knowledge gives must be one the facts imply. (Written by a review that
// found a stale res 2 coming back when merged after the facts that prove it
// stale.)
func TestKnowledgeAnswersWhatTruthfulAnswersImply(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 9))
	for trial := range 3000 {
		// A(t): re-issues at given minutes.
		type reissue struct {
			at time.Time
			a  int
		}
		a0 := rng.IntN(3000)
		steps := []reissue{{t0.Add(-1000 * time.Hour), a0}}
		for i := range rng.IntN(3) {
			steps = append(steps, reissue{t0.Add(time.Duration(rng.IntN(400)) * time.Hour), steps[i].a + 1 + rng.IntN(500)})
		}
		A := func(at time.Time) int {
			a := steps[0].a
			for _, s := range steps[1:] {
				if !at.Before(s.at) && s.a > a {
					a = s.a
				}
			}
			return a
		}
		facts := truthfulFacts(rng, 1+rng.IntN(6), 500*time.Hour, A, 8, FactNoRecord)
		rng.Shuffle(len(facts), func(i, j int) { facts[i], facts[j] = facts[j], facts[i] })
		var k Knowledge
		for _, f := range facts {
			k.Observe(f)
		}
		c := newKnowledgeCache(10)
		var key MobileKey
		for _, f := range facts {
			c.observe(key, f)
		}
		// through a ledger knowledge record
		var lk ledgerKnowledge
		if err := decodeLedgerKnowledge(appendLedgerKnowledge(nil, "x", k), &lk); err != nil {
			t.Fatal(err)
		}
		var viaLedger Knowledge
		viaLedger.Merge(lk.knowledge())
		for range 30 {
			now := t0.Add(time.Duration(500*60+rng.IntN(300*60)) * time.Minute)
			d := testDay(rng.IntN(3600))
			f1, ok1 := k.Answer(d, now, ttl)
			clock := func() time.Time { return now }
			pk, _, _ := c.peek(key)
			f2, ok2 := pk.answerDay(dayOf(d), d, clock, ttl)
			f3, ok3 := viaLedger.Answer(d, now, ttl)
			if ok1 != ok2 || f1 != f2 || ok1 != ok3 || f1.Kind != f3.Kind {
				t.Fatalf("trial %d: forms disagree on %s at %v: %+v %v / %+v %v / %+v %v", trial, d, now, f1, ok1, f2, ok2, f3, ok3)
			}
			var r Result // the cache's answer, as a lookup gets it
			if ok := c.answer(key, d, clock, ttl, &r); ok != ok1 || ok && r != f1.Result() {
				t.Fatalf("trial %d: the cache answers %s at %v with %+v %v; the knowledge with %+v %v", trial, d, now, r, ok, f1.Result(), ok1)
			}
			if !ok1 {
				continue
			}
			// the fact used must have been true when given, and still live
			switch f1.Kind {
			case FactAfter:
				if !(A(now) > dayIndex(d)) {
					t.Fatalf("trial %d: recycled for %s at %v but A=%s; facts %+v", trial, d, now, testDay(A(now)), facts)
				}
			case FactNotAfter:
				if now.Sub(f1.At) >= ttl.NotRecycled || A(f1.At) > dayIndex(d) {
					t.Fatalf("trial %d: not_recycled for %s at %v from %+v but A then=%s", trial, d, now, f1, testDay(A(f1.At)))
				}
			}
		}
	}
}

func dayIndex(s string) int {
	t, _ := time.Parse("20060102", s)
	return int(t.Sub(time.Date(2015, 1, 1, 0, 0, 0, 0, time.UTC)).Hours() / 24)
}

// Truthful answers of a number re-issued over time (A only grows), merged in
// any order and split between two instances: the same knowledge.
func TestKnowledgeMergeOrderWithReissues(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	for trial := range 20000 {
		a0 := rng.IntN(2000)
		reAt := t0.Add(time.Duration(rng.IntN(100)) * time.Hour)
		a1 := a0 + 1 + rng.IntN(1500)
		A := func(at time.Time) int {
			if at.Before(reAt) {
				return a0
			}
			return a1
		}
		facts := truthfulFacts(rng, 2+rng.IntN(5), 100*time.Hour, A, 6, FactNoActivationDate)
		var want Knowledge
		for _, f := range facts {
			want.Observe(f)
		}
		for range 4 {
			rng.Shuffle(len(facts), func(i, j int) { facts[i], facts[j] = facts[j], facts[i] })
			var got, x, y Knowledge
			for i, f := range facts {
				got.Observe(f)
				if i%2 == 0 {
					x.Observe(f)
				} else {
					y.Observe(f)
				}
			}
			x.Merge(y)
			if !sameBounds(got, want) || !sameBounds(x, want) {
				t.Fatalf("trial %d: order matters:\n want %+v\n got  %+v\n merged %+v\nfacts %+v", trial, want, got, x, facts)
			}
		}
	}
}

func sameBounds(a, b Knowledge) bool {
	return a.Lower == b.Lower && a.Upper == b.Upper && a.Tighter == b.Tighter && a.Short == b.Short && a.BoundsAt.Equal(b.BoundsAt)
}

// truthfulFacts returns n answers given at random minutes within window
// after t0 about random days (testDay) by a provider whose activation date
// at a time is A's: res 1 or res 2 as A says, and one in about shortEvery
// of kind short instead.
func truthfulFacts(rng *rand.Rand, n int, window time.Duration, A func(time.Time) int, shortEvery int, short FactKind) []Fact {
	var facts []Fact
	for i := range n {
		at := t0.Add(time.Duration(rng.IntN(int(window/time.Minute))) * time.Minute)
		d := rng.IntN(3600)
		kind := FactNotAfter
		if A(at) > d {
			kind = FactAfter
		}
		if rng.IntN(shortEvery) == 0 {
			kind = short
		}
		facts = append(facts, fact(kind, testDay(d), at, fmt.Sprintf("JH%d", i)))
	}
	return facts
}

// testDay is the n-th day from 2015-01-01, as yyyymmdd.
func testDay(n int) string {
	return time.Date(2015, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, n).Format("20060102")
}
