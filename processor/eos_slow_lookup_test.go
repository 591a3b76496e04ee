package processor_test

import (
	"context"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twosell/twosell/processor"
	"github.com/twosell/twosell/processor/kafkatest"
)

// Exactly-once, a batch still waiting for the provider at half the
// transaction timeout is aborted and fetched again in smaller batches;
// smaller batches cannot help one lookup that takes longer, and the
// processor says so as an error (the command refuses such a configuration
// of its provider: config's TestTransactionTimeoutCoversALookup). Found by
// review: only a warning about smaller batches was logged, for ever.
func TestSlowLookupOfOneRecordBatchIsAnError(t *testing.T) {
	const txnTimeout = 4 * time.Second
	h := newHarnessMode(t, 1, true)
	h.kafka.Produce(event(h.in, 0, false))
	var canceled atomic.Int64
	cfg := h.config(processor.EnricherFunc(func(ctx context.Context, l processor.Lookup) (processor.Result, error) {
		<-ctx.Done() // longer than any batch may wait
		canceled.Add(1)
		return processor.Result{}, ctx.Err()
	}))
	cfg.TransactionTimeout = txnTimeout
	var said atomic.Int64
	cfg.Logger = slog.New(countingHandler{next: cfg.Logger.Handler(), match: "one record's lookup took longer than half the transaction timeout", n: &said})
	p, stop := h.start(cfg)
	kafkatest.WaitFor(t, func() bool { return said.Load() >= 1 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if s := p.Stats(); s.Commits != 0 || canceled.Load() == 0 {
		t.Errorf("%+v, %d lookups canceled; want no commit, the lookup canceled", s, canceled.Load())
	}
}
