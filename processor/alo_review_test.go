package processor_test

// Tests from a review of at-least-once delivery (twenty-third session): each
// failed on the code as reviewed, for the reason its comment gives.

import (
	"context"
	"errors"
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

// Key ordering: e-0 (offset 1) and e-7 (offset 2) have the same key, u-0.
// The broker refuses e-0's output for good (TOPIC_AUTHORIZATION_FAILED: an
// ACL taken away), which is fatal: consumption stops, e-0 uncommitted. e-7,
// whose lookup was in flight (it started once e-0's output was handed to
// the producer), is answered after the fatal error while the run is still
// stopping (here a commit in flight, which the stop waits for), and its
// output is handed to the producer and written: a fatal error abandons
// nothing until the revoke, and a failed output does not stop its key.
// README ("Concurrency and order"): "A record that is not finished
// (abandoned at shutdown, a fatal error) stops everything behind it in its
// order, so a re-delivery never lands behind a later record." After the
// restart, the key's outputs read e-7, e-0, e-7.
func TestKeyOrderSurvivesAFatalOutputRefusal(t *testing.T) {
	h := newHarness(t, 1)
	if h.kafka.Fake == nil {
		t.Skip("refuses a produce request with kfake's control functions")
	}
	h.kafka.CreateTopics(1, h.out, h.dlq)
	outID := h.topicID(h.out)
	// e-1 (key u-1) at offset 0, then e-0 and e-7 (key u-0).
	h.kafka.Produce(event(h.in, 1, false), event(h.in, 0, false), event(h.in, 7, false))

	buffered := &outputsBuffered{topic: h.out}
	commitHeld, e7Buffered := make(chan struct{}), make(chan struct{})
	closeE7Buffered := sync.OnceFunc(func() { close(e7Buffered) })
	t.Cleanup(closeE7Buffered)
	// The commit is released once e-7's output is buffered (at once, on the
	// code as it is), or once e-7 is abandoned, or, so that an engine that
	// gives e-7 up otherwise does not hang here, 2 s after the fatal error
	// (only a bound on the wait: the outcome is judged on the outputs).
	var commits, refusals atomic.Int32
	// The first commit (e-1's offset) is held until e-7's output is buffered.
	h.kafka.Fake.ControlKey(int16(kmsg.OffsetCommit), func(kmsg.Request) (kmsg.Response, error, bool) {
		h.kafka.Fake.KeepControl()
		if commits.Add(1) == 1 {
			close(commitHeld)
			h.kafka.Fake.SleepControl(func() { <-e7Buffered })
		}
		return nil, nil, false
	})
	// The first output produced after that commit was sent, e-0's, is refused.
	h.kafka.Fake.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		h.kafka.Fake.KeepControl()
		pr := req.(*kmsg.ProduceRequest)
		if commits.Load() == 0 || !kafkatest.WritesTopic(pr, h.out, outID) || refusals.Add(1) != 1 {
			return nil, nil, false
		}
		return kafkatest.Refusal(pr, kerr.TopicAuthorizationFailed), nil, true
	})
	fatal := make(chan struct{})
	enricher := processor.EnricherFunc(func(ctx context.Context, l processor.Lookup) (processor.Result, error) {
		var wait <-chan struct{}
		switch {
		case strings.HasSuffix(l.Mobile, "0000"): // e-0: once e-1's offset is being committed
			wait = commitHeld
		case strings.HasSuffix(l.Mobile, "0007"): // e-7: once e-0's refusal stopped the run
			wait = fatal
		}
		if wait != nil {
			select {
			case <-wait:
			case <-ctx.Done():
				if wait == fatal {
					closeE7Buffered()
				}
				return processor.Result{}, ctx.Err()
			}
		}
		return fakeAnswer(l), nil
	})
	go func() {
		select {
		case <-fatal:
			time.AfterFunc(2*time.Second, closeE7Buffered)
		case <-t.Context().Done():
		}
	}()
	cfg := h.config(enricher)
	cfg.Ordering = processor.OrderingKey
	cfg.ClientOpts = append(cfg.ClientOpts, kgo.WithHooks(buffered, bufferedSignal{buffered, 3, closeE7Buffered}))
	cfg.Logger = slog.New(signalHandler{cfg.Logger.Handler(), "FATAL", sync.OnceFunc(func() { close(fatal) })})
	p, stop := h.start(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	kafkatest.WaitFor(t, func() bool { return p.Err() != nil })
	if err := stop(); !errors.As(err, new(*processor.FatalError)) {
		t.Fatalf("the first run ended with %v, want the fatal error of the refused output", err)
	}
	var first []string
	for _, r := range h.kafka.ConsumeAll(ctx, h.out) {
		first = append(first, eventID(t, r.Value))
	}

	// The restart: nothing is refused now.
	_, stop2 := h.start(h.config(enricher))
	h.kafka.Consume(ctx, hasEvent(t, "e-0"), h.out)
	if err := stop2(); err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, r := range h.kafka.ConsumeAll(ctx, h.out) {
		if id := eventID(t, r.Value); id != "e-1" {
			order = append(order, id)
		}
	}
	if len(order) == 0 || order[0] != "e-0" {
		t.Errorf("outputs of key u-0, in the output partition's order: %v (the run that failed on e-0's output wrote %v); "+
			"want e-0 (offset 1) first: e-7 (offset 2) was written after e-0's output failed, and e-0's re-delivery landed behind it", order, first)
	}
}

// bufferedSignal calls do once n records of its topic are buffered.
type bufferedSignal struct {
	b  *outputsBuffered
	n  int64
	do func()
}

func (s bufferedSignal) OnProduceRecordBuffered(r *kgo.Record) {
	if r.Topic == s.b.topic && s.b.n.Load() >= s.n {
		s.do()
	}
}

// signalHandler is a slog.Handler that calls do when a message begins with
// prefix.
type signalHandler struct {
	slog.Handler
	prefix string
	do     func()
}

func (h signalHandler) Handle(ctx context.Context, r slog.Record) error {
	err := h.Handler.Handle(ctx, r)
	if strings.HasPrefix(r.Message, h.prefix) {
		h.do()
	}
	return err
}

func (h signalHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return signalHandler{h.Handler.WithAttrs(as), h.prefix, h.do}
}

func (h signalHandler) WithGroup(g string) slog.Handler {
	return signalHandler{h.Handler.WithGroup(g), h.prefix, h.do}
}

// Memory and paid calls are bounded while the ledger cannot be written. A
// paid answer's output waits for its ledger write (durable) without a slot
// (README: "nor by a paid answer waiting for its ledger records"), but it
// does not count as buffered either: while the brokers do not answer the
// ledger's writes, the partition never pauses, and every record of the
// backlog is fetched, paid for and held in memory, its output unwritten.
// README ("Concurrency and order"): "Memory is bounded: each partition
// buffers at most processing.max_buffered_records records ... then its
// fetching pauses ... a slow or failing provider becomes consumer lag, never
// memory growth"; ("Limits"): "Buffered and in-flight work is bounded". Here
// max_in_flight 2 and max_buffered_records 4, one record per fetch: 60 paid
// answers are held at once.
func TestRecordsWaitingForTheLedgerAreBounded(t *testing.T) {
	h := newHarness(t, 1)
	if h.kafka.Fake == nil {
		t.Skip("holds the ledger's produce requests with kfake's control functions")
	}
	const n, inFlight, buffered = 60, 2, 4
	cl := h.kafka.Client()
	for i := range n { // one batch each: a fetch of 1 byte a partition returns one record
		if err := cl.ProduceSync(t.Context(), event(h.in, i, false)).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	cost, calls, held, release := h.heldLedgerCost()
	cfg := h.config(cost)
	cfg.Ordering = processor.OrderingNone // a key's next record would wait for the output
	cfg.MaxInFlight = inFlight
	cfg.MaxBufferedRecords = buffered
	cfg.FetchMaxPartitionBytes = 1
	p, stop := h.start(cfg)
	defer func() {
		release() // before the stop, whose grace would wait for the ledger
		if err := stop(); err != nil {
			t.Error(err)
		}
	}()
	const bound = 2 * (inFlight + buffered)
	// Either more records than the bounds allow are paid for and held, or
	// the partition is paused with every record received looked up and none
	// in flight: what a bounded engine comes to while the ledger is held.
	// (Paused full, with records still to start, is a pause that the next
	// start may lift; two snapshots around the count rule that out.)
	kafkatest.WaitFor(t, func() bool {
		if calls.Load() > bound {
			return true
		}
		s1 := p.Stats()
		c := calls.Load()
		s2 := p.Stats()
		return held.Load() > 0 && s1.PausedPartitions > 0 && s2.PausedPartitions > 0 &&
			s1.Consumed == c && s2.Consumed == c && s2.InFlight == 0
	})
	if c := calls.Load(); c > bound {
		kafkatest.WaitFor(t, func() bool { return calls.Load() == n })
		t.Errorf("%d of %d records paid for and held, their outputs waiting for the ledger, with max_in_flight %d and "+
			"max_buffered_records %d: a record whose output waits for the ledger does not count as buffered, and the partition is not paused for it", calls.Load(), n, inFlight, buffered)
	}
}
