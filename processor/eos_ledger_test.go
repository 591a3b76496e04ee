package processor_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twosell/twosell/processor/kafkatest"
)

// countingHandler passes records to next and counts those whose message
// contains match.
type countingHandler struct {
	next  slog.Handler
	match string
	n     *atomic.Int64
}

func (h countingHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.next.Enabled(ctx, l)
}
func (h countingHandler) Handle(ctx context.Context, r slog.Record) error {
	if strings.Contains(r.Message, h.match) {
		h.n.Add(1)
	}
	return h.next.Handle(ctx, r)
}
func (h countingHandler) WithAttrs(a []slog.Attr) slog.Handler {
	return countingHandler{h.next.WithAttrs(a), h.match, h.n}
}
func (h countingHandler) WithGroup(g string) slog.Handler {
	return countingHandler{h.next.WithGroup(g), h.match, h.n}
}

// Exactly-once, a paid answer whose ledger write is still in flight when its
// transaction is aborted (here: the batch outlives half the transaction
// timeout waiting for the ledger, transact.go processBatch) was answered
// again on the retry from the knowledge cache at once (the cache learnt the
// fact in pay before the write), handed over with nothing to wait for, and
// committed: its output, citing the call's order id, visible to
// read_committed readers and its offset committed while the ledger held
// nothing of the call; a crash then lost the call from the ledger (budget,
// ledger export) for good, since the input is never read again. (Found by
// review.) An answer from an entry whose paid call's write is in flight
// waits for it now: the retry is aborted again.
func TestEOSRetryAnsweredFromCacheWaitsForTheLedger(t *testing.T) {
	h := newHarnessMode(t, 1, true)
	if h.kafka.Fake == nil {
		t.Skip("holds produce requests back with kfake's control functions")
	}
	cost, calls, held, releaseLedger := h.heldLedgerCost()
	defer releaseLedger()

	h.kafka.Produce(event(h.in, 1, false)) // res 1: its output cites the call's order id
	cfg := h.config(cost)
	var aborts atomic.Int64
	cfg.Logger = slog.New(countingHandler{next: cfg.Logger.Handler(), match: "transaction aborted", n: &aborts})
	p, stop := h.start(cfg)
	defer stop()

	// The first transaction waits for the ledger until half its timeout,
	// and aborts; its retry then either commits (answered from the cache)
	// or waits for the ledger again and aborts again.
	kafkatest.WaitFor(t, func() bool { return aborts.Load() >= 1 && held.Load() > 0 })
	kafkatest.WaitFor(t, func() bool { return p.Stats().Commits > 0 || aborts.Load() >= 2 })

	committed := h.kafka.CommittedOffsets(h.group, h.in)[0]
	if p.Stats().Commits > 0 || committed > 0 {
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		out := h.kafka.Consume(ctx, countAtLeast(1), h.out) // read_committed
		orderID := ""
		if len(out) > 0 {
			var v struct {
				Twosell struct {
					OrderID string `json:"order_id"`
					Source  string `json:"source"`
				} `json:"twosell"`
			}
			_ = json.Unmarshal(out[0].Value, &v)
			orderID = v.Twosell.OrderID + " from " + v.Twosell.Source
		}
		t.Errorf("input committed (offset %d, %d transaction(s) committed) and its output visible (order id %s) while the ledger "+
			"still holds back the paid call it cites (%d paid call(s), %d ledger request(s) held): the retry of the aborted "+
			"transaction reused the cached answer without waiting for its ledger write",
			committed, p.Stats().Commits, orderID, calls.Load(), held.Load())
	}
}
