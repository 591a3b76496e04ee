package processor

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// paidRecycled is a provider's answer to l: recycled (res 1), one request,
// billed.
func paidRecycled(l Lookup) Result {
	return Result{Status: StatusRecycled, Res: 1, OrderID: "JH" + l.Mobile, Source: SourceAPI, Mode: "plain", Attempts: 1, Billable: 1}
}

// A call reserves its budget unit before it waits for the rate (juhe.qps);
// when the rate lets it go, the budget is looked at again (confirm): the
// other instances' calls the ledger reported meanwhile may have spent it.
// Before, with a rate of 1/s, every call in an instance's queue (minutes of
// them) was made after it learned that the budget was spent. (synctest:
// fake time for the rate; the other instance's calls come as the ledger
// delivers them, through apply.)
func TestCallsQueuedForTheRateSeeOthersSpending(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		calls := 0
		p := EnricherFunc(func(_ context.Context, l Lookup) (Result, error) {
			mu.Lock()
			calls++
			mu.Unlock()
			return paidRecycled(l), nil
		})
		c, err := NewCostControl(p, CostConfig{Secret: []byte("s"), QPS: 1, DailyBudget: 3, Location: time.UTC, Mode: "plain"})
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for _, m := range []string{"17300000401", "17300000402", "17300000403"} {
			wg.Go(func() { _, _ = c.Enrich(context.Background(), Lookup{Mobile: m, Date: "20240101"}) })
		}
		synctest.Wait() // one call made; two hold units and wait for the rate
		// Another instance's three calls of today, read from the ledger.
		today := DayOf(time.Now(), time.UTC)
		for i := range 3 {
			c.apply(ledgerRecord{call: &ledgerCallKey{Day: today, Instance: "run.other", ID: fmt.Sprintf("JHo%d", i)}})
		}
		if s := c.CostStats(); s.BudgetRemaining != 0 {
			t.Fatalf("after the other instance's calls: %d left, want 0", s.BudgetRemaining)
		}
		wg.Wait()
		if calls > 1 {
			t.Errorf("daily_budget 3: this instance made %d calls, %d of them after it knew the other had spent the budget "+
				"(%d today in all): a unit reserved before the rate wait is not checked again after it", calls, calls-1, c.CostStats().BudgetSpentToday)
		}
	})
}

// The same for a retry: BeforeRetry reserves a unit, waits for the rate,
// and looks at the budget again before the retry is made.
func TestRetryQueuedForTheRateSeesOthersSpending(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		retried := false
		p := EnricherFunc(func(ctx context.Context, l Lookup) (Result, error) {
			if err := BeforeRetry(ctx); err != nil {
				return Result{Mode: "plain", Attempts: 1}, Unavailable(fmt.Errorf("the first request timed out; no retry: %w", err))
			}
			retried = true
			return Result{Status: StatusRecycled, Res: 1, OrderID: "JH" + l.Mobile, Source: SourceAPI, Mode: "plain", Attempts: 2, Billable: 2}, nil
		})
		c, err := NewCostControl(p, CostConfig{Secret: []byte("s"), QPS: 1, DailyBudget: 2, Location: time.UTC, Mode: "plain"})
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() {
			_, err := c.Enrich(context.Background(), Lookup{Mobile: "17300000411", Date: "20240101"})
			done <- err
		}()
		synctest.Wait() // the first request made; its retry holds the second unit and waits for the rate
		today := DayOf(time.Now(), time.UTC)
		for i := range 2 {
			c.apply(ledgerRecord{call: &ledgerCallKey{Day: today, Instance: "run.other", ID: fmt.Sprintf("JHo%d", i)}})
		}
		err = <-done
		if retried {
			t.Errorf("daily_budget 2, spent by another instance while the retry waited for the rate: the retry was made")
		}
		if !errors.Is(err, ErrBudgetSpent) {
			t.Errorf("lookup error %v, want the budget's", err)
		}
	})
}

// A request the provider cannot have billed (a 503) gives its unit back
// before the lookup's retry is held to the share: the only lookup's retry
// after a passing fault fits a share of 1 (a budget of 10, 10 members; found
// by review: refused, the fault became a budget hold). One whose outcome is
// unknown (timed out) keeps its unit, and the retry waits as a new call
// would: the other instances cannot see that request yet.
func TestRetryAfterAnUnbilledRequestFitsTheShare(t *testing.T) {
	t.Parallel()
	for _, billed := range []bool{false, true} {
		var retryErr error
		p := EnricherFunc(func(ctx context.Context, l Lookup) (Result, error) {
			if retryErr = BeforeRetryBilled(ctx, billed); retryErr != nil {
				return Result{Mode: "plain", Attempts: 1, Billable: btoi(billed), BillableRequests: uint64(btoi(billed))},
					Unavailable(fmt.Errorf("first request failed; no retry: %w", retryErr))
			}
			return Result{Status: StatusRecycled, Res: 1, OrderID: "JH" + l.Mobile, Source: SourceAPI, Mode: "plain", Attempts: 2,
				Billable: 1 + btoi(billed), BillableRequests: 0b10 | uint64(btoi(billed))}, nil
		})
		c, err := NewCostControl(p, CostConfig{Secret: []byte("s"), DailyBudget: 10, Location: time.UTC, Mode: "plain"})
		if err != nil {
			t.Fatal(err)
		}
		c.SetMembers(10) // share: ceil(10 / 10) = 1
		_, err = c.Enrich(context.Background(), Lookup{Mobile: "17300000501", Date: "20240101"})
		s := c.CostStats()
		switch {
		case !billed && (retryErr != nil || err != nil || s.BudgetSpentToday != 1):
			t.Errorf("first request not billed: retry refused (%v); lookup error %v; %d spent, want the answer's 1", retryErr, err, s.BudgetSpentToday)
		case billed && (!errors.Is(retryErr, errBudgetInFlight) || !errors.Is(err, ErrBudgetSpent) || s.BudgetSpentToday != 1):
			t.Errorf("first request timed out: retry %v, lookup error %v, %d spent; want the retry held for the share, the request counted", retryErr, err, s.BudgetSpentToday)
		}
	}
}

// When the share shrinks (the group grew) while calls wait for the rate,
// the calls that waited longest are made first, one in each slot of the new
// rate: the share holds the calls being made, not the queue. Before, the
// units of the whole queue counted against the new share, and the oldest
// calls were refused at their slots (each a slot with no call) until the
// queue fitted it: at 1/s, going from 1 member to 2 with 8 calls queued made
// no call for 8 seconds and held back the 4 oldest lookups. (synctest: fake
// time for the rate.)
func TestCallsQueuedWhenTheShareShrinksGoOldestFirst(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		var mu sync.Mutex
		var at []time.Duration
		var order []string
		p := EnricherFunc(func(_ context.Context, l Lookup) (Result, error) {
			mu.Lock()
			at = append(at, time.Since(start))
			order = append(order, l.Mobile)
			mu.Unlock()
			return paidRecycled(l), nil
		})
		c, err := NewCostControl(p, CostConfig{Secret: []byte("s"), QPS: 1, DailyBudget: 9, Location: time.UTC, Mode: "plain"})
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		var refused []string
		var want []string
		for i := range 9 {
			mobile := fmt.Sprintf("173000006%02d", i)
			want = append(want, mobile)
			wg.Go(func() {
				if _, err := c.Enrich(context.Background(), Lookup{Mobile: mobile, Date: "20240101"}); err != nil {
					mu.Lock()
					refused = append(refused, fmt.Sprintf("%s: %v", mobile, err))
					mu.Unlock()
				}
			})
			synctest.Wait() // queued in this order
		}
		// One call made at once; 8 hold units and wait for the rate (1/s).
		c.SetMembers(2) // 8 left: a share of 4 calls being made at once, at 0.5/s
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		if len(refused) > 0 {
			t.Fatalf("lookups refused: %q; want every one of the 9 paid, the budget being 9", refused)
		}
		if !slices.Equal(order, want) {
			t.Errorf("calls made in the order %q; want the order the lookups came in, %q", order, want)
		}
		for i := 1; i < len(at); i++ {
			if gap := at[i] - at[i-1]; gap > 2*time.Second {
				t.Errorf("calls at %v: %v between calls %d and %d; want one in each slot of the new rate (2s at 0.5/s)", at, gap, i, i+1)
			}
		}
		if got := c.budget.spent(); got != 9 {
			t.Errorf("budget spent: %d; want 9", got)
		}
	})
}

// Once the budget is spent (here by another instance, as the ledger
// reports), the calls waiting for the rate give up their places at once:
// with on_budget: emit their lookups are written "skipped" then, not each
// when its rate slot comes (at 1/s, a queue of 256 took over 4 minutes).
// (synctest: fake time for the rate.)
func TestCallsQueuedForTheRateGiveUpWhenTheBudgetIsSpent(t *testing.T) {
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
		start := time.Now()
		var wg sync.WaitGroup
		var mu sync.Mutex
		var skippedAt []time.Duration
		for i := range 10 {
			wg.Go(func() {
				r, err := c.Enrich(context.Background(), Lookup{Mobile: fmt.Sprintf("173000007%02d", i), Date: "20240101"})
				if err == nil && r.Status == StatusSkipped {
					mu.Lock()
					skippedAt = append(skippedAt, time.Since(start))
					mu.Unlock()
				}
			})
		}
		synctest.Wait() // one call made; nine hold units and wait for the rate
		// Another instance's 19 calls of today, read from the ledger: the
		// budget of 20 is spent.
		today := DayOf(time.Now(), time.UTC)
		for i := range 19 {
			c.apply(ledgerRecord{call: &ledgerCallKey{Day: today, Instance: "run.other", ID: fmt.Sprintf("JHo%d", i)}})
		}
		wg.Wait()
		if calls.Load() != 1 || len(skippedAt) != 9 {
			t.Fatalf("%d calls and %d lookups skipped; want 1 call and the 9 waiting lookups skipped", calls.Load(), len(skippedAt))
		}
		for _, at := range skippedAt {
			if at != 0 {
				t.Fatalf("lookups skipped at %v; want each at once when the budget was spent, not when its rate slot came", skippedAt)
			}
		}
	})
}
