package processor_test

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/twosell/twosell/processor"
	"github.com/twosell/twosell/processor/kafkatest"
)

// The processor's client and the ledger's load their producer IDs once they
// start, before anything is to be written: the first output, and the first
// paid answer's ledger record (which its output waits for), do not wait for
// that round trip too.
func TestProducersLoadTheirIDsBeforeTheFirstWrite(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 2)
	if h.kafka.Fake == nil {
		t.Skip("counts InitProducerID requests with kfake's control functions")
	}
	var inits atomic.Int64
	h.kafka.Fake.ControlKey(int16(kmsg.InitProducerID), func(kmsg.Request) (kmsg.Response, error, bool) {
		h.kafka.Fake.KeepControl()
		inits.Add(1)
		return nil, nil, false // handled by the broker as usual
	})
	cost, _, _ := h.ledgerCost(processor.EnricherFunc(func(_ context.Context, l processor.Lookup) (processor.Result, error) {
		t.Error("no event, no lookup")
		return fakeAnswer(l), nil
	}), nil)
	kafkatest.WaitFor(t, func() bool { return inits.Load() >= 1 }) // the ledger's, with no event
	p, stop := h.start(h.config(cost))
	defer stop()
	kafkatest.WaitFor(t, func() bool { return inits.Load() >= 2 }) // and the processor's
	if s := p.Stats(); s.Consumed != 0 || s.Produced != 0 {
		t.Fatalf("consumed %d, produced %d: the input is empty", s.Consumed, s.Produced)
	}
}
