package processor_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// A broker refuses a whole batch for one record's timestamp (a topic's
// message.timestamp.after.max.ms) or form (a record without a key on a
// compacted topic). Found by a walkthrough: one output stamped 2099 had its
// eight batch mates, paid for, dead-lettered with it, each "refused for its
// timestamp". At least once, each record of a batch so refused is produced
// again alone, as for a batch too large, and only the one refused alone is
// dead-lettered. Here e-7, stamped 2099, is batched between e-0 and e-14.
func TestBatchRefusedForOneRecordsTimestamp(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 1)
	if h.kafka.Fake == nil {
		t.Skip("refuses produce requests with kfake's control functions")
	}
	h.kafka.CreateTopics(1, h.out)
	future := time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)
	h.refuseBatches(func(_ []byte, b *kmsg.RecordBatch) *kerr.Error {
		if b.MaxTimestamp >= future.UnixMilli() {
			return kerr.InvalidTimestamp
		}
		return nil
	}, h.out)
	b := startBatching(h, h.out, "")
	late := event(h.in, 7, false)
	late.Timestamp = future
	b.batch(3, event(h.in, 0, false), late, event(h.in, 14, false))
	h.kafka.Consume(b.ctx, countAtLeast(4), h.out, h.dlq)
	if err := b.stop(); err != nil {
		t.Fatal(err)
	}
	outs, dead := b.written()
	if !slices.Equal(outs, []string{"e-9", "e-0", "e-14"}) || len(dead) != 1 || !strings.Contains(dead[0], "/0/2 output_rejected") ||
		!strings.Contains(dead[0], "produced alone") {
		t.Errorf("outputs %v, dead letters %q; want e-9, e-0 and e-14 enriched, in their order, and only e-7 dead-lettered, refused alone", outs, dead)
	}
	if logs := b.logs.String(); !strings.Contains(logs, "a topic refused a batch for one of its records") {
		t.Errorf("no warning that records were written alone:\n%s", logs)
	}
}
