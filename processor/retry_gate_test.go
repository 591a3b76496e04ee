package processor_test

// Found by a review of 8eb32d1: what a retry refused by processor.BeforeRetry does to
// the record. The Enricher below does what the juhe client does with
// juhe.WithRetryGate(ctx, processor.BeforeRetry) and what cmd/twosell's
// juheEnricher does with its error: when the gate refuses a retry, the query
// ends with the last attempt's fault (a transient/transport fault), which
// juheEnricher returns as processor.Unavailable.

import (
	"context"
	"errors"
	"testing"

	"github.com/twosell/twosell/processor"
	"github.com/twosell/twosell/processor/kafkatest"
)

// gatedProvider's first request is cut off (billable, uncertain); it then
// asks BeforeRetry for a retry, as the juhe client does. A refusal ends the
// lookup with the cut-off's fault, as the juhe client and juheEnricher do.
func gatedProvider(asking chan<- struct{}) processor.Enricher {
	return processor.EnricherFunc(func(ctx context.Context, l processor.Lookup) (processor.Result, error) {
		if asking != nil {
			asking <- struct{}{}
		}
		cutOff := errors.New("juhe: POST /twoSellTel/query: reading the reply failed: unexpected EOF")
		if err := processor.BeforeRetry(ctx); err != nil {
			if ctx.Err() != nil {
				return processor.Result{Mode: "plain", Attempts: 1, Billable: 1}, ctx.Err()
			}
			return processor.Result{Mode: "plain", Attempts: 1, Billable: 1}, processor.Unavailable(cutOff)
		}
		r := fakeAnswer(l)
		r.Attempts, r.Billable = 2, 2
		return r, nil
	})
}

// DESIGN: "reaching the cap pauses (or emits skipped, if configured)",
// whatever processing.on_unavailable says. A lookup whose retry the budget
// refused is held back (on_budget: pause), also with on_unavailable: emit.
// (It was written "unavailable" and committed, never to be enriched: the
// gate's ErrBudgetSpent was dropped for the last fault.)
func TestRetryRefusedForTheBudgetIsNotUnavailable(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 1)
	h.produceEvents(1)
	c, err := processor.NewCostControl(gatedProvider(nil), processor.CostConfig{Secret: []byte("s"), DailyBudget: 1, Mode: "plain"})
	if err != nil {
		t.Fatal(err)
	}
	cfg := h.config(c)
	cfg.Cost, cfg.EmitUnavailable = c, true
	p, stop := h.start(cfg)
	kafkatest.WaitFor(t, func() bool { s := p.Stats(); return s.HeldPartitions > 0 || s.Produced == 1 })
	s := p.Stats()
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if s.ByStatus[processor.StatusUnavailable] != 0 || s.HeldPartitions == 0 {
		t.Errorf("outputs by status %v, %d partitions held; want the record held back for the budget (on_budget: pause), not written unavailable",
			s.ByStatus, s.HeldPartitions)
	}
}

// pay gives a lookup up with errStopping when the partition stops while it
// waits for the rate: the record is abandoned, and the partition's next
// owner does it. So does a retry waiting for its rate token in BeforeRetry
// when the partition stops (revoke, shutdown). (It ended with the last
// fault, and with on_unavailable: emit the record was written "unavailable"
// within the stop's grace and committed.)
func TestRetryGateAtStopAbandonsTheRecord(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 1)
	h.produceEvents(1)
	asking := make(chan struct{}, 1)
	// qps 0.001: the first request takes the only token; a retry waits 1000 s.
	c, err := processor.NewCostControl(gatedProvider(asking), processor.CostConfig{Secret: []byte("s"), QPS: 0.001, Mode: "plain"})
	if err != nil {
		t.Fatal(err)
	}
	cfg := h.config(c)
	cfg.Cost, cfg.EmitUnavailable = c, true
	p, stop := h.start(cfg)
	<-asking // the retry waits for its rate token
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if s := p.Stats(); s.Produced != 0 {
		t.Errorf("stopped while the retry waited for the rate: %d outputs, by status %v; want the record abandoned (as pay's own rate wait does: errStopping)",
			s.Produced, s.ByStatus)
	}
}
