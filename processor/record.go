package processor

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// Dead-letter classes the engine itself assigns (the codec's are in
// inputerror.go; an Enricher names its own through Reject).
const (
	ClassOutputRejected = "output_rejected" // Kafka refused the enriched event (e.g. too large)
	ClassRejected       = "rejected"        // an Enricher rejected the record without naming a class
)

// errAbandoned is a record's work given up (shutdown, revoke, fatal error
// elsewhere): the record stays unfinished, so it is delivered again.
var errAbandoned = errors.New("abandoned")

// errStopping is a lookup given up before its paid call because its
// partition stops (Lookup.stop).
var errStopping = errors.New("the partition stops: no new paid call")

// outcome is what became of a record handed to the producer: an output with
// its status, or a dead letter with its class.
type outcome struct {
	status Status // the output's status; "" for a dead letter
	class  string // the dead letter's class; "" for an output
}

// emission is a record's output or dead letter, ready to be handed to the
// producer. Its zero value is a record not handed over (abandoned, fatal),
// which stays unfinished.
type emission struct {
	rec     *kgo.Record
	promise func(*kgo.Record, error)
	o       outcome
	durable *durable // if set, hand the emission over only once it is done
}

func (e emission) handed() bool { return e.rec != nil }

// emitFromPromise is emit for a promise that replaces the record Kafka
// refused with a dead letter: on a goroutine of its own. franz-go runs
// promises one at a time, and a record counts as buffered until its
// promise returns: with the producer's buffer full (MaxBufferedRecords), a
// Produce in the promise waited for room that only the promise's return
// could make, and every acknowledgement and commit stopped with it.
// The revoke waits for these (flushAll): it commits past a record only once
// its dead letter is acknowledged.
func (p *Processor) emitFromPromise(e emission) {
	p.replacing.add()
	go func() {
		defer p.replacing.done()
		p.emit(e)
	}()
}

// pending counts work in flight that a waiter can wait to end: the dead
// letters emitFromPromise is handing to the producer.
type pending struct {
	mu    sync.Mutex
	n     int
	added uint64        // every add so far
	zero  chan struct{} // closed when n comes back to 0
}

func (c *pending) add() {
	c.mu.Lock()
	if c.n == 0 {
		c.zero = make(chan struct{})
	}
	c.n++
	c.added++
	c.mu.Unlock()
}

// adds returns how many were added so far.
func (c *pending) adds() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.added
}

func (c *pending) done() {
	c.mu.Lock()
	if c.n--; c.n == 0 {
		close(c.zero)
	}
	c.mu.Unlock()
}

// wait waits until none is in flight, or ctx ends.
func (c *pending) wait(ctx context.Context) error {
	c.mu.Lock()
	n, zero := c.n, c.zero
	c.mu.Unlock()
	if n == 0 {
		return nil
	}
	select {
	case <-zero:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// flushAll waits until the producer has every output and dead letter handed
// to it acknowledged, the dead letters that replace refused outputs
// included: those are produced from the refusal's promise, after the Flush
// that saw the refusal returned (a revoke committed without the record,
// and its next owner wrote the dead letter again; found by review).
//
// A refusal's promise runs before Flush counts its record done, so a
// replacement it starts is counted (adds) before that Flush returns; once
// every replacement started is handed over (wait), one more Flush has them
// acknowledged, until a Flush starts none. (Looking only at the ones still
// in flight after a Flush missed one handed over meanwhile.)
func (p *Processor) flushAll(ctx context.Context, cl *kgo.Client) error {
	for {
		before := p.replacing.adds()
		// The replacements counted in before are handed over before the
		// flush, so that it covers them: a dead letter started by the
		// producer of records alone, during the last round's flushAlone,
		// and handed over after this round's flush, went unflushed and
		// flushAll returned (found by review).
		if err := p.replacing.wait(ctx); err != nil {
			return err
		}
		if err := cl.Flush(ctx); err != nil {
			return err
		}
		if err := p.replacing.wait(ctx); err != nil {
			return err
		}
		if err := p.flushAlone(ctx); err != nil {
			return err
		}
		if p.replacing.adds() == before {
			return nil
		}
	}
}

// emit hands an emission to the producer.
func (p *Processor) emit(e emission) {
	if e.rec != nil {
		p.client().Produce(context.Background(), e.rec, e.promise)
	}
}

// work is a record between begin and finish.
type work struct {
	r    *kgo.Record
	ctx  context.Context // carries the process span
	span trace.Span
	t    recordTiming
	ev   Event
	l    Lookup
	now  time.Time // answered by the dispatcher: its clock's time (tickClock)
}

// begin decodes r and takes it to its end at once when that needs no wait: a
// dead letter for an input that does not decode, or an output whose answer
// the Enricher knows already (the knowledge cache). Then done is true, and
// the dispatcher hands the emission over itself, saving the hand-off to a
// task; otherwise finish takes the record to its end on a task.
func (w *partitionWorker) begin(r *kgo.Record) (_ *work, e emission, done bool) {
	p := w.p
	ctx, span := p.processSpan(r)
	// On the stack: a record answered here (most of a replay's) needs
	// nothing of it once its output is prepared. Only a lookup's is copied
	// to the heap, for its task.
	wk := work{r: r, ctx: ctx, span: span}
	if p.cfg.OnRecord != nil {
		if w.timed++; w.timed >= p.cfg.OnRecordEvery { // on the dispatcher's goroutine
			w.timed = 0
			wk.t.sampled, wk.t.started = true, time.Now()
		}
	}
	defer func() {
		if done {
			span.End()
		}
	}()
	if err := p.codec.decodeRecord(&wk.ev, r); err != nil { // the limits first: see limits.go
		var ie *InputError
		if !errors.As(err, &ie) {
			ie = &InputError{Class: ClassInvalidJSON, Reason: err.Error()}
		}
		return nil, p.deadLetter(ctx, w, r, ie.Class, ie.Reason, wk.t), true
	}
	if wk.ev.ID != "" && span.IsRecording() {
		// Masked as the key is: an upstream may id its events by the
		// number (found by review: the id went out as it was).
		if id, ok := spanText([]byte(wk.ev.ID)); ok {
			span.SetAttributes(attribute.String("twosell.event_id", id))
		}
	}
	wk.ev.lookupInto(&wk.l) // wk.l is zero: writing the whole Lookup again was 1-2% of a cache answer's CPU
	// The CostControl itself, not an interface: a pointer given to an
	// interface's method escapes, and wk with it.
	if c, ok := p.cfg.Enricher.(*CostControl); ok {
		wk.l.now, wk.l.memo = w.costClock.read(), &w.keys
		var res Result
		if c.known(ctx, &wk.l, &res) {
			wk.now = w.outClock.read()
			return nil, w.answered(&wk, &res), true
		}
		wk.l.now, wk.l.memo = time.Time{}, nil // looked up later: at its own time, on a task
	}
	heap := wk
	return &heap, emission{}, false
}

// finish looks wk's record up and takes it to its end: an output, a dead
// letter, or (when abandoned or fatal) nothing, which leaves it unfinished
// and uncommitted. Canceling abandon gives the record up. The caller hands
// the emission to the producer, in the order the Ordering requires, once
// its answer is durable (emission.durable).
func (w *partitionWorker) finish(abandon context.Context, wk *work) emission {
	p := w.p
	defer wk.span.End()
	ctx, span, r, ev := wk.ctx, wk.span, wk.r, &wk.ev
	res, err := w.lookup(ctx, abandon, wk.l, r.Offset, &wk.t)
	if err != nil {
		span.SetAttributes(attribute.Int("twosell.attempts", res.Attempts))
		if res.Code != 0 {
			span.SetAttributes(attribute.Int("juhe.error_code", res.Code))
		}
		var de *DispositionError
		switch {
		case errors.Is(err, errAbandoned):
			span.SetStatus(codes.Error, "abandoned")
			p.log.Debug("record abandoned", "source", source(r))
		case errors.As(err, &de) && de.Disposition == DispositionReject:
			class := de.Class
			if class == "" {
				class = ClassRejected
			}
			return p.deadLetter(ctx, w, r, class, fmt.Sprintf("the provider rejected the lookup of %s on %s: %v",
				MaskMobile(ev.Mobile), ev.Date, err), wk.t)
		default: // fatal
			span.RecordError(err)
			span.SetStatus(codes.Error, "fatal")
			p.fail(err)
		}
		return emission{}
	}
	return w.answered(wk, &res)
}

// answered records res on the span and prepares the output.
func (w *partitionWorker) answered(wk *work, res *Result) emission {
	if span := wk.span; span.IsRecording() {
		span.SetAttributes(
			attribute.Int("twosell.attempts", res.Attempts),
			attribute.String("twosell.status", string(res.Status)),
			attribute.String("twosell.source", res.Source),
		)
		if res.Code != 0 {
			span.SetAttributes(attribute.Int("juhe.error_code", res.Code))
		}
	}
	checkedAt := wk.now
	if checkedAt.IsZero() {
		checkedAt = w.p.cfg.Now()
	}
	e := w.p.produceOutput(wk.ctx, w, wk.r, &wk.ev, res, checkedAt, wk.t)
	e.durable = res.durable
	return e
}

// deferredEnricher is an Enricher whose answers may be returned before
// they are durable (CostControl: a paid answer's ledger write in flight,
// Result.durable).
type deferredEnricher interface {
	enrichDeferred(ctx context.Context, l Lookup) (Result, error)
}

// lookup asks the Enricher, holding the record back while the provider is
// unavailable: the partition's fetching pauses and the lookup is retried with
// growing waits, so an outage becomes lag instead of failed events. With
// EmitUnavailable the record is answered "unavailable" instead. It returns an
// error only to dead-letter (Reject), to stop (Fatal), or errAbandoned when
// abandon ends (which cancels the call in flight) or the lookup's stop does
// (Lookup.stop: no new call is made, and a held record is given up).
func (w *partitionWorker) lookup(ctx, abandon context.Context, l Lookup, offset int64, t *recordTiming) (Result, error) {
	p := w.p
	if p.tracer == nil {
		ctx = abandon // no span to carry; abandoning cancels the call in flight
	} else {
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(ctx)
		defer cancel()
		defer context.AfterFunc(abandon, cancel)() // abandoning cancels the call in flight
	}

	l.w, l.offset = w, offset
	stop := l.stop() // exactly once, the batch's: it stops before its calls in flight are abandoned
	wait := p.cfg.RetryBackoff
	held, abandoned := false, false
	defer func() {
		if held {
			w.unhold(abandoned)
		}
	}()
	attempts := 0
	// The ledger writes of the attempts so far (their uncertain requests'
	// records): the output waits for them all, not the last attempt's only.
	var written *durable
	for {
		var begun time.Time
		if p.cfg.OnRecord != nil {
			begun = time.Now()
		}
		var res Result
		var err error
		if d, ok := p.cfg.Enricher.(deferredEnricher); ok {
			res, err = d.enrichDeferred(ctx, l)
		} else {
			res, err = p.cfg.Enricher.Enrich(ctx, l)
		}
		l.leads, l.shared = false, nil // made or handed on, or returned, by the first Enrich
		if p.cfg.OnRecord != nil {
			t.provider += time.Since(begun)
		}
		attempts += res.Attempts
		res.Attempts = attempts
		written = joinDurable(written, res.durable)
		res.durable = written
		if ctx.Err() != nil || errors.Is(err, errStopping) {
			abandoned = true
			return res, errAbandoned
		}
		if err == nil {
			return res, nil
		}
		switch DispositionOf(err) {
		case DispositionReject, DispositionFatal:
			return res, err
		}
		// A spent budget is on_budget's to answer (the cost controls emit
		// "skipped" when it says emit), not on_unavailable's: held back, a
		// record is enriched once the budget renews; written "unavailable",
		// it was committed and never enriched.
		if p.cfg.EmitUnavailable && !errors.Is(err, ErrBudgetSpent) {
			// Written once the ledger holds the requests that may have
			// been billed (Result.durable), as an answer is.
			return Result{Status: StatusUnavailable, Mode: res.Mode, Code: res.Code, Attempts: attempts, durable: res.durable}, nil
		}
		if stop.Err() != nil || p.fatal() != nil {
			// Stopping: a held record would only be given up. (Found by
			// an operator drill: after a fatal answer, each lookup the
			// breaker then refused held its partition and gave it up
			// again, two log lines a record, the first saying records
			// waited for the breaker's open_for.)
			abandoned = true
			return res, errAbandoned
		}
		if !held {
			held = true
			w.hold(err)
		}
		next := wait/2 + rand.N(wait/2+1) // jitter, so partitions do not retry in step
		if de, ok := errors.AsType[*DispositionError](err); ok && de.RetryIn > 0 {
			// The provider says when it can be called (a breaker refusing
			// calls until then): the held records come back then, not
			// up to MaxRetryBackoff later, and the backoff stays for
			// the calls that fail.
			next = de.RetryIn + rand.N(min(de.RetryIn/4, retryInJitter)+1)
		} else {
			wait = min(2*wait, p.cfg.MaxRetryBackoff)
			if ok && de.RetryWithin > 0 && next > de.RetryWithin {
				// The call may be possible then (a budget renewing at
				// midnight): no later.
				next = de.RetryWithin + rand.N(min(de.RetryWithin/4, retryInJitter)+1)
			}
		}
		p.log.Debug("provider unavailable; retrying the record later", "source", w.tp.topic, "wait", next, "err", err)
		timer := time.NewTimer(next)
		select {
		case <-timer.C:
		case <-stop.Done():
			timer.Stop()
			// Shutting down: a held record will not finish within any
			// grace period; abandon it now.
			abandoned = true
			return res, errAbandoned
		case <-ctx.Done():
			timer.Stop()
			abandoned = true
			return res, errAbandoned
		}
	}
}

// retryInJitter is at most how much later than DispositionError.RetryIn a
// held record is tried again, so that they do not all come at once.
const retryInJitter = 50 * time.Millisecond

// produceOutput prepares the enriched event. The record is finished when
// Kafka acknowledges it (at-least-once) or when its transaction commits
// (exactly-once).
func (p *Processor) produceOutput(ctx context.Context, w *partitionWorker, in *kgo.Record, ev *Event, res *Result, checkedAt time.Time, t recordTiming) emission {
	if e, ok := p.refused.deadLetter(in); ok { // exactly-once: refused in an aborted transaction
		return p.deadLetter(ctx, w, in, e.class, e.reason, t)
	}
	record := w.outputs.get()
	enr := Enrichment{
		Status:    res.Status,
		Res:       res.Res,
		Date:      ev.Date,
		OrderID:   res.OrderID,
		Source:    res.Source,
		CheckedAt: checkedAt,
		Mode:      res.Mode,
	}
	buf := record.value[:0]
	if cap(buf) == 0 {
		// A new record's value, allocated once at its size: appended to
		// from nothing, it grew two or three times. (A kept one is only
		// grown if this value is longer than its last.)
		buf = make([]byte, 0, p.codec.encodedCap(ev, &enr))
	}
	value, err := p.codec.AppendEncode(buf, ev, enr)
	if err != nil {
		record.recycle()
		return p.deadLetter(ctx, w, in, ClassOutputRejected, "the enriched event could not be encoded: "+err.Error(), t)
	}
	record.value = value
	out := &record.rec
	*out = kgo.Record{
		Topic:     p.cfg.OutputTopic,
		Partition: in.Partition, // for samePartition; other partitioners set their own
		Key:       in.Key,
		Value:     value,
		Headers:   appendHeaders(record.headers[:0], in.Headers, kgo.RecordHeader{Key: HeaderStatus, Value: statusValue(res.Status)}),
		Timestamp: in.Timestamp,
		Context:   ctx, // the process span: the kotel hook injects traceparent from it
	}
	if n, most := recordBytes(out), p.maxRecordBytes(); n > most {
		record.recycle()
		// franz-go would refuse it; exactly-once, a refusal inside the
		// transaction could only stop the processor. Refuse it first.
		return p.deadLetter(ctx, w, in, ClassOutputRejected, fmt.Sprintf(
			"the enriched event is %d bytes, over the %d bytes a record may have%s; lower input.max_record_bytes", n, most, p.batchLimitNote()), t)
	}
	record.p, record.w, record.in, record.t, record.ctx, record.alone, record.why = p, w, in, t, ctx, false, nil
	record.o = outcome{status: res.Status}
	return emission{rec: out, o: record.o, promise: record.promise}
}

// outputRecord is an enriched event's record, with room for its headers (an
// input has at most two, and the status and a traceparent are added), the
// buffer of its value and what its promise needs. It is recycled once Kafka
// has acknowledged it (franz-go does not touch a record after its promise):
// in a replay nearly every record is an output, and these were most of the
// bytes twosell allocated per record.
type outputRecord struct {
	rec     kgo.Record
	headers [4]kgo.RecordHeader
	value   []byte                   // Value's buffer, kept across uses
	promise func(*kgo.Record, error) // onAck, bound once per outputRecord
	free    *outputFree              // where it goes back

	p   *Processor
	w   *partitionWorker
	in  *kgo.Record
	o   outcome
	t   recordTiming
	ctx context.Context
	// alone: produced again alone, after Kafka refused its batch
	// (produceAlone): as too large, or for one of its records (batchRefused,
	// why).
	alone bool
	why   error
}

// outputFree is a worker's output records kept for reuse, the last freed
// on top: the warmest in the cache. Against a sync.Pool, by turns in the
// cache-warm bench (40 runs each), CPU per event 2.84-3.10 us against
// 3.10-3.34: the pool's records came back on the producer's goroutine and
// were taken on the workers', from the far end of another P's queue (the
// coldest), and every collection emptied it, while about 15,000 outputs
// were in flight at once (franz-go's buffer of 10,000 records, full).
//
// What all of a processor's workers keep is bounded (keptOutputs); a worker
// stopped keeps nothing (close).
type outputFree struct {
	kept     *keptOutputs
	mu       sync.Mutex
	recs     []*outputRecord
	bytes    int64 // the size of recs' records
	reserved int64 // of the processor's bound, in keptChunk units: at least bytes
	closed   bool
}

// keptOutputs counts the bytes of output records a processor's workers may
// keep for reuse, reserved by the worker a keptChunk at a time (an atomic
// counter that every record's get and put changed was shared by the
// cores: 1.7% of the bench's CPU): at most maxKeptOutputBytes, the outputs
// of the bench's backlog in flight at once (about 11 MB) and some room.
type keptOutputs struct{ bytes atomic.Int64 }

const (
	maxKeptOutputBytes = 16 << 20
	keptChunk          = 256 << 10
)

// size is what keeping r costs: the record and its value's buffer.
func (r *outputRecord) size() int64 { return int64(unsafe.Sizeof(*r)) + int64(cap(r.value)) }

// get returns a kept record, or a new one.
func (f *outputFree) get() *outputRecord {
	f.mu.Lock()
	if n := len(f.recs); n > 0 {
		r := f.recs[n-1]
		f.recs[n-1] = nil
		f.recs = f.recs[:n-1]
		f.bytes -= r.size()
		if f.reserved-f.bytes >= 2*keptChunk {
			f.reserved -= keptChunk
			f.kept.bytes.Add(-keptChunk)
		}
		f.mu.Unlock()
		return r
	}
	f.mu.Unlock()
	r := &outputRecord{free: f}
	r.promise = r.onAck
	return r
}

// put keeps r for reuse, unless the worker has stopped or the processor's
// workers keep enough already.
func (f *outputFree) put(r *outputRecord) {
	n := r.size()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return
	}
	for f.bytes+n > f.reserved {
		if f.kept.bytes.Add(keptChunk) > maxKeptOutputBytes {
			f.kept.bytes.Add(-keptChunk)
			return
		}
		f.reserved += keptChunk
	}
	f.recs = append(f.recs, r)
	f.bytes += n
}

// close drops what f keeps, and keeps nothing from now on: the worker has
// stopped, and its outputs still in flight are garbage once acknowledged.
func (f *outputFree) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.kept.bytes.Add(-f.reserved)
	f.recs, f.bytes, f.reserved, f.closed = nil, 0, 0, true
}

// maxPooledValue bounds the value buffers kept for reuse.
const maxPooledValue = 16 << 10

// recycle gives r back to its worker, keeping its value's buffer. It clears
// only what points out of r (the input record, its key and headers, the
// contexts, a value's buffer over the bound): the next use writes the rest
// over. Cleared whole here, on the producer's goroutine, the record's
// cache lines went to that core, and the dispatcher that uses the record
// next took all of them back: at 1,000,000 cache-warm events, by turns,
// less CPU per event in 6 of 8 runs (medians 2.21 against 2.30 us), and in
// 5 of 5 clearing only the contexts.
func (r *outputRecord) recycle() {
	r.value = r.value[:0]
	if cap(r.value) > maxPooledValue {
		r.value = nil
	}
	if h := r.rec.Headers; len(h) > 0 && &h[0] != &r.headers[0] {
		clear(r.headers[:]) // outgrown (more than 4 headers): the first ones are here too
	}
	clear(r.rec.Headers) // the input's, the status and a traceparent: in r.headers
	r.rec.Key, r.rec.Value, r.rec.Headers, r.rec.Context = nil, nil, nil, nil
	r.in, r.ctx, r.why = nil, nil, nil
	r.free.put(r)
}

// onAck is the output's promise.
func (r *outputRecord) onAck(_ *kgo.Record, err error) {
	p, w, in, o, t, ctx := r.p, r.w, r.in, r.o, r.t, r.ctx
	switch {
	case err == nil:
		if r.alone {
			p.writtenAlone(r.rec.Topic, r.why)
		}
		r.recycle()
		p.acknowledged(w, in, o, t)
	case abandoned(err):
		r.recycle()
	case p.cfg.ExactlyOnce && txnAbortable(err):
		p.spoil(err)
	case !p.cfg.ExactlyOnce && !r.alone && batchRefused(err):
		r.alone, r.why = true, err
		p.produceAlone(&r.rec, r.promise)
	case recordRejected(err):
		alone := ""
		if r.alone {
			alone = ", produced alone"
		}
		reason := fmt.Sprintf("Kafka refused the enriched event for topic %s%s: %v", p.cfg.OutputTopic, alone, err)
		// Refused for the input's timestamp, which the output keeps (a
		// topic's message.timestamp.before/after.max.ms): the dead letter
		// has the time it is written, as the dead-letter topic would likely
		// refuse the input's too (found by review: the processor stopped,
		// and stopped again on the record at every start).
		stamp := errors.Is(err, kerr.InvalidTimestamp)
		if stamp {
			reason += restampNote(in)
		}
		if errors.Is(err, kerr.InvalidRecord) && len(in.Key) == 0 {
			reason += " (a compacted topic refuses records without a key)"
		}
		if p.cfg.ExactlyOnce {
			// Not replaceable in this transaction, which must not commit:
			// it aborts, and the retry dead-letters the input (refused).
			r.recycle()
			p.refused.refuse(in, ClassOutputRejected, reason, false, stamp)
			return
		}
		if stamp {
			in = restamped(in)
		}
		p.emitFromPromise(p.deadLetter(ctx, w, in, ClassOutputRejected, reason, t))
	default:
		p.fail(fmt.Errorf("cannot write to the output topic %s: %w", p.cfg.OutputTopic, err))
	}
}

// deadLetter prepares the dead letter: the input's key and value byte for
// byte, its headers, and the reason. The record is finished when Kafka
// acknowledges the dead letter; if the dead letter cannot be written the
// processor stops, because dropping the record is never an option.
func (p *Processor) deadLetter(ctx context.Context, w *partitionWorker, in *kgo.Record, class, reason string, t recordTiming) emission {
	span := trace.SpanFromContext(ctx)
	span.SetAttributes(attribute.String("twosell.error_class", class))
	span.SetStatus(codes.Error, class)
	p.log.Debug("dead letter", "source", source(in), "class", class, "reason", reason)
	if class == ClassTooLarge {
		in = withoutPayload(in) // a record over the limit is not copied anywhere
	}
	// Exactly-once: this dead letter was refused with the input's bytes in
	// an aborted transaction (the same class: the retry may have found
	// another fault, whose dead letter is tried as it is).
	// A too_large one, without them already, may have been refused for its
	// timestamp (found by review: retried for ever).
	if e, ok := p.refused.deadLetter(in); ok && e.class == class && (hasPayload(in) || e.restamp) {
		reason = e.reason
		if e.restamp {
			in = restamped(in)
		}
		if e.bare {
			in = withoutPayload(in)
		}
	}
	dl := &kgo.Record{
		Topic:     p.cfg.DLQTopic,
		Partition: in.Partition, // for samePartition
		Key:       in.Key,
		Value:     in.Value,
		Headers: withHeaders(in.Headers,
			kgo.RecordHeader{Key: HeaderError, Value: []byte(reason)},
			kgo.RecordHeader{Key: HeaderErrorClass, Value: []byte(class)},
			kgo.RecordHeader{Key: HeaderSource, Value: []byte(source(in))},
		),
		Timestamp: in.Timestamp,
		Context:   ctx,
	}
	if most := p.maxRecordBytes(); recordBytes(dl) > most && hasPayload(in) {
		return p.deadLetter(ctx, w, withoutPayload(in), class,
			reason+"; "+omittedPayload(in, fmt.Errorf("over the %d bytes a record may have%s", most, p.batchLimitNote())), t)
	}
	o := outcome{class: class}
	alone := false // produced again alone (produceAlone)
	var promise func(*kgo.Record, error)
	promise = func(_ *kgo.Record, err error) {
		switch {
		case err == nil:
			if alone {
				p.writtenAlone(dl.Topic, kerr.MessageTooLarge)
			}
			p.acknowledged(w, in, o, t)
		case abandoned(err):
		case p.cfg.ExactlyOnce && txnAbortable(err):
			p.spoil(err)
		case !p.cfg.ExactlyOnce && !alone && sizeRefused(err):
			alone = true
			p.produceAlone(dl, promise)
		case errors.Is(err, kerr.InvalidTimestamp) && !strings.Contains(reason, restampMark):
			// Refused for the input's timestamp (an old event's, on a topic
			// with message.timestamp.before.max.ms): written again with the
			// time it is written.
			reason := reason + restampNote(in)
			if p.cfg.ExactlyOnce {
				p.refused.refuse(in, class, reason, false, true)
				return
			}
			p.emitFromPromise(p.deadLetter(ctx, w, restamped(in), class, reason, t))
		case recordRejected(err) && hasPayload(in):
			// Too large for the dead-letter topic with the input's bytes:
			// write it without them rather than stop (see limits.go);
			// exactly-once, when the transaction is retried.
			reason := reason + "; " + omittedPayload(in, err)
			if p.cfg.ExactlyOnce {
				p.refused.refuse(in, class, reason, true, false)
				return
			}
			p.emitFromPromise(p.deadLetter(ctx, w, withoutPayload(in), class, reason, t))
		default:
			p.fail(fmt.Errorf("cannot write to the dead-letter topic %s: %w", p.cfg.DLQTopic, err))
		}
	}
	return emission{rec: dl, o: o, promise: promise}
}

// acknowledged is called when Kafka acknowledged a record's output or dead
// letter. At-least-once, that finishes the record, and in is recycled: its
// memory goes back to franz-go's pools (fetchPools) once every record of its
// batch is, so nothing may read in afterwards — past hand, the worker does
// not (settle takes the key it was given). Exactly-once, the record is
// finished only when its transaction commits, which the transaction loop
// accounts for, and records are not recycled: their memory is the
// collector's.
func (p *Processor) acknowledged(w *partitionWorker, in *kgo.Record, o outcome, t recordTiming) {
	if p.cfg.ExactlyOnce {
		return
	}
	p.stats.count(o)
	w.track.done(in.Offset)
	if p.cfg.OnRecord != nil && (t.sampled || t.provider > 0) {
		p.cfg.OnRecord(RecordTiming{Sampled: t.sampled, Started: t.started, Provider: t.provider, Acked: time.Now(),
			Done: p.stats.produced.Load() + p.stats.deadLettered.Load()})
	}
	in.Recycle()
}

// recordTiming follows one record for Config.OnRecord.
type recordTiming struct {
	sampled  bool          // one of the records timed from their start (Config.OnRecordEvery)
	started  time.Time     // when its task started
	provider time.Duration // spent in the Enricher
}

// RecordTiming is what Config.OnRecord learns about a finished record
// (at-least-once only).
type RecordTiming struct {
	// Sampled: the record is one of those timed from their start
	// (Config.OnRecordEvery); Started is zero for the others.
	Sampled  bool
	Started  time.Time     // its task started: an in-flight slot was free
	Provider time.Duration // time spent in the Enricher (the provider's latency)
	Acked    time.Time     // Kafka acknowledged its output or dead letter
	Done     int64         // records finished so far (outputs and dead letters), this one included
}

// Added is the latency twosell added to a sampled record: from its start to
// the acknowledgement, less the time spent waiting for the provider.
func (t RecordTiming) Added() time.Duration { return t.Acked.Sub(t.Started) - t.Provider }

// withHeaders copies the input's headers, replacing any with the same keys as
// the added ones (an input that went through twosell before must not carry
// two statuses), and leaving out the headers twosell writes (an earlier
// pass's: a dead letter sent back to the input, once enriched, is no longer
// one, and an input enriched before and dead-lettered now has no status)
// and a second traceparent (the produce span's replaces the first; a
// consumer reading the last would follow a stale trace). Found by review:
// an enriched event kept twosell-error-class invalid_mobile.
func withHeaders(in []kgo.RecordHeader, add ...kgo.RecordHeader) []kgo.RecordHeader {
	return appendHeaders(make([]kgo.RecordHeader, 0, len(in)+len(add)+1), in, add...) // +1: traceparent
}

// appendHeaders is withHeaders appending to out.
func appendHeaders(out, in []kgo.RecordHeader, add ...kgo.RecordHeader) []kgo.RecordHeader {
	traced := false
outer:
	for _, h := range in {
		switch h.Key {
		case HeaderStatus, HeaderError, HeaderErrorClass, HeaderSource:
			continue
		case traceparentHeader:
			if traced {
				continue
			}
			traced = true
		}
		for _, a := range add {
			if h.Key == a.Key {
				continue outer
			}
		}
		out = append(out, h)
	}
	return append(out, add...)
}

// traceparentHeader is the W3C trace context's header.
const traceparentHeader = "traceparent"

// statusValues are the statuses' header values, shared by every output
// (Kafka clients never write a record's header values), by knownStatus.
var statusValues = func() (v [len(knownStatuses)][]byte) {
	for i, s := range knownStatuses {
		v[i] = []byte(s)
	}
	return v
}()

func statusValue(s Status) []byte {
	if i := knownStatus(s); i >= 0 {
		return statusValues[i]
	}
	return []byte(s)
}

// source names a record as topic/partition/offset.
func source(r *kgo.Record) string {
	return r.Topic + "/" + strconv.FormatInt(int64(r.Partition), 10) + "/" + strconv.FormatInt(r.Offset, 10)
}

// abandoned reports whether a produce failed only because the client is
// closing or the transaction is aborting: the record stays unfinished and is
// delivered again.
func abandoned(err error) bool {
	return errors.Is(err, kgo.ErrClientClosed) || errors.Is(err, context.Canceled) || errors.Is(err, kgo.ErrAborting)
}

// txnAbortable reports whether a produce error in a transaction failed the
// producer id rather than the record or the topic: franz-go then cannot
// commit, aborts the transaction in End and recovers the producer id with a
// new epoch, and the records are processed again. Kafka 4's transactions v2
// can answer a new producer's first requests OUT_OF_ORDER_SEQUENCE_NUMBER
// (KAFKA-14920).
func txnAbortable(err error) bool {
	return errors.Is(err, kerr.OutOfOrderSequenceNumber) || errors.Is(err, kerr.UnknownProducerID) ||
		errors.Is(err, kerr.InvalidProducerIDMapping) || errors.Is(err, kerr.InvalidProducerEpoch) ||
		errors.Is(err, kerr.TransactionAbortable)
}

// recordRejected reports whether Kafka refused this one record for what it
// is (rather than the topic or cluster being unusable).
func recordRejected(err error) bool {
	return errors.Is(err, kerr.MessageTooLarge) || errors.Is(err, kerr.RecordListTooLarge) ||
		errors.Is(err, kerr.InvalidRecord) || errors.Is(err, kerr.InvalidTimestamp)
}

// restampMark begins what a dead letter's reason says of a timestamp it
// does not keep (restampNote).
const restampMark = "; the dead letter has the time it was written, not the input's"

// restampNote says, in a dead letter's reason, that it has the time it was
// written, and what the input's timestamp was.
func restampNote(in *kgo.Record) string {
	return fmt.Sprintf("%s (%s), which a topic refused", restampMark, in.Timestamp.UTC().Format(time.RFC3339Nano))
}

// restamped is in with the timestamp now, for a dead letter a topic refused
// with the input's. The input's own record is not recycled (its bytes are
// the dead letter's): its memory goes to the collector.
func restamped(in *kgo.Record) *kgo.Record {
	return &kgo.Record{
		Topic: in.Topic, Partition: in.Partition, Offset: in.Offset, LeaderEpoch: in.LeaderEpoch,
		Key: in.Key, Value: in.Value, Headers: in.Headers, Timestamp: time.Now(),
	}
}

// defaultBatchBytes is franz-go's default ProducerBatchMaxBytes.
const defaultBatchBytes = 1_000_012

// batchRoom is what a batch holds besides its one record's key, value and
// headers (recordBytes), at most: the batch's header (61 bytes, franz-go's
// recordBatchOverhead), the record's own framing (its length, attributes,
// timestamp and offset deltas, key and value lengths and header count as
// varints: 36 at most), and the traceparent header the tracing hook adds
// (68): 165, rounded up. A batch is compressed only if that makes it
// smaller. At 1 KiB, a topic that takes 700 bytes was said to take records
// of 0 bytes, and every output of 315 bytes was dead-lettered (found by
// review).
const batchRoom = 256

// maxRecordBytes is the largest record the producer writes: its batches'
// size (franz-go's default, or what the output topics accept: see
// limitBatches), less room for the batch's framing.
func (p *Processor) maxRecordBytes() int {
	if p.batchBytes > 0 {
		return max(int(p.batchBytes)-batchRoom, 0)
	}
	return defaultBatchBytes - batchRoom
}

// batchLimitNote says, in a dead letter's reason, where a lowered record
// limit comes from.
func (p *Processor) batchLimitNote() string {
	if p.batchBytes > 0 {
		return fmt.Sprintf(" (the output topics' max.message.bytes, %d, less room for the batch's framing)", p.batchBytes)
	}
	return ""
}

// recordBytes is what a record weighs in a batch, framing aside: its key,
// value and headers, with the lengths of the headers' keys and values
// (without these, a record of a thousand empty headers weighed nothing for
// them, and passed the check of its size; found by review).
func recordBytes(r *kgo.Record) int {
	n := len(r.Key) + len(r.Value)
	for _, h := range r.Headers {
		n += len(h.Key) + len(h.Value) + kbin.VarintLen(int32(len(h.Key))) + kbin.VarintLen(int32(len(h.Value)))
	}
	return n
}
