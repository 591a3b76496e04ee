package processor

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// runTransactional is exactly-once delivery: each poll is one transaction.
// The batch's records are processed by their partitions' workers (in order
// within a partition, partitions in parallel), their outputs and dead letters
// are produced in the transaction, and the session commits the batch's
// offsets in the same transaction. Anything short of the whole batch (a
// record held back for the provider past half the transaction timeout, a
// rebalance, a fatal error) aborts it; the session rewinds to the last
// committed offsets and the records are processed again — lookups included,
// which is the cost of this mode.
func (p *Processor) runTransactional(ctx context.Context) error {
	sess, err := kgo.NewGroupTransactSession(p.clientOpts(
		kgo.TransactionalID(p.cfg.TransactionalID),
		kgo.TransactionTimeout(p.cfg.TransactionTimeout),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
	)...)
	if err != nil {
		return fmt.Errorf("processor: kafka client: %w", err)
	}
	p.setClient(sess.Client())
	defer p.leaveAndClose(sess.Client(), sess.Close)
	defer p.startRetentionWatch(ctx)()

	wait := p.cfg.RetryBackoff
	// The batch size adapts so that a batch fits in the transaction: halved
	// when one runs out of time, doubled back after each commit.
	batch := p.cfg.MaxPollRecords
	for ctx.Err() == nil {
		fetches := sess.PollRecords(ctx, batch)
		if fetches.IsClientClosed() {
			break
		}
		p.logFetchErrors(fetches)
		if fetches.NumRecords() == 0 {
			sess.AllowRebalance()
			continue
		}
		if err := sess.Begin(); err != nil {
			p.fail(fmt.Errorf("beginning a transaction: %w", err))
			break
		}
		p.spoiled.Store(nil) // the last transaction's records all ended in its End
		p.refused.begin()
		done, complete, late := p.processBatch(ctx, fetches)
		if late {
			if fetches.NumRecords() == 1 {
				// Smaller batches cannot help: one lookup takes longer than
				// half the transaction timeout (the command refuses such a
				// configuration of its provider: see config's LookupTime).
				p.log.Error("one record's lookup took longer than half the transaction timeout: its batch was aborted, and it is "+
					"tried again; it cannot commit while the provider takes this long; raise the transaction timeout, or bound the lookup's time",
					"transaction_timeout", p.cfg.TransactionTimeout)
			}
			batch = max(1, batch/2)
		}

		commit := p.flushTxn(ctx, complete && p.fatal() == nil)
		// End must run even when shutting down, or the transaction stays
		// open until its timeout and blocks the partitions' next owner.
		endCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.cfg.TransactionTimeout)
		committed, err := sess.End(endCtx, kgo.TransactionEndTry(commit))
		cancel()
		switch {
		case err != nil:
			p.fail(fmt.Errorf("ending a transaction: %w", err))
		case committed:
			for _, o := range done {
				p.stats.count(o)
			}
			p.stats.commits.Add(1)
			p.refused.committed()
		default:
			p.log.Info("transaction aborted; its records will be processed again", "records", fetches.NumRecords(), "wanted_commit", commit)
		}
		sess.AllowRebalance()
		if p.fatal() != nil {
			break
		}
		if commit {
			wait = p.cfg.RetryBackoff
			batch = min(p.cfg.MaxPollRecords, 2*batch)
			continue
		}
		// A record was held back: give the provider time before the batch
		// is fetched again.
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
		wait = min(2*wait, p.cfg.MaxRetryBackoff)
	}
	return nil
}

// flushTxn waits for the open transaction's records to be acknowledged
// before End, so that the commit is decided knowing every produce's outcome.
// It returns whether to try to commit: commit, unless a produce failed the
// producer id (txnAbortable) or the records were not all acknowledged within
// the transaction timeout. Either way End then aborts, which recovers the
// producer id, and the records are processed again; only an End that fails
// stops the processor.
func (p *Processor) flushTxn(ctx context.Context, commit bool) bool {
	if commit {
		flushCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.cfg.TransactionTimeout)
		defer cancel()
		if err := p.client().Flush(flushCtx); err != nil {
			p.log.Warn("the transaction's records were not acknowledged in time; aborting it", "err", err)
			return false
		}
	}
	if err := p.spoiled.Load(); err != nil {
		p.log.Warn("Kafka failed the transaction's producer id; aborting the transaction and processing its records again", "err", *err)
		return false
	}
	if n := p.refused.inTxn(); n > 0 {
		p.log.Warn("Kafka refused records; aborting the transaction to dead-letter their inputs when it is retried", "refused", n)
		return false
	}
	// A produce that failed otherwise during the flush stops the processor
	// (onAck): committed, its record's offset went with the others, without
	// its output.
	return commit && p.fatal() == nil
}

// refusals remembers, exactly-once, the inputs whose records Kafka refused
// (recordRejected: an enriched event too large for the output topic, say,
// or a dead letter with the input's bytes too large for its topic). A
// refused record cannot be replaced in the transaction it failed in, which
// must not commit; so the transaction aborts, and when its records are
// processed again, these are dead-lettered as the refusal said (at least
// once, the replacement is produced at once). An entry goes once its dead
// letter is committed.
type refusals struct {
	n  atomic.Int32 // entries: the hot path's check without the lock
	mu sync.Mutex
	m  map[refusedAt]*refusal
}

type refusedAt struct {
	tp     topicPartition
	offset int64
}

// refusal is what to dead-letter an input with, its bytes or not (bare).
type refusal struct {
	class, reason string
	bare          bool         // without the input's bytes
	restamp       bool         // with the time it is written, not the input's (restamped)
	txn           refusalInTxn // what the open transaction did with it; its end decides
}

type refusalInTxn uint8

const (
	refusalIdle         refusalInTxn = iota // nothing yet
	refusalRefused                          // Kafka refused the record: the transaction must abort
	refusalDeadLettered                     // the dead letter was produced: gone once it commits
)

// refuse remembers a refusal of in's record: in is to be dead-lettered
// with class and reason, without its bytes if bare, with the time it is
// written if restamp.
func (r *refusals) refuse(in *kgo.Record, class, reason string, bare, restamp bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m == nil {
		r.m = make(map[refusedAt]*refusal)
	}
	at := refusedAt{topicPartition{in.Topic, in.Partition}, in.Offset}
	e, ok := r.m[at]
	if !ok {
		r.n.Add(1)
	} else if e.class == class {
		// Refused again, for another fault of its dead letter: both are
		// mended (found by review: a dead letter too large and too old
		// lost one mending to the other, retry after retry, and stopped).
		bare, restamp = bare || e.bare, restamp || e.restamp
	}
	r.m[at] = &refusal{class: class, reason: reason, bare: bare, restamp: restamp, txn: refusalRefused}
}

// deadLetter returns how to dead-letter in, if Kafka refused its record
// before.
func (r *refusals) deadLetter(in *kgo.Record) (refusal, bool) {
	if r.n.Load() == 0 {
		return refusal{}, false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.m[refusedAt{topicPartition{in.Topic, in.Partition}, in.Offset}]
	if e == nil {
		return refusal{}, false
	}
	e.txn = refusalDeadLettered
	return *e, true
}

// inTxn returns how many records Kafka refused in the open transaction.
func (r *refusals) inTxn() int {
	if r.n.Load() == 0 {
		return 0
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, e := range r.m {
		if e.txn == refusalRefused {
			n++
		}
	}
	return n
}

// begin starts a transaction: what the last one did with the entries was
// aborted, unless committed said otherwise.
func (r *refusals) begin() {
	if r.n.Load() == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.m {
		e.txn = refusalIdle
	}
}

// forget drops the entries of partitions no longer this instance's: their
// next owner learns of the refusals as this one did.
func (r *refusals) forget(tps map[string][]int32) {
	r.drop(func(at refusedAt, _ *refusal) bool { return slices.Contains(tps[at.tp.topic], at.tp.partition) })
}

// committed forgets the entries whose dead letters the transaction committed.
func (r *refusals) committed() {
	r.drop(func(_ refusedAt, e *refusal) bool { return e.txn == refusalDeadLettered })
}

// drop deletes the entries gone says are.
func (r *refusals) drop(gone func(refusedAt, *refusal) bool) {
	if r.n.Load() == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for at, e := range r.m {
		if gone(at, e) {
			delete(r.m, at)
			r.n.Add(-1)
		}
	}
}

// spoil marks the open transaction for abort: a produce failed the producer
// id (txnAbortable). The first error is kept for the log.
func (p *Processor) spoil(err error) {
	p.spoiled.CompareAndSwap(nil, &err)
}

// processBatch runs one transaction's records through their partitions'
// workers, with as many in flight as outside a transaction. It returns the
// outcomes, whether every record was handed to the producer, and whether the
// batch ran out of time. The first record that is not handed over (held too
// long, fatal, shutdown) abandons the rest of the batch: it will abort anyway.
func (p *Processor) processBatch(ctx context.Context, fetches kgo.Fetches) (done []outcome, complete, late bool) {
	// A batch longer than half the transaction timeout (a record held back
	// for the provider, or just a slow provider) would let the transaction
	// time out; abandon it first, its calls in flight with it.
	calls, cancelCalls := context.WithTimeoutCause(context.WithoutCancel(ctx), p.cfg.TransactionTimeout/2, errTooLong)
	defer cancelCalls()
	// A stop (ctx), or a record not handed over, abandons the rest: nothing
	// more starts, no new paid call is made (Lookup.stop), and the records
	// not started or waiting for another's call are given up. The calls in
	// flight, paid for either way, are left to finish within the stop's
	// grace (shutdown_timeout; at once after a fatal error), as at least
	// once: their answers reach the knowledge and the ledger, and are not
	// paid for again after the restart. (Found by review: every stop cut
	// them, and the restart paid for them again.) If every record of the
	// batch was in flight and finishes, the batch commits.
	abandon, cancel := context.WithCancel(calls)
	defer cancel()
	// A fatal error, before the stop or during its grace, cancels the calls
	// at once (found by review: one during the grace left them running).
	defer p.onFatal(cancelCalls)()
	defer context.AfterFunc(ctx, func() {
		cancel()
		grace := time.AfterFunc(p.cfg.ShutdownTimeout, cancelCalls)
		context.AfterFunc(calls, func() { grace.Stop() }) // the batch ended first
	})()
	b := &txnBatch{ctx: abandon, calls: calls, cancel: cancel, complete: true, done: make(chan struct{})}

	var ws []*partitionWorker
	var parts []kgo.FetchTopicPartition
	fetches.EachPartition(func(ftp kgo.FetchTopicPartition) {
		if len(ftp.Records) == 0 {
			return
		}
		p.mu.Lock()
		w := p.workers[topicPartition{ftp.Topic, ftp.Partition}]
		p.mu.Unlock()
		if w == nil {
			b.complete = false // not ours any more: the session aborts anyway
			return
		}
		b.pending += len(ftp.Records)
		w.fetched(&ftp)
		ws = append(ws, w)
		parts = append(parts, ftp)
	})
	if b.pending == 0 {
		return nil, b.complete, false
	}
	for i, w := range ws {
		p.stats.consumed.Add(int64(len(parts[i].Records)))
		w.push(parts[i].Records, b)
	}
	select {
	case <-b.done:
	case <-abandon.Done():
		// Records not started will not be: settle them, then wait for the
		// ones in flight, whose calls end or are canceled (calls).
		for _, w := range ws {
			w.clearBatch(b)
		}
		<-b.done
	}
	for _, w := range ws {
		w.endBatch()
	}
	if late = errors.Is(context.Cause(abandon), errTooLong); late {
		p.log.Warn("a batch took half the transaction timeout (provider slow or unavailable); aborting it and fetching smaller batches")
	}
	return b.outcomes, b.complete, late
}

// errTooLong abandons a batch that would outlast its transaction.
var errTooLong = errors.New("batch ran past half the transaction timeout")

// txnBatch is one transaction's records, settled one by one by the workers.
type txnBatch struct {
	ctx    context.Context // canceled: abandon the batch (no record starts, no new call)
	cancel context.CancelFunc
	calls  context.Context // canceled: abandon its calls in flight too (a parent of ctx)

	mu       sync.Mutex
	pending  int // records not settled
	outcomes []outcome
	complete bool          // every settled record was handed to the producer
	done     chan struct{} // closed when nothing is pending
}

// settle records one record's end: handed to the producer with outcome o,
// or not, which abandons the batch.
func (b *txnBatch) settle(o outcome, handed bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if handed {
		b.outcomes = append(b.outcomes, o)
	} else if b.complete {
		b.complete = false
		b.cancel()
	}
	b.pending--
	if b.pending == 0 {
		close(b.done)
	}
}
