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
// until this clock caught up. Times of other instances' that are ahead of
// this clock are now taken as the time they are learnt.
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
		clock.Add(time.Second) // the call comes after what was learnt
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

// A time of another instance's that is ahead of this clock is taken as now.
func TestKnowledgeNotAfter(t *testing.T) {
	now := t0
	k := Knowledge{
		Lower:       fact(FactAfter, "20200101", t0.Add(time.Hour), "L"),
		Upper:       fact(FactNotAfter, "20230101", t0.Add(-time.Hour), "U"),
		BoundsAt:    t0.Add(time.Hour),
		StaleBefore: t0.Add(time.Minute),
	}.notAfter(now)
	if !k.Lower.At.Equal(now) || !k.Upper.At.Equal(t0.Add(-time.Hour)) || !k.BoundsAt.Equal(now) || !k.StaleBefore.Equal(now) || k.Short.Kind != 0 || !k.Short.At.IsZero() {
		t.Errorf("notAfter: %+v", k)
	}
}
