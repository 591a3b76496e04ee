package processor

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// A lookup's retry is held to the instance's share of the budget as a new
// call is, its earlier requests that may have been billed counted as in
// flight: the other instances cannot see them before the lookup ends and
// writes them to the ledger. Exempt from the share, two instances whose
// first requests (their shares: 3 each of a budget of 5) timed out
// together retried until each alone had the whole budget in flight: 10
// requests paid, not the 6 that members − 1 over allows (found by review);
// counting the lookup's own timed-out requests as spent, not in flight,
// one instance made 4 requests with a share of 3 (found by review).
func TestRetryIsHeldToTheShare(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		var sent atomic.Int64
		timedOut, decided := make(chan struct{}), make(chan struct{})
		var deciding sync.WaitGroup // until every lookup's retries are decided, none ends
		deciding.Add(3)
		go func() { deciding.Wait(); close(decided) }()
		p := EnricherFunc(func(ctx context.Context, l Lookup) (Result, error) {
			sent.Add(1)
			<-timedOut // outcome unknown: may have been billed
			n := 1
			for range 2 { // juhe.retries: 2
				if BeforeRetryBilled(ctx, true) != nil {
					break
				}
				sent.Add(1)
				n++
			}
			deciding.Done()
			<-decided
			return Result{Mode: "plain", Attempts: n, Billable: n}, Unavailable(errors.New("no complete reply within juhe.timeout"))
		})
		c, err := NewCostControl(p, CostConfig{Secret: []byte("s"), DailyBudget: 5, Location: time.UTC, Mode: "plain"})
		if err != nil {
			t.Fatal(err)
		}
		c.SetMembers(2) // a share of ceil(5/2) = 3; the other instance has as many
		var wg sync.WaitGroup
		for i := range 3 {
			wg.Go(func() {
				_, _ = c.Enrich(context.Background(), Lookup{Mobile: fmt.Sprintf("173000095%02d", i), Date: "20240101"})
			})
		}
		synctest.Wait()
		close(timedOut)
		wg.Wait()
		if n := sent.Load(); n != 3 {
			t.Errorf("one instance of two, a budget of 5, its share of 3 timed out: %d requests sent; want its 3 (6 in all), no retry", n)
		}
		if s := c.CostStats(); s.BudgetSpentToday != 3 || s.PaidCalls != 3 {
			t.Errorf("cost stats %+v: want the 3 timed-out requests counted", s)
		}
	})
}

// One lookup of two on an instance (a share of 3): the slow one holds a
// unit, the other's first request times out and is retried; its retries
// fill the share, and no more (found by review: 4 requests while both ran).
func TestRetriesFillTheShareAndNoMore(t *testing.T) {
	t.Parallel()
	now := func() time.Time { return time.Date(2024, 1, 1, 12, 0, 0, 0, time.UTC) }
	const slow, retried = "17300000601", "17300000602"
	var requests atomic.Int64
	inFlight, release := make(chan struct{}), make(chan struct{})
	timedOut := errors.New("no complete reply within juhe.timeout")
	p := EnricherFunc(func(ctx context.Context, l Lookup) (Result, error) {
		requests.Add(1)
		if l.Mobile == slow {
			close(inFlight)
			<-release
			return Result{Mode: "plain", Attempts: 1, Billable: 1}, Unavailable(timedOut)
		}
		n := 1
		for range 2 { // juhe.retries: 2
			if BeforeRetry(ctx) != nil {
				break
			}
			requests.Add(1)
			n++
		}
		return Result{Mode: "plain", Attempts: n, Billable: n}, Unavailable(timedOut)
	})
	c, err := NewCostControl(p, CostConfig{Secret: []byte("s"), DailyBudget: 5, Location: time.UTC, Mode: "plain", Now: now})
	if err != nil {
		t.Fatal(err)
	}
	c.SetMembers(2)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = c.Enrich(context.Background(), Lookup{Mobile: slow, Date: "20240101"})
	}()
	<-inFlight
	_, _ = c.Enrich(context.Background(), Lookup{Mobile: retried, Date: "20240101"})
	made := requests.Load() // before the slow lookup ends: the other instance cannot have read any of them
	close(release)
	<-done
	if made != 3 {
		t.Errorf("one instance of two, a budget of 5: %d requests made while its lookups ran; want its share, 3", made)
	}
}
