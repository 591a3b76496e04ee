package processor_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/twosell/twosell/processor"
	"github.com/twosell/twosell/processor/kafkatest"
)

// A paid answer's output is written only once the ledger holds the call:
// while the broker holds the ledger's records back, the lookups are done
// and their slots free, but no output appears; released, they all do.
func TestOutputWaitsForTheLedger(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 2)
	if h.kafka.Fake == nil {
		t.Skip("holds produce requests back with kfake's control functions")
	}
	cost, calls, held, releaseLedger := h.heldLedgerCost()

	const n = 20
	in := h.produceEvents(n)
	cfg := h.config(cost)
	cfg.Ordering = processor.OrderingNone // else a key's next lookup waits for its output
	p, stop := h.start(cfg)
	defer stop()

	kafkatest.WaitFor(t, func() bool {
		return calls.Load() == n && held.Load() > 0 && p.Stats().InFlight == 0
	})
	// Nothing may come out meanwhile; a wrong engine would have written
	// the outputs right after the lookups.
	if early := h.outputsSoFar(); early != 0 {
		t.Fatalf("%d outputs written while the ledger held their calls back", early)
	}
	releaseLedger()
	if out := h.kafka.Consume(t.Context(), countAtLeast(len(in)), h.out); len(out) != n {
		t.Fatalf("%d outputs after the ledger wrote, want %d", len(out), n)
	}
}

// The lookups that waited for a paid call, and that its answer settles,
// wait for its ledger write too: their outputs cite its order id, which a
// crash before the write would have left out of the ledger (the call's own
// record was held back, and paid for again after the restart).
func TestWaitersOutputsWaitForTheLedger(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 2)
	if h.kafka.Fake == nil {
		t.Skip("holds produce requests back with kfake's control functions")
	}
	const n = 12
	waiting := make(chan struct{})
	var calls atomic.Int64
	var cost *processor.CostControl
	cost, ledgerTopic, ledgerID := h.ledgerCost(processor.EnricherFunc(func(ctx context.Context, l processor.Lookup) (processor.Result, error) {
		calls.Add(1)
		select { // until the other lookups of the number wait for this call
		case <-waiting:
		case <-ctx.Done():
			return processor.Result{}, ctx.Err()
		}
		return fakeAnswer(l), nil
	}), nil)
	held, releaseLedger := h.holdLedger(ledgerTopic, ledgerID)
	var in []*kgo.Record
	for i := range n { // one number, one date: one call answers them all
		r := event(h.in, 0, false)
		r.Key = fmt.Appendf(nil, "u-%d", i)
		in = append(in, r)
	}
	h.kafka.Produce(in...)
	cfg := h.config(cost)
	cfg.Ordering = processor.OrderingNone
	p, stop := h.start(cfg)
	defer stop()

	kafkatest.WaitFor(t, func() bool { return cost.CostStats().Coalesced == n-1 })
	close(waiting)
	kafkatest.WaitFor(t, func() bool { return held.Load() > 0 && p.Stats().InFlight == 0 })
	if early := h.outputsSoFar(); early != 0 {
		t.Fatalf("%d outputs written while the ledger held back the call they cite", early)
	}
	releaseLedger()
	if out := h.kafka.Consume(t.Context(), countAtLeast(n), h.out); len(out) != n || calls.Load() != 1 {
		t.Fatalf("%d outputs after the ledger wrote, %d calls; want %d and 1", len(out), calls.Load(), n)
	}
}

// An answer after requests whose outcome is unknown (paid, and written to
// the ledger as "unavailable" call records) is written once the ledger holds
// those records too: a crash before them would leave the restart's budget
// short of them. So is an "unavailable" output (on_unavailable: emit) after
// such requests.
func TestOutputWaitsForTheUncertainRequestsRecords(t *testing.T) {
	t.Parallel()
	for _, emitUnavailable := range []bool{false, true} {
		t.Run(fmt.Sprint("emit unavailable ", emitUnavailable), func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, 2)
			if h.kafka.Fake == nil {
				t.Skip("holds produce requests back with kfake's control functions")
			}
			var calls atomic.Int64
			cost, ledgerTopic, ledgerID := h.ledgerCost(processor.EnricherFunc(func(ctx context.Context, l processor.Lookup) (processor.Result, error) {
				calls.Add(1)
				if err := processor.BeforeRetry(ctx); err != nil { // as the juhe client asks before its retry
					return processor.Result{}, err
				}
				if emitUnavailable { // the first request cut off, the second refused
					return processor.Result{Mode: "plain", Attempts: 2, Billable: 1}, processor.Unavailable(errors.New("cut off"))
				}
				res := fakeAnswer(l) // after a request cut off
				res.Attempts, res.Billable = 2, 2
				return res, nil
			}), nil)
			held, release := h.holdLedgerRecords(ledgerTopic, ledgerID, []byte(`"status":"unavailable"`))

			const n = 6
			in := h.produceEvents(n)
			cfg := h.config(cost)
			cfg.Ordering = processor.OrderingNone
			cfg.EmitUnavailable = emitUnavailable
			p, stop := h.start(cfg)
			defer stop()

			kafkatest.WaitFor(t, func() bool { return calls.Load() == n && held.Load() > 0 && p.Stats().InFlight == 0 })
			if early := h.outputsSoFar(); early != 0 {
				t.Fatalf("%d outputs written while the ledger held the uncertain requests' records back", early)
			}
			release()
			if out := h.kafka.Consume(t.Context(), countAtLeast(len(in)), h.out); len(out) != n {
				t.Fatalf("%d outputs after the ledger wrote, want %d", len(out), n)
			}
		})
	}
}

// A paid answer whose ledger write fails is kept: its output is written, and
// the failure counted and logged once per call, with its order id.
func TestLedgerWriteFailureKeepsTheAnswer(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 2)
	if h.kafka.Fake == nil {
		t.Skip("refuses the ledger's produce requests with kfake's control functions")
	}
	var logs safeBuffer
	cost, ledgerTopic, ledgerID := h.ledgerCost(processor.EnricherFunc(func(_ context.Context, l processor.Lookup) (processor.Result, error) {
		return fakeAnswer(l), nil
	}), slog.New(slog.NewTextHandler(&logs, nil)))
	h.kafka.Fake.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		h.kafka.Fake.KeepControl()
		pr := req.(*kmsg.ProduceRequest)
		if !kafkatest.WritesTopic(pr, ledgerTopic, ledgerID) {
			return nil, nil, false
		}
		return kafkatest.Refusal(pr, kerr.InvalidRecord), nil, true // not retried
	})

	const n = 10
	in := h.produceEvents(n)
	p, stop := h.start(h.config(cost))
	defer stop()
	if out := h.kafka.Consume(t.Context(), countAtLeast(len(in)), h.out); len(out) != n {
		t.Fatalf("%d outputs, want %d: a failed ledger write keeps the answer", len(out), n)
	}
	kafkatest.WaitFor(t, func() bool { return p.Stats().Produced == n })
	s := cost.CostStats()
	if s.PaidCalls != n || s.LedgerErrors != n {
		t.Errorf("%d paid calls, %d ledger errors; want %d of each (one per call, not per record)", s.PaidCalls, s.LedgerErrors, n)
	}
	if got := strings.Count(logs.String(), "a paid answer could not be written to the ledger"); got != n {
		t.Errorf("%d warnings, want %d:\n%s", got, n, logs.String())
	}
	if !strings.Contains(logs.String(), "order_id=") {
		t.Errorf("the warnings do not name the order id:\n%s", logs.String())
	}
}

// holdLedger holds back the broker's answers to produce requests that
// write the ledger topic until release is called (at the latest at the
// test's cleanup, before the cost control's Close, which flushes the
// ledger); held counts the requests held.
func (h *harness) holdLedger(topic string, id [16]byte) (held *atomic.Int64, release func()) {
	held = new(atomic.Int64)
	ch := make(chan struct{})
	release = sync.OnceFunc(func() { close(ch) })
	h.t.Cleanup(release)
	h.kafka.Fake.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		h.kafka.Fake.KeepControl()
		if kafkatest.WritesTopic(req.(*kmsg.ProduceRequest), topic, id) {
			held.Add(1)
			h.kafka.Fake.SleepControl(func() { <-ch })
		}
		return nil, nil, false // handled by the broker as usual
	})
	return held, release
}

// holdLedgerRecords is holdLedger for the produce requests whose records
// contain part (the ledger's batches are not compressed).
func (h *harness) holdLedgerRecords(topic string, id [16]byte, part []byte) (held *atomic.Int64, release func()) {
	held = new(atomic.Int64)
	ch := make(chan struct{})
	release = sync.OnceFunc(func() { close(ch) })
	h.t.Cleanup(release)
	h.kafka.Fake.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		h.kafka.Fake.KeepControl()
		if writesRecords(req, topic, id, part) {
			held.Add(1)
			h.kafka.Fake.SleepControl(func() { <-ch })
		}
		return nil, nil, false // handled by the broker as usual
	})
	return held, release
}

// outputsSoFar is how many outputs a consumer finds within half a second.
func (h *harness) outputsSoFar() int {
	cl := h.kafka.Client(kgo.ConsumeTopics(h.out), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx, cancel := context.WithTimeout(h.t.Context(), 500*time.Millisecond)
	defer cancel()
	return cl.PollFetches(ctx).NumRecords()
}

// ledgerCost opens a cost control over provider with a ledger on a new
// topic, and returns it with the topic's name and id (produce requests name
// topics by id from v13). log may be nil.
// heldLedgerCost is ledgerCost over a provider that answers at once and
// counts its calls, the ledger's writes held back by the broker (held
// counts them) until release.
func (h *harness) heldLedgerCost() (cost *processor.CostControl, calls, held *atomic.Int64, release func()) {
	calls = new(atomic.Int64)
	cost, topic, id := h.ledgerCost(processor.EnricherFunc(func(_ context.Context, l processor.Lookup) (processor.Result, error) {
		calls.Add(1)
		return fakeAnswer(l), nil
	}), nil)
	held, release = h.holdLedger(topic, id)
	return cost, calls, held, release
}

func (h *harness) ledgerCost(provider processor.Enricher, log *slog.Logger) (*processor.CostControl, string, [16]byte) {
	h.t.Helper()
	topic := h.kafka.Name("ledger")
	cost, err := processor.NewCostControl(provider, processor.CostConfig{
		Secret: []byte("s"),
		Ledger: &processor.LedgerConfig{ClientOpts: []kgo.Opt{kgo.SeedBrokers(h.kafka.Brokers...)}, Topic: topic, CreateTopic: true},
		Logger: log,
	})
	if err != nil {
		h.t.Fatal(err)
	}
	if err := cost.Open(h.t.Context()); err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { cost.Close(context.Background()) })
	return cost, topic, h.topicID(topic)
}

// safeBuffer is a bytes.Buffer for concurrent writers.
type safeBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *safeBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *safeBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// A stop while the broker holds the outputs back and the producer's buffer
// is full ends: the records in progress are abandoned, not waited for. A
// task blocked in Produce kept its worker's done open, so the revoke at
// Client.Close, and Run, waited until the broker answered: for good. (Found
// by review; it hung before.)
func TestStopWithAFullProducerBufferEnds(t *testing.T) {
	h := stopWithOutputsHeld(t, 0, func(p *processor.Processor, in string, asked, held int64) bool {
		return asked == 3 && held > 0 && p.Stats().InFlight == 0
	})
	if c := h.kafka.CommittedOffsets(h.group, h.in)[0]; c > 0 {
		t.Errorf("committed %d with no output acknowledged", c)
	}
}

// Run closed p.tasks once runAtLeastOnce returned ("the workers, and so
// their tasks, have stopped by then"), but a stop waits for an abandoned
// worker only maxAbandonWait (partition.go, shutdown) and then leaves it
// running. With the producer's buffer full (the broker holds the outputs
// back), the one pool goroutine (MaxInFlight 1) is blocked handing e-1's
// output to the producer, after releasing e-1's slot; the dispatcher takes
// e-2, acquires that slot and blocks sending e-2's task. The stop leaves it
// there; the client's close frees the pool goroutine, and Run's close of
// the tasks' channel raced with the dispatcher's pending send: a send on a
// closed channel panics. (Found by review; the race detector reported the
// close racing with the send in 8 of 20 runs.) The pool ends on a channel
// of its own now, on which the dispatcher gives the record up.
func TestStopLeavesNoDispatcherSendingATask(t *testing.T) {
	// e-0's output held by the broker, e-1's blocked in Produce, e-2 taken
	// with e-1's slot: the dispatcher waits for a pool goroutine.
	stopWithOutputsHeld(t, 1, func(p *processor.Processor, in string, asked, held int64) bool {
		return asked == 2 && held > 0 && p.Stats().InFlight == 1 && p.Frontier(in, 0) == 2
	})
}

// stopWithOutputsHeld runs a processor (maxInFlight, if not 0) over 3
// records whose outputs the broker holds back, with a producer that
// buffers one record, and stops it once ready says so (the records asked
// about, the produce requests held; in is the input topic); the stop must
// end.
func stopWithOutputsHeld(t *testing.T, maxInFlight int, ready func(p *processor.Processor, in string, asked, held int64) bool) *harness {
	h := newHarness(t, 1)
	if h.kafka.Fake == nil {
		t.Skip("holds produce requests back with kfake's control functions")
	}
	h.kafka.CreateTopics(1, h.out, h.dlq)
	outID := h.topicID(h.out)
	release := make(chan struct{})
	t.Cleanup(sync.OnceFunc(func() { close(release) }))
	var held atomic.Int64
	h.kafka.Fake.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		h.kafka.Fake.KeepControl()
		if kafkatest.WritesTopic(req.(*kmsg.ProduceRequest), h.out, outID) {
			held.Add(1)
			h.kafka.Fake.SleepControl(func() { <-release }) // a broker that does not answer
		}
		return nil, nil, false
	})
	h.produceEvents(3)
	var asked atomic.Int64
	cfg := h.config(processor.EnricherFunc(func(_ context.Context, l processor.Lookup) (processor.Result, error) {
		asked.Add(1)
		return fakeAnswer(l), nil
	}))
	cfg.Ordering = processor.OrderingNone
	if maxInFlight > 0 {
		cfg.MaxInFlight = maxInFlight
	}
	cfg.ShutdownTimeout = 200 * time.Millisecond
	// The producer holds one record: the first output, which the broker
	// holds; the next outputs' Produce waits for room.
	cfg.ClientOpts = append(cfg.ClientOpts, kgo.MaxBufferedRecords(1))
	p, stop := h.start(cfg)
	kafkatest.WaitFor(t, func() bool { return ready(p, h.in, asked.Load(), held.Load()) })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	return h
}
