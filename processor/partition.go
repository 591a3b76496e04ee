package processor

import (
	"context"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"
)

// pauseReason says why a partition's fetching is paused; it resumes when no
// reason is left.
type pauseReason uint8

const (
	pauseFull pauseReason = 1 << iota // the worker's queue is at MaxBufferedRecords
	pauseHeld                         // the provider is unavailable; a record is held back
)

// partitionWorker processes one partition's records in order. Records are
// queued by the poll loop and taken one at a time; the queue is bounded by
// pausing the partition's fetching, so a slow provider becomes lag, not
// memory.
type partitionWorker struct {
	p     *Processor
	tp    topicPartition
	track *tracker

	mu     sync.Mutex
	queue  []*kgo.Record
	paused pauseReason
	wake   chan struct{} // capacity 1: "the queue may have grown"

	stop   chan struct{}      // closed: take no new record
	ctx    context.Context    // canceled: abandon the record in progress
	cancel context.CancelFunc //
	done   chan struct{}      // closed when the worker has returned
}

func newPartitionWorker(p *Processor, tp topicPartition) *partitionWorker {
	ctx, cancel := context.WithCancel(context.Background())
	return &partitionWorker{
		p:      p,
		tp:     tp,
		track:  newTracker(),
		wake:   make(chan struct{}, 1),
		stop:   make(chan struct{}),
		ctx:    ctx,
		cancel: cancel,
		done:   make(chan struct{}),
	}
}

// enqueue adds polled records. They count as unfinished from now on.
func (w *partitionWorker) enqueue(recs []*kgo.Record) {
	for _, r := range recs {
		w.track.add(r.Offset, r.LeaderEpoch)
	}
	w.p.stats.consumed.Add(int64(len(recs)))
	w.mu.Lock()
	w.queue = append(w.queue, recs...)
	full := len(w.queue) >= w.p.cfg.MaxBufferedRecords
	w.mu.Unlock()
	if full {
		w.setPaused(pauseFull, true)
	}
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// next returns the next record, or nil once the worker is told to stop.
// Records still queued then stay unfinished, so they are never committed.
func (w *partitionWorker) next() *kgo.Record {
	for {
		select {
		case <-w.stop:
			return nil
		default:
		}
		w.mu.Lock()
		if len(w.queue) > 0 {
			r := w.queue[0]
			w.queue[0] = nil
			w.queue = w.queue[1:]
			low := len(w.queue) <= w.p.cfg.MaxBufferedRecords/2
			w.mu.Unlock()
			if low {
				w.setPaused(pauseFull, false)
			}
			return r
		}
		w.mu.Unlock()
		select {
		case <-w.wake:
		case <-w.stop:
			return nil
		}
	}
}

// run processes records until told to stop.
func (w *partitionWorker) run() {
	defer close(w.done)
	for {
		r := w.next()
		if r == nil {
			return
		}
		w.process(w.ctx, r)
	}
}

// setPaused sets or clears one reason for pausing the partition's fetching
// and pauses or resumes it when the set of reasons becomes non-empty or empty.
func (w *partitionWorker) setPaused(reason pauseReason, on bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	before := w.paused
	if on {
		w.paused |= reason
	} else {
		w.paused &^= reason
	}
	tps := map[string][]int32{w.tp.topic: {w.tp.partition}}
	switch {
	case before == 0 && w.paused != 0:
		w.p.cl.PauseFetchPartitions(tps)
		w.p.stats.paused.Add(1)
	case before != 0 && w.paused == 0:
		w.p.cl.ResumeFetchPartitions(tps)
		w.p.stats.paused.Add(-1)
	}
}

// shutdown stops the worker: no new record is taken, the record in progress
// gets until grace is closed to finish, then it is abandoned. It returns once
// the worker has returned. A nil grace abandons at once.
func (w *partitionWorker) shutdown(grace <-chan struct{}) {
	close(w.stop)
	if grace == nil {
		w.cancel()
	}
	select {
	case <-w.done:
	case <-grace:
		w.cancel()
		<-w.done
	}
	w.release()
}

// release abandons whatever the worker still does and resumes its
// partition: a revoked partition that comes back must not come back paused.
func (w *partitionWorker) release() {
	w.cancel()
	w.setPaused(pauseFull|pauseHeld, false)
}
