package processor

import (
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/twosell/twosell/processor/kafkatest"
)

// While a partition is paused full and every other partition that fetches
// is caught up, those are paused too, and they resume with it. A partition
// with records left, or one not yet known to be caught up, keeps the others
// fetching: the fetch in flight returns at once then. A partition held for
// the provider counts for neither.
func TestCopause(t *testing.T) {
	p, cl := copauseProcessor(t, time.Hour) // resumed with the full partition, not by the clock
	full, _, _ := copauseWorker(p, 0, false), copauseWorker(p, 1, true), copauseWorker(p, 2, true)
	copauseWorker(p, 3, false).hold(nil)
	go p.copause.run(t.Context(), p)

	full.push(records(0, 4), nil) // full: paused, and the caught-up ones with it
	waitPaused(t, cl, 0, 1, 2, 3)
	for range 3 { // below half: resumed, and the others with it
		full.next()
	}
	waitPaused(t, cl, 3)

	busy := copauseWorker(p, 4, false)
	full.push(records(4, 4), nil)
	waitPaused(t, cl, 0, 3)
	busy.caughtUp.Store(true)
	p.copause.signal() // the loop looks, as fetched does at once when a partition reaches its end
	waitPaused(t, cl, 0, 1, 2, 3, 4)
	for range 3 {
		full.next()
	}
	waitPaused(t, cl, 3)
}

// A co-pause ends after FetchMaxWait while the full partition stays full,
// and does not come again until a partition fills anew.
func TestCopauseEnds(t *testing.T) {
	p, cl := copauseProcessor(t, time.Millisecond)
	full, _ := copauseWorker(p, 0, false), copauseWorker(p, 1, true)
	go p.copause.run(t.Context(), p)
	full.push(records(0, 4), nil)
	kafkatest.WaitFor(t, func() bool { return p.copause.made.Load() == 1 })
	waitPaused(t, cl, 0)
	p.copause.look(p, nil) // a look with nothing new: no co-pause
	waitPaused(t, cl, 0)
	if n := p.copause.made.Load(); n != 1 {
		t.Errorf("%d co-pauses, want 1: the spent one came again", n)
	}
}

func copauseProcessor(t *testing.T, fetchMaxWait time.Duration) (*Processor, *kgo.Client) {
	cl, err := kgo.NewClient(kgo.SeedBrokers("127.0.0.1:1")) // never dialed: pausing is local
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	p := &Processor{
		cfg:     Config{MaxBufferedRecords: 4, MaxBufferedBytes: 1 << 20, Ordering: OrderingNone, FetchMaxWait: fetchMaxWait},
		stats:   newCounters(),
		workers: make(map[topicPartition]*partitionWorker),
		copause: newCopauser(),
		log:     slog.New(slog.DiscardHandler),
	}
	p.setClient(cl)
	return p, cl
}

func copauseWorker(p *Processor, partition int32, caughtUp bool) *partitionWorker {
	w := newPartitionWorker(p, topicPartition{"t", partition})
	w.caughtUp.Store(caughtUp)
	p.mu.Lock()
	p.workers[w.tp] = w
	p.mu.Unlock()
	return w
}

func records(from int64, n int) []*kgo.Record {
	rs := make([]*kgo.Record, n)
	for i := range rs {
		rs[i] = &kgo.Record{Offset: from + int64(i)}
	}
	return rs
}

func waitPaused(t *testing.T, cl *kgo.Client, want ...int32) {
	t.Helper()
	kafkatest.WaitFor(t, func() bool {
		ps := cl.PauseFetchPartitions(nil)["t"]
		slices.Sort(ps)
		return slices.Equal(ps, want)
	})
}
