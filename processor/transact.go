package processor

import (
	"context"
	"errors"
	"fmt"
	"sync"
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
	defer sess.CloseAllowingRebalance()
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
		done, complete, late := p.processBatch(ctx, fetches)
		if late {
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
	// A produce that Kafka refused during the flush (a record too large for
	// the topic) stops the processor (onAck): committed, the refused
	// record's offset went with the others, without its output.
	return commit && p.fatal() == nil
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
	// time out; abandon it first.
	abandon, cancel := context.WithTimeoutCause(ctx, p.cfg.TransactionTimeout/2, errTooLong)
	defer cancel()
	b := &txnBatch{ctx: abandon, cancel: cancel, complete: true, done: make(chan struct{})}

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
		// ones in flight, which the canceled context abandons.
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
	ctx    context.Context // canceled: abandon the batch
	cancel context.CancelFunc

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
