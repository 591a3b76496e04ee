package processor

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// ErrInputTopicMissing is returned by Run when the input topic does not
// exist: twosell never creates the topic it reads.
var ErrInputTopicMissing = errors.New("input topic does not exist")

// ErrTopicMissing is returned by Run when an output or dead-letter topic does
// not exist and CreateTopics is off.
var ErrTopicMissing = errors.New("topic does not exist")

// inputGone checks, at most every 5 s, whether the input topic a fetch
// says is unknown was deleted, or deleted and created again, and stops the
// processor if so (fail: readiness false, exit 1). Found by a walkthrough:
// franz-go retried for ever, still ready, and does not adopt a recreated
// topic's new ID, so the records written to it waited for a restart that
// nothing asked for. A topic that is still there, with its ID, was a
// passing fault: the fetches go on.
func (p *Processor) inputGone() {
	now := time.Now().UnixNano()
	if last := p.inputChecked.Load(); now-last < int64(5*time.Second) || !p.inputChecked.CompareAndSwap(last, now) {
		return
	}
	cl := p.client()
	if cl == nil {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		topics, err := kadm.NewClient(cl).ListTopics(ctx, p.cfg.InputTopic)
		if err != nil {
			return // no answer: the next unknown-topic fetch asks again
		}
		switch t, ok := topics[p.cfg.InputTopic]; {
		case !ok || errors.Is(t.Err, kerr.UnknownTopicOrPartition):
			p.fail(fmt.Errorf("the input topic %q was deleted while twosell read it; the records not finished stay uncommitted", p.cfg.InputTopic))
		case t.Err == nil && p.inputID != (kadm.TopicID{}) && t.ID != p.inputID:
			p.fail(fmt.Errorf("the input topic %q was deleted and created again while twosell read it: the consumer cannot follow the new topic; "+
				"restart twosell to read it (Kafka dropped the group's offsets with the old topic: the new one is read from its start)", p.cfg.InputTopic))
		}
	}()
}

// ensureTopics checks the three topics before consuming: the input must
// exist; a missing output or dead-letter topic is created with the input's
// partition count (and the broker's default replication) when CreateTopics
// is on. Checking first turns a typo in a topic name into an error at start,
// instead of a consumer that silently waits for a topic that never comes.
func (p *Processor) ensureTopics(ctx context.Context) error {
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.WithLogger(newKgoLogger(p.log, nil))}, p.cfg.ClientOpts...)...)
	if err != nil {
		return fmt.Errorf("processor: kafka client: %w", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)

	topics, err := adm.ListTopics(ctx, p.cfg.InputTopic, p.cfg.OutputTopic, p.cfg.DLQTopic)
	if err != nil {
		return fmt.Errorf("processor: listing topics: %w", err)
	}
	in, ok := topics[p.cfg.InputTopic]
	if !ok || errors.Is(in.Err, kerr.UnknownTopicOrPartition) {
		return fmt.Errorf("%w: %q", ErrInputTopicMissing, p.cfg.InputTopic)
	}
	if in.Err != nil {
		return fmt.Errorf("processor: input topic %q: %w", p.cfg.InputTopic, in.Err)
	}
	p.inputID = in.ID
	var existing []string // the output topics this call did not create
	var configs map[string]*string
	described := false
	for _, t := range slices.Compact([]string{p.cfg.OutputTopic, p.cfg.DLQTopic}) {
		if topics.Has(t) {
			existing = append(existing, t)
			continue
		}
		if !p.cfg.CreateTopics {
			return fmt.Errorf("%w: %q", ErrTopicMissing, t)
		}
		switch {
		case p.cfg.Range != nil:
			// A replay's outputs keep their inputs' old timestamps: the
			// broker's default time retention (7 days) would delete them.
			configs = map[string]*string{"retention.ms": kadm.StringPtr("-1")}
		case !described:
			configs, described = p.inputRetention(ctx, adm), true
		}
		resp, err := adm.CreateTopic(ctx, int32(len(in.Partitions)), -1, configs, t)
		if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			if resp.ErrMessage != "" {
				err = fmt.Errorf("%w: %s", err, resp.ErrMessage)
			}
			return fmt.Errorf("processor: creating topic %q: %w", t, err)
		}
		if err != nil { // created meanwhile by someone else
			existing = append(existing, t)
		} else {
			if v := configs["retention.ms"]; v != nil {
				p.log.Info("created topic", "topic", t, "partitions", len(in.Partitions), "retention.ms", *v)
			} else {
				p.log.Info("created topic", "topic", t, "partitions", len(in.Partitions))
			}
		}
	}
	if err := p.limitBatches(ctx, adm); err != nil {
		return err
	}
	switch {
	case p.cfg.Range == nil:
		p.checkBacklog(ctx, adm, existing)
	case !p.cfg.IgnoreRetention:
		return p.checkReplayRetention(ctx, adm, existing)
	}
	return nil
}

// limitBatches bounds the producer's batches by what the output and
// dead-letter topics accept, max.message.bytes, when it is below franz-go's
// batch size: the broker checks a whole batch against it, refuses it
// whole, and franz-go fails each of its records, so outputs that fit the
// topic, batched with one that did not, were dead-lettered with it (found
// by review). A record over it (less the batch's framing) is dead-lettered
// before it is produced, as one over franz-go's own limit is. Not allowed
// to describe the topics' configuration, the processor keeps franz-go's
// batch size, and says so.
//
// A limit below franz-go's least batch (512 bytes) is an error that names
// the topic and how to raise it: franz-go refused it with "max record batch
// bytes 400 is less than allowed 512", which named neither (found by
// review).
func (p *Processor) limitBatches(ctx context.Context, adm *kadm.Client) error {
	topics := slices.Compact([]string{p.cfg.OutputTopic, p.cfg.DLQTopic})
	var described kadm.ResourceConfigs
	// A topic ensureTopics just created may not be known yet: a warning
	// for it was a false alarm (found in CI, on the embedded broker).
	err := newTopicRetry(ctx, func() error {
		var err error
		described, err = adm.DescribeTopicConfigs(ctx, topics...)
		for _, rc := range described {
			err = errors.Join(err, rc.Err)
		}
		return err
	}, func(err error) bool { return errors.Is(err, kerr.UnknownTopicOrPartition) })
	limit, smallest := int64(defaultBatchBytes), ""
	for _, rc := range described {
		for _, c := range rc.Configs {
			if c.Key != "max.message.bytes" || c.Value == nil {
				continue
			}
			if n, perr := strconv.ParseInt(*c.Value, 10, 32); perr == nil && n > 0 && n < limit {
				limit, smallest = n, rc.Name
			}
		}
	}
	if limit < minBatchBytes {
		return fmt.Errorf("processor: topic %q takes batches of at most %d bytes (max.message.bytes), less than the %d of the smallest batch "+
			"the producer makes, and an enriched event needs more: raise it (kafka-configs --alter --entity-type topics --entity-name %s "+
			"--add-config max.message.bytes=1048588, Kafka's default), or use another topic", smallest, limit, minBatchBytes, smallest)
	}
	p.limitKnown = err == nil
	if err != nil {
		p.log.Warn("cannot read the output topics' max.message.bytes: batches keep franz-go's size "+
			"(a topic that accepts less refuses a batch whole, its outputs that fit with the one that does not)",
			"topics", topics, "err", err)
	}
	if limit < defaultBatchBytes {
		p.batchBytes = int32(limit)
		p.log.Info("producer batches bounded by the output topics' max.message.bytes", "bytes", limit)
	}
	return nil
}

// minBatchBytes is the least ProducerBatchMaxBytes franz-go takes.
const minBatchBytes = 512

// producerOpts are the options every producer of outputs and dead letters
// shares: the batches' bound (limitBatches) and, with OrderingPartition,
// the partitioner.
func (p *Processor) producerOpts() []kgo.Opt {
	var opts []kgo.Opt
	if p.batchBytes != 0 {
		opts = append(opts, kgo.ProducerBatchMaxBytes(p.batchBytes))
	}
	if p.cfg.Ordering == OrderingPartition {
		opts = append(opts, kgo.RecordPartitioner(samePartition))
	}
	return opts
}

// samePartition writes each output and dead letter to the partition of its
// input's number (its Partition), modulo the topic's partitions: with
// OrderingPartition, a partition's outputs are produced in input order, and
// a consumer of one output partition sees that order. Hashed by key, as
// franz-go's default partitioner does, they spread over every partition
// (and records without a key by batch), where no consumer could see it
// (found by review). A topic twosell creates has the input's partitions,
// and an input partitioned by key hash (Kafka's default) keeps its keys'
// placement.
var samePartition = kgo.BasicConsistentPartitioner(func(string) func(*kgo.Record, int) int {
	return func(r *kgo.Record, n int) int { return int(r.Partition) % n }
})

// inputRetention is the configuration a live run creates its output and
// dead-letter topics with: the input's retention.ms, when the input topic
// sets its own, so that outputs are kept as long as the inputs they come
// from (they share their timestamps); nil (the broker's defaults) otherwise,
// or when the broker does not say.
func (p *Processor) inputRetention(ctx context.Context, adm *kadm.Client) map[string]*string {
	configs, err := topicConfigs(ctx, adm, p.cfg.InputTopic)
	if err != nil {
		p.log.Info("could not read the input topic's retention; creating topics with the broker's default", "err", err)
		return nil
	}
	for _, c := range configs {
		if c.Key == "retention.ms" && c.Value != nil && c.Source == kmsg.ConfigSourceDynamicTopicConfig {
			return map[string]*string{"retention.ms": kadm.StringPtr(*c.Value)}
		}
	}
	return nil
}

// topicConfigs returns the configuration of topic, as the broker describes
// it.
func topicConfigs(ctx context.Context, adm *kadm.Client, topic string) ([]kadm.Config, error) {
	described, err := adm.DescribeTopicConfigs(ctx, topic)
	var rc kadm.ResourceConfig
	if err == nil {
		rc, err = described.On(topic, nil)
	}
	if err == nil {
		err = rc.Err
	}
	return rc.Configs, err
}

// ErrOutputsWouldExpire is returned by Run when a replay's outputs or dead
// letters would be deleted by their topic's time retention as soon as they
// are written (see checkReplayRetention).
var ErrOutputsWouldExpire = errors.New("the topic's retention would delete the replay's outputs")

// checkReplayRetention refuses a replay (Range) that writes outputs or dead
// letters older than their topic keeps records; topics are the output and
// dead-letter topics that existed before the replay (see expiringOutputs).
func (p *Processor) checkReplayRetention(ctx context.Context, adm *kadm.Client, topics []string) error {
	problems, err := p.expiringOutputs(ctx, adm, topics, p.cfg.Range, "range", true)
	if err != nil {
		return fmt.Errorf("%w (to start the replay without this check: twosell replay --ignore-retention; Config.IgnoreRetention)", err)
	}
	if len(problems) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s. Their outputs keep their timestamps, and the broker would delete them at its next retention check. "+
		"Give the topic a longer retention (kafka-configs --alter --entity-type topics --entity-name <topic> --add-config retention.ms=-1), "+
		"replay into a new topic (created with retention.ms=-1), or start the replay anyway (twosell replay --ignore-retention; Config.IgnoreRetention)",
		ErrOutputsWouldExpire, strings.Join(problems, "; "))
}

// expiringOutputs says, for each of topics whose time retention is shorter
// than the age of some records of rng (input offsets by partition), which
// records those are. Outputs and dead letters keep their inputs' timestamps,
// and Kafka's time retention judges records by them: those outputs would be
// deleted at the broker's next retention check, before (or while) anyone
// reads them. A record counts as too old when the input's time index puts it
// before now minus the topic's retention.ms: the records before the first
// one younger than that (an older record after a younger one is not
// counted). Topics without time retention (retention.ms -1, no "delete"
// cleanup policy, or LogAppendTime timestamps) have none.
//
// With refine (a replay's range), the records are read from where the
// index points (firstYoungRecords): the broker's index answers the first
// offset stamped at or after the time, which a transaction marker can be,
// stamped when the broker wrote it, while the records of a transactional
// input often carry their events' times (found by review: a range after
// the first marker of such a topic was taken for recent, and its outputs
// were deleted by the topic's retention).
func (p *Processor) expiringOutputs(ctx context.Context, adm *kadm.Client, topics []string, rng map[int32]OffsetRange, what string, refine bool) ([]string, error) {
	if len(topics) == 0 || len(rng) == 0 {
		return nil, nil
	}
	described, err := adm.DescribeTopicConfigs(ctx, topics...)
	if err != nil {
		return nil, fmt.Errorf("processor: describing topics %v: %w", topics, err)
	}
	now := time.Now() // the broker's clock judges retention, not Config.Now
	var problems []string
	for _, t := range topics {
		rc, err := described.On(t, nil)
		if err == nil {
			err = rc.Err
		}
		if err != nil {
			return nil, fmt.Errorf("processor: describing topic %q: %w", t, err)
		}
		retention, ok := timeRetention(rc.Configs)
		if !ok {
			continue
		}
		listed, err := adm.ListOffsetsAfterMilli(ctx, now.Add(-retention).UnixMilli(), p.cfg.InputTopic)
		if err == nil {
			err = listed.Error()
		}
		if err != nil {
			return nil, fmt.Errorf("processor: listing offsets of %q by time: %w", p.cfg.InputTopic, err)
		}
		tooOld := make(map[int32]OffsetRange)
		young := make(map[int32]int64) // where the index puts the first young record, within the range
		for part, r := range rng {
			o, ok := listed.Lookup(p.cfg.InputTopic, part)
			if !ok {
				continue
			}
			if min(o.Offset, r.End) > r.Start {
				tooOld[part] = OffsetRange{Start: r.Start, End: min(o.Offset, r.End)}
			}
			if at := max(o.Offset, r.Start); refine && at < r.End {
				young[part] = at
			}
		}
		more := ""
		if len(young) > 0 {
			firsts, capped, err := p.firstYoungRecords(ctx, young, rng, now.Add(-retention).UnixMilli())
			if err != nil {
				return nil, fmt.Errorf("processor: reading %q for its records' times: %w", p.cfg.InputTopic, err)
			}
			for part, first := range firsts {
				if first > young[part] {
					tooOld[part] = OffsetRange{Start: rng[part].Start, End: first}
				}
			}
			if capped {
				more = " at least"
			}
		}
		if n, where := offsetRanges(tooOld); n > 0 {
			problems = append(problems, fmt.Sprintf("topic %q keeps records %s (retention.ms=%d), and%s %d records of the %s are older than that (partition:[offsets) %s)",
				t, retention, retention.Milliseconds(), more, n, what, where))
		}
	}
	return problems, nil
}

// checkBacklog looks, at the start of a group's run, at what the group has
// yet to process. Records between a committed offset and the log start were
// deleted by the broker before the group read them (the group was stopped
// for longer than the input keeps records): franz-go resumes at the log
// start and says so only at its info level, so they are logged here as a
// warning and counted (Stats.Deleted). Then it warns when the output or
// dead-letter topic would delete the outputs of the backlog (a new group
// starts at the input's beginning; a group may come back after long lag).
// It is a check, not a condition: when the broker does not let it see the
// configurations or offsets, it says so and the run goes on.
func (p *Processor) checkBacklog(ctx context.Context, adm *kadm.Client, topics []string) {
	rng, unread, err := p.groupBacklog(ctx, adm)
	var problems []string
	if err == nil {
		p.warnDeletedUnread(unread)
		problems, err = p.expiringOutputs(ctx, adm, topics, rng, "backlog", false)
	}
	if err != nil {
		p.log.Info("could not check the group's backlog against the topics' retention", "err", err)
		return
	}
	for _, problem := range problems {
		p.log.Warn("outputs of the group's backlog would be deleted as soon as they are written: "+problem+
			"; give the topic at least the input's retention", "group", p.cfg.Group, "input_topic", p.cfg.InputTopic)
	}
}

// warnDeletedUnread logs the records the broker deleted between the group's
// committed offsets and the log start, in all partitions: the instances
// that fetch them count them (Stats.Deleted, on their first fetch: see
// retentionWatch), so that the group's instances count each once.
func (p *Processor) warnDeletedUnread(unread map[int32]OffsetRange) {
	n, where := offsetRanges(unread)
	if n == 0 {
		return
	}
	p.behind.warnedAtStart(p.cfg.InputTopic, unread)
	p.log.Warn(fmt.Sprintf("the broker deleted %d records of the input that the group had not read (partition:[offsets) %s): "+
		"they will not be enriched. The group was stopped for longer than the input topic keeps records (retention.ms); "+
		"replay them from their source if it still has them, and keep the input longer than the longest outage", n, where),
		"group", p.cfg.Group, "input_topic", p.cfg.InputTopic)
}

// offsetRanges counts the offsets of rng and writes them out as the
// warnings show them: "partition:[start,end)", by partition.
func offsetRanges(rng map[int32]OffsetRange) (n int64, text string) {
	parts := make([]string, 0, len(rng))
	for _, part := range slices.Sorted(maps.Keys(rng)) {
		r := rng[part]
		n += r.End - r.Start
		parts = append(parts, fmt.Sprintf("%d:[%d,%d)", part, r.Start, r.End))
	}
	return n, strings.Join(parts, " ")
}

// groupBacklog is what the group has yet to process of each input
// partition: from its committed offset (the log start without one, or when
// the log starts after it) to the end. unread is what the broker deleted
// of it before the group read it: from a committed offset up to the log
// start.
func (p *Processor) groupBacklog(ctx context.Context, adm *kadm.Client) (backlog, unread map[int32]OffsetRange, err error) {
	committed, err := adm.FetchOffsets(ctx, p.cfg.Group)
	if err == nil {
		err = committed.Error()
	}
	if errors.Is(err, kerr.GroupIDNotFound) {
		committed, err = nil, nil // a new group: nothing committed
	}
	if err != nil {
		return nil, nil, fmt.Errorf("processor: fetching the group's offsets: %w", err)
	}
	starts, err := adm.ListStartOffsets(ctx, p.cfg.InputTopic)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return nil, nil, fmt.Errorf("processor: listing start offsets: %w", err)
	}
	ends, err := adm.ListEndOffsets(ctx, p.cfg.InputTopic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, nil, fmt.Errorf("processor: listing end offsets: %w", err)
	}
	backlog, unread = make(map[int32]OffsetRange), make(map[int32]OffsetRange)
	ends.Each(func(e kadm.ListedOffset) {
		from := int64(0)
		if s, ok := starts.Lookup(e.Topic, e.Partition); ok {
			from = s.Offset
		}
		if c, ok := committed.Lookup(e.Topic, e.Partition); ok && c.At >= 0 {
			if c.At < from {
				unread[e.Partition] = OffsetRange{Start: c.At, End: from}
			}
			from = max(from, c.At)
		}
		if from < e.Offset {
			backlog[e.Partition] = OffsetRange{Start: from, End: e.Offset}
		}
	})
	return backlog, unread, nil
}

// timeRetention returns a topic's time retention, if it deletes records by
// their (producer-given) timestamps.
func timeRetention(configs []kadm.Config) (time.Duration, bool) {
	var retention time.Duration
	found, deletes := false, true // Kafka's default cleanup.policy is delete
	for _, c := range configs {
		v := c.MaybeValue()
		switch c.Key {
		case "cleanup.policy":
			deletes = slices.Contains(strings.Split(v, ","), "delete")
		case "message.timestamp.type":
			if v == "LogAppendTime" {
				return 0, false // the broker stamps outputs as it appends them
			}
		case "retention.ms":
			ms, err := strconv.ParseInt(v, 10, 64)
			if err != nil || ms < 0 {
				return 0, false
			}
			retention, found = time.Duration(ms)*time.Millisecond, true
		}
	}
	if !found || !deletes {
		return 0, false
	}
	return retention, true
}

// maxYoungScan bounds the records firstYoungRecords reads in a partition:
// past it, the records read were all old, and so, at least, are they.
var maxYoungScan = 10_000

// firstYoungRecords reads each partition of from (where to begin) up to its
// range's end in rng, read committed, and returns the offset of its first
// data record stamped at or after ms, or the range's end if none is;
// capped says that a partition was read maxYoungScan records without
// finding one (its offset is then where the reading stopped). A topic
// without transactions, whose index pointed at such a record, costs one
// short read.
func (p *Processor) firstYoungRecords(ctx context.Context, from map[int32]int64, rng map[int32]OffsetRange, ms int64) (first map[int32]int64, capped bool, err error) {
	offsets := make(map[int32]kgo.Offset, len(from))
	for part, o := range from {
		offsets[part] = kgo.NewOffset().At(o)
	}
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.WithLogger(newKgoLogger(p.log, nil))}, append(p.cfg.ClientOpts,
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{p.cfg.InputTopic: offsets}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(), // the range may end in markers: see them go by
		kgo.FetchMaxWait(100*time.Millisecond),
	)...)...)
	if err != nil {
		return nil, false, err
	}
	defer cl.Close()
	first = make(map[int32]int64, len(from))
	read := make(map[int32]int)
	at := maps.Clone(from) // the next offset to read, by partition
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for len(first) < len(from) {
		pollCtx, cancelPoll := context.WithTimeout(ctx, time.Second) // then see whether only markers are left
		fs := cl.PollFetches(pollCtx)
		cancelPoll()
		if err := ctx.Err(); err != nil {
			return nil, false, err
		}
		fs.EachError(func(_ string, _ int32, e error) {
			if err == nil && !errors.Is(e, context.Canceled) && !errors.Is(e, context.DeadlineExceeded) {
				err = e
			}
		})
		if err != nil {
			return nil, false, err
		}
		if fs.NumRecords() == 0 {
			// A range can end in records of an aborted transaction whose
			// marker lies past the last stable offset while another
			// transaction is open: the client drops them, and the marker
			// is not returned until that transaction ends, so neither ends
			// the partition here. The replay's probe ends such a range;
			// without this, the check waited out its 2 minutes and
			// refused the replay (found by review).
			for part, off := range at {
				if _, done := first[part]; done {
					continue
				}
				if end := rng[part].End; off < end {
					if n, _ := RangeRest(ctx, cl, p.cfg.InputTopic, part, off, end); n >= end {
						first[part] = off // no record from here on: none too old
						cl.PauseFetchPartitions(map[string][]int32{p.cfg.InputTopic: {part}})
					}
				}
			}
			continue
		}
		fs.EachRecord(func(r *kgo.Record) {
			part, end := r.Partition, rng[r.Partition].End
			at[part] = r.Offset + 1
			if _, done := first[part]; done {
				return
			}
			switch {
			case r.Offset >= end:
				first[part] = end
			case r.Attrs.IsControl():
			case r.Timestamp.UnixMilli() >= ms:
				first[part] = r.Offset
			default:
				if read[part]++; read[part] >= maxYoungScan {
					first[part], capped = r.Offset+1, true
				}
			}
			if _, done := first[part]; !done && r.Offset+1 >= end {
				first[part] = end
			}
			if _, done := first[part]; done {
				cl.PauseFetchPartitions(map[string][]int32{p.cfg.InputTopic: {part}})
			}
		})
	}
	return first, capped, nil
}
