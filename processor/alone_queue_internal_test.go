package processor

import (
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/twosell/twosell/processor/kafkatest"
)

// The records waiting to be produced alone are bounded (maxLoneQueue): a
// topic that refuses every batch refuses records faster than they are
// written one a round trip, and the queue grew without a bound. With the broker holding every produce, the records given after
// the bound wait in produceAlone until the others are written.
func TestRecordsProducedAloneAreBounded(t *testing.T) {
	old := maxLoneQueue
	maxLoneQueue = 4
	t.Cleanup(func() { maxLoneQueue = old })
	k := kafkatest.NewFake(t, nil)
	k.CreateTopics(1, "t")
	release := make(chan struct{})
	releaseOnce := sync.OnceFunc(func() { close(release) })
	t.Cleanup(releaseOnce)
	k.Fake.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		k.Fake.KeepControl()
		k.Fake.SleepControl(func() { <-release })
		return nil, nil, false
	})
	p := &Processor{log: slog.New(slog.DiscardHandler), cfg: Config{ClientOpts: []kgo.Opt{kgo.SeedBrokers(k.Brokers...)}}}
	defer p.lone.close()

	const n = 10
	var given, acked atomic.Int64
	for i := range n {
		go func() {
			p.produceAlone(&kgo.Record{Topic: "t", Value: []byte{byte(i)}}, func(_ *kgo.Record, err error) {
				if err != nil {
					t.Error(err)
				}
				acked.Add(1)
			})
			given.Add(1)
		}()
	}
	// One in the producer, four queued (the next is handed only once the
	// one before is done: drainAlone): the bound's four slots are taken, and
	// no more can be given while the broker holds the first.
	kafkatest.WaitFor(t, func() bool {
		p.lone.mu.Lock()
		defer p.lone.mu.Unlock()
		return p.lone.slots != nil && len(p.lone.slots) == maxLoneQueue && given.Load() == int64(maxLoneQueue)+1
	})
	p.lone.mu.Lock()
	queued := len(p.lone.queue)
	p.lone.mu.Unlock()
	if g := given.Load(); g != int64(maxLoneQueue)+1 || queued != maxLoneQueue {
		t.Fatalf("%d records given and %d queued while the broker holds the first; want %d and %d", g, queued, maxLoneQueue+1, maxLoneQueue)
	}
	releaseOnce()
	kafkatest.WaitFor(t, func() bool { return acked.Load() == n })
}
