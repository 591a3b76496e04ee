package processor

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// assigned starts a worker for each newly assigned partition.
func (p *Processor) assigned(ctx context.Context, cl *kgo.Client, assigned map[string][]int32) {
	p.setClient(cl)            // before any worker starts: see client
	defer p.reportMembers(ctx) // OnAssigned, after the unlock below: members.go
	var ahead map[topicPartition]aheadSet
	if !p.cfg.ExactlyOnce && len(assigned) > 0 {
		ahead = p.aheadOf(ctx, cl, assigned)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for topic, partitions := range assigned {
		for _, partition := range partitions {
			tp := topicPartition{topic, partition}
			w := newPartitionWorker(p, tp)
			w.ahead = ahead[tp]
			p.workers[tp] = w
			go w.run()
		}
	}
	p.joined.Store(true) // franz-go calls this on every join, even with nothing new
	p.log.Info("partitions assigned", "partitions", assigned)
}

// revoked finishes (within ShutdownTimeout) or abandons the revoked
// partitions' in-flight records, waits for their outputs to be acknowledged
// and commits how far each got. It runs inside the rebalance (and when the
// group is left at shutdown), so nothing of these partitions is committed
// after it returns.
func (p *Processor) revoked(ctx context.Context, cl *kgo.Client, revoked map[string][]int32) {
	if p.cfg.ExactlyOnce {
		// No batch is running (rebalances wait for the transaction loop to
		// allow them), and the transaction session commits: only stop.
		p.stopWorkers(p.removeWorkers(revoked), nil)
		p.refused.forget(revoked)
		p.log.Info("partitions revoked", "partitions", revoked)
		return
	}
	p.commitMu.Lock()
	defer p.commitMu.Unlock()
	ws := p.removeWorkers(revoked)
	if len(ws) == 0 {
		return
	}
	var grace <-chan struct{} // nil: abandon at once
	if p.fatal() == nil {
		done := make(chan struct{})
		t := time.AfterFunc(p.cfg.ShutdownTimeout, func() { close(done) })
		defer t.Stop()
		grace = done
	}
	p.stopWorkers(ws, grace)

	// Outputs already handed to the producer are finished work: wait for
	// their acknowledgements so they can be committed.
	flushCtx, cancel := context.WithTimeout(ctx, p.cfg.ShutdownTimeout)
	defer cancel()
	if err := p.flushAll(flushCtx, cl); err != nil {
		p.log.Warn("revoke: not every output was acknowledged in time; those records will be delivered again", "err", err)
	}
	p.commitWorkers(ctx, ws)
	// Written above the committed offset: a commit covers a partition's
	// offsets up to its first unfinished record only. Those the commit's
	// metadata names, the next owner skips (ahead.go); the rest it writes
	// again. Found by a walkthrough: with records held back for the rate,
	// a stop had 220 of its 299 outputs written again, and nothing said so.
	ahead, named := p.commitAhead(ctx, cl, ws)
	p.forget(ws)
	attrs := []any{"partitions", revoked}
	if ahead > 0 {
		attrs = append(attrs, "written_above_commit", ahead, "named_in_commit", named)
		if again := ahead - named; again > 0 {
			p.stats.aheadOfCommit.Add(int64(again))
			attrs = append(attrs, "written_again", again, "written_again_are", writtenAgain)
		}
	}
	p.log.Info("partitions revoked", attrs...)
}

// writtenAgain says what becomes of the records finished above a
// partition's committed offset.
const writtenAgain = "written again by the partition's next owner (at least once: an earlier record of the partition was not finished, " +
	"offsets are committed up to it, and the commit's metadata could not name them)"

// lost abandons the lost partitions' work without committing: the group has
// already given them to someone else, who will deliver them again.
func (p *Processor) lost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	p.joined.Store(false) // until the group takes us back
	if len(lost) == 0 {
		// franz-go calls this on every failed rejoin (a broker outage):
		// nothing was held, so nothing to say each time.
		return
	}
	if p.cfg.ExactlyOnce {
		// The transaction session aborts the open transaction.
		p.stopWorkers(p.removeWorkers(lost), nil)
		p.refused.forget(lost)
		p.log.Warn("partitions lost (session expired); their transaction aborts and they are delivered again", "partitions", lost)
		return
	}
	p.commitMu.Lock()
	defer p.commitMu.Unlock()
	ws := p.removeWorkers(lost)
	p.stopWorkers(ws, nil)
	p.forget(ws)
	p.log.Warn("partitions lost (session expired); their in-flight records will be delivered again", "partitions", lost)
}

func (p *Processor) removeWorkers(tps map[string][]int32) []*partitionWorker {
	p.mu.Lock()
	defer p.mu.Unlock()
	var ws []*partitionWorker
	for topic, partitions := range tps {
		for _, partition := range partitions {
			tp := topicPartition{topic, partition}
			if w := p.workers[tp]; w != nil {
				ws = append(ws, w)
				delete(p.workers, tp)
			}
		}
	}
	return ws
}

// forget drops what was committed for partitions no longer ours. The caller
// holds commitMu.
func (p *Processor) forget(ws []*partitionWorker) {
	for _, w := range ws {
		delete(p.committed, w.tp)
	}
}

func (p *Processor) stopWorkers(ws []*partitionWorker, grace <-chan struct{}) {
	done := make(chan struct{}, len(ws))
	for _, w := range ws {
		go func() {
			w.shutdown(grace)
			done <- struct{}{}
		}()
	}
	for range ws {
		<-done
	}
}

// commitLoop commits finished offsets every CommitInterval until ctx ends.
func (p *Processor) commitLoop(ctx context.Context) {
	t := time.NewTicker(p.cfg.CommitInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		p.commitMu.Lock()
		p.commitWorkers(ctx, p.workerList())
		p.commitMu.Unlock()
	}
}

// commitWorkers commits each worker's watermark that moved since the last
// commit. The caller holds commitMu.
func (p *Processor) commitWorkers(ctx context.Context, ws []*partitionWorker) {
	offsets := make(map[string]map[int32]kgo.EpochOffset)
	for _, w := range ws {
		off, epoch, ok := w.track.watermark()
		if !ok || p.committed[w.tp] == off {
			continue
		}
		if offsets[w.tp.topic] == nil {
			offsets[w.tp.topic] = make(map[int32]kgo.EpochOffset)
		}
		offsets[w.tp.topic][w.tp.partition] = kgo.EpochOffset{Epoch: epoch, Offset: off}
	}
	if len(offsets) == 0 {
		return
	}
	// A commit that cannot complete must not hold a rebalance forever.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.cfg.ShutdownTimeout)
	defer cancel()
	p.client().CommitOffsetsSync(ctx, offsets, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		if err != nil {
			p.log.Warn("commit failed; it is retried with the next one", "err", err)
			return
		}
		for _, t := range resp.Topics {
			for _, part := range t.Partitions {
				tp := topicPartition{t.Topic, part.Partition}
				if err := kerr.ErrorForCode(part.ErrorCode); err != nil {
					p.log.Warn("commit failed for a partition", "topic", t.Topic, "partition", part.Partition, "err", err)
					continue
				}
				p.committed[tp] = offsets[t.Topic][part.Partition].Offset
				p.stats.commits.Add(1)
			}
		}
	})
}
