package processor_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/twosell/twosell/processor"
)

// With ordering: partition, a partition's outputs are produced in input
// order (README, "Delivery"), and a consumer must be able to see it: each
// output and dead letter goes to the partition of its input's number. Found
// by review: they went through franz-go's default partitioner, by key hash,
// and records without a key by batch, so that 300 outputs of input
// partition 0 landed on output partitions 0 and 2, and a consumer of both
// could read n183 before n182. With ordering: key (the default) they are
// still placed by key.
func TestPartitionOrderingKeepsEachPartitionsOutputsTogether(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		ordering processor.Ordering
		together bool
	}{
		{processor.OrderingPartition, true},
		{processor.OrderingKey, false},
	} {
		t.Run(string(tc.ordering), func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, 3)
			var recs []*kgo.Record
			for i := range 60 {
				r := event(h.in, i, i%10 == 9) // every tenth a dead letter
				r.Partition = int32(i % 2)     // input partitions 0 and 1 only
				if i%3 == 0 {
					r.Key = nil
				} else {
					r.Key = fmt.Appendf(nil, "k-%d", i) // a key of its own
				}
				recs = append(recs, r)
			}
			cl := h.kafka.Client(kgo.RecordPartitioner(kgo.ManualPartitioner()))
			if err := cl.ProduceSync(t.Context(), recs...).FirstErr(); err != nil {
				t.Fatal(err)
			}
			cfg := h.config(processor.EnricherFunc(func(_ context.Context, l processor.Lookup) (processor.Result, error) {
				return fakeAnswer(l), nil
			}))
			cfg.Ordering = tc.ordering
			_, stop := h.start(cfg) // creates the output topics with the input's 3 partitions
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			got := h.kafka.Consume(ctx, countAtLeast(60), h.out, h.dlq)
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			byPartition := map[int32][]string{} // event ids, in each output partition's order (both topics)
			misplaced := 0
			for _, r := range got {
				byPartition[r.Partition] = append(byPartition[r.Partition], fmt.Sprintf("%s:%s", r.Topic[:3], eventID(t, r.Value)))
				var i int
				fmt.Sscanf(eventID(t, r.Value), "e-%d", &i)
				if r.Partition != int32(i%2) {
					misplaced++
				}
			}
			if !tc.together {
				if misplaced == 0 {
					t.Errorf("ordering key: every output on its input's partition; want them placed by key hash:\n%v", byPartition)
				}
				return
			}
			if misplaced != 0 || len(byPartition[2]) != 0 {
				t.Fatalf("%d of 60 outputs and dead letters not on their input's partition; by output partition:\n%v", misplaced, byPartition)
			}
			for p, ids := range byPartition {
				var outs []int
				for _, id := range ids {
					var i int
					if _, err := fmt.Sscanf(id[4:], "e-%d", &i); err == nil && id[:3] == h.out[:3] {
						outs = append(outs, i)
					}
				}
				if !slices.IsSorted(outs) {
					t.Errorf("output partition %d: outputs %v, not in input order", p, outs)
				}
			}
		})
	}
}
