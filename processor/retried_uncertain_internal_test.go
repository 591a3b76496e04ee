package processor

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// retriedEnricher is what CostControl.enrichDeferred returns for a lookup
// whose first attempt ends with a request cut off (Unavailable, its
// "unavailable" ledger record in flight: Result.durable) and whose retry,
// once the record was held back, answers (its own ledger write in flight).
type retriedEnricher struct {
	n                      atomic.Int32
	uncertain, answerWrite *durable
}

func (e *retriedEnricher) Enrich(context.Context, Lookup) (Result, error) { panic("deferred only") }

func (e *retriedEnricher) enrichDeferred(_ context.Context, _ Lookup) (Result, error) {
	if e.n.Add(1) == 1 {
		return Result{Mode: "plain", Attempts: 1, Billable: 1, durable: e.uncertain}, Unavailable(errors.New("cut off"))
	}
	return Result{Status: StatusNotRecycled, Res: 2, OrderID: "JH1", Source: SourceAPI, Mode: "plain", Attempts: 1, durable: e.answerWrite}, nil
}

// With on_unavailable: pause (the default), a lookup whose first attempt
// paid an uncertain request is held back and retried: the retry's answer
// is handed over once the ledger holds the first attempt's "unavailable"
// record too, not its own write only.
func TestRetriedAnswerWaitsForEarlierUncertainRecord(t *testing.T) {
	cl, err := kgo.NewClient(kgo.SeedBrokers("127.0.0.1:1")) // never dialed: pausing is local
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	e := &retriedEnricher{uncertain: &durable{pending: 1}, answerWrite: &durable{pending: 2}}
	p := &Processor{cfg: Config{Enricher: e, RetryBackoff: time.Millisecond, MaxRetryBackoff: time.Millisecond,
		MaxBufferedRecords: 10, MaxBufferedBytes: 1 << 20, Ordering: OrderingNone},
		stats: newCounters(), log: slog.New(slog.DiscardHandler)}
	p.setClient(cl)
	w := newPartitionWorker(p, topicPartition{"t", 0})
	defer w.stopFn()
	res, err := w.lookup(t.Context(), t.Context(), Lookup{Mobile: "17312345678", Date: "20240102"}, 0, &recordTiming{})
	if err != nil || res.Status != StatusNotRecycled || e.n.Load() != 2 {
		t.Fatalf("lookup: %v %v after %d attempts", res.Status, err, e.n.Load())
	}
	// The answer's two records are acknowledged; the first attempt's
	// uncertain record is not (a slow or failing ledger).
	for range 2 {
		if then, err, done := e.answerWrite.settle(nil); done {
			for _, f := range then {
				f(err)
			}
		}
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel() // wait answers at once: done, or not yet
	if res.durable == nil || res.durable.wait(ctx) == nil {
		t.Fatalf("the answer's output is handed over while the first attempt's uncertain ledger record is still in flight (durable %p, uncertain %p)",
			res.durable, e.uncertain)
	}
}
