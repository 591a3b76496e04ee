package processor

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twosell/twosell/processor/kafkatest"
)

// Instances learn of each other's calls only from the ledger, where a call's
// record is written after its answer. Two instances that started together
// with a budget of 5 each reserved all 5 units and made 10 calls (found by
// review). Each now holds at most its share of what is left in flight (5
// divided among 2 members, rounded up: 3): 6 calls at most, members − 1 over.
func TestTwoInstancesShareWhatIsLeftOfTheBudget(t *testing.T) {
	t.Parallel()
	k := kafkatest.New(t)
	topic := k.Name("ledger")
	clock := &fakeClock{t: t0}
	act := map[string]string{}
	for i := range 10 {
		act[fmt.Sprintf("173000003%02d", i)] = "20200101"
	}
	p := &fakeProvider{activation: act, gate: make(chan struct{}), started: make(chan Lookup, 20)}
	budget := func(c *CostConfig) { c.DailyBudget = 5 }
	a := ledgerCost(t, k, topic, p, clock, budget)
	b := ledgerCost(t, k, topic, p, clock, budget)
	a.SetMembers(2)
	b.SetMembers(2)
	var wg sync.WaitGroup
	refused := make(chan error, 10)
	for i := range 10 {
		c := a
		if i%2 == 1 {
			c = b
		}
		wg.Go(func() {
			if _, err := c.Enrich(t.Context(), Lookup{Mobile: fmt.Sprintf("173000003%02d", i), Date: "20240101"}); err != nil {
				refused <- err
			}
		})
	}
	// No call is answered before every lookup has made its call or been
	// refused: neither instance can have heard of the other's calls.
	deadline := time.After(30 * time.Second)
	started, held := 0, 0
	for started+held < 10 {
		select {
		case <-p.started:
			started++
		case err := <-refused:
			if !errors.Is(err, errBudgetInFlight) {
				t.Errorf("a lookup refused with %v, want the budget in flight", err)
			}
			held++
		case <-deadline:
			t.Fatalf("%d calls started, %d lookups refused", started, held)
		}
	}
	close(p.gate)
	wg.Wait()
	if started != 6 || p.count() != 6 {
		t.Errorf("daily_budget 5, two instances starting together: %d calls started (%d made), want 3 each", started, p.count())
	}
	waitFor(t, "each instance counts the other's calls", func() bool {
		return a.CostStats().BudgetSpentToday == 6 && b.CostStats().BudgetSpentToday == 6
	})
	if _, err := a.Enrich(t.Context(), Lookup{Mobile: "17300000399", Date: "20240101"}); !errors.Is(err, ErrBudgetSpent) || errors.Is(err, errBudgetInFlight) {
		t.Errorf("after the budget is spent: %v, want it spent", err)
	}
}
