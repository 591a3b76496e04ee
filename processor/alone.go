package processor

import (
	"context"
	"errors"
	"strconv"
	"sync"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// A broker checks a topic's max.message.bytes against a whole record batch
// and refuses the batch whole; franz-go then fails each of its records with
// MESSAGE_TOO_LARGE. The producer's batches are bounded by the output
// topics' limit, read at the start (limitBatches), and a record over it is
// dead-lettered before it is produced; so a batch is refused when the limit
// was lowered since, or could not be read, and a record is refused alone
// when the estimate of its size (recordBytes) fell short. The records
// batched with one too large may each fit the topic: they were
// dead-lettered with it, outputs as output_rejected and dead letters
// without their payload (found by review, left for a while). Now, at least
// once, a record refused as too large is produced again, alone, by a
// producer that holds one record at a time, in the order refused, and
// treated as refused only if it is refused alone too. Once one is written
// alone, the batch was refused: a warning says why, and how to end it (the
// records so written flow at one a round trip, and may land behind later
// records of their key). Exactly-once, a refusal aborts the transaction,
// and the retry dead-letters the refused records: a producer of its own
// would write outside the transaction.

// batchRefused reports whether Kafka refused a record's batch for a record
// of it, which may be another: too large, or a timestamp or a record the
// topic refuses (message.timestamp.*.max.ms; a record without a key on a
// compacted topic). Found by a walkthrough: one output stamped 2099 had its
// eight batch mates, paid for, dead-lettered with it, "refused for their
// timestamp".
func batchRefused(err error) bool {
	return sizeRefused(err) || errors.Is(err, kerr.InvalidTimestamp) || errors.Is(err, kerr.InvalidRecord)
}

// sizeRefused reports whether Kafka refused a record for its batch's size.
func sizeRefused(err error) bool {
	return errors.Is(err, kerr.MessageTooLarge) || errors.Is(err, kerr.RecordListTooLarge)
}

// loneProducer produces records alone, one at a time in the order given:
// its producer is made at the first record and closed as Run returns.
type loneProducer struct {
	mu    sync.Mutex
	cl    *kgo.Client
	queue []loneRecord // given, not yet handed to cl
	// slots bounds queue, and the record being handed to cl: one is taken
	// for each record given, and given back once it is handed.
	slots    chan struct{}
	draining bool // a goroutine hands queue to cl
	closed   bool
	warned   bool // of a batch refused as too large
	// warnedOther: of a batch refused for a record's timestamp or form
	warnedOther bool
}

type loneRecord struct {
	rec     *kgo.Record
	promise func(*kgo.Record, error)
}

// current is the producer, nil if none was made.
func (l *loneProducer) current() *kgo.Client {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.cl
}

// close closes the producer: what it still holds, or is given after,
// fails with ErrClientClosed (abandoned, delivered again).
func (l *loneProducer) close() {
	l.mu.Lock()
	cl := l.cl
	l.closed = true
	l.mu.Unlock()
	if cl != nil {
		cl.Close()
	}
}

// loneOpts are the options of the producer of records produced alone: the
// cluster's, the hooks (tracing) and the batch bound of the main producer,
// no consumer, and one record buffered at a time, so that each batch holds
// one record.
func (p *Processor) loneOpts() []kgo.Opt {
	opts := append([]kgo.Opt{kgo.WithLogger(newKgoLogger(p.log, nil)), kgo.ProducerLinger(0)}, p.producerOpts()...)
	opts = append(opts, p.cfg.ClientOpts...)
	return append(opts, kgo.WithHooks(p.hooks...), kgo.MaxBufferedRecords(1))
}

// writtenAlone is called when a record refused with its batch was written
// alone: it warns, once, that the topic's limit is below the batches.
func (p *Processor) writtenAlone(topic string, cause error) {
	l := &p.lone
	l.mu.Lock()
	size := sizeRefused(cause)
	first := size && !l.warned || !size && !l.warnedOther
	l.warned, l.warnedOther = l.warned || size, l.warnedOther || !size
	l.mu.Unlock()
	if !first {
		return
	}
	if !size {
		p.unlessFailed(func() {
			p.log.Warn("a topic refused a batch for one of its records, and its other records were written alone: "+
				"each record of a batch so refused is produced again alone, one at a time (it may land behind later records of its key, "+
				"and of its partition), and dead-lettered only if it is refused alone too", "topic", topic, "err", cause)
		})
		return
	}
	why := "it could not be read at the start: allow twosell to describe the topic's configuration (DescribeConfigs), and restart it"
	if p.limitKnown {
		why = "it was lowered since the start (or a record of the batch is larger on the wire than twosell weighed it): restart twosell"
	}
	p.unlessFailed(func() { // never after the FATAL line
		p.log.Warn("a topic refused a batch as too large that its records fit alone: its max.message.bytes is below the producer's batches "+
			"("+strconv.Itoa(int(p.batchBound()))+" bytes); "+why+" to bound the batches by it. Until then, each record so refused is produced again alone, "+
			"one at a time (it may land behind later records of its key, and of its partition)", "topic", topic)
	})
}

// batchBound is the bound of the producer's batches.
func (p *Processor) batchBound() int32 {
	if p.batchBytes > 0 {
		return p.batchBytes
	}
	return defaultBatchBytes
}

// maxLoneQueue bounds the records waiting to be produced alone: the
// producer writes one a round trip, and a topic that refuses every batch
// refuses records faster than that (without a bound, the queue grew with
// every refused batch).
var maxLoneQueue = 1024

// produceAlone produces rec again, alone, with promise, after the records
// given before it. Each is counted as a replacement until it is handed to
// the producer (flushAll waits for it). It waits while maxLoneQueue
// records wait: called from a refused record's promise, it holds up the
// producer's other promises, and the producer's buffer fills, which holds
// up the workers that produce.
func (p *Processor) produceAlone(rec *kgo.Record, promise func(*kgo.Record, error)) {
	l := &p.lone
	p.replacing.add()
	l.mu.Lock()
	if l.slots == nil {
		l.slots = make(chan struct{}, maxLoneQueue)
	}
	slots := l.slots
	l.mu.Unlock()
	slots <- struct{}{}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.queue = append(l.queue, loneRecord{rec, promise})
	if !l.draining {
		l.draining = true
		go p.drainAlone()
	}
}

// drainAlone hands the queue to the producer, in order, until it is empty.
// Each record is handed once the one before it is done (its promise has
// run): a fatal error that record's outcome caused stops the rest, which
// are not written (at least once, as hand does: a later record written
// after a failed one could overtake its re-delivery; found by review, a
// record of the same key was written after the failed one's FATAL).
func (p *Processor) drainAlone() {
	l := &p.lone
	var prev chan struct{} // closed once the record handed before is done
	for {
		if prev != nil {
			<-prev
		}
		l.mu.Lock()
		if len(l.queue) == 0 {
			l.draining = false
			l.mu.Unlock()
			return
		}
		next := l.queue[0]
		l.queue[0] = loneRecord{}
		l.queue = l.queue[1:]
		var err error
		switch {
		case l.closed || p.stopped.Load():
			err = kgo.ErrClientClosed // abandoned: delivered again
		case l.cl == nil:
			l.cl, err = kgo.NewClient(p.loneOpts()...)
		}
		cl, slots := l.cl, l.slots
		l.mu.Unlock()
		if err != nil {
			prev = nil
			next.promise(next.rec, err)
		} else {
			done := make(chan struct{})
			prev = done
			cl.Produce(context.Background(), next.rec, func(r *kgo.Record, err error) {
				defer close(done)
				next.promise(r, err)
			})
		}
		<-slots
		p.replacing.done()
	}
}

// flushAlone waits until the records produced alone are acknowledged.
func (p *Processor) flushAlone(ctx context.Context) error {
	if cl := p.lone.current(); cl != nil {
		return cl.Flush(ctx)
	}
	return nil
}
