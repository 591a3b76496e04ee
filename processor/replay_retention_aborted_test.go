package processor_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/twosell/twosell/processor"
)

// The replay's retention check (checkReplayRetention, with refine:
// firstYoungRecords) reads the range from where the input's time index
// points, read_committed, until it sees a young data record, a record at or
// past the range's end, or a marker at its last offset. A range that ends in
// records of a transaction aborted while another is open (the marker lies
// past the last stable offset, where the range ends) gives it none of
// these: the client drops the aborted records, and the marker does not come
// until the other transaction ends. The replay itself ends such a range at
// once (probe: TestReplayEndsBeforeAnAbortedTail), and so now does the
// check before it, with the same reading past markers and aborted records
// (RangeRest) when a poll returns nothing. Before, it waited its 2-minute
// timeout and then refused the replay with a read error (found by review).
//
// Here partition 0 holds b's aborted record (offset 0, stamped now) and a's
// open one (offset 1): the range [0, 1) holds no record to write, and the
// existing output topics keep records 7 days. Want: the replay ends at once,
// complete, with nothing written (as it does with IgnoreRetention).
func TestReplayRetentionCheckEndsBeforeAnAbortedTail(t *testing.T) {
	defer processor.SetReplayStallAfter(time.Hour)()
	h := newHarness(t, 1)
	week := fmt.Sprint(int64(7 * 24 * time.Hour / time.Millisecond))
	h.kafka.CreateTopicsWith(1, map[string]*string{"retention.ms": &week}, h.out, h.dlq)
	h.abortedTail(t, 1, 1, 0) // b's record at offset 0, a's open one at 1, b's marker at 2

	for _, ignore := range []bool{true, false} {
		t.Run(fmt.Sprintf("IgnoreRetention=%v", ignore), func(t *testing.T) {
			cfg := h.config(answer)
			cfg.Group, cfg.Range = "", map[int32]processor.OffsetRange{0: {Start: 0, End: 1}}
			cfg.IgnoreRetention = ignore
			p, err := processor.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			// A hang guard only: the range holds no record, and the
			// replay with IgnoreRetention ends at once.
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			err = p.Run(ctx)
			if err != nil || ctx.Err() != nil || !p.RangeComplete() {
				t.Errorf("replay of [0, 1) (b's aborted record only) into topics that keep records 7 days: Run = %v (hang guard ended: %v), complete %v; "+
					"want nil, ended by itself, complete", err, errors.Is(ctx.Err(), context.DeadlineExceeded), p.RangeComplete())
			}
		})
	}
}
