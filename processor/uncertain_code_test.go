package processor

// Found by a review of pay's handling of a retry BeforeRetry refused.

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/twosell/twosell/processor/kafkatest"
)

// A lookup's first request is answered 10014 (billable: its outcome is
// uncertain, the provider's note says to check the order); the retry is
// refused for the budget (daily_budget 1: the lookup's own unit is the last
// one). The ledger's call record of the uncertain request keeps the
// Enricher's code. (pay returned noBudget's result through its named result,
// which its deferred settlement handed to uncertainCalls: the code was lost.)
func TestRefusedRetryKeepsTheUncertainCallsCode(t *testing.T) {
	k := kafkatest.New(t)
	topic := k.Name("ledger")
	clock := &fakeClock{t: t0}
	p := EnricherFunc(func(ctx context.Context, l Lookup) (Result, error) {
		res := Result{Mode: "plain", Code: 10014, Attempts: 1, Billable: 1}
		if err := BeforeRetry(ctx); err == nil {
			t.Error("the retry was not refused: daily_budget 1 and the first request holds the unit")
		}
		return res, Unavailable(errors.New("juhe: 10014 系统内部异常"))
	})
	a := ledgerCost(t, k, topic, p, clock, func(c *CostConfig) { c.DailyBudget = 1 })
	_, err := a.Enrich(t.Context(), Lookup{Mobile: "17300000010", Date: "20200101"})
	if !errors.Is(err, ErrBudgetSpent) {
		t.Fatalf("Enrich: %v, want the budget refusal", err)
	}
	a.Close(t.Context())
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var calls []LedgerCall
	if err := ReadLedgerCalls(ctx, []kgo.Opt{kgo.SeedBrokers(k.Brokers...)}, topic, func(c LedgerCall) error {
		calls = append(calls, c)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(calls) != 1 || calls[0].Code != 10014 || calls[0].Mode != "plain" {
		t.Errorf("ledger call records %+v; want one, status unavailable, code 10014, mode plain (the uncertain request's)", calls)
	}
}
