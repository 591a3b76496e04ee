package processor_test

import (
	"context"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/twosell/twosell/processor"
	"github.com/twosell/twosell/processor/kafkatest"
)

// An input written in transactions, some aborted (found by a walkthrough):
// at least once, twosell read uncommitted, and enriched, paid for and wrote
// the aborted records (30 of 60, 60 paid calls); and its commits stopped at
// the offset after the last record, short of the end by the trailing
// markers, so the lag never reached 0. Here e-0 and e-1 are committed, e-2
// and e-3 aborted, e-4 committed, e-5 aborted last.
func TestTransactionalInputAtLeastOnce(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 1)
	tx := h.kafka.Client(kgo.TransactionalID(h.kafka.Name("upstream")))
	for _, batch := range []struct {
		events []int
		commit bool
	}{{[]int{0, 1}, true}, {[]int{2, 3}, false}, {[]int{4}, true}, {[]int{5}, false}} {
		if err := tx.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for _, i := range batch.events {
			if err := tx.ProduceSync(t.Context(), event(h.in, i, false)).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		if err := tx.EndTransaction(t.Context(), kgo.TransactionEndTry(batch.commit)); err != nil {
			t.Fatal(err)
		}
	}
	adm := kadm.NewClient(h.kafka.Client())
	var end int64
	kafkatest.WaitFor(t, func() bool { // a real broker writes the last marker after EndTransaction returns
		ends, err := adm.ListEndOffsets(t.Context(), h.in)
		if err != nil {
			t.Fatal(err)
		}
		o, _ := ends.Lookup(h.in, 0)
		end = o.Offset
		return end == 10 // 6 records, 4 markers
	})

	var calls atomic.Int32
	_, stop := h.start(h.config(processor.EnricherFunc(func(_ context.Context, l processor.Lookup) (processor.Result, error) {
		calls.Add(1)
		return fakeAnswer(l), nil
	})))
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	h.kafka.Consume(ctx, countAtLeast(3), h.out)
	kafkatest.WaitFor(t, func() bool { return h.kafka.CommittedOffsets(h.group, h.in)[0] == end })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range h.kafka.ConsumeAll(ctx, h.out) {
		ids = append(ids, eventID(t, r.Value))
	}
	if slices.Sort(ids); !slices.Equal(ids, []string{"e-0", "e-1", "e-4"}) || calls.Load() != 3 {
		t.Errorf("outputs %v after %d lookups; want e-0, e-1 and e-4, the committed ones, after 3", ids, calls.Load())
	}
}
