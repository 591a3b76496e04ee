package processor

import (
	"context"
	"maps"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// pauseReason says why a partition's fetching is paused; it resumes when no
// reason is left.
type pauseReason uint8

const (
	pauseFull pauseReason = 1 << iota // the worker's buffer is at MaxBufferedRecords or MaxBufferedBytes
	pauseHeld                         // the provider is unavailable; a record is held back
	pauseIdle                         // caught up while another partition is paused full (copause.go)
	pauseDone                         // replay: the partition's range is fetched
)

// partitionWorker runs one partition's records: a dispatcher goroutine takes
// them in input order and starts each in its own task once an in-flight slot
// is free (Processor.acquire), so many lookups are in flight at once while
// the Ordering holds:
//
//   - key: a record starts only after the previous record with the same key
//     has been handed to the producer; it waits (parked) meanwhile, and
//     records with other keys overtake it;
//   - partition: lookups overlap, and a sequencer hands outputs to the
//     producer in input order;
//   - none: outputs are handed over as they are ready.
//
// Records received and not yet started are buffered; above MaxBufferedRecords
// or MaxBufferedBytes the partition's fetching pauses, and it resumes below
// half of both, so a slow provider becomes lag, not memory.
type partitionWorker struct {
	p     *Processor
	tp    topicPartition
	track *tracker

	outputs outputFree // its output records, recycled

	mu       sync.Mutex
	queue    []*kgo.Record            // received, not started, in input order
	ready    []*kgo.Record            // released from parked: start these first
	parked   map[string][]*kgo.Record // key ordering: waiting behind a record of the same key
	busy     map[string]bool          // key ordering: keys with a record in flight
	broken   map[string]bool          // key ordering, at least once: keys of a record not handed over, busy for good (settle)
	bufCount int                      // records in queue, ready and parked, and waiting (await)
	bufBytes int
	frontier int64     // the highest offset started
	nextSeq  uint64    // partition ordering: the next record's place
	seq      sequencer // partition ordering
	batch    *txnBatch // exactly-once: the transaction the buffered records belong to
	holds    int       // tasks holding a record back for the provider
	timed    int       // records begun, counted for Config.OnRecordEvery
	paused   pauseReason
	waiting  watchedSet[*awaiting] // records waiting in await
	caughtUp atomic.Bool           // the last fetch reached the partition's end (copause.go)
	wake     chan struct{}         // capacity 1: "there may be a record to start"

	// The dispatcher's clocks: the cost controls' (the knowledge's
	// expiry) and the processor's (checked_at) for the records it answers.
	costClock, outClock tickClock
	keys                keyMemo // the dispatcher's memo of mobiles' keys

	durables durableHands // records waiting for their answers to be durable
	// durableWaiting counts them, as buffered: a record whose answer
	// waits for the ledger holds no slot, and, not counted, a ledger that
	// did not answer let the whole backlog be fetched, paid for and held
	// (found by review: 60 of 60 with 2 slots and a buffer of 4).
	durableWaiting atomic.Int64

	stopCtx context.Context    // canceled: start no new record
	stopFn  context.CancelFunc //
	ctx     context.Context    // canceled: abandon the records in progress
	cancel  context.CancelFunc //
	tasks   sync.WaitGroup     // records in progress
	done    chan struct{}      // closed when the dispatcher and its tasks have returned

	// ahead, at least once: the records the partition's previous owner
	// wrote above the committed offset it was assigned at (ahead.go).
	ahead aheadSet
}

func newPartitionWorker(p *Processor, tp topicPartition) *partitionWorker {
	ctx, cancel := context.WithCancel(context.Background())
	stopCtx, stopFn := context.WithCancel(context.Background())
	w := &partitionWorker{
		p:        p,
		tp:       tp,
		track:    newTracker(),
		outputs:  outputFree{kept: &p.keptOutputs},
		frontier: -1,
		parked:   make(map[string][]*kgo.Record),
		busy:     make(map[string]bool),
		broken:   make(map[string]bool),
		seq:      sequencer{pending: make(map[uint64]emission), brokenAt: noBreak},
		wake:     make(chan struct{}, 1),
		stopCtx:  stopCtx,
		stopFn:   stopFn,
		ctx:      ctx,
		cancel:   cancel,
		done:     make(chan struct{}),
	}
	w.outClock.now, w.outClock.ticks, w.costClock.ticks = p.cfg.Now, &p.ticks, &p.ticks
	if c, ok := p.cfg.Enricher.(*CostControl); ok {
		w.costClock.now = c.cfg.Now
	}
	return w
}

// enqueue adds polled records. They count as unfinished from now on.
func (w *partitionWorker) enqueue(recs []*kgo.Record) {
	w.track.addAll(recs)
	recs = w.passMarkers(recs)
	w.p.stats.consumed.Add(int64(len(recs)))
	w.push(w.skipWritten(recs), nil)
}

// passMarkers finishes the transaction markers among recs at once
// (KeepControlRecords: clientOpts), so that the committed offset passes
// them, and returns the other records.
func (w *partitionWorker) passMarkers(recs []*kgo.Record) []*kgo.Record {
	if !slices.ContainsFunc(recs, func(r *kgo.Record) bool { return r.Attrs.IsControl() }) {
		return recs
	}
	kept := make([]*kgo.Record, 0, len(recs))
	for _, r := range recs {
		if !r.Attrs.IsControl() {
			kept = append(kept, r)
			continue
		}
		w.track.done(r.Offset)
		r.Recycle()
	}
	return kept
}

// push buffers records (of batch b, exactly-once) and pauses the partition
// when the buffer is full.
func (w *partitionWorker) push(recs []*kgo.Record, b *txnBatch) {
	n := 0
	for _, r := range recs {
		n += recordBytes(r)
	}
	w.mu.Lock()
	if b != nil {
		w.batch = b
	}
	w.queue = append(w.queue, recs...)
	w.bufCount += len(recs)
	w.bufBytes += n
	w.fillLocked()
	w.mu.Unlock()
	w.signal()
}

// fillLocked pauses the partition if its buffer is full. The caller holds
// w.mu: paused after the lock was released, a buffer the dispatcher emptied
// meanwhile would stay paused for good (the bench saw a partition stop).
// With other partitions to co-pause (copause.go), it releases w.mu while it
// co-pauses them, first, and decides again once it holds it again.
func (w *partitionWorker) fillLocked() {
	over := func() bool {
		return w.paused&pauseFull == 0 && (w.buffered() >= w.p.cfg.MaxBufferedRecords || w.bufBytes >= w.p.cfg.MaxBufferedBytes)
	}
	if !over() {
		return
	}
	if c := w.p.copause; c != nil {
		w.mu.Unlock()
		c.look(w.p, w)
		w.mu.Lock()
		if !over() {
			c.signal() // drained meanwhile: the loop resumes the others
			return
		}
	}
	w.setPausedLocked(pauseFull, true)
}

func (w *partitionWorker) signal() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// next returns the next record to start, its key if the key is marked busy
// for it (key ordering: what settle releases; a record released from
// parked), its place in the partition and its batch, or nil once
// the worker is told to stop and has started every record that a started
// one overtook (see overtaken). Records left buffered then stay unfinished,
// so they are never committed.
func (w *partitionWorker) next() (*kgo.Record, string, uint64, *txnBatch) {
	byKey := w.p.cfg.Ordering == OrderingKey
	for {
		if w.stopCtx.Err() != nil {
			r, more := w.overtaken()
			switch {
			case r != nil:
				return r, string(r.Key), 0, nil // busy already: settle released it to r
			case !more:
				return nil, "", 0, nil
			}
			select {
			case <-w.wake:
			case <-w.ctx.Done():
			}
			continue
		}
		w.mu.Lock()
		var r *kgo.Record
		var k string
		switch {
		case len(w.ready) > 0:
			r = w.ready[0]
			w.ready[0] = nil
			w.ready = w.ready[1:]
			if byKey {
				k = string(r.Key) // busy already: settle released it to r
			}
		case len(w.queue) > 0:
			r = w.queue[0]
			w.queue[0] = nil
			w.queue = w.queue[1:]
			if byKey && len(r.Key) > 0 && w.busy[string(r.Key)] {
				k = string(r.Key)
				if w.broken[k] { // behind a record not finished: must not overtake it
					w.bufCount--
					w.bufBytes -= recordBytes(r)
				} else {
					w.parked[k] = append(w.parked[k], r)
				}
				w.mu.Unlock()
				continue
			}
			// Not busy yet: the dispatcher marks it (markBusy) only if
			// the record goes to a task; one it answers itself is handed
			// over before the next record is taken.
		}
		if r == nil {
			w.mu.Unlock()
			w.clocksStale()
			select {
			case <-w.wake:
			case <-w.stopCtx.Done():
			}
			continue
		}
		seq, b := w.nextSeq, w.batch
		w.nextSeq++
		w.taken(r)
		w.mu.Unlock()
		return r, k, seq, b
	}
}

// markBusy marks key as having a record in flight (key ordering): the
// records of the key that come meanwhile are parked behind it.
func (w *partitionWorker) markBusy(key string) {
	w.mu.Lock()
	w.busy[key] = true
	w.mu.Unlock()
}

// taken accounts for r leaving the buffer to start. The caller holds w.mu.
func (w *partitionWorker) taken(r *kgo.Record) {
	w.frontier = max(w.frontier, r.Offset)
	w.bufCount--
	w.bufBytes -= recordBytes(r)
	w.drainedLocked()
}

// drainedLocked resumes the partition once its buffer is below half of both
// caps. The caller holds w.mu (see fillLocked).
func (w *partitionWorker) drainedLocked() {
	if w.buffered() <= w.p.cfg.MaxBufferedRecords/2 && w.bufBytes <= w.p.cfg.MaxBufferedBytes/2 {
		w.setPausedLocked(pauseFull, false)
	}
}

// buffered is how many records the partition holds that it has not handed
// over: those not started (bufCount) and, with partition ordering, the
// outputs held for an earlier record still in progress. Not counting these,
// one slow lookup let the whole backlog be fetched, looked up and held
// (found by review: 300 records behind one, with 4 in flight and 10
// buffered).
func (w *partitionWorker) buffered() int {
	return w.bufCount + int(w.seq.waiting.Load()) + int(w.durableWaiting.Load())
}

// overtook reports whether a record after offset has started. Exactly-once
// it is false: a stop abandons everything at once there, and the records of
// an aborted transaction come again at offsets already started.
func (w *partitionWorker) overtook(offset int64) bool {
	if w.p.cfg.ExactlyOnce {
		return false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return offset < w.frontier
}

// overtaken returns, once the worker is told to stop, a record that later
// records overtook (key ordering: parked behind a record of its key while
// records of other keys started) and that may start now, and whether more
// such records may still come (parked behind a record in progress). A stop
// finishes these too, within its grace, whether they are parked, ready or
// waiting for an in-flight slot: left unstarted, they would hold the
// committed offset below outputs already produced, and the partition's next
// owner would produce those outputs again. Nothing else starts; the
// records are abandoned at once when the worker's ctx ends.
//
// Only key ordering parks records, and never exactly-once after a stop
// (its workers stop without grace), so r has no place and no batch.
func (w *partitionWorker) overtaken() (r *kgo.Record, more bool) {
	if w.ctx.Err() != nil {
		return nil, false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for i, c := range w.ready {
		if c.Offset < w.frontier {
			w.ready = append(w.ready[:i], w.ready[i+1:]...)
			w.taken(c)
			return c, true
		}
	}
	for _, waiting := range w.parked {
		if waiting[0].Offset < w.frontier {
			return nil, true
		}
	}
	return nil, false
}

// run is the dispatcher: it starts records in input order as in-flight
// slots free up, until told to stop; then it waits for its tasks.
func (w *partitionWorker) run() {
	defer close(w.done)
	defer w.tasks.Wait()
	for {
		// Past hand, r is not read: its output's acknowledgement may come
		// first, and recycle r (see acknowledged). settle takes its key.
		r, key, seq, b := w.next()
		if r == nil {
			return
		}
		// What abandons the record, and what cancels its call in flight:
		// at least once, the worker's ctx (a stop's grace is over);
		// exactly once, the batch's ctx and calls (see processBatch).
		abandon, calls := w.ctx, w.ctx
		if b != nil {
			abandon, calls = b.ctx, b.calls
		}
		// Stopped on a fatal error, at least once: nothing more is started
		// (and paid for) to be dropped at hand (found by review).
		if abandon.Err() != nil || b == nil && w.p.stopped.Load() {
			if !w.giveUp(key, seq, b) {
				return // stopping
			}
			continue
		}
		wk, e, done := w.begin(r)
		if done && e.durable == nil { // answered without a lookup in flight: no task needed
			e = w.hand(seq, e)
			w.settle(key, e, b)
			continue
		}
		if key == "" && w.p.cfg.Ordering == OrderingKey && len(r.Key) > 0 {
			key = string(r.Key)
			w.markBusy(key)
		}
		if done {
			// Answered from knowledge whose paid call's ledger write may
			// be in flight: handed over once it is done, its key busy
			// meanwhile (as a task's would be). Exactly once, a stop lets
			// it finish within the grace, as a call in flight (calls).
			w.tasks.Add(1)
			w.handDurable(calls, key, seq, e, b)
			continue
		}
		if b != nil {
			wk.l.quit = b.ctx // no new call once the batch stops (Lookup.stop)
		}
		s := &started{wk: wk, abandon: abandon, calls: calls, key: key, seq: seq, b: b, size: int64(recordBytes(r))}
		if w.await(s) {
			continue
		}
		stop := w.stopCtx
		if w.overtook(r.Offset) { // a stop waits for its slot too (see overtaken)
			stop = w.ctx
		}
		w.clocksStale() // acquire may wait
		if !w.p.acquire(stop, abandon, s.size) {
			w.handOnCall(&wk.l)
			wk.span.End()
			// Stopping, or the batch is abandoned (settle the rest as they
			// come). Stopping, next still starts the records that later
			// ones overtook (overtaken), and returns nil once none is left:
			// returning here left them unstarted, and the partition's next
			// owner wrote every output after them again.
			w.giveUp(key, seq, b)
			continue
		}
		w.tasks.Add(1)
		select {
		case w.p.tasks <- func() {
			if wk.t.sampled {
				wk.t.started = time.Now() // the task starts: waiting for a slot is not the record's latency
			}
			w.runTask(s)
		}:
		case <-w.p.poolEnd:
			// Run is returning: a stop gave up waiting for this worker (its
			// tasks stuck behind a full producer), and no goroutine takes
			// tasks any more. (It sent on the tasks' channel as Run closed
			// it: a panic.)
			w.p.release(s.size)
			w.giveUpStarted(s)
		}
	}
}

// started is a record the dispatcher started that needs a lookup in flight:
// what its task and its hand-over need.
type started struct {
	wk      *work
	abandon context.Context
	calls   context.Context // cancels its call in flight: abandon, or exactly once txnBatch.calls
	key     string
	seq     uint64
	b       *txnBatch
	size    int64 // what it holds of MaxInFlightBytes
}

// runTask looks s up, holding an in-flight slot that it releases, and hands
// the emission over.
func (w *partitionWorker) runTask(s *started) {
	e := w.finish(s.calls, s.wk)
	w.p.release(s.size)
	w.handOver(s, e)
}

// handOver hands s's emission e to the producer, once its answer is
// durable, and ends s's task.
func (w *partitionWorker) handOver(s *started, e emission) {
	if e.durable != nil {
		w.handDurable(s.calls, s.key, s.seq, e, s.b)
		return
	}
	e = w.hand(s.seq, e)
	w.settle(s.key, e, s.b)
	w.tasks.Done()
}

// await lets s wait for the call of its mobile in flight, if there is one
// (CostControl.await), without a slot or a task: the record counts as
// buffered meanwhile, so that waiting records pause the partition as
// received ones do. Woken, it is answered on the waking goroutine, or
// started again (resume) to make the next call or to look up once more.
// Abandoned meanwhile, it is given up at once.
func (w *partitionWorker) await(s *started) bool {
	c, ok := w.p.cfg.Enricher.(*CostControl)
	if !ok || !s.wk.l.keyed {
		return false
	}
	a := &awaiting{w: w, s: s}
	if s.wk.t.sampled {
		a.since = time.Now()
	}
	a.mu.Lock() // woken and abandoned wait until a is set up
	defer a.mu.Unlock()
	a.waiter = waiter{l: &s.wk.l, to: a}
	if !c.await(&a.waiter) {
		return false
	}
	w.tasks.Add(1)
	a.c = c
	if c.tracer != nil { // the cost controls' span, as a waiter on a task has it
		_, a.span = c.tracer.Start(s.wk.ctx, "twosell.cache", trace.WithAttributes(attribute.Bool("twosell.coalesced", true)))
	}
	w.waitBegins(a)
	return true
}

// waitBegins counts a's record as buffered, pausing the partition if that
// fills the buffer, and watches its abandon context: once it is canceled,
// the waiting records it abandons are given up (abandonWaiting).
//
// One watch per context, not one per record: a context.AfterFunc per
// waiting record, registered with the worker's context and removed when the
// record was woken, made the first answers of the cache-warm bench wait 150
// ms in all for the context's lock (100 calls waking 100 records each).
func (w *partitionWorker) waitBegins(a *awaiting) {
	ctx := a.s.abandon
	w.mu.Lock()
	w.bufCount++
	w.bufBytes += int(a.s.size)
	watch := w.waiting.add(a, ctx)
	w.fillLocked()
	w.mu.Unlock()
	if watch {
		context.AfterFunc(ctx, func() { w.abandonWaiting(ctx) })
	}
}

// waitEnds counts a's record out of the buffer, resuming the partition if
// that drains it.
func (w *partitionWorker) waitEnds(a *awaiting) {
	w.mu.Lock()
	w.bufCount--
	w.bufBytes -= int(a.s.size)
	w.waiting.remove(a)
	w.drainedLocked()
	w.mu.Unlock()
}

// abandonWaiting gives up the waiting records that ctx, canceled, abandons.
// A record that begins to wait after this watches ctx anew.
func (w *partitionWorker) abandonWaiting(ctx context.Context) {
	w.mu.Lock()
	gone := w.waiting.abandoned(ctx)
	w.mu.Unlock()
	for _, a := range gone {
		a.abandoned()
	}
}

// awaiting is a record waiting in CostControl.await. It ends once: woken, or
// abandoned, whichever comes first.
type awaiting struct {
	w      *partitionWorker
	s      *started
	since  time.Time  // when it began to wait, for the provider's time (sampled records)
	span   trace.Span // the cost controls' span of the wait; nil without tracing
	mu     sync.Mutex
	c      *CostControl
	waiter waiter // in c's waiters, unless woken already
	ended  atomic.Bool
}

func (a *awaiting) abandoned() {
	a.mu.Lock()
	left := a.c.leave(&a.waiter)
	a.mu.Unlock()
	if !left {
		return // woken: woken ends it
	}
	if a.ended.CompareAndSwap(false, true) {
		a.endSpan(Result{})
		a.w.waitEnds(a)
		a.w.giveUpStarted(a.s)
	}
}

// endSpan ends the wait's span with the answer it got, if any.
func (a *awaiting) endSpan(r Result) {
	if a.span == nil {
		return
	}
	if r.Status != "" {
		a.span.SetAttributes(attribute.String("twosell.source", r.Source), attribute.String("twosell.status", string(r.Status)))
	}
	a.span.End()
}

// giveUpStarted ends s, started and not handed over: abandoned. Woken to
// make the next call of its mobile, it hands the call on to the next waiter.
func (w *partitionWorker) giveUpStarted(s *started) {
	w.handOnCall(&s.wk.l)
	s.wk.span.End()
	w.hand(s.seq, emission{})
	w.settle(s.key, emission{}, s.b)
	w.tasks.Done()
}

// handOnCall, for a lookup given up before it made the call of its mobile
// it leads, lets one of the lookups waiting for that call make it instead.
func (w *partitionWorker) handOnCall(l *Lookup) {
	if !l.leads {
		return
	}
	if c := w.p.cfg.Enricher.(*CostControl); c.claim(l.key) { // not taken over meanwhile
		c.called(l.key, Result{}, context.Canceled)
	}
}

func (a *awaiting) woken(u wakeup) {
	a.mu.Lock() // set up (await)
	a.mu.Unlock()
	if !a.ended.CompareAndSwap(false, true) {
		return
	}
	w, s := a.w, a.s
	w.waitEnds(a)
	s.wk.l.leads = u.lead
	again := u.lead || u.err != nil // to call, or to take the call's failure
	if again {
		a.endSpan(Result{}) // the task's lookup has a span of its own
	} else {
		a.endSpan(u.res)
	}
	if s.abandon.Err() != nil {
		w.giveUpStarted(s)
		return
	}
	if !a.since.IsZero() {
		s.wk.t.provider += time.Since(a.since) // waiting for a paid answer is the provider's time
	}
	if again {
		// On a task of its own, which waits for a slot (a failure holds
		// the record back, tried again later).
		if u.err != nil {
			s.wk.l.shared = &u
		}
		go w.resume(s)
		return
	}
	e := w.answered(s.wk, &u.res)
	s.wk.span.End()
	w.handOver(s, e)
}

// resume runs a record woken from await on a task: it waits for a slot,
// then looks up and hands the emission over on the pool's goroutines (see
// Run), as the dispatcher's tasks do. It is in progress already, so a stop
// lets it finish within the grace, as the records on tasks.
func (w *partitionWorker) resume(s *started) {
	if !w.p.acquire(w.ctx, s.abandon, s.size) {
		w.giveUpStarted(s)
		return
	}
	select {
	case w.p.tasks <- func() { w.runTask(s) }:
	case <-w.p.poolEnd: // as in run
		w.p.release(s.size)
		w.giveUpStarted(s)
	}
}

// handDurable hands e over once its answer is durable (the ledger holds the
// call it paid for), without holding a task or a slot meanwhile; if the
// record is abandoned first, it is not handed over.
func (w *partitionWorker) handDurable(abandon context.Context, key string, seq uint64, e emission, b *txnBatch) {
	d := e.durable
	e.durable = nil
	h := &durableHand{w: w, abandon: abandon, key: key, seq: seq, e: e, b: b}
	w.durableWaiting.Add(1)
	w.durables.begin(h)
	d.whenDone(h.written)
}

// durableHand is a record waiting for its answer to be durable: it ends
// once, when the ledger's write is done or when the record is abandoned,
// whichever comes first.
type durableHand struct {
	w       *partitionWorker
	abandon context.Context
	key     string
	seq     uint64
	e       emission
	b       *txnBatch
	ended   atomic.Bool
}

func (h *durableHand) written(error) {
	h.w.durables.end(h)
	h.end(h.abandon.Err() == nil)
}

// durableHands are a worker's records waiting for their answers to be
// durable, and the abandon contexts it watches for them: once one is
// canceled, the records it abandons end at once (abandon), not when their
// ledger writes do. One watch per context, as for the records waiting in
// await (waitBegins): a context.AfterFunc per record, registered with the
// worker's context (under its lock, in its map of children) and removed
// when its write was done, cost the cache-warm bench's 200,000 events 6% of
// their CPU (15 runs each, by turns: 2.37 us per event against 2.51, ratio
// median 0.531 against 0.489). Its first outputs all wait for ledger
// writes: those of the calls' waiters, and the answers from knowledge that
// a call's write in flight is behind.
type durableHands struct {
	mu    sync.Mutex
	hands watchedSet[*durableHand]
}

func (s *durableHands) begin(h *durableHand) {
	ctx := h.abandon
	s.mu.Lock()
	watch := s.hands.add(h, ctx)
	s.mu.Unlock()
	if watch {
		context.AfterFunc(ctx, func() { s.abandon(ctx) })
	}
}

func (s *durableHands) end(h *durableHand) {
	s.mu.Lock()
	s.hands.remove(h)
	s.mu.Unlock()
}

// abandon ends the records that ctx, canceled, abandons.
func (s *durableHands) abandon(ctx context.Context) {
	s.mu.Lock()
	gone := s.hands.abandoned(ctx)
	s.mu.Unlock()
	for _, h := range gone {
		h.end(false)
	}
}

// watchedSet holds items, each with the context whose cancellation abandons
// it, and watches each context once: its owner registers one
// context.AfterFunc per context (add says when), whose function takes the
// context's items (abandoned). Its owner locks it.
type watchedSet[T comparable] struct {
	items   map[T]context.Context
	watched map[context.Context]struct{}
}

// add adds item, which ctx abandons, and reports whether ctx is to be
// watched now.
func (s *watchedSet[T]) add(item T, ctx context.Context) (watch bool) {
	if s.items == nil {
		s.items, s.watched = make(map[T]context.Context), make(map[context.Context]struct{})
	}
	s.items[item] = ctx
	if _, ok := s.watched[ctx]; ok {
		return false
	}
	s.watched[ctx] = struct{}{}
	return true
}

func (s *watchedSet[T]) remove(item T) { delete(s.items, item) }

// abandoned removes and returns the items that ctx, canceled, abandons. An
// item added after this watches ctx anew.
func (s *watchedSet[T]) abandoned(ctx context.Context) []T {
	delete(s.watched, ctx)
	var gone []T
	for it, c := range s.items {
		if c == ctx {
			gone = append(gone, it)
			delete(s.items, it)
		}
	}
	return gone
}

func (h *durableHand) end(handed bool) {
	if !h.ended.CompareAndSwap(false, true) {
		return
	}
	e := h.e
	if !handed {
		e = emission{}
	}
	e = h.w.hand(h.seq, e)
	h.w.settle(h.key, e, h.b)
	h.w.durableWaiting.Add(-1)
	h.w.mu.Lock()
	h.w.drainedLocked() // the partition may resume
	h.w.mu.Unlock()
	h.w.tasks.Done()
}

// hand gives e to the producer in the order the Ordering requires, and
// returns what it gave: nothing once consumption stopped on a fatal error
// (at least once; exactly once, the transaction aborts). A record written
// after that could overtake the re-delivery of the one that failed, which
// is not committed: found by review, a later record of a key was written
// after its failed output, whose re-delivery then came behind it. Not
// handed over, the record holds its key and its partition's order.
func (w *partitionWorker) hand(seq uint64, e emission) emission {
	if e.rec != nil && w.p.stopped.Load() && !w.p.cfg.ExactlyOnce {
		e = emission{}
	}
	if w.p.cfg.Ordering != OrderingPartition {
		w.p.emit(e)
		return e
	}
	if w.seq.complete(seq, e, w.p.emit) { // outputs held went: the partition may resume
		w.mu.Lock()
		w.drainedLocked()
		w.mu.Unlock()
	}
	return e
}

// giveUp settles the record of key, which will not be started: the worker
// stops (false) or its exactly-once batch b was abandoned (true).
func (w *partitionWorker) giveUp(key string, seq uint64, b *txnBatch) bool {
	if w.p.cfg.Ordering == OrderingPartition {
		w.hand(seq, emission{}) // nothing after it may be handed over
	}
	w.settle(key, emission{}, b)
	return b != nil
}

// settle ends a record's part in the worker: key ordering releases its key
// (starting the next record of that key, or, if this one was not handed over,
// dropping the parked ones: they must not overtake it; at least once, the
// key stays busy, and its later records are dropped too), and exactly-once
// the batch learns the outcome.
func (w *partitionWorker) settle(k string, e emission, b *txnBatch) {
	var dropped []*kgo.Record
	if w.p.cfg.Ordering == OrderingKey && k != "" {
		w.mu.Lock()
		switch waiting := w.parked[k]; {
		case !e.handed():
			dropped = waiting
			delete(w.parked, k)
			w.bufCount -= len(waiting)
			for _, d := range waiting {
				w.bufBytes -= recordBytes(d)
			}
			if b == nil {
				// At least once, the key stays busy: its records still to
				// come must not overtake this one either (it holds the
				// committed offset; a re-delivery would land behind them).
				// Releasing the key let the records of it still in the
				// queue start and be written while this one was failing
				// (found by review). Exactly once, the batch is
				// abandoned, its outputs with it.
				w.broken[k] = true
			} else {
				delete(w.busy, k)
			}
		case len(waiting) == 0:
			delete(w.busy, k)
		default:
			w.ready = append(w.ready, waiting[0])
			if len(waiting) == 1 {
				delete(w.parked, k)
			} else {
				w.parked[k] = waiting[1:]
			}
		}
		w.mu.Unlock()
		w.signal()
	}
	if b != nil {
		b.settle(e.o, e.handed())
		for range dropped {
			b.settle(outcome{}, false)
		}
	}
}

// clearBatch drops what is buffered of an abandoned batch: those records were
// never started, and each is settled as not handed over.
func (w *partitionWorker) clearBatch(b *txnBatch) {
	w.mu.Lock()
	n, size := 0, 0
	if w.batch == b {
		for _, recs := range append([][]*kgo.Record{w.queue, w.ready}, slices.Collect(maps.Values(w.parked))...) {
			n += len(recs)
			for _, r := range recs {
				size += recordBytes(r)
			}
		}
		w.queue, w.ready = nil, nil
		clear(w.parked)
		w.bufCount -= n // the records in await stay counted until they are given up
		w.bufBytes -= size
	}
	w.setPausedLocked(pauseFull, false)
	w.mu.Unlock()
	for range n {
		b.settle(outcome{}, false)
	}
}

// endBatch readies the worker for the next transaction: the sequencer starts
// over at the next record, and no key is busy.
func (w *partitionWorker) endBatch() {
	w.mu.Lock()
	w.batch = nil
	clear(w.busy)
	clear(w.broken)
	next := w.nextSeq
	w.mu.Unlock()
	w.seq.reset(next)
}

// setPaused sets or clears one reason for pausing the partition's fetching
// and pauses or resumes it when the set of reasons becomes non-empty or empty.
func (w *partitionWorker) setPaused(reason pauseReason, on bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.setPausedLocked(reason, on)
}

// setPausedLocked is setPaused with w.mu held. The callers that change what
// a reason depends on (the buffer, the holds) call it in the same critical
// section, so that a pause and the resume that undoes it cannot swap.
func (w *partitionWorker) setPausedLocked(reason pauseReason, on bool) {
	before := w.paused
	if on {
		w.paused |= reason
	} else {
		w.paused &^= reason
	}
	if (before^w.paused)&pauseFull != 0 && w.p.copause != nil {
		w.p.copause.signal()
	}
	switch {
	case before == 0 && w.paused != 0:
		w.p.client().PauseFetchPartitions(map[string][]int32{w.tp.topic: {w.tp.partition}})
		w.p.stats.paused.Add(1)
	case before != 0 && w.paused == 0:
		w.p.client().ResumeFetchPartitions(map[string][]int32{w.tp.topic: {w.tp.partition}})
		w.p.stats.paused.Add(-1)
	}
}

// hold pauses the partition while one of its records waits for the
// provider, logging once for the whole processor when the first partition is
// held.
func (w *partitionWorker) hold(err error) {
	w.mu.Lock()
	w.holds++
	first := w.holds == 1
	held := int32(-1)
	if first {
		w.setPausedLocked(pauseHeld, true) // under w.mu: see push
		held = w.p.held.Add(1)
	}
	w.mu.Unlock()
	if held == 1 {
		w.p.unlessFailed(func() {
			w.p.log.Warn("cannot call the provider: holding records back and pausing fetching until it can", "err", err)
		})
	}
}

// unhold ends a record's hold: answered, or given up (abandoned) when the
// partition stops or is revoked, which says nothing of the provider.
func (w *partitionWorker) unhold(givenUp bool) {
	w.mu.Lock()
	w.holds--
	last := w.holds == 0
	held := int32(-1)
	if last {
		w.setPausedLocked(pauseHeld, false)
		held = w.p.held.Add(-1)
	}
	w.mu.Unlock()
	switch {
	case held != 0:
	case givenUp && w.p.cfg.Range != nil: // a replay commits nothing and has no group (found by review)
		w.p.log.Info("held records given up as the replay stops; they are not written: running the replay again writes them")
	case givenUp:
		w.p.log.Info("held records given up as their partitions stop; they are not committed and will be delivered again")
	default:
		w.p.log.Info("the provider can be called again: resumed fetching")
	}
}

// shutdown stops the worker: no new record is started, the records in
// progress get until grace is closed to finish, then they are abandoned. It
// returns once the worker and its tasks have returned. A nil grace abandons
// at once.
func (w *partitionWorker) shutdown(grace <-chan struct{}) {
	w.stopFn()
	if grace != nil {
		select {
		case <-w.done:
			w.release()
			return
		case <-grace:
		}
	}
	w.cancel()
	// Abandoned, the records in progress end at once, but for one handing
	// its output to a producer whose buffer is full (MaxBufferedRecords:
	// the brokers do not take the outputs): franz-go's Produce waits for
	// room, which only the brokers or the client's close make. Waiting for
	// it hung the revoke, and a shutdown (whose revoke comes before the
	// client's close) for good. Such a record is left to the client's
	// close; it was not committed, and is delivered again.
	t := time.NewTimer(min(w.p.cfg.ShutdownTimeout, maxAbandonWait))
	defer t.Stop()
	select {
	case <-w.done:
	case <-t.C:
		w.p.log.Error("records of a partition are still in progress after they were abandoned: handing their outputs "+
			"to the producer, whose buffer is full (the brokers do not take the outputs); leaving them to be delivered again",
			"topic", w.tp.topic, "partition", w.tp.partition)
	}
	w.release()
}

// maxAbandonWait bounds how long a stop waits for abandoned records to end
// (shutdown).
const maxAbandonWait = 5 * time.Second

// release abandons whatever the worker still does and resumes its
// partition: a revoked partition that comes back must not come back paused.
func (w *partitionWorker) release() {
	w.stopFn()
	w.cancel()
	w.setPaused(pauseFull|pauseHeld|pauseIdle|pauseDone, false)
	w.outputs.close()
}

// sequencer hands emissions to the producer in input order (partition
// ordering). Once a record is not handed over (abandoned, fatal), nothing
// after it is: it would overtake the record when that is delivered again.
// The records before it still are, as they complete: a stop gives up the
// newest record (waiting for a slot) while older ones finish within the
// grace, and those must be written and committed (found by review: they
// were dropped, and done again by the partition's next owner).
type sequencer struct {
	mu      sync.Mutex
	next    uint64
	pending map[uint64]emission
	// waiting is len(pending), read without mu: the outputs held for an
	// earlier record count as buffered (fillLocked).
	waiting atomic.Int64
	// brokenAt is the first record not handed over: from it on nothing is
	// (noBreak: none).
	brokenAt uint64
}

const noBreak = math.MaxUint64

// complete takes record seq's emission e and hands over (emit), in order,
// those that can go; e not handed (abandoned) stops the hand-overs from seq
// on. It reports whether outputs held for it went (waiting fell): the caller
// checks then whether the partition may resume. Judged under the lock, not
// from waiting before and after the call: two records completing at once
// (the one after first, held; then the one it waited for, which hands both
// over) each saw waiting end where it had begun, and neither resumed a
// partition that filled meanwhile, paused for good with nothing in it (a
// test hung once in about a hundred runs).
func (s *sequencer) complete(seq uint64, e emission, emit func(emission)) (drained bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	before := len(s.pending)
	defer func() {
		s.waiting.Store(int64(len(s.pending)))
		drained = len(s.pending) < before
	}()
	if !e.handed() {
		s.brokenAt = min(s.brokenAt, seq)
		for q := range s.pending {
			if q >= s.brokenAt {
				delete(s.pending, q)
			}
		}
	}
	if seq >= s.brokenAt {
		return
	}
	s.pending[seq] = e
	for s.next < s.brokenAt {
		e, ok := s.pending[s.next]
		if !ok {
			return
		}
		delete(s.pending, s.next)
		s.next++
		emit(e) // under the lock: the producer keeps the order of these calls
	}
	return
}

func (s *sequencer) reset(next uint64) {
	s.mu.Lock()
	s.next, s.brokenAt = next, noBreak
	clear(s.pending)
	s.waiting.Store(0)
	s.mu.Unlock()
}

// tickClock is a clock a dispatcher reads once per tickRecords records.
// Reading the time took 5% of the CPU of a record answered from knowledge
// (twice: the knowledge's expiry and the output's checked_at, which has
// whole seconds). The dispatcher marks it stale before it may wait, so a
// time read is never older than the records it took without waiting; and
// it is read anew once a clockTick has passed (ticks), which bounds its age
// where the dispatcher waits without knowing it: handing an output to a
// producer whose buffer is full, which waits for the brokers (an output
// topic down for minutes, then the next records answered with the time
// before it).
type tickClock struct {
	now   func() time.Time
	ticks *clockTicks
	t     time.Time
	left  int
	tick  uint64 // ticks' count when t was read
}

const tickRecords = 16

func (c *tickClock) read() time.Time {
	if tick := c.ticks.n.Load(); c.left == 0 || tick != c.tick {
		c.t, c.left, c.tick = c.now(), tickRecords, tick
	}
	c.left--
	return c.t
}

// clockTicks counts clockTicks while a processor runs: one word that the
// dispatchers read (a cache line written ten times a second), where reading
// the time for every record cost 5%.
type clockTicks struct{ n atomic.Uint64 }

const clockTick = 100 * time.Millisecond

// run counts the ticks of tick (a clockTick ticker's) until ctx ends.
func (c *clockTicks) run(ctx context.Context, tick <-chan time.Time) {
	for {
		select {
		case <-tick:
			c.n.Add(1)
		case <-ctx.Done():
			return
		}
	}
}

// clocksStale makes the dispatcher's clocks read the time anew.
func (w *partitionWorker) clocksStale() { w.costClock.left, w.outClock.left = 0, 0 }
