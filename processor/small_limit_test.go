package processor_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/twosell/twosell/processor"
)

// Output topics with a small max.message.bytes (found by review). At 700
// bytes, the 1 KiB kept for a batch's framing left "0 bytes a record may
// have", and every output was dead-lettered, a 300-byte one too; the
// framing of a batch of one record is 165 bytes at most. Below 512 bytes,
// the least batch franz-go makes, the processor stopped at start with
// franz-go's "max record batch bytes 400 is less than allowed 512", which
// named neither the topic nor the setting.
func TestSmallOutputTopicLimits(t *testing.T) {
	t.Parallel()
	answer := processor.EnricherFunc(func(_ context.Context, l processor.Lookup) (processor.Result, error) {
		return fakeAnswer(l), nil
	})
	t.Run("700 bytes", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, 1)
		limit := "700"
		h.kafka.CreateTopicsWith(1, map[string]*string{"max.message.bytes": &limit}, h.out, h.dlq)
		h.kafka.Produce(&kgo.Record{Topic: h.in, Key: []byte("u-1"),
			Value: []byte(`{"event_id":"e-1","mobile":"17312340001","registered_at":"2024-01-02"}`)})
		_, stop := h.start(h.config(answer))
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		got := h.kafka.Consume(ctx, countAtLeast(1), h.out, h.dlq)
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		if got[0].Topic != h.out || len(got[0].Value) > 700-256 {
			reason, _ := header(got[0], processor.HeaderError)
			t.Errorf("written to %s (%d bytes; %s); want the output, which fits a topic of 700 bytes", got[0].Topic, len(got[0].Value), reason)
		}
	})
	t.Run("400 bytes", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, 1)
		limit := "400"
		h.kafka.CreateTopics(1, h.out)
		h.kafka.CreateTopicsWith(1, map[string]*string{"max.message.bytes": &limit}, h.dlq)
		p, err := processor.New(h.config(answer))
		if err != nil {
			t.Fatal(err)
		}
		err = p.Run(t.Context())
		if err == nil || !strings.Contains(err.Error(), `topic "`+h.dlq+`" takes batches of at most 400 bytes (max.message.bytes)`) ||
			!strings.Contains(err.Error(), "--entity-name "+h.dlq+" --add-config max.message.bytes=") {
			t.Errorf("Run = %v; want an error that names the topic, its max.message.bytes, and how to raise it", err)
		}
	})
}
