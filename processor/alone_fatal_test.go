package processor_test

import (
	"context"
	"errors"
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

// batchPID is the producer id of the first record batch of a produce
// request to topic: the main producer and the producer of records produced
// alone each have their own.
func batchPID(pr *kmsg.ProduceRequest, topic string, id [16]byte) (int64, bool) {
	for _, tp := range pr.Topics {
		if tp.Topic != topic && tp.TopicID != id {
			continue
		}
		for _, part := range tp.Partitions {
			var b kmsg.RecordBatch
			if err := b.ReadFrom(part.Records); err == nil {
				return b.ProducerID, true
			}
		}
	}
	return 0, false
}

// README, "Delivery": "A fatal error stops consumption at once: nothing
// more is started, paid for or written, so that no later record is written
// before the re-delivery of the one that failed." hand() enforces it for
// the main producer (found by review once). The queue of records produced
// alone is a second hand-off: drainAlone kept handing its records to the
// second producer after a fatal error (found by review); now it hands each
// once the one before is done, and none after a fatal error.
//
// Here e-0 and e-7 (one key, u-0) are batched; the broker refuses the
// batch as too large, so both are queued to be produced alone, e-0 first.
// The broker then answers e-0's produce alone with
// TOPIC_AUTHORIZATION_FAILED (an ACL revoked a moment): the processor
// stops on it (FATAL), e-0 stays uncommitted and is delivered again at the
// restart. e-7, the later record of e-0's key, was written after the
// fatal error, and the re-delivery of e-0 landed behind it: it must not be.
func TestRecordsProducedAloneStopOnAFatalError(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 1)
	if h.kafka.Fake == nil {
		t.Skip("answers produce requests with kfake's control functions")
	}
	h.kafka.CreateTopics(1, h.out, h.dlq)
	outID := h.topicID(h.out)
	buffered := &outputsBuffered{topic: h.out}
	bothBuffered := make(chan struct{})
	var bothOnce sync.Once
	var mainPID atomic.Int64
	mainPID.Store(-1)
	var loneProduces atomic.Int64
	h.kafka.Fake.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		h.kafka.Fake.KeepControl()
		pr := req.(*kmsg.ProduceRequest)
		pid, ok := batchPID(pr, h.out, outID)
		if !ok {
			return nil, nil, false
		}
		if mainPID.CompareAndSwap(-1, pid) {
			// The main producer's first batch (e-0's): answered once e-7
			// is buffered too, so that both were handed over before
			// anything fails.
			h.kafka.Fake.SleepControl(func() { <-bothBuffered })
		}
		if pid == mainPID.Load() {
			return kafkatest.Refusal(pr, kerr.MessageTooLarge), nil, true
		}
		if loneProduces.Add(1) == 1 { // e-0, produced alone
			return kafkatest.Refusal(pr, kerr.TopicAuthorizationFailed), nil, true
		}
		return nil, nil, false
	})
	cfg := h.config(processor.EnricherFunc(func(_ context.Context, l processor.Lookup) (processor.Result, error) {
		return fakeAnswer(l), nil
	}))
	cfg.ClientOpts = append(cfg.ClientOpts, kgo.WithHooks(buffered))
	logs := captureLog(t, &cfg)
	h.kafka.Produce(event(h.in, 0, false), event(h.in, 7, false))
	p, stop := h.start(cfg)
	kafkatest.WaitFor(t, func() bool { return buffered.n.Load() >= 2 })
	bothOnce.Do(func() { close(bothBuffered) })
	kafkatest.WaitFor(t, func() bool { return p.Err() != nil })
	err := stop()
	var fe *processor.FatalError
	if !errors.As(err, &fe) || !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("Run = %v, want the fatal TOPIC_AUTHORIZATION_FAILED of e-0's output", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var outs []string
	for _, r := range h.kafka.ConsumeAll(ctx, h.out) {
		outs = append(outs, eventID(t, r.Value))
	}
	if len(outs) > 0 {
		t.Errorf("outputs written: %v; want none: e-0's output failed fatally, so no later record (e-7, of e-0's key) may be "+
			"written before e-0's re-delivery, which now lands behind it (README, Delivery)", outs)
	}
	if !strings.Contains(logs.String(), "FATAL") {
		t.Errorf("no FATAL line:\n%s", logs.String())
	}
}
