package processor_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/twosell/twosell/processor"
	"github.com/twosell/twosell/processor/kafkatest"
)

// Topics that refuse old timestamps (message.timestamp.before.max.ms): an
// old event's output, which keeps the input's timestamp, is refused, and so
// is a dead letter with it. The output is dead-lettered (output_rejected),
// and a dead letter refused for its timestamp is written again with the
// time it is written; the reason names the input's. Found by review: the
// processor stopped on the output, and again at every start.
func TestOldTimestampsRefusedByTheTopics(t *testing.T) {
	t.Parallel()
	bothModes(t, func(t *testing.T, eos bool) {
		t.Parallel()
		h := newHarnessMode(t, 1, eos)
		if h.kafka.Fake == nil {
			t.Skip("refuses produce requests with kfake's control functions")
		}
		h.kafka.CreateTopics(1, h.out, h.dlq)
		old := time.Date(2020, 3, 4, 5, 6, 7, 0, time.UTC)
		cutoff := time.Now().Add(-time.Hour).UnixMilli()
		h.refuseBatches(func(_ []byte, b *kmsg.RecordBatch) *kerr.Error {
			if b.FirstTimestamp < cutoff {
				return kerr.InvalidTimestamp
			}
			return nil
		}, h.out, h.dlq)
		p, stop := h.start(h.config(processor.EnricherFunc(func(_ context.Context, l processor.Lookup) (processor.Result, error) {
			return fakeAnswer(l), nil
		})))
		defer stop()
		// One at a time, so that no request mixes an old record with
		// one written again (the refusal here is of whole requests).
		for i, tc := range []struct {
			bad   bool
			class string
		}{{false, processor.ClassOutputRejected}, {true, processor.ClassInvalidMobile}} {
			in := event(h.in, i, tc.bad)
			in.Timestamp = old
			h.kafka.Produce(in)
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second) // only a broken run waits it out
			got := h.kafka.Consume(ctx, countAtLeast(i+1), h.dlq)
			cancel()
			if len(got) <= i {
				t.Fatalf("dead letter %d not written; the processor: %v", i, p.Err())
			}
			dl := got[len(got)-1]
			class, _ := header(dl, processor.HeaderErrorClass)
			reason, _ := header(dl, processor.HeaderError)
			if class != tc.class || dl.Timestamp.UnixMilli() < cutoff || string(dl.Value) != string(in.Value) ||
				!strings.Contains(reason, "not the input's (2020-03-04T05:06:07Z)") {
				t.Errorf("dead letter %d: class %s, timestamp %v, value %q, reason %q; want %s, written now with the input's bytes, the reason naming the input's time",
					i, class, dl.Timestamp, dl.Value, reason, tc.class)
			}
		}
		if out := h.kafka.ConsumeAll(t.Context(), h.out); len(out) != 0 {
			t.Errorf("%d outputs, want none: the output topic refused the only one", len(out))
		}
		if err := stop(); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

// refuseBatches has the broker refuse a produce request, whole, with the
// error decide returns for a record batch written to one of topics (nil:
// not refused); other requests are handled as usual. The topics exist.
func (h *harness) refuseBatches(decide func(records []byte, b *kmsg.RecordBatch) *kerr.Error, topics ...string) {
	names, ids := map[string]bool{}, map[[16]byte]bool{}
	for _, t := range topics {
		names[t], ids[h.topicID(t)] = true, true
	}
	h.kafka.Fake.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		h.kafka.Fake.KeepControl()
		pr := req.(*kmsg.ProduceRequest)
		for _, tp := range pr.Topics {
			if !names[tp.Topic] && !ids[tp.TopicID] {
				continue
			}
			for _, part := range tp.Partitions {
				var b kmsg.RecordBatch
				if b.ReadFrom(part.Records) != nil {
					continue
				}
				if err := decide(part.Records, &b); err != nil {
					return kafkatest.Refusal(pr, err), nil, true
				}
			}
		}
		return nil, nil, false
	})
}
