package main

// Found by a review of 8eb32d1 through the real path: juheEnricher, the juhe client
// with juhe.WithRetryGate(ctx, processor.BeforeRetry), and CostControl.

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/twosell/twosell/processor"
)

// A lookup whose first request breaks off, with a daily budget of 1: the
// retry finds the budget spent and is not made. The lookup's error is the
// budget's refusal (ErrBudgetSpent), which on_budget answers, not
// on_unavailable. (It was the cut-off's transport fault: with
// on_unavailable: emit the record was written "unavailable" and committed.)
func TestRetryRefusedForTheBudgetKeepsErrBudgetSpent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := &billingProvider{reply: func(n int) reply { return reply{body: paidReply(n), breakOff: true} }}
		cost, err := processor.NewCostControl(juheEnricher{fakeProviderClient(t, p, 2)}, processor.CostConfig{
			Secret: []byte("s"), DailyBudget: 1, Mode: "plain",
			Now: func() time.Time { return time.Date(2024, 6, 1, 12, 0, 0, 0, time.UTC) },
		})
		if err != nil {
			t.Fatal(err)
		}
		_, err = cost.Enrich(context.Background(), processor.Lookup{Mobile: "17312345678", Date: "20240101"})
		if p.billed != 1 {
			t.Fatalf("%d requests, want 1 (the retry refused for the budget)", p.billed)
		}
		if !errors.Is(err, processor.ErrBudgetSpent) {
			t.Errorf("the retry was refused for the budget; the lookup's error %q is not ErrBudgetSpent (on_unavailable: emit writes it \"unavailable\")", err)
		}
	})
}
