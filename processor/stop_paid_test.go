package processor_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/twosell/twosell/processor"
	"github.com/twosell/twosell/processor/kafkatest"
)

// A call in flight when the processor is stopped is paid for whatever
// happens next, so the stop lets it finish (within shutdown_timeout) and
// its answer reaches the ledger: the next run, a new instance reading the
// same ledger, answers the record without paying for it again. Exactly
// once, the stop used to cancel the call at once, and every restart paid
// for the calls a stop had cut (found by review in the twenty-third
// session; fixed in the twenty-fourth).
func TestStopDoesNotPayTwiceForTheCallInFlight(t *testing.T) {
	bothModes(t, func(t *testing.T, eos bool) {
		h := newHarnessMode(t, 1, eos)
		h.kafka.Produce(event(h.in, 1, false)) // res 1: a fact the knowledge keeps
		var calls atomic.Int64
		started := make(chan struct{}, 1)
		release := make(chan struct{})
		provider := processor.EnricherFunc(func(ctx context.Context, l processor.Lookup) (processor.Result, error) {
			if calls.Add(1) == 1 {
				started <- struct{}{}
				select { // the first call ends once the test says so, or when it is canceled
				case <-release:
				case <-ctx.Done():
				}
			}
			if err := ctx.Err(); err != nil { // canceled before the answer came: no answer
				return processor.Result{}, err
			}
			return fakeAnswer(l), nil
		})

		cost, ledger, _ := h.ledgerCost(provider, nil)
		cfg := h.config(cost)
		// Without tracing, a canceled record's call is canceled at once
		// (record.go, lookup): with it, on another goroutine, and the
		// answer could come first.
		cfg.TracerProvider = noop.NewTracerProvider()
		p, err := processor.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		ctx, stop := context.WithCancel(t.Context())
		ran := make(chan error, 1)
		go func() { ran <- p.Run(ctx) }()
		<-started
		stop() // the call is in flight; its answer comes after the stop began
		close(release)
		if err := <-ran; err != nil {
			t.Fatalf("Run = %v after a graceful stop", err)
		}
		cost.Close(context.Background()) // the ledger's writes are flushed

		// The next run: another instance, whose knowledge is the ledger's.
		cost2, err := processor.NewCostControl(provider, processor.CostConfig{
			Secret: []byte("s"), // ledgerCost's
			Ledger: &processor.LedgerConfig{ClientOpts: []kgo.Opt{kgo.SeedBrokers(h.kafka.Brokers...)}, Topic: ledger},
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := cost2.Open(t.Context()); err != nil {
			t.Fatal(err)
		}
		defer cost2.Close(context.Background())
		p2, stop2 := h.start(h.config(cost2))
		waitCtx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		// The first run may have committed the record (at least once; and
		// exactly once, its batch being the record in flight): the second
		// then has nothing to do, and is stopped once it has joined, not
		// during its topic checks (which a stop ends with an error).
		kafkatest.WaitFor(t, p2.Connected)
		h.kafka.Consume(waitCtx, countAtLeast(1), h.out)
		if err := stop2(); err != nil {
			t.Fatalf("the second Run = %v", err)
		}
		got := h.kafka.ConsumeAll(waitCtx, h.out)
		if len(got) != 1 {
			t.Fatalf("%d outputs, want the event's 1", len(got))
		}
		if n := calls.Load(); n != 1 {
			t.Errorf("%d paid calls for one number, want 1: the call in flight at the stop was paid for again (second run: %+v)", n, p2.Stats())
		}
	})
}
