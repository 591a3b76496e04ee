package processor

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// confirm holds a call to the calls being made, not to the rate queue
// (TestCallsQueuedWhenTheShareShrinksGoOldestFirst: the calls that waited
// longest go first, one in each slot of the rate), and so is a call whose
// wait crossed midnight. Before, such a call was held to reserve's checks
// on the new day, which count the units of calls still waiting: lookups
// that came after midnight, queued behind it, held the new day's units, and
// the older call was refused at its slot, a slot with no call, while the
// newer lookups were paid after it (found by review).
func TestCallQueuedPastMidnightIsNotRefusedForNewerQueuedOnes(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var order []string
		var at []time.Time
		p := EnricherFunc(func(_ context.Context, l Lookup) (Result, error) {
			mu.Lock()
			order = append(order, l.Mobile)
			at = append(at, time.Now())
			mu.Unlock()
			return paidRecycled(l), nil
		})
		c, err := NewCostControl(p, CostConfig{Secret: []byte("s"), QPS: 1, DailyBudget: 4, Location: time.UTC, Mode: "plain"})
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		midnight := time.Date(now.Year(), now.Month(), now.Day()+1, 0, 0, 0, 0, time.UTC)
		time.Sleep(midnight.Sub(now) - 2*time.Second) // 23:59:58
		var wg sync.WaitGroup
		refused := map[string]error{}
		lookup := func(m string) {
			wg.Go(func() {
				if _, err := c.Enrich(context.Background(), Lookup{Mobile: m, Date: "20240101"}); err != nil {
					mu.Lock()
					refused[m] = err
					mu.Unlock()
				}
			})
			synctest.Wait() // queued in this order
		}
		// W1 called at 23:59:58, W2 at 23:59:59 (old day), W3 at 00:00:00
		// and W4 at 00:00:01 (new day, each with a unit of the old one).
		for i := 1; i <= 4; i++ {
			lookup(fmt.Sprintf("1730000090%d", i))
		}
		time.Sleep(2*time.Second + 500*time.Millisecond) // 00:00:00.5: W3 paid, W4 waits
		synctest.Wait()
		// Three lookups of the new day, queued behind W4.
		for i := 1; i <= 3; i++ {
			lookup(fmt.Sprintf("1730000091%d", i))
		}
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		var times []string
		for _, t := range at {
			times = append(times, t.Format("15:04:05"))
		}
		t.Logf("calls %q at %q; refused %v", order, times, refused)
		if err, ok := refused["17300000904"]; ok {
			t.Errorf("the lookup that waited since 23:59:58 was refused at its slot (00:00:01) with %q, "+
				"while the 3 lookups queued after midnight behind it were paid (calls at %q): "+
				"a call whose wait crossed midnight is held to the units of the calls queued behind it", err, times)
		}
		if len(c.budget.reserved) != 0 || len(c.budget.calling) != 0 {
			t.Errorf("budget units left held: reserved %v, calling %v", c.budget.reserved, c.budget.calling)
		}
	})
}

// A call that waits for the rate past midnight counts for the new day
// (README: "A call that waits for the rate past midnight counts for the new
// day"; confirm moves its unit to the new day). When the new day's budget is
// spent while such calls still wait, they give up their places at once, as
// the calls of a day spent while it is today do
// (TestCallsQueuedForTheRateGiveUpWhenTheBudgetIsSpent). Before, they
// waited on the old day's signal, never closed once that day was gone, and
// each waited out its rate slot before its lookup was written "skipped"
// (found by review).
func TestQueuedPastMidnightGiveUpWhenTheNewDayIsSpent(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		var calls atomic.Int64
		p := EnricherFunc(func(_ context.Context, l Lookup) (Result, error) {
			calls.Add(1)
			return paidRecycled(l), nil
		})
		c, err := NewCostControl(p, CostConfig{Secret: []byte("s"), QPS: 1, DailyBudget: 20, EmitSkipped: true, Location: time.UTC, Mode: "plain"})
		if err != nil {
			t.Fatal(err)
		}
		// 23:59:58 (the bubble starts at midnight).
		now := time.Now()
		midnight := time.Date(now.Year(), now.Month(), now.Day()+1, 0, 0, 0, 0, time.UTC)
		time.Sleep(midnight.Sub(now) - 2*time.Second)
		start := time.Now()
		var wg sync.WaitGroup
		var mu sync.Mutex
		var skippedAt []time.Duration
		for i := range 10 {
			wg.Go(func() {
				r, err := c.Enrich(context.Background(), Lookup{Mobile: fmt.Sprintf("173000008%02d", i), Date: "20240101"})
				if err == nil && r.Status == StatusSkipped {
					mu.Lock()
					skippedAt = append(skippedAt, time.Since(start))
					mu.Unlock()
				}
			})
		}
		synctest.Wait() // one call made at 23:59:58; nine wait for the rate with units of the old day
		time.Sleep(2*time.Second + 500*time.Millisecond)
		synctest.Wait() // 00:00:00.5: calls made at 23:59:59 (old day) and 00:00:00 (new day); seven still wait
		spentAt := time.Since(start)
		// Another instance's 19 calls of the new day, read from the ledger:
		// with this instance's call at 00:00:00, the new day's budget of 20 is spent.
		today := DayOf(time.Now(), time.UTC)
		for i := range 19 {
			c.apply(ledgerRecord{call: &ledgerCallKey{Day: today, Instance: "run.other", ID: fmt.Sprintf("JHo%d", i)}})
		}
		if s := c.CostStats(); s.BudgetRemaining != 0 {
			t.Fatalf("after the other instance's calls: %d left today, want 0", s.BudgetRemaining)
		}
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		if calls.Load() != 3 || len(skippedAt) != 7 {
			t.Fatalf("%d calls and %d lookups skipped; want 3 calls and the 7 waiting lookups skipped", calls.Load(), len(skippedAt))
		}
		for _, at := range skippedAt {
			if at != spentAt {
				t.Fatalf("new day's budget spent at +%v; the lookups waiting since before midnight were skipped at %v: "+
					"each waited for its rate slot, not given up when the day they count for was spent", spentAt, skippedAt)
			}
		}
		if len(c.budget.reserved) != 0 || len(c.budget.calling) != 0 {
			t.Errorf("budget units left held: reserved %v, calling %v", c.budget.reserved, c.budget.calling)
		}
	})
}
