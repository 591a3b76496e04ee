package processor_test

import (
	"context"
	"testing"
	"time"

	"github.com/twosell/twosell/processor"
	"github.com/twosell/twosell/processor/kafkatest"
)

// DESIGN ("Processing"): "In-flight work is bounded (records and bytes), so
// a slow provider becomes backpressure, not memory growth"; README: "a slow
// or failing provider becomes consumer lag, never memory growth".
//
// With ordering: partition, a task releases its in-flight slot when its
// lookup ends (runTask: finish, release, then handOver), before its output
// is handed to the producer; the sequencer keeps every output that waits
// for an earlier record in its pending map. The record left the buffer when
// it started (taken), so the partition resumed fetching: one slow lookup
// (e-0 here) let the whole partition be fetched, looked up and kept in
// memory, outputs and inputs, as the test's 300 records were, far past
// MaxInFlight (4) + MaxBufferedRecords (10) + one poll (10), the bound
// TestPauseResumeUnderAFullWindow checks for a slow provider. (Found by
// review.) The outputs held count as buffered now: the partition pauses.
func TestPartitionOrderingBoundsOutputsWaitingForASlowRecord(t *testing.T) {
	h := newHarness(t, 1)
	const n = 300
	h.produceEvents(n)
	release := make(chan struct{})
	cfg := h.config(processor.EnricherFunc(func(ctx context.Context, l processor.Lookup) (processor.Result, error) {
		if l.Mobile[7:] == "0000" { // e-0: a slow call
			select {
			case <-release:
			case <-ctx.Done():
				return processor.Result{}, ctx.Err()
			}
		}
		return fakeAnswer(l), nil
	}))
	cfg.Ordering = processor.OrderingPartition
	cfg.MaxInFlight, cfg.MaxBufferedRecords, cfg.MaxPollRecords = 4, 10, 10
	p, stop := h.start(cfg)
	bound := int64(cfg.MaxInFlight + cfg.MaxBufferedRecords + cfg.MaxPollRecords)
	// Every record received is started and, but e-0, done; fetching is
	// paused, or the whole partition was received.
	var s processor.Stats
	kafkatest.WaitFor(t, func() bool {
		s = p.Stats()
		return p.Frontier(h.in, 0) == s.Consumed-1 && s.InFlight == 1 && (s.PausedPartitions == 1 || s.Consumed == n)
	})
	if s.Consumed > bound {
		t.Errorf("while e-0's lookup is in progress: %d records received and all %d started (frontier %d), %d produced, "+
			"in flight %d, paused partitions %d; the %d finished records wait in memory for e-0, past the bound of %d "+
			"(max_in_flight %d + max_buffered_records %d + one poll %d)",
			s.Consumed, p.Frontier(h.in, 0)+1, p.Frontier(h.in, 0), s.Produced, s.InFlight, s.PausedPartitions, s.Consumed-1, bound,
			cfg.MaxInFlight, cfg.MaxBufferedRecords, cfg.MaxPollRecords)
	}
	close(release)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	h.kafka.Consume(ctx, countAtLeast(n), h.out)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}
