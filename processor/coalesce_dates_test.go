package processor

import (
	"testing"
	"testing/synctest"
)

// With A bounded on both sides, the next caller is the median of the dates
// in doubt, not of the waiters: many waiters for one date pulled the choice
// onto it, and three distinct dates in doubt took three calls, where a
// binary search over the dates needs ceil(log2(3+1)) = 2.
//
// A = 20120101. 2010 (res 1, lower only) → the latest, 2020 (res 2): A is
// bounded on both sides, and 2014, 2015, 2016 (five waiters) are in doubt.
// The waiters' median is 2016 (res 2), then 2015 (res 2), then 2014: three
// calls. The dates' median, 2015 (res 2), then 2014: two.
func TestCoalescingMedianOfDatesNotWaiters(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := gatedProvider("20120101")
		c := newCost(t, p, &fakeClock{t: t0}, nil)
		done := make(chan error, 16)
		ask := enrichInBackground(t, c, done)
		ask("20100101")
		<-p.started
		dates := []string{"20140101", "20150101", "20160101", "20160101", "20160101", "20160101", "20160101", "20200101"}
		for _, d := range dates {
			ask(d)
		}
		synctest.Wait()
		called := p.releaseAll()
		for range 1 + len(dates) {
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		}
		// After 2010 and 2020: 3 distinct dates in doubt → at most 2 calls.
		if n := p.count(); n > 4 {
			t.Errorf("%d paid calls (after the first: %v), want at most 4: 2010, 2020, then 2 for the 3 dates in doubt (binary search)", n, called)
		}
	})
}

// A record waiting in await is counted as coalesced; woken to make the
// next call, it waits for a slot, and a lookup holding one takes the call
// over (share). The record's Enrich then finds the call taken (claim false)
// and waits for it in share: it was counted again, one lookup two counts.
func TestCoalescedOnceAfterTakeover(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const m = "17300000010"
		p := gatedProvider("20200315")
		c := newCost(t, p, &fakeClock{t: t0}, nil)
		key := c.hasher.key(m)

		done := make(chan error, 3)
		go func() { // X: res 1 at 20200101
			_, err := c.Enrich(t.Context(), Lookup{Mobile: m, Date: "20200101"})
			done <- err
		}()
		<-p.started
		// W: the dispatcher's waiter for 20210101 (X does not settle it).
		wch := make(chan wakeup, 1)
		wl := &Lookup{Mobile: m, Date: "20210101", key: key, keyed: true}
		w := &waiter{l: wl, to: recWake{wch}}
		if !c.await(w) {
			t.Fatal("await found no call in flight")
		}
		p.gate <- struct{}{}
		if u := <-wch; !u.lead {
			t.Fatalf("W woken with %+v, want lead", u)
		}
		// S, holding a slot, takes the call over while W waits for one.
		go func() {
			_, err := c.Enrich(t.Context(), Lookup{Mobile: m, Date: "20220101"})
			done <- err
		}()
		if l := <-p.started; l.Date != "20220101" {
			t.Fatalf("call for %s, want S's 20220101", l.Date)
		}
		// W gets its slot: its Enrich (leads) finds the call taken over.
		wl.leads = true
		go func() {
			_, err := c.Enrich(t.Context(), *wl)
			done <- err
		}()
		synctest.Wait()
		p.gate <- struct{}{} // S: res 2 at 2022, 2021 still in doubt: W calls
		if l := <-p.started; l.Date != "20210101" {
			t.Fatalf("call for %s, want W's 20210101", l.Date)
		}
		p.gate <- struct{}{}
		for range 3 {
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		}
		if st := c.CostStats(); st.Coalesced != 1 {
			t.Errorf("coalesced %d, want 1: W is one lookup (await, then share after the takeover)", st.Coalesced)
		}
	})
}
