package processor

import (
	"context"
	"fmt"
	"maps"
	"sync"
)

// retentionWatch collects the input partitions whose next records the broker
// deleted before the group read them, found by franz-go as it fetches: a
// running group lagged longer than the input keeps records (retention.ms),
// or a rebalance handed this instance a partition at a committed offset the
// broker has deleted past. franz-go resumes such a partition at the log start
// and says so in a log line of its own (kgoLogger hands it over); the records
// in between are lost to the pipeline, so they are counted (Stats.Deleted)
// and named in a warning, as those found at the start (checkBacklog).
type retentionWatch struct {
	mu sync.Mutex
	// pending is, by cause, where the group was when the broker no longer
	// had it.
	pending [outOfRangeCauses]map[topicPartition]int64
	counted map[topicPartition]int64 // offsets below are counted already
	warned  map[topicPartition]int64 // offsets below were warned of at the start
	wake    chan struct{}            // capacity 1: "pending is not empty"
}

// outOfRange is how franz-go came to a partition's next offset that the
// broker no longer has.
type outOfRange int

const (
	whileConsuming outOfRange = iota // the group was consuming it and fell behind the log start
	onFirstFetch                     // this instance was handed it at a committed offset before the log start
	outOfRangeCauses
)

func newRetentionWatch() retentionWatch {
	return retentionWatch{
		pending: [outOfRangeCauses]map[topicPartition]int64{
			whileConsuming: make(map[topicPartition]int64),
			onFirstFetch:   make(map[topicPartition]int64),
		},
		counted: make(map[topicPartition]int64),
		warned:  make(map[topicPartition]int64),
		wake:    make(chan struct{}, 1),
	}
}

// note hears that the broker no longer has offset prior of a partition the
// client fetched.
func (w *retentionWatch) note(cause outOfRange, topic string, partition int32, prior int64) {
	tp := topicPartition{topic, partition}
	w.mu.Lock()
	if old, ok := w.pending[cause][tp]; !ok || prior < old {
		w.pending[cause][tp] = prior
	}
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// startRetentionWatch runs watchRetention until the stop it returns, which
// waits for it.
func (p *Processor) startRetentionWatch(ctx context.Context) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { p.watchRetention(ctx) })
	return func() {
		cancel()
		wg.Wait()
	}
}

// watchRetention counts what the broker deleted of the partitions noted,
// until ctx ends.
func (p *Processor) watchRetention(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.behind.wake:
		}
		p.countDeletedWhileRunning(ctx)
	}
}

// countDeletedWhileRunning lists the log start of the input and counts, for
// each partition noted, the offsets from where the group was up to it.
// Offsets counted once are not counted again, however often franz-go
// reports the partition.
func (p *Processor) countDeletedWhileRunning(ctx context.Context) {
	w := &p.behind
	var pending [outOfRangeCauses]map[topicPartition]int64
	w.mu.Lock()
	for cause, m := range w.pending {
		pending[cause] = maps.Clone(m)
		clear(m)
	}
	w.mu.Unlock()
	if len(pending[whileConsuming])+len(pending[onFirstFetch]) == 0 {
		return
	}
	topic := p.cfg.InputTopic
	starts, err := listStartOffsets(ctx, p.client(), topic)
	if err != nil {
		if ctx.Err() == nil {
			p.log.Warn("the broker no longer has the offsets the group was at, and the log start could not be listed: "+
				"records from there on may have been deleted before the group read them", "input_topic", topic,
				"at", pending[whileConsuming], "taken_over_at", pending[onFirstFetch], "err", err)
		}
		return
	}
	logStart := func(tp topicPartition) (int64, bool) {
		s, ok := starts.Lookup(tp.topic, tp.partition)
		return s.Offset, ok && s.Err == nil
	}
	for cause, at := range pending {
		unread := w.unread(topic, at, logStart)
		n, where := offsetRanges(unread)
		if n == 0 {
			continue // the broker lost data instead (franz-go's warning says what it did)
		}
		p.stats.deleted.Add(n)
		if outOfRange(cause) == onFirstFetch && w.allWarned(topic, unread) {
			p.log.Info(fmt.Sprintf("counted the %d deleted records the warning at start named in this instance's partitions (partition:[offsets) %s)", n, where),
				"input_topic", topic)
			continue
		}
		var why string
		switch outOfRange(cause) {
		case whileConsuming:
			why = fmt.Sprintf("the broker deleted %d records of the input before the group read them (partition:[offsets) %s): "+
				"they will not be enriched. The group lagged longer than the input topic keeps records (retention.ms): "+
				"keep the input longer than the group's longest lag (twosell_consumer_lag) or add instances; "+
				"replay the records from their source if it still has them", n, where)
		case onFirstFetch:
			why = fmt.Sprintf("the broker deleted %d records of the input before the group read them (partition:[offsets) %s): "+
				"they will not be enriched. This instance was handed these partitions at committed offsets older than "+
				"the input topic keeps records (retention.ms): no member consumed them for that long "+
				"(the group stopped, or a member held them back while the provider was unavailable); "+
				"keep the input longer than the longest outage, and replay the records from their source if it still has them", n, where)
		}
		p.log.Warn(why, "group", p.cfg.Group, "input_topic", topic)
	}
}

// warnedAtStart records the offsets of topic that the start's check of the
// group's backlog warned of (warnDeletedUnread): the instance's first fetch
// of these partitions counts them, without a second warning.
func (w *retentionWatch) warnedAtStart(topic string, unread map[int32]OffsetRange) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for part, r := range unread {
		tp := topicPartition{topic, part}
		w.warned[tp] = max(w.warned[tp], r.End)
	}
}

// allWarned reports whether the start's check warned of every range of
// rng (offsets of topic).
func (w *retentionWatch) allWarned(topic string, rng map[int32]OffsetRange) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for part, r := range rng {
		if w.warned[topicPartition{topic, part}] < r.End {
			return false
		}
	}
	return true
}

// unread returns, by partition of topic, the offsets of pending that the
// broker deleted, from where the group was up to the log start (logStart),
// leaving out those counted before, and counts them as counted.
func (w *retentionWatch) unread(topic string, pending map[topicPartition]int64, logStart func(topicPartition) (int64, bool)) map[int32]OffsetRange {
	out := make(map[int32]OffsetRange)
	w.mu.Lock()
	defer w.mu.Unlock()
	for tp, prior := range pending {
		start, ok := logStart(tp)
		if tp.topic != topic || !ok {
			continue
		}
		from := max(prior, w.counted[tp])
		if start > from {
			out[tp.partition] = OffsetRange{Start: from, End: start}
			w.counted[tp] = start
		}
	}
	return out
}
