package processor_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/twosell/twosell/processor"
	"github.com/twosell/twosell/processor/kafkatest"
)

// Run closed p.tasks once runAtLeastOnce returned ("the workers, and so
// their tasks, have stopped by then"), but a stop waits for an abandoned
// worker only maxAbandonWait (partition.go, shutdown) and then leaves it
// running. With the producer's buffer full (the broker holds the outputs
// back), the one pool goroutine (MaxInFlight 1) is blocked handing e-1's
// output to the producer, after releasing e-1's slot; the dispatcher takes
// e-2, acquires that slot and blocks sending e-2's task. The stop leaves it
// there; the client's close frees the pool goroutine, and Run's close of
// the tasks' channel raced with the dispatcher's pending send: a send on a
// closed channel panics. (Found by review; the race detector reported the
// close racing with the send in 8 of 20 runs.) The pool ends on a channel
// of its own now, on which the dispatcher gives the record up.
func TestStopLeavesNoDispatcherSendingATask(t *testing.T) {
	h := newHarness(t, 1)
	if h.kafka.Fake == nil {
		t.Skip("kfake")
	}
	h.kafka.CreateTopics(1, h.out, h.dlq)
	outID := h.topicID(h.out)
	release := make(chan struct{})
	t.Cleanup(sync.OnceFunc(func() { close(release) }))
	var held atomic.Int64
	h.kafka.Fake.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		h.kafka.Fake.KeepControl()
		if writesTopic(req.(*kmsg.ProduceRequest), h.out, outID) {
			held.Add(1)
			h.kafka.Fake.SleepControl(func() { <-release }) // a broker that does not answer
		}
		return nil, nil, false
	})
	h.produceEvents(3)
	var asked atomic.Int64
	cfg := h.config(processor.EnricherFunc(func(_ context.Context, l processor.Lookup) (processor.Result, error) {
		asked.Add(1)
		return fakeAnswer(l), nil
	}))
	cfg.Ordering = processor.OrderingNone
	cfg.MaxInFlight = 1
	cfg.ShutdownTimeout = 200 * time.Millisecond
	cfg.ClientOpts = append(cfg.ClientOpts, kgo.MaxBufferedRecords(1))
	p, stop := h.start(cfg)
	// e-0's output held by the broker, e-1's blocked in Produce, e-2 taken
	// with e-1's slot: the dispatcher waits for a pool goroutine.
	kafkatest.WaitFor(t, func() bool {
		return asked.Load() == 2 && held.Load() > 0 && p.Stats().InFlight == 1 && p.Frontier(h.in, 0) == 2
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}
