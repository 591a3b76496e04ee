package processor_test

import (
	"context"
	"slices"
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

// outputsBuffered counts the records of one topic the producer buffered.
type outputsBuffered struct {
	topic string
	n     atomic.Int64
}

func (h *outputsBuffered) OnProduceRecordBuffered(r *kgo.Record) {
	if r.Topic == h.topic {
		h.n.Add(1)
	}
}

// An output Kafka refuses as too large for the output topic
// (max.message.bytes) is dead-lettered (README, "Limits"). But a broker
// checks max.message.bytes against the whole record batch, and franz-go
// fails every record of a refused batch with MESSAGE_TOO_LARGE: outputs
// that fit the topic, batched together over its limit or with one that does
// not fit, were dead-lettered too (output_rejected), and never written to
// the output topic (found by review). The producer's batches are bounded by
// the topics' max.message.bytes now, and a record over it is dead-lettered
// before it is produced. Here the topic takes 3000 bytes: e-0 to e-2 make
// outputs of about 1,300 bytes (the three together over the limit), e-3 one
// of about 4,300; the test holds the broker's answer to the first produce
// until the three are buffered, as a busy producer batches them.
func TestSmallOutputBatchedWithARefusedOneIsWritten(t *testing.T) {
	h := newHarness(t, 1)
	if h.kafka.Fake == nil {
		t.Skip("holds a produce request with kfake's control functions")
	}
	limit := "3000"
	h.kafka.CreateTopicsWith(1, map[string]*string{"max.message.bytes": &limit}, h.out)
	h.kafka.CreateTopics(1, h.dlq)
	outID := h.topicID(h.out)
	h.kafka.Produce(randomPadded(h.in, 0, 500), randomPadded(h.in, 1, 500), randomPadded(h.in, 2, 500), bigEvent(h.in, 3))

	release := make(chan struct{})
	releaseOnce := sync.OnceFunc(func() { close(release) })
	t.Cleanup(releaseOnce)
	var first atomic.Bool
	h.kafka.Fake.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		h.kafka.Fake.KeepControl()
		if kafkatest.WritesTopic(req.(*kmsg.ProduceRequest), h.out, outID) && first.CompareAndSwap(false, true) {
			h.kafka.Fake.SleepControl(func() { <-release }) // e-0's output: answered once e-1's and e-2's are buffered
		}
		return nil, nil, false
	})
	buffered := &outputsBuffered{topic: h.out}
	cfg := h.config(processor.EnricherFunc(func(_ context.Context, l processor.Lookup) (processor.Result, error) {
		return fakeAnswer(l), nil
	}))
	cfg.Ordering = processor.OrderingNone
	cfg.ClientOpts = append(cfg.ClientOpts, kgo.WithHooks(buffered))
	_, stop := h.start(cfg)
	kafkatest.WaitFor(t, func() bool { return buffered.n.Load() >= 3 })
	releaseOnce()

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	h.kafka.Consume(ctx, countAtLeast(4), h.out, h.dlq)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	var outs, dead []string
	for _, r := range h.kafka.ConsumeAll(ctx, h.out, h.dlq) {
		if r.Topic == h.out {
			outs = append(outs, eventID(t, r.Value))
			continue
		}
		class, _ := header(r, processor.HeaderErrorClass)
		reason, _ := header(r, processor.HeaderError)
		src, _ := header(r, processor.HeaderSource) // e-3's dead letter is without its payload, over the limit too
		dead = append(dead, src+" "+class+": "+reason)
	}
	slices.Sort(outs)
	if !slices.Equal(outs, []string{"e-0", "e-1", "e-2"}) || len(dead) != 1 || !strings.Contains(dead[0], "/0/3 output_rejected") {
		t.Errorf("outputs %v, dead letters %q; want e-0 to e-2 enriched (each fits the topic) and only e-3 dead-lettered", outs, dead)
	}
}

// An output topic just created may not be known to the broker that answers
// the description of its configuration yet: the processor asks again,
// rather than warn that it cannot read max.message.bytes (a false alarm on
// every first start, found in CI on the embedded broker, under -race).
func TestNewOutputTopicsConfigIsAskedAgain(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 1)
	if h.kafka.Fake == nil {
		t.Skip("answers a DescribeConfigs with kfake's control functions")
	}
	var described atomic.Int64 // the output topic's descriptions
	h.kafka.Fake.ControlKey(int16(kmsg.DescribeConfigs), func(req kmsg.Request) (kmsg.Response, error, bool) {
		h.kafka.Fake.KeepControl()
		in := req.(*kmsg.DescribeConfigsRequest)
		if !slices.ContainsFunc(in.Resources, func(r kmsg.DescribeConfigsRequestResource) bool { return r.ResourceName == h.out }) ||
			described.Add(1) > 1 {
			return nil, nil, false // as the broker answers it
		}
		return describeError(in, kerr.UnknownTopicOrPartition), nil, true
	})
	cfg := h.config(answer)
	logs := captureLog(t, &cfg)
	h.produceEvents(1)
	_, stop := h.start(cfg)
	h.kafka.Consume(t.Context(), countAtLeast(1), h.out)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if n := described.Load(); n < 2 {
		t.Fatalf("the output topic's configuration described %d times; want the refused one and another", n)
	}
	if strings.Contains(logs.String(), "cannot read the output topics' max.message.bytes") {
		t.Errorf("warned of a topic not yet known:\n%s", logs.String())
	}
}
