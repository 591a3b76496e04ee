package processor

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// OffsetRange is a range of a partition's offsets: from Start to End,
// End excluded.
type OffsetRange struct{ Start, End int64 }

// replayCheckInterval is how often a replay looks whether its partitions'
// outputs are all acknowledged. It bounds only how soon Run returns after
// the last acknowledgement.
const replayCheckInterval = 10 * time.Millisecond

// replayStallAfter is how long a replay waits without a record from a
// partition short of its end before it fetches the partition again from
// where it stands (see nudge). A variable for tests.
var replayStallAfter = 15 * time.Second

// replayProbeAfter is how long a replay waits without a record before it
// asks the partitions short of their end whether anything of their range
// is left to read (see probe). A variable for tests.
var replayProbeAfter = time.Second

// validateRange checks Config.Range.
func (c *Config) validateRange() []error {
	var errs []error
	if c.ExactlyOnce {
		errs = append(errs, errors.New("processor: a Range (replay) is at-least-once: it cannot be ExactlyOnce"))
	}
	for p, r := range c.Range {
		if p < 0 || r.Start < 0 || r.End < r.Start {
			errs = append(errs, fmt.Errorf("processor: Range of partition %d is [%d, %d): want 0 ≤ Start ≤ End", p, r.Start, r.End))
		}
	}
	return errs
}

// replayPartition is where one partition of a replay stands.
type replayPartition struct {
	w       *partitionWorker
	start   int64 // Range.Start
	end     int64 // Range.End
	reached bool  // a record (or control record) at End-1 or later was read: nothing more to fetch
	last    int64 // offset of the last record handed to the worker; -1 before any
	next    int64 // the offset after the last record (or control record) read; 0 before any
}

// finished reports whether the partition's range is fetched and every record
// handed to the worker is finished (its output acknowledged).
func (rp *replayPartition) finished() bool {
	if !rp.reached {
		return false
	}
	if rp.last < 0 {
		return true
	}
	off, _, ok := rp.w.track.watermark()
	return ok && off > rp.last
}

// pass records that the partition was read up to next (the offset after
// the last record or marker read), kept of the records read being its to
// replay: the other offsets of the range passed held none (markers, records
// of aborted transactions, records compaction removed). The caller holds
// the lock that guards rp.
func (rp *replayPartition) pass(p *Processor, next int64, kept int) {
	if n := min(next, rp.end) - max(rp.next, rp.start); n > 0 {
		p.stats.empty.Add(n - int64(kept))
	}
	rp.next = max(rp.next, next)
}

// nudge fetches again, from where they stand, the partitions short of their
// end whose records stopped coming while the worker could take them, and
// says so. Records that the broker deleted meanwhile (retention: replayed
// events are old) cannot come: the partition resumes at its new log start,
// or is done if that is past its end, and the gap is logged. mu guards
// parts; nudge takes it itself.
func (p *Processor) nudge(ctx context.Context, cl *kgo.Client, topic string, parts map[int32]*replayPartition, mu *sync.Mutex) {
	next := make(map[int32]int64)
	mu.Lock()
	for part, rp := range parts {
		rp.w.mu.Lock()
		held := rp.w.paused != 0 // a full buffer or the provider: not a stall
		rp.w.mu.Unlock()
		if rp.reached || held {
			continue
		}
		// Where it stands: past its last record, and past the markers and
		// aborted records read (or probed) after it, which the out-of-range
		// handling counts from (a log start between them is not a
		// truncation).
		next[part] = max(rp.start, rp.last+1, rp.next)
	}
	mu.Unlock()
	if len(next) == 0 {
		return
	}
	starts, err := listStartOffsets(ctx, cl, topic)
	if err != nil {
		p.log.Warn("replay: listing the log start offsets of stalled partitions", "topic", topic, "err", err)
	}

	offsets := make(map[int32]kgo.EpochOffset)
	var names []string
	mu.Lock()
	for part, from := range next {
		rp := parts[part]
		if o, ok := starts.Lookup(topic, part); ok && o.Err == nil && o.Offset > from {
			if !p.skipDeleted(topic, part, rp, from, o.Offset) {
				rp.w.setPaused(pauseDone, true) // as when its last record is read
				continue
			}
			from = o.Offset
		}
		offsets[part] = kgo.EpochOffset{Epoch: -1, Offset: from}
		names = append(names, fmt.Sprintf("%d@%d (ends at %d)", part, from, rp.end))
	}
	mu.Unlock()
	if len(offsets) == 0 {
		return
	}
	p.log.Warn("replay: no records for a while from partitions short of their end; fetching them again",
		"topic", topic, "partitions", names, "after", replayStallAfter)
	for part := range offsets {
		// Not a partition its worker paused since (a full buffer): resumed
		// behind the worker's back, it would fetch on past the buffer's
		// bound, since the worker pauses a partition only once.
		w := parts[part].w
		w.mu.Lock()
		if w.paused == 0 {
			cl.ResumeFetchPartitions(map[string][]int32{topic: {part}})
		}
		w.mu.Unlock()
	}
	cl.SetOffsets(map[string]map[int32]kgo.EpochOffset{topic: offsets})
}

// probe reads, once, the partitions short of their end that are not paused,
// from where they stand, to learn whether any record of their range is left
// to come. A range can end in records that are never returned, of which
// nothing else tells: records of an aborted transaction whose marker lies
// past the last stable offset while another transaction is open (the range
// ends at the last stable offset at start) are dropped by the client, and
// the marker is not returned until that transaction ends, which may take
// up to its timeout. When only such records (and markers) are left, the
// partition is done. mu guards parts; probe takes it itself. With only, it
// probes those partitions alone. It returns the partitions it passed over
// because their workers held them paused (a full buffer), to be probed once
// they are not: found by review, a partition held when the probe ran was
// never probed again once its buffer drained, and only the stall's nudge,
// 15 s later, ended a replay whose range ended in such records.
func (p *Processor) probe(ctx context.Context, cl *kgo.Client, topic string, parts map[int32]*replayPartition, mu *sync.Mutex, only map[int32]bool) (held map[int32]bool) {
	from := make(map[int32]int64)
	mu.Lock()
	for part, rp := range parts {
		if rp.reached || (only != nil && !only[part]) {
			continue
		}
		rp.w.mu.Lock()
		paused := rp.w.paused != 0
		rp.w.mu.Unlock()
		if paused {
			if held == nil {
				held = make(map[int32]bool)
			}
			held[part] = true
			continue
		}
		from[part] = max(rp.next, rp.start)
	}
	mu.Unlock()
	if len(from) == 0 {
		return held
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	md, err := kadm.NewClient(cl).Metadata(ctx, topic)
	td, ok := md.Topics[topic]
	if err != nil || !ok || td.Err != nil {
		p.log.Debug("replay: probing stalled partitions: no metadata", "topic", topic, "err", errors.Join(err, td.Err))
		return held
	}
	moved := make(map[int32]kgo.EpochOffset)
	for part, off := range from {
		next, err := readPastAll(ctx, cl, td, part, off, parts[part].end)
		if err != nil {
			p.log.Debug("replay: probing a stalled partition", "topic", topic, "partition", part, "err", err)
		}
		mu.Lock()
		if rp := parts[part]; next > off && max(rp.next, rp.start) == off {
			rp.pass(p, next, 0)
			if next >= rp.end {
				rp.reached = true
				rp.w.setPaused(pauseDone, true)
			} else {
				moved[part] = kgo.EpochOffset{Epoch: -1, Offset: next} // the client reads on from there too
			}
		}
		mu.Unlock()
	}
	// Under mu, and only where the partition still stands there: moved
	// back after the poll loop moved it on (past records the broker
	// deleted, say), the client would fetch below the log start, and the
	// rest of the range would be taken for a truncated log's.
	mu.Lock()
	defer mu.Unlock()
	for part, eo := range moved {
		if rp := parts[part]; rp.reached || rp.next != eo.Offset {
			delete(moved, part)
		}
	}
	if len(moved) > 0 {
		cl.SetOffsets(map[string]map[int32]kgo.EpochOffset{topic: moved})
	}
	return held
}

// readPastAll is readPast until it stops moving or reaches end: a read
// returns at most a fetch's bytes, and the markers and aborted records can
// fill more than one.
func readPastAll(ctx context.Context, cl *kgo.Client, td kadm.TopicDetail, part int32, off, end int64) (int64, error) {
	next := off
	for next < end {
		n, err := readPast(ctx, cl, td, part, next, end)
		if err != nil || n <= next {
			return next, err
		}
		next = n
	}
	return next, nil
}

// readPast fetches partition part of td from off, read_committed, from its
// leader, and returns how far the records returned reach when none of them
// is a record below end (only markers and records of aborted transactions),
// or off when one is: that one comes through the replay's own fetches.
func readPast(ctx context.Context, cl *kgo.Client, td kadm.TopicDetail, part int32, off, end int64) (int64, error) {
	pd, ok := td.Partitions[part]
	if !ok || pd.Err != nil {
		return off, fmt.Errorf("no leader known: %v", pd.Err)
	}
	req := kmsg.NewPtrFetchRequest()
	req.ReplicaID, req.SessionEpoch = -1, -1
	// Above the partition's 1 MiB: a fetch cut by its own bound lost the
	// aborted transactions' list on kfake, and those records read as data.
	req.MaxBytes, req.IsolationLevel = 4<<20, 1
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic, rt.TopicID = td.Topic, td.ID
	rpt := kmsg.NewFetchRequestTopicPartition()
	rpt.Partition, rpt.FetchOffset, rpt.PartitionMaxBytes = part, off, 1<<20
	rt.Partitions = append(rt.Partitions, rpt)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl.Broker(int(pd.Leader)))
	if err == nil {
		err = kerr.ErrorForCode(resp.ErrorCode)
	}
	if err != nil {
		return off, err
	}
	for _, t := range resp.Topics {
		for i := range t.Partitions {
			if t.Partitions[i].Partition != part {
				continue
			}
			fp, next := kgo.ProcessFetchPartition(kgo.ProcessFetchPartitionOpts{
				KeepControlRecords: true, Offset: off, IsolationLevel: kgo.ReadCommitted(), Topic: td.Topic, Partition: part,
			}, &t.Partitions[i], kgo.DefaultDecompressor(), nil)
			if fp.Err != nil {
				return off, fp.Err
			}
			for _, r := range fp.Records {
				if !r.Attrs.IsControl() && r.Offset < end {
					return off, nil
				}
			}
			return next, nil
		}
	}
	return off, errors.New("the partition is not in the fetch response")
}

// outOfRange takes the partitions whose fetch fell below the log start: the
// broker deleted records of the range before they were read (retention:
// replayed events are old). They are counted and logged as not replayed, and
// the partition resumes at the log start, or is done if that is past its
// end. mu guards parts. It reports false if it could not list the log
// start: the fetch reports the partitions again.
func (p *Processor) outOfRange(ctx context.Context, cl *kgo.Client, topic string, parts map[int32]*replayPartition, mu *sync.Mutex, lost []int32) bool {
	starts, err := listStartOffsets(ctx, cl, topic)
	if err != nil {
		p.log.Warn("replay: a partition's next records are gone and its log start could not be listed; trying again", "topic", topic, "partitions", lost, "err", err)
		return false
	}
	offsets := make(map[int32]kgo.EpochOffset)
	mu.Lock()
	defer mu.Unlock()
	for _, part := range lost {
		rp, ok := parts[part]
		o, listed := starts.Lookup(topic, part)
		if !ok || !listed || o.Err != nil {
			continue
		}
		if from := max(rp.next, rp.start); o.Offset <= from {
			// Not below the log start: past the log's end, which was
			// truncated below what was read (an unclean leader election).
			// Fetching on from the log start would replay records outside
			// the range.
			p.log.Warn("replay: the partition's log now ends before the range's next offset (truncated: an unclean leader election?); the rest of its range is not replayed",
				"topic", topic, "partition", part, "from", from, "to", rp.end)
			p.stats.deleted.Add(rp.end - from)
			rp.next, rp.reached = rp.end, true
			rp.w.setPaused(pauseDone, true)
			continue
		}
		if !p.skipDeleted(topic, part, rp, max(rp.next, rp.start), o.Offset) {
			rp.w.setPaused(pauseDone, true)
			continue
		}
		offsets[part] = kgo.EpochOffset{Epoch: -1, Offset: o.Offset}
	}
	if len(offsets) > 0 {
		cl.SetOffsets(map[string]map[int32]kgo.EpochOffset{topic: offsets})
	}
	return true
}

// skipDeleted takes rp past the records of its range from from up to the
// log start that the broker deleted before they were read: counted and
// logged as not replayed. It reports false when nothing of the range is
// left (rp is reached then). The caller holds the lock that guards rp.
func (p *Processor) skipDeleted(topic string, part int32, rp *replayPartition, from, logStart int64) bool {
	from = max(from, rp.next, rp.start) // what was read is not lost
	if logStart > from {
		p.log.Warn("replay: the broker deleted records of the range before they were read (retention?); they are not replayed",
			"topic", topic, "partition", part, "from", from, "to", min(logStart, rp.end))
		p.stats.deleted.Add(min(logStart, rp.end) - from)
	}
	rp.next = max(rp.next, logStart)
	if logStart >= rp.end {
		rp.reached = true
		return false
	}
	return true
}

// checkRangeStarts refuses a range that starts past its partition's end,
// or on a partition the topic does not have: fetched there, the broker
// answers that the offset is out of range, as for records deleted before
// they were read, and nothing tells the two apart but the end offset.
// ("twosell replay" clamps its ranges to the partitions' ends.)
func checkRangeStarts(ctx context.Context, cl *kgo.Client, topic string, rng map[int32]OffsetRange) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil && !errors.Is(err, kerr.UnknownTopicOrPartition) {
		return fmt.Errorf("processor: replay: listing the end offsets of %q: %w", topic, err)
	}
	for _, part := range slices.Sorted(maps.Keys(rng)) {
		r := rng[part]
		if r.Start >= r.End {
			continue
		}
		o, ok := ends.Lookup(topic, part)
		switch {
		case (!ok || o.Err != nil) && isGone(ctx, cl, topic):
			// It existed a moment ago (Run checks its topics first): the
			// client fetches from its start, and a deletion can come before
			// this check (found by review: "has no partition 0").
			return fmt.Errorf("processor: %w: %q, before the replay read anything", ErrInputTopicDeleted, topic)
		case !ok || o.Err != nil:
			return fmt.Errorf("processor: replay: topic %q has no partition %d", topic, part)
		case r.Start > o.Offset:
			return fmt.Errorf("processor: replay: the Range of partition %d starts at offset %d, past the partition's end (%d)", part, r.Start, o.Offset)
		}
	}
	return nil
}

// listStartOffsets lists topic's log start offsets, within 10 s.
func listStartOffsets(ctx context.Context, cl *kgo.Client, topic string) (kadm.ListedOffsets, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	starts, err := kadm.NewClient(cl).ListStartOffsets(ctx, topic)
	if err == nil {
		err = starts.Error()
	}
	return starts, err
}

// RangeComplete reports whether Run processed the whole of Config.Range:
// every record of it has its output or dead letter acknowledged (or was
// deleted by the broker before it was read). It is false before Run returns,
// and after a Run that was interrupted before the end.
func (p *Processor) RangeComplete() bool { return p.rangeComplete.Load() }

// RangeRest returns, once Run has returned, what of Config.Range is not
// finished, by partition: from the first record without its output or dead
// letter acknowledged (every one before it has one) to the range's end.
// Replaying it, rather than the whole range, writes again only the records
// after that one that were finished (found by a walkthrough: an
// interrupted replay run again wrote all its outputs twice). It is nil
// before the replay read its range, and empty once the range is complete.
func (p *Processor) RangeRest() map[int32]OffsetRange {
	if f := p.rangeRest.Load(); f != nil {
		return (*f)()
	}
	return nil
}

// rest is the partition's range not finished, and whether there is any.
func (rp *replayPartition) rest() (OffsetRange, bool) {
	if rp.finished() {
		return OffsetRange{}, false
	}
	start := rp.start
	if off, _, ok := rp.w.track.watermark(); ok && off > start {
		start = off
	}
	return OffsetRange{Start: start, End: rp.end}, true
}

// runReplay processes Config.Range of the input topic and returns when every
// record of it has its output or dead letter acknowledged (or ctx ends, or a
// fatal error). It reads the partitions directly, without a consumer group:
// nothing is committed anywhere, so a live group on the same topic is not
// affected. Records are read read_committed, and control records are read
// too, to know when a range ending in transaction markers is done.
func (p *Processor) runReplay(ctx context.Context) error {
	topic := p.cfg.InputTopic
	offsets := make(map[int32]kgo.Offset)
	for part, r := range p.cfg.Range {
		if r.Start < r.End {
			offsets[part] = kgo.NewOffset().At(r.Start)
		}
	}
	if len(offsets) == 0 {
		p.rangeComplete.Store(true) // nothing to do
		return nil
	}
	opts := append([]kgo.Opt{kgo.WithLogger(newKgoLogger(p.log, nil))}, p.fetchOpts()...)
	opts = append(append(opts, p.producerOpts()...), p.cfg.ClientOpts...)
	opts = append(opts,
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offsets}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(),
		// No fetch sessions: a partition paused at its end stays in the
		// broker's session, which keeps answering for it. A replay on a real
		// broker once waited for ever on a partition short of its end.
		kgo.DisableFetchSessions(),
		// A replay reads old records, which the broker's retention may
		// delete before they are read. Without this, franz-go would resume
		// a partition that fell below its log start at the log start
		// without a word; with it, the fetch reports OFFSET_OUT_OF_RANGE
		// and outOfRange counts and logs what was lost before moving on.
		kgo.ConsumeResetOffset(kgo.NoResetOffset()),
		kgo.WithHooks(p.hooks...),
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("processor: kafka client: %w", err)
	}
	p.setClient(cl)
	defer cl.Close()
	warmProducer(ctx, cl)
	if err := checkRangeStarts(ctx, cl, topic, p.cfg.Range); err != nil {
		return err
	}

	var mu sync.Mutex // guards parts' reached and last
	parts := make(map[int32]*replayPartition, len(offsets))
	for part := range offsets {
		w := newPartitionWorker(p, topicPartition{topic, part})
		parts[part] = &replayPartition{w: w, start: p.cfg.Range[part].Start, end: p.cfg.Range[part].End, last: -1}
		go w.run()
	}
	p.log.Info("replaying", "topic", topic, "partitions", len(parts))
	rest := func() map[int32]OffsetRange {
		mu.Lock()
		defer mu.Unlock()
		out := make(map[int32]OffsetRange)
		for part, rp := range parts {
			if r, ok := rp.rest(); ok {
				out[part] = r
			}
		}
		return out
	}
	p.rangeRest.Store(&rest)

	// Polling blocks until records come; once every partition is finished
	// the watcher ends it.
	pollCtx, stopPolling := context.WithCancel(ctx)
	defer stopPolling()
	var watcher sync.WaitGroup
	// finished reports whether every partition's range is fetched and
	// acknowledged.
	finished := func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, rp := range parts {
			if !rp.finished() {
				return false
			}
		}
		return true
	}
	watcher.Go(func() {
		t := time.NewTicker(replayCheckInterval)
		defer t.Stop()
		consumed, progressed, probed := p.stats.consumed.Load(), time.Now(), false
		var unprobed map[int32]bool // held when the probe ran: probed once they are not
		for {
			select {
			case <-pollCtx.Done():
				return
			case <-t.C:
			}
			if c := p.stats.consumed.Load(); c != consumed {
				consumed, progressed, probed, unprobed = c, time.Now(), false, nil
			}
			all := finished()
			switch {
			case all:
			case !probed && time.Since(progressed) > replayProbeAfter:
				unprobed = p.probe(pollCtx, cl, topic, parts, &mu, nil)
				probed = true
				all = finished()
			case len(unprobed) > 0:
				unprobed = p.probe(pollCtx, cl, topic, parts, &mu, unprobed)
				all = finished()
			}
			if !all && time.Since(progressed) > replayStallAfter {
				p.nudge(pollCtx, cl, topic, parts, &mu)
				progressed, probed, unprobed = time.Now(), false, nil
			}
			if all {
				stopPolling()
				return
			}
		}
	})

	var listFailed time.Time // when outOfRange last could not list the log start
	// Fetch errors are logged once, then at most once per repeatEvery each,
	// and a poll that brings errors and no record is followed by a back-off:
	// found by review, a replay whose input topic was deleted logged about
	// 20,000 lines a second and never ended.
	warned := &repeats{m: make(map[string]repeat)}
	var (
		backoff   errorBackoff
		looked    time.Time // when the topic was last looked for after an unknown-topic error
		deleted   error     // the input topic is gone: the replay ends
		errorOnly bool
	)
	for pollCtx.Err() == nil {
		if errorOnly {
			backoff.wait(pollCtx)
		} else {
			backoff.reset()
		}
		fetches := cl.PollRecords(pollCtx, p.cfg.MaxPollRecords)
		if fetches.IsClientClosed() {
			break
		}
		errorOnly = fetches.NumRecords() == 0 && len(fetches.Errors()) > 0
		var lost []int32
		unknown := false
		fetches.EachError(func(t string, part int32, err error) {
			if loss, ok := errors.AsType[*kgo.ErrDataLoss](err); ok {
				// The records replayed from ResetTo on are gone from Kafka,
				// and those now at their offsets are not replayed (each
				// offset is replayed once; see rp.last below).
				p.log.Error("Kafka lost records of a partition while it was replayed: the records now at offsets "+
					"reset_to to consumed_to are not replayed; replay that range again",
					"topic", t, "partition", part, "reset_to", loss.ResetTo, "consumed_to", loss.ConsumedTo, "err", err)
				return
			}
			if t == topic && errors.Is(err, kerr.OffsetOutOfRange) {
				lost = append(lost, part)
				return
			}
			if errors.Is(err, context.Canceled) {
				return
			}
			if errors.Is(err, kerr.UnknownTopicOrPartition) || errors.Is(err, kerr.UnknownTopicID) {
				unknown = true
			}
			if n, ok := warned.allow(fmt.Sprintf("%s/%d: %v", t, part, err), time.Now()); ok {
				p.log.Warn("fetch error; the client retries", "topic", t, "partition", part, "err", err, "repeated", n)
			}
		})
		if unknown && time.Since(looked) >= time.Second {
			looked = time.Now()
			if isGone(pollCtx, cl, topic) {
				deleted = fmt.Errorf("processor: %w: %q; %d records of the range were consumed", ErrInputTopicDeleted, topic, p.stats.consumed.Load())
				p.log.Error("the input topic was deleted while it was replayed: the replay ends with what it has done", "topic", topic)
				break
			}
		}
		if len(lost) > 0 && time.Since(listFailed) >= time.Second {
			if !p.outOfRange(pollCtx, cl, topic, parts, &mu, lost) {
				listFailed = time.Now() // the fetch reports it again at once: not in a tight loop
			}
		}
		fetches.EachPartition(func(ftp kgo.FetchTopicPartition) {
			mu.Lock()
			rp := parts[ftp.Partition]
			mu.Unlock()
			if rp == nil || len(ftp.Records) == 0 {
				return
			}
			var keep []*kgo.Record
			reached := false
			for _, r := range ftp.Records {
				if r.Offset >= rp.end-1 {
					reached = true
				}
				// rp.last is written by this goroutine only. Records at
				// or before it come again only after a nudge.
				if r.Offset < rp.start || r.Offset >= rp.end || r.Attrs.IsControl() || r.Offset <= rp.last {
					continue
				}
				keep = append(keep, r)
			}
			// Read before enqueue: past it, a record may be finished and
			// recycled (see acknowledged).
			next, last := ftp.Records[len(ftp.Records)-1].Offset+1, int64(-1)
			if len(keep) > 0 {
				last = keep[len(keep)-1].Offset
				rp.w.enqueue(keep)
			}
			mu.Lock()
			rp.pass(p, next, len(keep))
			if last >= 0 {
				rp.last = last
			}
			if reached && !rp.reached {
				rp.reached = true
				// Stop fetching it: what follows is past the range. Pausing,
				// not RemoveConsumePartitions: removing a partition while
				// fetches are in flight left the others unfetched now and
				// then on a real broker (a replay that never ended in CI).
				// A reason of the worker's own, so that its buffer's drain
				// does not resume it: paused by the client behind the
				// worker's back, a partition that filled its buffer with
				// its last records was resumed by the drain and fetched on
				// to the log's end while the others finished (all of it
				// dropped by the filter above).
				rp.w.setPaused(pauseDone, true)
			}
			mu.Unlock()
		})
	}
	stopPolling()
	watcher.Wait()

	// Finished: the workers are idle. Interrupted: the records in progress
	// get ShutdownTimeout to finish.
	var grace chan struct{}
	if !finished() && p.fatal() == nil {
		grace = make(chan struct{})
		t := time.AfterFunc(p.cfg.ShutdownTimeout, func() { close(grace) })
		defer t.Stop()
	}
	var stopped sync.WaitGroup
	for _, rp := range parts {
		stopped.Go(func() { rp.w.shutdown(grace) })
	}
	stopped.Wait()
	flushCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.cfg.ShutdownTimeout)
	defer cancel()
	// flushAll: the records produced again alone, and the dead letters
	// that replace refused outputs, too (found by review).
	if err := p.flushAll(flushCtx, cl); err != nil {
		p.log.Warn("replay: not every output was acknowledged before closing", "err", err)
	}
	// Interrupted, the records in flight may have finished the range during
	// the grace period.
	complete := finished()
	p.rangeComplete.Store(complete)
	if complete {
		p.log.Info("replay complete", "consumed", p.stats.consumed.Load())
	} else if p.fatal() == nil {
		p.log.Info("replay interrupted", "consumed", p.stats.consumed.Load())
	}
	return deleted
}

// ErrInputTopicDeleted is returned by a replay's Run when its input topic
// was deleted while it read it: it ends with what it had done.
var ErrInputTopicDeleted = errors.New("the input topic was deleted while it was replayed")

// isGone is topicGone's answer, false when the cluster cannot say.
func isGone(ctx context.Context, cl *kgo.Client, topic string) bool {
	gone, err := topicGone(ctx, cl, topic)
	return err == nil && gone
}

// topicGone reports whether the cluster says topic does not exist.
// A request of its own, not kadm's ListTopics: that answers from the
// client's cached metadata, which knew the topic a moment ago.
func topicGone(ctx context.Context, cl *kgo.Client, topic string) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return false, err
	}
	for _, t := range resp.Topics {
		if t.Topic != nil && *t.Topic == topic {
			return t.ErrorCode == kerr.UnknownTopicOrPartition.Code, nil
		}
	}
	return false, nil // not answered for: not known to be gone
}
