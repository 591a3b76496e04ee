package processor_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/twosell/twosell/processor"
	"github.com/twosell/twosell/processor/kafkatest"
)

// A produce refused with OUT_OF_ORDER_SEQUENCE_NUMBER inside a transaction
// (Kafka 4's transactions v2 can answer a producer's first requests so:
// KAFKA-14920) fails the producer id. The transaction aborts, the producer
// recovers, and the records are processed again: every event comes out
// exactly once and the processor keeps running.
func TestTransactionRecoversFromAFailedProducerID(t *testing.T) {
	h := newHarnessMode(t, 2, true)
	if h.kafka.Fake == nil {
		t.Skip("refuses a produce request with kfake's control functions")
	}
	const n = 40
	h.produceEvents(n)
	// Refuse the first produce request that writes to the output topic,
	// whatever its partitions. Produce requests name topics by id from v13.
	h.kafka.CreateTopics(2, h.out)
	outID := h.topicID(h.out)
	var refused atomic.Int64
	h.kafka.Fake.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		h.kafka.Fake.KeepControl()
		if refused.Load() > 0 {
			return nil, nil, false
		}
		pr := req.(*kmsg.ProduceRequest)
		if !kafkatest.WritesTopic(pr, h.out, outID) {
			return nil, nil, false
		}
		refused.Add(1)
		return kafkatest.Refusal(pr, kerr.OutOfOrderSequenceNumber), nil, true
	})

	cfg := h.config(processor.EnricherFunc(func(_ context.Context, l processor.Lookup) (processor.Result, error) {
		return fakeAnswer(l), nil
	}))
	p, stop := h.start(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	h.kafka.Consume(ctx, countAtLeast(n), h.out)
	if refused.Load() == 0 {
		t.Fatal("no produce request was refused: the test did not test anything")
	}
	if err := stop(); err != nil {
		t.Fatalf("Run = %v, want nil: a failed producer id aborts the transaction, it does not stop the processor", err)
	}
	got := h.kafka.ConsumeAll(ctx, h.out)
	seen := make(map[string]int)
	for _, r := range got {
		seen[eventID(t, r.Value)]++
	}
	if len(seen) != n || len(got) != n {
		t.Errorf("%d outputs of %d distinct events, want %d each exactly once", len(got), len(seen), n)
	}
	if s := p.Stats(); s.Produced != n {
		t.Errorf("Stats().Produced = %d, want %d: an aborted transaction's records count once, when committed", s.Produced, n)
	}
}

// topicID returns topic's id.
func (h *harness) topicID(topic string) [16]byte {
	td, err := kadm.NewClient(h.kafka.Client()).ListTopics(context.Background(), topic)
	if err != nil || !td.Has(topic) {
		h.t.Fatalf("topic %s: %v", topic, err)
	}
	return td[topic].ID
}
