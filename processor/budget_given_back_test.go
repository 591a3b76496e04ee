package processor

import (
	"context"
	"errors"
	"testing"
	"time"
)

// A lookup of more than 64 requests (juhe.retries 65) whose first request
// is refused with a known code (not billed: its unit given back by
// BeforeRetryBilled) and whose 65 retries all time out (each may have been
// billed). The juhe client reports Billable 65 and BillableRequests for the
// first 64 only, so pay settles by count, the first Billable units of
// those not given back: counting the given-back one among them, the last
// request's unit was given back though it may have been billed (found by
// review).
func TestOver64RequestsWithAGivenBackUnit(t *testing.T) {
	const retries = 65
	p := EnricherFunc(func(ctx context.Context, l Lookup) (Result, error) {
		var bits uint64
		billable := 0
		billed := false // the first request: refused with a known code
		for retry := 1; retry <= retries; retry++ {
			if err := BeforeRetryBilled(ctx, billed); err != nil {
				t.Fatalf("retry %d refused: %v", retry, err)
			}
			billed = true // every retry times out
			billable++
			if attempt := retry + 1; attempt <= 64 {
				bits |= 1 << (attempt - 1)
			}
		}
		return Result{Mode: "plain", Attempts: retries + 1, Billable: billable, BillableRequests: bits},
			Unavailable(errors.New("no complete reply within juhe.timeout"))
	})
	now := func() time.Time { return time.Date(2024, 1, 1, 12, 0, 0, 0, time.UTC) }
	c, err := NewCostControl(p, CostConfig{Secret: []byte("s"), DailyBudget: 1000, Location: time.UTC, Mode: "plain", Now: now})
	if err != nil {
		t.Fatal(err)
	}
	_, _ = c.Enrich(context.Background(), Lookup{Mobile: "17300000701", Date: "20240101"})
	if s := c.CostStats(); s.BudgetSpentToday != retries || s.PaidCalls != retries {
		t.Errorf("65 requests that may have been billed (the first, refused, was not): %d spent today, %d paid calls; want 65 and 65",
			s.BudgetSpentToday, s.PaidCalls)
	}
}

// A request sent again by the transport (Result.Resent) is counted on the
// day of the lookup's last request, given back or not. A lookup's first request
// times out at 23:59:59 (unit of 20240601, may have been billed); its
// retry goes out at 00:00:01 (unit of 20240602), is written, sent again by
// net/http (Resent 1) and answered with a known code (not billed: its unit
// given back by the next BeforeRetryBilled, which then finds today's budget
// spent by the other instances). The request sent again was made on
// 20240602; with the given-back unit's day erased, it was counted on
// 20240601, and today's budget missed it (found by review).
func TestResentAfterMidnightCountsOnItsDay(t *testing.T) {
	clock := &fakeClock{t: time.Date(2024, 6, 1, 23, 59, 59, 0, time.UTC)}
	var c *CostControl
	p := EnricherFunc(func(ctx context.Context, l Lookup) (Result, error) {
		clock.Add(2 * time.Second) // the first request times out; midnight passes in the backoff
		if err := BeforeRetryBilled(ctx, true); err != nil {
			t.Fatalf("first retry refused: %v", err)
		}
		// The retry: written, sent again by the transport, answered with a
		// known code. Meanwhile the other instances spent today's budget.
		c.budget.count("20240602", 10)
		if err := BeforeRetryBilled(ctx, false); err == nil {
			t.Fatal("second retry made with today's budget spent")
		}
		return Result{Mode: "plain", Attempts: 2, Billable: 1, BillableRequests: 0b01, Resent: 1},
			Unavailable(errors.New("juhe: transient error code"))
	})
	var err error
	c, err = NewCostControl(p, CostConfig{Secret: []byte("s"), DailyBudget: 10, Location: time.UTC, Mode: "plain", Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	_, _ = c.Enrich(context.Background(), Lookup{Mobile: "17300000702", Date: "20240101"})
	c.budget.mu.Lock()
	got := map[string]int64{"20240601": c.budget.days["20240601"], "20240602": c.budget.days["20240602"]}
	c.budget.mu.Unlock()
	if got["20240601"] != 1 || got["20240602"] != 11 {
		t.Errorf("counted by day %v; want 20240601: 1 (the first request), 20240602: 11 (the others' 10 and the request sent again after midnight)", got)
	}
}
