package processor_test

import (
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

// badPadded is an input that is dead-lettered (invalid mobile), with n
// random bytes of padding in hex: its dead letter keeps them.
func badPadded(topic string, i, n int) *kgo.Record {
	return padded(event(topic, i, true), `"registered_at"`, n)
}

// Found by review: a batch of dead letters refused by a dead-letter topic
// whose max.message.bytes was lowered while twosell ran had each of its
// dead letters, though each fits the topic, written again without the
// input's payload, and out of order. They are produced again alone, with
// their payload, in their order, as outputs are. Here the dead-letter topic
// takes 3000 bytes after the start; three dead letters of about 1,300 bytes
// (one key) are batched over it.
func TestDeadLettersBatchedOverALoweredLimitKeepTheirPayload(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 1)
	if h.kafka.Fake == nil {
		t.Skip("holds a produce request with kfake's control functions")
	}
	h.kafka.CreateTopics(1, h.out, h.dlq)
	b := startBatching(h, h.dlq, "3000")
	b.batch(3, badPadded(h.in, 0, 500), badPadded(h.in, 7, 500), badPadded(h.in, 14, 500))
	kafkatest.WaitFor(t, func() bool { return b.p.Err() != nil || b.p.Stats().DeadLettered >= 3 })
	if err := b.stop(); err != nil {
		t.Fatal(err)
	}
	ctx := b.ctx
	var bare, order []string
	for _, r := range h.kafka.ConsumeAll(ctx, h.dlq) {
		src, _ := header(r, processor.HeaderSource)
		order = append(order, src[strings.LastIndexByte(src, '/')+1:])
		if len(r.Value) == 0 {
			bare = append(bare, src)
		}
	}
	if len(bare) > 0 || strings.Join(order, ",") != "1,2,3" {
		t.Errorf("dead letters at offsets %v, those without the input's payload: %v; want each, as it fits the topic, "+
			"with its payload, in their order (1,2,3)", order, bare)
	}
}

// An interrupted replay gives the outputs handed to the producer
// ShutdownTimeout to be acknowledged, and says when they were not ("replay:
// not every output was acknowledged before closing"). Found by review: an
// output produced again alone, in the second producer, was neither waited
// for nor reported (the replay flushed only its own client; it flushes
// both now, flushAll). Here the broker refuses e-0's output as too large,
// and holds its production alone until Run has returned; the replay is
// interrupted meanwhile.
func TestInterruptedReplayWaitsForAnOutputProducedAlone(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 1)
	if h.kafka.Fake == nil {
		t.Skip("answers produce requests with kfake's control functions")
	}
	h.kafka.CreateTopics(1, h.out, h.dlq)
	refuseDescribe(h, h.out)
	outID := h.topicID(h.out)
	release := make(chan struct{})
	releaseOnce := sync.OnceFunc(func() { close(release) })
	t.Cleanup(releaseOnce)
	loneHeld := make(chan struct{})
	var outProduces atomic.Int64
	h.kafka.Fake.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		h.kafka.Fake.KeepControl()
		pr := req.(*kmsg.ProduceRequest)
		if !kafkatest.WritesTopic(pr, h.out, outID) {
			return nil, nil, false
		}
		switch outProduces.Add(1) {
		case 1: // the batch: refused as too large
			return kafkatest.Refusal(pr, kerr.MessageTooLarge), nil, true
		case 2: // the output produced alone: held
			close(loneHeld)
			h.kafka.Fake.SleepControl(func() { <-release })
		}
		return nil, nil, false
	})
	h.kafka.Produce(event(h.in, 0, false))
	cfg := h.config(answer)
	cfg.Group, cfg.Range = "", map[int32]processor.OffsetRange{0: {Start: 0, End: 1}}
	cfg.IgnoreRetention = true                   // the output topic's configuration cannot be described
	cfg.ShutdownTimeout = 500 * time.Millisecond // only bounds the stop: the output is held until Run returns
	logs := captureLog(t, &cfg)
	p, cancel, ran := startReplay(t, cfg)
	select {
	case <-loneHeld:
	case err := <-ran:
		t.Fatalf("Run = %v before the output was produced alone", err)
	}
	cancel()
	if err := <-ran; err != nil {
		t.Fatal(err)
	}
	releaseOnce()
	if !p.RangeComplete() && !strings.Contains(logs.String(), "not every output was acknowledged") {
		t.Errorf("the interrupted replay returned with e-0's output, produced alone, unacknowledged (RangeComplete false), "+
			"without waiting for it or saying so; want it flushed within shutdown_timeout as the replay's own producer is, "+
			"or the warning that not every output was acknowledged:\n%s", logs.String())
	}
}

// README, "Limits": "One record cannot exhaust memory or stop the
// processor ... an enriched event Kafka refuses is dead-lettered". Found
// by review of a first version, which took every MESSAGE_TOO_LARGE, the
// output topic's limit read at the start, for a batch refused over a limit
// lowered since, and stopped the processor (and again after every restart).
// The pre-check (maxRecordBytes) weighs a record without its framing
// (recordBytes, with batchRoom for the framing of a batch of one record), so one record with many headers passes it and is refused
// alone, here by franz-go itself, with the limit unchanged: it is
// dead-lettered. Here the output topic takes 3000 bytes (read at the
// start, unchanged), and e-5 has 1,000 empty headers: about 1,400 bytes by
// recordBytes, over 3,000 on the wire.
func TestOneRecordRefusedAloneWithAnUnchangedLimitIsDeadLettered(t *testing.T) {
	for _, eos := range []bool{false, true} {
		t.Run(map[bool]string{false: "at-least-once", true: "exactly-once"}[eos], func(t *testing.T) {
			t.Parallel()
			oneRecordRefusedAlone(t, eos)
		})
	}
}

func oneRecordRefusedAlone(t *testing.T, eos bool) {
	h := newHarnessMode(t, 1, eos)
	limit := "3000"
	h.kafka.CreateTopicsWith(1, map[string]*string{"max.message.bytes": &limit}, h.out)
	h.kafka.CreateTopics(1, h.dlq)
	r := event(h.in, 5, false)
	for range 1000 {
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: "x"})
	}
	h.kafka.Produce(r)
	cfg := h.config(answer)
	cfg.Codec.MaxHeaders = -1 // no limit: the input is valid
	captureLog(t, &cfg)
	p, stop := h.start(cfg)
	kafkatest.WaitFor(t, func() bool { return p.Err() != nil || p.Stats().DeadLettered >= 1 })
	err := stop()
	var fe *processor.FatalError
	if !errors.As(err, &fe) {
		if err != nil {
			t.Fatal(err)
		}
		return // dead-lettered, as before the change
	}
	// A restart reads the same limit, and stops on the same record.
	p2, stop2 := h.start(cfg)
	kafkatest.WaitFor(t, func() bool { return p2.Err() != nil || p2.Stats().DeadLettered >= 1 })
	err2 := stop2()
	t.Errorf("Run = %v;\nafter a restart, Run = %v;\nwant e-5 dead-lettered (output_rejected): the topic's limit was not lowered, "+
		"and one record must not stop the processor", err, err2)
}
