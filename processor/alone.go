package processor

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// A broker checks a topic's max.message.bytes against a whole record batch
// and refuses the batch whole; franz-go then fails each of its records with
// MESSAGE_TOO_LARGE. The producer's batches are bounded by the output
// topics' limit, read at the start (limitBatches), and a record over it is
// dead-lettered before it is produced, so a refusal means that the limit
// was lowered since, or could not be read. Outputs batched with others may
// each fit the topic: they were dead-lettered with the batch (found by
// review, left for a while). Now, at least once:
//
//   - Lowered since the start: the processor stops, committing what is
//     finished, and says to restart it. A restart bounds the batches by the
//     new limit and delivers the refused records again, in their order,
//     with no throughput lost to the refusals.
//   - Not read at the start (no DescribeConfigs permission): a restart
//     would not read it either. Each refused output is produced again,
//     alone, by a producer that holds one record at a time, in the order
//     refused, and dead-lettered only if it is refused alone too. Those
//     outputs can land behind later outputs of their key, and flow at one a
//     round trip: the warning asks for the permission.
//
// Exactly-once, a limit lowered since the start stops the processor too (its
// transaction aborts). One not read at the start is left as it was: the
// refusal aborts the transaction, and the retry dead-letters the refused
// records; a producer of its own would write outside the transaction.

// sizeRefused reports whether Kafka refused a record for its batch's size.
func sizeRefused(err error) bool {
	return errors.Is(err, kerr.MessageTooLarge) || errors.Is(err, kerr.RecordListTooLarge)
}

// loneProducer produces records alone, one at a time in the order given:
// its producer is made at the first record and closed as Run returns.
type loneProducer struct {
	mu       sync.Mutex
	cl       *kgo.Client
	queue    []loneRecord // given, not yet handed to cl
	draining bool         // a goroutine hands queue to cl
	closed   bool
	warned   bool
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
	opts := append([]kgo.Opt{kgo.WithLogger(newKgoLogger(p.log, nil)), kgo.ProducerLinger(0)}, p.batchOpts()...)
	opts = append(opts, p.cfg.ClientOpts...)
	return append(opts, kgo.WithHooks(p.hooks...), kgo.MaxBufferedRecords(1))
}

// refusedBatch handles an output Kafka refused as too large with the
// others of its batch (see above): exactly-once, only when the limit was
// read at the start.
func (p *Processor) refusedBatch(r *outputRecord, err error) {
	if p.limitKnown {
		p.fail(fmt.Errorf("the output topic %s refused a batch of outputs as too large: its max.message.bytes was lowered "+
			"below the producer's batches (%d bytes) while twosell ran: %w; restart twosell, which bounds its batches by the limit it reads at the start, "+
			"and delivers these records again", p.cfg.OutputTopic, p.batchBound(), err))
		return
	}
	r.alone = true
	p.produceAlone(&r.rec, r.promise, err)
}

// batchBound is the bound of the producer's batches.
func (p *Processor) batchBound() int32 {
	if p.batchBytes > 0 {
		return p.batchBytes
	}
	return defaultBatchBytes
}

// produceAlone produces rec again, alone, with promise, after the records
// given before it. Each is counted as a replacement until it is handed to
// the producer (flushAll waits for it).
func (p *Processor) produceAlone(rec *kgo.Record, promise func(*kgo.Record, error), refusal error) {
	l := &p.lone
	p.replacing.add()
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.warned {
		l.warned = true
		p.log.Warn("the output topic refused a batch of outputs as too large, and its max.message.bytes could not be read at the start: "+
			"each refused output is produced again alone, one at a time (it may land behind later outputs of its key), "+
			"and dead-lettered only if refused alone too; allow twosell to describe the topic's configuration (DescribeConfigs), and restart it, "+
			"to bound its batches by the limit", "topic", rec.Topic, "err", refusal)
	}
	l.queue = append(l.queue, loneRecord{rec, promise})
	if !l.draining {
		l.draining = true
		go p.drainAlone()
	}
}

// drainAlone hands the queue to the producer, in order, until it is empty.
func (p *Processor) drainAlone() {
	l := &p.lone
	for {
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
		case l.closed:
			err = kgo.ErrClientClosed
		case l.cl == nil:
			l.cl, err = kgo.NewClient(p.loneOpts()...)
		}
		cl := l.cl
		l.mu.Unlock()
		if err != nil {
			next.promise(next.rec, err)
		} else {
			// Blocks while the producer holds the record before.
			cl.Produce(context.Background(), next.rec, next.promise)
		}
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
