package processor_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/twosell/twosell/processor"
	"github.com/twosell/twosell/processor/kafkatest"
)

// writesRecords reports whether a produce request writes topic with
// records containing part (the ledger's batches are not compressed).
func writesRecords(req kmsg.Request, topic string, id [16]byte, part []byte) bool {
	for _, tp := range req.(*kmsg.ProduceRequest).Topics {
		if tp.Topic != topic && tp.TopicID != id {
			continue
		}
		for _, p := range tp.Partitions {
			if bytes.Contains(p.Records, part) {
				return true
			}
		}
	}
	return false
}

// A refused "unavailable" call record (a request whose outcome is unknown,
// which has no order id) is logged as what it is, not as "a paid answer
// could not be written" with an empty order id; the outputs are written.
func TestUncertainRecordFailureIsNotAPaidAnswer(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 1)
	if h.kafka.Fake == nil {
		t.Skip("kfake control functions")
	}
	var logs safeBuffer
	cost, ledgerTopic, ledgerID := h.ledgerCost(processor.EnricherFunc(func(ctx context.Context, l processor.Lookup) (processor.Result, error) {
		if err := processor.BeforeRetry(ctx); err != nil { // the first request cut off
			return processor.Result{}, err
		}
		res := fakeAnswer(l)
		res.Attempts, res.Billable = 2, 2
		return res, nil
	}), slog.New(slog.NewTextHandler(&logs, nil)))
	h.kafka.Fake.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		h.kafka.Fake.KeepControl()
		if writesRecords(req, ledgerTopic, ledgerID, []byte(`"status":"unavailable"`)) {
			return kafkatest.Refusal(req.(*kmsg.ProduceRequest), kerr.InvalidRecord), nil, true
		}
		return nil, nil, false
	})
	const n = 3
	var in []*kgo.Record
	for i := 1; i <= n; i++ { // numbers ending in 1..3: every answer has an order id
		in = append(in, event(h.in, i, false))
	}
	h.kafka.Produce(in...)
	cfg := h.config(cost)
	cfg.Ordering = processor.OrderingNone
	_, stop := h.start(cfg)
	defer stop()
	if out := h.kafka.Consume(t.Context(), countAtLeast(n), h.out); len(out) != n {
		t.Fatalf("%d outputs, want %d", len(out), n)
	}
	kafkatest.WaitFor(t, func() bool { return cost.CostStats().LedgerErrors >= n })
	uncertain := 0
	for line := range strings.Lines(logs.String()) {
		if strings.Contains(line, "a paid answer could not be written") && strings.Contains(line, `order_id=""`) {
			t.Errorf("an uncertain request's record reported as a paid answer, without an order id:\n%s", line)
		}
		if strings.Contains(line, "a request whose outcome is unknown") {
			uncertain++
		}
	}
	if uncertain != n {
		t.Errorf("%d uncertain requests' records reported as not written, want %d:\n%s", uncertain, n, logs.String())
	}
}
