package processor

import (
	"testing"
	"testing/synctest"
	"time"
)

// Another instance, whose clock runs 10 minutes ahead of this one's, proved
// a re-issue (res 2 at 20200101, then res 1 at 20210101, both by its clock
// at t0+10m). Here, a minute later by this clock, three concurrent lookups
// of 20230101 share one call, which settles them all and the next lookup
// of that date too: one call. Found by review: the re-issue, taken at its
// own times, made this instance's answer look older than it (StaleBefore
// t0+10m), the knowledge refused it, the two waiters of the very same date
// paid a call each, one after the other, and every later lookup paid again
// until this clock caught up. This instance's own answer is now taken as
// newer than everything known of the number (knowledgeCache.observeWriting).
func TestClockAheadElsewhereDoesNotRefuseOwnAnswers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const m = "17300000010"
		p := gatedProvider("20220101") // re-issued: A = 20220101 now
		clock := &fakeClock{t: t0.Add(time.Minute)}
		c := newCost(t, p, clock, nil)
		key := c.hasher.key(m)
		for i, f := range []Fact{
			fact(FactNotAfter, "20200101", t0.Add(10*time.Minute), "JH_Y1"),
			fact(FactAfter, "20210101", t0.Add(10*time.Minute+time.Second), "JH_Y2"),
		} {
			c.apply(ledgerRecord{call: &ledgerCallKey{Day: "20240601", Instance: "other.y", ID: string(rune('a' + i))}, key: key, fact: f, hasFact: true})
		}
		done := make(chan Result, 3)
		for range 3 {
			go func() {
				r, err := c.Enrich(t.Context(), Lookup{Mobile: m, Date: "20230101"})
				if err != nil {
					t.Error(err)
				}
				done <- r
			}()
		}
		<-p.started
		synctest.Wait() // the other two wait for the call
		more := p.releaseAll()
		for range 3 {
			if r := <-done; r.Status != StatusNotRecycled {
				t.Errorf("a lookup of 20230101: %+v, want not_recycled", r)
			}
		}
		go func() {
			for range p.started {
				p.gate <- struct{}{}
			}
		}()
		r, err := c.Enrich(t.Context(), Lookup{Mobile: m, Date: "20230101"})
		if err != nil {
			t.Fatal(err)
		}
		if n := p.count(); n != 1 || r.Source != SourceCache {
			t.Errorf("%d paid calls for 20230101 (then %v), and the last lookup %+v; want 1 call, the last from the cache", n, more, r)
		}
		close(p.started)
	})
}

// Another instance's facts are merged at their own times, in whatever
// order they are read: the answers do not depend on it. (A first fix of the
// clock skew above took them as no later than this clock's now, and a
// review found that the order of reading then decided which was newer.)
func TestClockAheadElsewhereMergesInAnyOrder(t *testing.T) {
	const m = "17300000010"
	res2 := fact(FactNotAfter, "20200101", t0.Add(10*time.Minute), "JH_Y1")
	res1 := fact(FactAfter, "20210101", t0.Add(10*time.Minute+time.Second), "JH_Y2")
	for _, tc := range []struct {
		name  string
		order []Fact
	}{
		{"res2 then res1", []Fact{res2, res1}},
		{"res1 then res2", []Fact{res1, res2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &fakeProvider{activation: map[string]string{m: "20220101"}} // re-issued: A = 20220101
			clock := &fakeClock{t: t0.Add(time.Minute)}
			c := newCost(t, p, clock, nil)
			key := c.hasher.key(m)
			for i, f := range tc.order {
				c.apply(ledgerRecord{call: &ledgerCallKey{Day: "20240601", Instance: "other.y", ID: string(rune('a' + i))},
					key: key, fact: f, hasFact: true})
				clock.Add(time.Millisecond) // this clock moves on while the ledger is read
			}
			r, err := c.Enrich(t.Context(), Lookup{Mobile: m, Date: "20200601"})
			if err != nil {
				t.Fatal(err)
			}
			if r.Status != StatusRecycled || p.count() != 0 {
				t.Errorf("lookup of 20200601 after reading %s: %+v (%d paid calls); want recycled from the cache (A > 20210101, re-issued)", tc.name, r, p.count())
			}
		})
	}
}
