package processor

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/twosell/twosell/processor/kafkatest"
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
				if r, _, _, _ := w.next(); r == nil {
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

// Finished records are recycled: the slices their batches were decoded into
// go back to the pool (and the outputs, which share the inputs' keys and
// header values until they are acknowledged, are intact: TestEndToEnd).
func TestFinishedRecordsAreRecycled(t *testing.T) {
	t.Parallel()
	k := kafkatest.New(t)
	in, out := k.Name("in"), k.Name("out")
	k.CreateTopics(1, in)
	const n = 2000
	recs := make([]*kgo.Record, n)
	for i := range recs {
		recs[i] = &kgo.Record{Topic: in, Key: fmt.Appendf(nil, "u-%d", i%7),
			Value: fmt.Appendf(nil, `{"event_id":"e-%d","mobile":"1731234%04d","registered_at":"2024-01-02"}`, i, i)}
	}
	k.Produce(recs...)
	p, err := New(Config{
		ClientOpts: []kgo.Opt{kgo.SeedBrokers(k.Brokers...)}, Group: k.Name("g"),
		InputTopic: in, OutputTopic: out, DLQTopic: out + ".dlq", CreateTopics: true,
		Enricher: EnricherFunc(func(_ context.Context, l Lookup) (Result, error) {
			return Result{Status: StatusNotRecycled, Res: 2, Source: SourceAPI, OrderID: "JH1"}, nil
		}),
		Codec:          CodecConfig{Location: time.UTC},
		MaxPollRecords: 100,
		Logger:         slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	cancel, done := runInternal(t, p)
	kafkatest.WaitFor(t, func() bool { return p.Stats().Produced == n })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if p.pools.returned.Load() == 0 {
		t.Error("no batch's records came back to the pool: finished records are not recycled")
	}
}

// A record is overtaken once a later one started, at-least-once; never
// exactly-once, where an aborted transaction's records come again at
// offsets already started.
func TestOvertookNeverExactlyOnce(t *testing.T) {
	for _, eos := range []bool{false, true} {
		p := &Processor{cfg: Config{MaxBufferedRecords: 4, MaxBufferedBytes: 1 << 20, ExactlyOnce: eos}, stats: newCounters()}
		w := newPartitionWorker(p, topicPartition{"t", 0})
		w.push([]*kgo.Record{{Offset: 7}, {Offset: 8}}, nil)
		for range 2 {
			if r, _, _, _ := w.next(); r == nil {
				t.Fatal("next returned nil")
			}
		}
		if got := w.overtook(7); got == eos {
			t.Errorf("exactly-once %v: record 7 overtaken by 8: %v", eos, got)
		}
		if w.overtook(8) {
			t.Errorf("exactly-once %v: record 8, the last started, overtaken", eos)
		}
		w.stopFn()
	}
}

// A stop finishes the records that later ones overtook even when the
// dispatcher is waiting for an in-flight slot for a record that nothing
// overtook. e-7 (key u-0) is parked behind e-0 (held); e-8 (u-1) is
// produced; e-9 holds the second slot, and e-10 waits for a slot. At the
// stop, e-10's acquire fails and the dispatcher must go on to start e-7
// once e-0 releases it; returning there leaves e-7 unstarted, the commit
// at 7, and e-8 and e-9 produced again by the next owner. (Found by
// review.)
func TestStopWhileWaitingForASlotFinishesOvertaken(t *testing.T) {
	k := kafkatest.New(t)
	in, out := k.Name("in"), k.Name("out")
	k.CreateTopics(1, in)
	var recs []*kgo.Record
	for i := range 11 {
		recs = append(recs, &kgo.Record{Topic: in, Key: fmt.Appendf(nil, "u-%d", i%7),
			Value: fmt.Appendf(nil, `{"event_id":"e-%d","mobile":"1731234%04d","registered_at":"2024-01-02"}`, i, i)})
	}
	k.Produce(recs...)
	held := map[string]chan struct{}{"0000": make(chan struct{}), "0009": make(chan struct{})}
	p, err := New(Config{
		ClientOpts: []kgo.Opt{kgo.SeedBrokers(k.Brokers...)}, Group: k.Name("g"),
		InputTopic: in, OutputTopic: out, DLQTopic: out + ".dlq", CreateTopics: true,
		Enricher: EnricherFunc(func(ctx context.Context, l Lookup) (Result, error) {
			if release, ok := held[l.Mobile[7:]]; ok {
				select {
				case <-release:
				case <-ctx.Done():
					return Result{}, ctx.Err()
				}
			}
			return Result{Status: StatusNotRecycled, Res: 2, Source: SourceAPI, OrderID: "JH1"}, nil
		}),
		Codec:          CodecConfig{Location: time.UTC},
		MaxInFlight:    2,
		CommitInterval: 50 * time.Millisecond,
		Logger:         slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	cancel, done := runInternal(t, p)
	worker := func() *partitionWorker {
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.workers[topicPartition{in, 0}]
	}
	// e-1..e-6 and e-8 produced, e-0 and e-9 in flight, e-10 taken (the
	// dispatcher waits for a slot for it).
	kafkatest.WaitFor(t, func() bool {
		w := worker()
		if w == nil || p.Stats().Produced != 7 {
			return false
		}
		w.mu.Lock()
		defer w.mu.Unlock()
		return w.frontier == 10
	})
	stopping := worker().stopCtx.Done()
	cancel()
	<-stopping
	close(held["0000"]) // within the grace: e-7 may start now
	close(held["0009"])
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	rctx, rcancel := context.WithTimeout(context.Background(), time.Minute)
	defer rcancel()
	var ids []string
	for _, r := range k.ConsumeAll(rctx, out) {
		ids = append(ids, strings.Split(string(r.Value), `"`)[3])
	}
	slices.Sort(ids)
	if committed := k.CommittedOffsets(p.cfg.Group, in)[0]; committed != 10 || !slices.Contains(ids, "e-7") {
		t.Errorf("committed %d, outputs %v; want e-7 finished and the commit at 10 (only e-10, never started, left)", committed, ids)
	}
}

// runInternal runs p until cancel; done receives what Run returned.
func runInternal(t *testing.T, p *Processor) (cancel context.CancelFunc, done <-chan error) {
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() { errc <- p.Run(ctx) }()
	return cancel, errc
}
