package processor

import (
	"sync"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

// A partition paused because its buffer filled is resumed once the buffer
// drains, however the poll loop's push and the dispatcher's next interleave.
// Deciding to pause under the buffer's lock but pausing after releasing it
// let a dispatcher empty the buffer in between, and the partition stayed
// paused for good: twosell bench saw a partition stop mid-backlog.
func TestPauseAndResumeDoNotSwap(t *testing.T) {
	cl, err := kgo.NewClient(kgo.SeedBrokers("127.0.0.1:1")) // never dialed: pausing is local
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	const max = 4
	p := &Processor{cfg: Config{MaxBufferedRecords: max, MaxBufferedBytes: 1 << 20, Ordering: OrderingNone}, stats: newCounters()}
	p.setClient(cl)
	for round := range 10000 {
		w := newPartitionWorker(p, topicPartition{"t", 0})
		var wg sync.WaitGroup
		wg.Go(func() { // the dispatcher
			for range 3 * max {
				if r, _, _ := w.next(); r == nil {
					t.Error("next returned nil")
					return
				}
			}
		})
		for i := range 3 { // the poll loop: a full buffer each time
			recs := make([]*kgo.Record, max)
			for j := range recs {
				recs[j] = &kgo.Record{Offset: int64(i*max + j)}
			}
			w.push(recs, nil)
		}
		wg.Wait()
		w.mu.Lock()
		paused, buffered := w.paused, w.bufCount
		w.mu.Unlock()
		if paused != 0 || len(cl.PauseFetchPartitions(nil)) != 0 {
			t.Fatalf("round %d: the buffer holds %d records and the partition is still paused", round, buffered)
		}
		w.stopFn()
	}
}
