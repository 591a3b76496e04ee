package processor

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/twosell/twosell/processor/kafkatest"
)

// A lookup's first request, just before midnight, is refused with a known
// code (232701: not billable); its retry, after midnight, is cut off (its
// outcome unknown: billable). The one request that may have been billed was
// sent on 20240602, and its unit was reserved on that day (BeforeRetry), but
// pay's settlement took the first Billable units in order as the uncertain
// ones: it counted the 20240601 unit as paid and gave back the 20240602 one,
// and wrote the "unavailable" call record under day 20240601: the new day's
// budget, this instance's and every other's (from the ledger), was short by
// the request. (Found by review.) The Enricher says which requests may have
// been billed (Result.BillableRequests).
func TestUncertainRetryAfterMidnightCountsOnItsDay(t *testing.T) {
	k := kafkatest.New(t)
	topic := k.Name("ledger")
	clock := &fakeClock{t: time.Date(2024, 6, 1, 23, 59, 59, 0, time.UTC)}
	p := EnricherFunc(func(ctx context.Context, l Lookup) (Result, error) {
		// The first request: 232701, a known code, not billable. Midnight
		// passes during the backoff; the retry is cut off.
		clock.Add(2 * time.Second)
		if err := BeforeRetry(ctx); err != nil {
			t.Fatal(err)
		}
		return Result{Mode: "plain", Attempts: 2, Billable: 1, BillableRequests: 0b10}, Unavailable(errors.New("juhe: the reply broke off"))
	})
	a := ledgerCost(t, k, topic, p, clock, func(c *CostConfig) { c.DailyBudget = 10 })
	if _, err := a.Enrich(t.Context(), Lookup{Mobile: "17300000001", Date: "20240101"}); DispositionOf(err) != DispositionUnavailable {
		t.Fatalf("Enrich: %v, want unavailable", err)
	}
	var days []string
	if err := ReadLedgerCalls(t.Context(), []kgo.Opt{kgo.SeedBrokers(k.Brokers...)}, topic, func(c LedgerCall) error {
		days = append(days, c.Day+"/"+string(c.Status))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	b := ledgerCost(t, k, topic, &fakeProvider{}, clock, func(c *CostConfig) { c.DailyBudget = 10 })
	sa, sb := a.CostStats(), b.CostStats()
	if len(days) != 1 || days[0] != "20240602/unavailable" || sa.BudgetSpentToday != 1 || sb.BudgetSpentToday != 1 {
		t.Errorf("the uncertain request was sent on 20240602: ledger call records %v, this instance counts %d spent today, another %d; "+
			"want [20240602/unavailable], 1 and 1", days, sa.BudgetSpentToday, sb.BudgetSpentToday)
	}
}
