package processor

// Found by a review of "juhe.qps and the daily budget count requests, retries
// included" (8eb32d1): the days the budget units of a lookup's requests are
// settled on.

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/twosell/twosell/processor/kafkatest"
)

// A lookup's first request is refused with a known code (not billable) just
// before midnight; its retry, after midnight, is answered. The answer is the
// new day's, in this instance's budget as in the ledger. (The first unit,
// the old day's, was settled as paid and the answer's given back: this
// instance counted the answer on the old day, every other on the new one.)
func TestAnswerUnitSettledOnItsOwnDay(t *testing.T) {
	k, topic, clock, a := retryAfterMidnight(t,
		Result{Status: StatusRecycled, Res: 1, OrderID: "JH1", Source: SourceAPI, Mode: "plain", Attempts: 2, Billable: 1}, nil)
	if _, err := a.Enrich(t.Context(), Lookup{Mobile: "17300000001", Date: "20240101"}); err != nil {
		t.Fatal(err)
	}
	b := ledgerCost(t, k, topic, &fakeProvider{}, clock, func(c *CostConfig) { c.DailyBudget = 10 })
	sa, sb := a.CostStats(), b.CostStats()
	if sa.BudgetSpentToday != 1 || sb.BudgetSpentToday != 1 {
		t.Errorf("the answer came on 20240602: this instance counts %d spent today, another instance (from the ledger) %d; want 1 and 1",
			sa.BudgetSpentToday, sb.BudgetSpentToday)
	}
}

// As above, but the retry is cut off (its outcome unknown: billable). The
// one request that may have been billed was sent on 20240602, and its unit
// was reserved on that day (BeforeRetry), but pay's settlement took the
// first Billable units in order as the uncertain ones: it counted the
// 20240601 unit as paid and gave back the 20240602 one, and wrote the
// "unavailable" call record under day 20240601: the new day's budget, this
// instance's and every other's (from the ledger), was short by the request.
// (Found by review.) The Enricher says which requests may have been billed
// (Result.BillableRequests).
func TestUncertainRetryAfterMidnightCountsOnItsDay(t *testing.T) {
	k, topic, clock, a := retryAfterMidnight(t,
		Result{Mode: "plain", Attempts: 2, Billable: 1, BillableRequests: 0b10}, Unavailable(errors.New("juhe: the reply broke off")))
	if _, err := a.Enrich(t.Context(), Lookup{Mobile: "17300000001", Date: "20240101"}); DispositionOf(err) != DispositionUnavailable {
		t.Fatalf("Enrich: %v, want unavailable", err)
	}
	days := ledgerCallDays(t, k, topic)
	b := ledgerCost(t, k, topic, &fakeProvider{}, clock, func(c *CostConfig) { c.DailyBudget = 10 })
	sa, sb := a.CostStats(), b.CostStats()
	if len(days) != 1 || days[0] != "20240602/unavailable" || sa.BudgetSpentToday != 1 || sb.BudgetSpentToday != 1 {
		t.Errorf("the uncertain request was sent on 20240602: ledger call records %v, this instance counts %d spent today, another %d; "+
			"want [20240602/unavailable], 1 and 1", days, sa.BudgetSpentToday, sb.BudgetSpentToday)
	}
}

// retryAfterMidnight is a cost control with a ledger and a daily budget of
// 10 whose lookup's first request is refused with a known code (232701, not
// billable) just before midnight, and whose retry, after midnight, ends
// with res and err.
func retryAfterMidnight(t *testing.T, res Result, err error) (*kafkatest.Cluster, string, *fakeClock, *CostControl) {
	k := kafkatest.New(t)
	topic := k.Name("ledger")
	clock := &fakeClock{t: time.Date(2024, 6, 1, 23, 59, 59, 0, time.UTC)}
	p := EnricherFunc(func(ctx context.Context, l Lookup) (Result, error) {
		// The first request: refused. Midnight passes during the backoff.
		clock.Add(2 * time.Second)
		if err := BeforeRetry(ctx); err != nil {
			t.Fatal(err)
		}
		return res, err
	})
	return k, topic, clock, ledgerCost(t, k, topic, p, clock, func(c *CostConfig) { c.DailyBudget = 10 })
}

// pay re-reserves its first unit when the wait for the rate crossed
// midnight (README: "A call that waits for the rate past midnight counts for
// the new day"), and so does a retry. (BeforeRetry reserved its unit before
// it waited for the rate and never looked at the day again: a retry that
// went out on the new day was counted on the old one.) (synctest: fake
// time; the budget's clock is 500 ms behind the bubble's, whose start is
// then 23:59:59.5.)
func TestRetryRateWaitAcrossMidnight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		now := func() time.Time { return time.Now().Add(-500 * time.Millisecond) }
		sentOn := map[string]int{} // requests the provider received, by the budget's day
		p := EnricherFunc(func(ctx context.Context, l Lookup) (Result, error) {
			sentOn[DayOf(now(), time.UTC)]++ // the first request
			if l.Mobile != "17300000001" {
				return paidRecycled(l), nil
			}
			// 17300000001: the first request is cut off (uncertain); the
			// retry waits about 1 s for its rate token (qps 1).
			if err := BeforeRetry(ctx); err != nil {
				return Result{Attempts: 1, Billable: 1}, Unavailable(err)
			}
			sentOn[DayOf(now(), time.UTC)]++
			return Result{Status: StatusRecycled, Res: 1, OrderID: "JH1", Source: SourceAPI, Mode: "plain", Attempts: 2, Billable: 2}, nil
		})
		c, err := NewCostControl(p, CostConfig{Secret: []byte("s"), QPS: 1, DailyBudget: 2, Now: now, Mode: "plain"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Enrich(t.Context(), Lookup{Mobile: "17300000001", Date: "20240101"}); err != nil {
			t.Fatal(err)
		}
		// The new day's budget of 2: the retry above was one of its requests.
		for _, m := range []string{"17300000002", "17300000003"} {
			_, _ = c.Enrich(t.Context(), Lookup{Mobile: m, Date: "20240101"})
		}
		if sentOn["20000101"] > 2 {
			t.Errorf("daily_budget 2: the provider received %d requests on 20000101 (by day: %v); the retry sent after midnight was counted on 19991231",
				sentOn["20000101"], sentOn)
		}
	})
}

// A request the Enricher's transport sent again by itself (Result.Resent:
// net/http repeating a GET behind a proxy) took no unit of the budget, and
// may have been billed: it is counted as paid, by this instance and, from
// the ledger's "unavailable" call record, by every other. (It was not
// counted at all: one call and one answer, two requests billed.)
func TestRequestSentAgainByTheTransportIsPaid(t *testing.T) {
	k := kafkatest.New(t)
	topic := k.Name("ledger")
	clock := &fakeClock{t: time.Date(2024, 6, 1, 12, 0, 0, 0, time.UTC)}
	p := EnricherFunc(func(context.Context, Lookup) (Result, error) {
		return Result{Status: StatusRecycled, Res: 1, OrderID: "JH1", Source: SourceAPI, Mode: "plain", Attempts: 1, Billable: 1, Resent: 1}, nil
	})
	a := ledgerCost(t, k, topic, p, clock, func(c *CostConfig) { c.DailyBudget = 10 })
	if _, err := a.Enrich(t.Context(), Lookup{Mobile: "17300000001", Date: "20240101"}); err != nil {
		t.Fatal(err)
	}
	calls := ledgerCallDays(t, k, topic)
	b := ledgerCost(t, k, topic, &fakeProvider{}, clock, func(c *CostConfig) { c.DailyBudget = 10 })
	sa, sb := a.CostStats(), b.CostStats()
	if len(calls) != 2 || sa.BudgetSpentToday != 2 || sb.BudgetSpentToday != 2 || sa.PaidCalls != 2 {
		t.Errorf("one answer and one request sent again: ledger call records %v, this instance counts %d spent today and %d paid calls, another %d spent; "+
			"want 2 records (recycled and unavailable), 2, 2 and 2", calls, sa.BudgetSpentToday, sa.PaidCalls, sb.BudgetSpentToday)
	}
}

// ledgerCallDays returns the ledger's call records as day/status.
func ledgerCallDays(t *testing.T, k *kafkatest.Cluster, topic string) []string {
	t.Helper()
	var days []string
	if err := ReadLedgerCalls(t.Context(), []kgo.Opt{kgo.SeedBrokers(k.Brokers...)}, topic, func(c LedgerCall) error {
		days = append(days, c.Day+"/"+string(c.Status))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return days
}
