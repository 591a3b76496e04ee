package processor

// Exactly once, a stop lets the calls in flight finish (processBatch). From a
// review of cd2511f, which first did so; each test failed on it for the
// reason its comment gives. Internal: the provider waits for its lookup's
// batch stop (Lookup.stop), so that "the answer comes after the stop began"
// is a signal, not a sleep.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/twosell/twosell/processor/kafkatest"
)

// eosGuard bounds every wait of these tests: far longer than anything
// they wait for should take, far shorter than the timeouts they set.
const eosGuard = 10 * time.Second

type eosHarness struct {
	t                       *testing.T
	k                       *kafkatest.Cluster
	in, out, dlq, group, id string
}

func newEOSHarness(t *testing.T) *eosHarness {
	k := kafkatest.New(t)
	h := &eosHarness{t: t, k: k, in: k.Name("in"), out: k.Name("out"), dlq: k.Name("dlq"), group: k.Name("g"), id: k.Name("txn")}
	k.CreateTopics(1, h.in)
	return h
}

// eosEvent is event i (mobile 1731234000i) of the external tests' harness.
func eosEvent(topic string, i int) *kgo.Record {
	mobile := fmt.Sprintf("1731234%04d", i)
	return &kgo.Record{Topic: topic, Key: []byte(fmt.Sprintf("u-%d", i)), Value: []byte(fmt.Sprintf(
		`{"event_id":"e-%d","user_id":"u-%d","mobile":"%s","registered_at":"2024-01-02T03:04:05+08:00"}`, i, i, mobile))}
}

func eosAnswer() Result {
	return Result{Status: StatusNotRecycled, Res: 2, Source: SourceAPI, Mode: "plain", OrderID: "JH-1", Attempts: 1}
}

type eosLog struct{ t *testing.T }

func (w eosLog) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(b), "\n"))
	return len(b), nil
}

func (h *eosHarness) config(e Enricher) Config {
	loc, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		h.t.Fatal(err)
	}
	return Config{
		ClientOpts: []kgo.Opt{kgo.SeedBrokers(h.k.Brokers...)},
		Group:      h.group, InputTopic: h.in, OutputTopic: h.out, DLQTopic: h.dlq, CreateTopics: true,
		Codec:           CodecConfig{Location: loc},
		Enricher:        e,
		CommitInterval:  50 * time.Millisecond,
		RetryBackoff:    5 * time.Millisecond,
		MaxRetryBackoff: 20 * time.Millisecond,
		SessionTimeout:  6 * time.Second,
		TracerProvider:  noop.NewTracerProvider(),
		ExactlyOnce:     true,
		TransactionalID: h.id,
		// Neither the grace nor half the transaction timeout ends
		// anything within the tests' guard.
		ShutdownTimeout:    2 * time.Minute,
		TransactionTimeout: 5 * time.Minute,
		Logger:             slog.New(slog.NewTextHandler(eosLog{h.t}, &slog.HandlerOptions{Level: slog.LevelInfo})),
	}
}

// waitStop waits, within the guard, for the lookup's batch to stop: the
// stop (Run's ctx canceled) has reached the batch.
func waitBatchStop(t *testing.T, l Lookup) {
	s := l.stop()
	if s == nil {
		t.Error("the provider's Lookup has no stop")
		return
	}
	select {
	case <-s.Done():
	case <-time.After(eosGuard):
		t.Error("the lookup's batch did not stop within the guard")
	}
}

// README, Delivery: "Exactly once, a stop ... its calls in flight get
// processing.shutdown_timeout to finish: their answers reach the knowledge
// and the ledger ... The transaction then aborts, unless every record of it
// was in flight and finished, when it commits". With a ledger (the cost
// controls' answers are handed over once their ledger write is done:
// Result.durable) it did not: handOver waited for the write on s.abandon,
// the batch's stop (txnBatch.ctx), canceled already, so the record whose
// call finished within the grace was given up and the transaction aborted.
func TestEOSStopCommitsTheCallInFlight(t *testing.T) {
	for _, withLedger := range []bool{false, true} {
		t.Run(fmt.Sprintf("ledger=%v", withLedger), func(t *testing.T) {
			h := newEOSHarness(t)
			h.k.Produce(eosEvent(h.in, 1))
			started := make(chan struct{}, 1)
			provider := EnricherFunc(func(_ context.Context, l Lookup) (Result, error) {
				started <- struct{}{}
				waitBatchStop(t, l) // the call answers once the stop has reached its batch
				return eosAnswer(), nil
			})
			cc := CostConfig{Secret: []byte("s")}
			if withLedger {
				cc.Ledger = &LedgerConfig{ClientOpts: []kgo.Opt{kgo.SeedBrokers(h.k.Brokers...)}, Topic: h.k.Name("ledger"), CreateTopic: true}
			}
			cost, err := NewCostControl(provider, cc)
			if err != nil {
				t.Fatal(err)
			}
			if err := cost.Open(t.Context()); err != nil {
				t.Fatal(err)
			}
			defer cost.Close(context.Background())
			stop, ran := startEOS(t, h.config(cost))
			<-started
			stop()
			if err := <-ran; err != nil {
				t.Fatalf("Run = %v", err)
			}
			// The batch's only record was in flight and its call finished
			// within the grace, so the transaction commits (README); an
			// aborted one leaves the offset at 0 for good. Polled: a real
			// broker shows a transaction's offsets once its markers are
			// written, after EndTxn has returned (CI saw 0 once).
			kafkatest.WaitFor(t, func() bool { return h.k.CommittedOffsets(h.group, h.in)[0] == 1 })
		})
	}
}

// README, Delivery: "(after a fatal error, the calls in flight are canceled
// at once)". Only a fatal error before the stop did: processBatch looked at
// p.fatal() once, when the stop reached it. A fatal error during the grace
// (a call in flight answering Fatal after the stop) left the other calls in
// flight running until shutdown_timeout (or half the transaction timeout),
// for a transaction that can only abort.
func TestEOSFatalDuringTheGraceCancelsTheCallsInFlight(t *testing.T) {
	h := newEOSHarness(t)
	h.k.Produce(eosEvent(h.in, 1), eosEvent(h.in, 2))
	started := make(chan struct{}, 2)
	canceled := make(chan bool, 1)
	provider := EnricherFunc(func(ctx context.Context, l Lookup) (Result, error) {
		started <- struct{}{}
		if strings.HasSuffix(l.Mobile, "1") {
			waitBatchStop(t, l)
			return Result{}, Fatal(errors.New("the provider rejected the API key"))
		}
		select { // the other call: it answers only when canceled, or at the guard
		case <-ctx.Done():
			canceled <- true
			return Result{}, ctx.Err()
		case <-time.After(eosGuard):
			canceled <- false
			return eosAnswer(), nil
		}
	})
	cfg := h.config(provider)
	cfg.Ordering = OrderingNone
	stop, ran := startEOS(t, cfg)
	<-started
	<-started // both calls in flight
	stop()
	if !<-canceled {
		t.Errorf("a fatal error during the stop's grace did not cancel the other call in flight (left %v; shutdown_timeout %v)",
			eosGuard, cfg.ShutdownTimeout)
	}
	var fe *FatalError
	if err := <-ran; !errors.As(err, &fe) {
		t.Errorf("Run = %v, want a *FatalError", err)
	}
}

// startEOS runs a processor of cfg; stop stops it, and ran gives Run's
// error.
func startEOS(t *testing.T, cfg Config) (stop context.CancelFunc, ran <-chan error) {
	t.Helper()
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	return cancel, done
}
