package processor

// From a review of the cost controls (twenty-fourth session): each test
// failed before its fix, for the reason its comment gives.

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"
)

// skip_older_than is a real-time deadline: "older events emitted as skipped
// without a paid call". A lookup that was young enough when it asked the
// knowledge, but grew older than the deadline while it waited for the
// provider rate (juhe.qps), is still sent to the paid provider.
//
// qps 1, skip_older_than 1.5 s, three new numbers whose events happened at
// t: the first call goes at t, the second at t+1s (1 s old: due), the third
// at t+2s, when its event is 2 s old: it should be skipped, not paid.
func TestRateWaitPastSkipOlderThanIsSkipped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := &fakeProvider{activation: map[string]string{
			"17300000010": "20200315", "17300000011": "20200315", "17300000012": "20200315",
		}}
		c := newCost(t, p, &fakeClock{}, func(c *CostConfig) {
			c.Now = time.Now // the bubble's clock, which the rate limiter also reads
			c.QPS = 1
			c.SkipOlderThan = 1500 * time.Millisecond
		})
		at := time.Now()
		type answer struct {
			r   Result
			err error
		}
		answers := make(chan answer, 3)
		for i, m := range []string{"17300000010", "17300000011", "17300000012"} {
			go func() {
				r, err := c.Enrich(t.Context(), Lookup{Mobile: m, Date: "20240601", At: at})
				answers <- answer{r, err}
			}()
			if i < 2 {
				synctest.Wait() // in this order at the rate
			}
		}
		var skipped int
		for range 3 {
			a := <-answers
			if a.err != nil {
				t.Fatal(a.err)
			}
			if a.r.Status == StatusSkipped {
				skipped++
			}
		}
		if calls := p.count(); calls != 2 || skipped != 1 {
			t.Errorf("paid calls %d, skipped %d; want 2 paid and 1 skipped: the third event was %v old "+
				"(skip_older_than 1.5s) when its call was made after waiting for the rate", calls, skipped, time.Since(at))
		}
	})
}

// The same gap as the deadline above, for knowledge: a lookup that waits
// for the provider rate is not asked again once it may go. Another
// instance's answer that implies it, read from the ledger during the wait,
// does not stop the paid call.
func TestRateWaitAnsweredByKnowledgeLearnedMeanwhile(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := &fakeProvider{activation: map[string]string{"17300000010": "20200315", "17300000011": "20200315"}}
		c := newCost(t, p, &fakeClock{}, func(c *CostConfig) {
			c.Now = time.Now
			c.QPS = 1
		})
		done := make(chan Result, 2)
		for _, m := range []string{"17300000010", "17300000011"} {
			go func() {
				r, err := c.Enrich(t.Context(), Lookup{Mobile: m, Date: "20240601"})
				if err != nil {
					t.Error(err)
				}
				done <- r
			}()
			synctest.Wait() // the first passes at once; the second waits about 1 s for the rate
		}
		// Meanwhile another instance's res 2 at 20240101 for the second
		// number (A ≤ 20240101: 20240601 is not_recycled) is read.
		c.apply(ledgerRecord{call: &ledgerCallKey{Day: DayOf(time.Now(), time.UTC), Instance: "run.other", ID: "JHB"},
			key: c.hasher.key("17300000011"), fact: fact(FactNotAfter, "20240101", time.Now(), "JHB"), hasFact: true})
		<-done
		r := <-done
		if p.count() != 1 {
			t.Errorf("%d paid calls, want 1: the second lookup (%+v) was implied by a fact learned while it waited for the rate", p.count(), r)
		}
	})
}

// A lookup that missed the knowledge just before its number's call X-1
// ended, and joins the next call X as a waiter (await does not ask the
// knowledge again), is answered when X ends from X-1's fact, whose ledger
// write may still be in flight: the answer carries no durable, so its
// output is written at once, citing a call the ledger may never hold. (The
// cache's own answers from that entry wait for the write: cacheEntry.written.)
func TestWaiterAnsweredFromAnEarlierCallWaitsForItsLedgerWrite(t *testing.T) {
	const m = "17300000010"
	p := gatedProvider("20200315") // A = 20200315
	clock := &fakeClock{t: t0}
	c := newCost(t, p, clock, nil)
	key := c.hasher.key(m)

	// The dispatcher's known() for W (20190101) missed here; then X-1
	// ended: res 1 at 20200101, learned with its ledger write in flight.
	inFlight := &durable{pending: 1}
	c.cache.observeWriting(key, fact(FactAfter, "20200101", t0, "JH-X1"), inFlight)
	var direct Result
	if !c.cache.answer(key, "20190101", clock.Now, c.cfg.TTL, &direct) || direct.durable == nil {
		t.Fatalf("setup: the cache's own answer %+v should wait for the write", direct)
	}

	// X: the next call of the number, for a date X-1 left in doubt.
	done := make(chan Result, 1)
	go func() {
		r, _ := c.Enrich(context.Background(), Lookup{Mobile: m, Date: "20220101"})
		done <- r
	}()
	<-p.started
	// W reaches await (partitionWorker.await) and waits for X.
	wch := make(chan wakeup, 1)
	w := &waiter{l: &Lookup{Mobile: m, Date: "20190101", key: key, keyed: true}, to: recWake{wch}}
	if !c.await(w) {
		t.Fatal("await found no call in flight")
	}
	p.gate <- struct{}{}
	<-done
	u := <-wch
	if u.lead || u.err != nil || u.res.OrderID != "JH-X1" {
		t.Fatalf("W woken with %+v, want X-1's answer", u)
	}
	if u.res.durable == nil {
		t.Errorf("W is answered from X-1's fact (order %s) while its ledger write is in flight, without waiting for it: "+
			"its output would cite a call the ledger may never hold", u.res.OrderID)
	}
	inFlight.resolve(nil)
}

// A malformed ledger record whose fact time is centuries old is packed by
// the cache with UnixNano, which overflows: a no-record answer "given" in
// 1600 comes out as given in 2184, and answers every lookup of the number
// (no_record, from the cache) until then, though Knowledge.Answer itself
// says it expired long ago.
func TestAncientLedgerTimeDoesNotWrapIntoTheFuture(t *testing.T) {
	clock := &fakeClock{t: t0}
	p := &fakeProvider{activation: map[string]string{"17300000010": "20150101"}}
	c := newCost(t, p, clock, nil)
	const m = "17300000010"
	var lk ledgerKnowledge
	val := `{"v":1,"instance":"run.other","short":{"kind":"no_record","date":"20240101","at":"1600-01-01T00:00:00Z"},"bounds_at":"0001-01-01T00:00:00Z"}`
	if err := decodeLedgerKnowledge([]byte(val), &lk); err != nil {
		t.Fatal(err)
	}
	k := lk.knowledge()
	if _, ok := k.Answer("20240601", t0, c.cfg.TTL); ok {
		t.Fatal("Knowledge.Answer answers from a fact of 1600")
	}
	c.apply(ledgerRecord{key: c.hasher.key(m), knowledge: &lk})
	r, err := c.Enrich(t.Context(), Lookup{Mobile: m, Date: "20240601"})
	if err != nil {
		t.Fatal(err)
	}
	if r.Source != SourceAPI || p.count() != 1 {
		known, _ := c.Known(m)
		t.Errorf("a no_record fact of 1600 (short TTL 1h) answered %+v (paid calls %d); the cache holds it as given at %v",
			r, p.count(), known.Short.At)
	}
}

// As above, for a retry inside the Enricher: its request waits for the rate
// in BeforeRetry, and a fact learned meanwhile spares it. The lookup is
// answered from the knowledge, and the retry's budget unit is given back.
func TestRetryRateWaitAnsweredByKnowledgeLearnedMeanwhile(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const m = "17300000011"
		var retries int
		p := EnricherFunc(func(ctx context.Context, l Lookup) (Result, error) {
			// The first request: refused with a known code (not billed).
			if err := BeforeRetry(ctx); err != nil {
				return Result{Mode: "plain", Attempts: 1}, Unavailable(errors.New("juhe: 232701: the data source timed out"))
			}
			retries++
			return Result{Status: StatusRecycled, Res: 1, OrderID: "JH-RETRY", Source: SourceAPI, Mode: "plain", Attempts: 2, Billable: 1}, nil
		})
		c := newCost(t, p, &fakeClock{}, func(c *CostConfig) {
			c.Now = time.Now
			c.QPS = 1
			c.DailyBudget = 10
		})
		done := make(chan Result, 1)
		go func() {
			r, err := c.Enrich(t.Context(), Lookup{Mobile: m, Date: "20240601"})
			if err != nil {
				t.Error(err)
			}
			done <- r
		}()
		synctest.Wait() // the retry waits about 1 s for the rate
		c.apply(ledgerRecord{call: &ledgerCallKey{Day: DayOf(time.Now(), time.UTC), Instance: "run.other", ID: "JHB"},
			key: c.hasher.key(m), fact: fact(FactNotAfter, "20240101", time.Now(), "JHB"), hasFact: true})
		r := <-done
		if retries != 0 || r.Source != SourceCache || r.OrderID != "JHB" {
			t.Errorf("answered %+v after %d retries; want the cache's answer citing JHB, no retry", r, retries)
		}
		if s := c.CostStats(); s.BudgetSpentToday != 1 { // the other instance's call; the refused request is not billed
			t.Errorf("%d of the budget spent today, want 1 (the other instance's call)", s.BudgetSpentToday)
		}
	})
}
