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
)

// ErrInputTopicMissing is returned by Run when the input topic does not
// exist: twosell never creates the topic it reads.
var ErrInputTopicMissing = errors.New("input topic does not exist")

// ErrTopicMissing is returned by Run when an output or dead-letter topic does
// not exist and CreateTopics is off.
var ErrTopicMissing = errors.New("topic does not exist")

// ensureTopics checks the three topics before consuming: the input must
// exist; a missing output or dead-letter topic is created with the input's
// partition count (and the broker's default replication) when CreateTopics
// is on. Checking first turns a typo in a topic name into an error at start,
// instead of a consumer that silently waits for a topic that never comes.
func (p *Processor) ensureTopics(ctx context.Context) error {
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.WithLogger(kgoLogger{p.log})}, p.cfg.ClientOpts...)...)
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
	var existing []string // the output topics this call did not create
	for _, t := range slices.Compact([]string{p.cfg.OutputTopic, p.cfg.DLQTopic}) {
		if topics.Has(t) {
			existing = append(existing, t)
			continue
		}
		if !p.cfg.CreateTopics {
			return fmt.Errorf("%w: %q", ErrTopicMissing, t)
		}
		var configs map[string]*string
		if p.cfg.Range != nil {
			// A replay's outputs keep their inputs' old timestamps: the
			// broker's default time retention (7 days) would delete them.
			configs = map[string]*string{"retention.ms": kadm.StringPtr("-1")}
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
			if configs != nil {
				p.log.Info("created topic", "topic", t, "partitions", len(in.Partitions), "retention.ms", -1)
			} else {
				p.log.Info("created topic", "topic", t, "partitions", len(in.Partitions))
			}
		}
	}
	if p.cfg.Range != nil && !p.cfg.IgnoreRetention {
		return p.checkReplayRetention(ctx, adm, existing)
	}
	return nil
}

// ErrOutputsWouldExpire is returned by Run when a replay's outputs or dead
// letters would be deleted by their topic's time retention as soon as they
// are written (see checkReplayRetention).
var ErrOutputsWouldExpire = errors.New("the topic's retention would delete the replay's outputs")

// checkReplayRetention refuses a replay (Range) that writes outputs or dead
// letters older than their topic keeps records; topics are the output and
// dead-letter topics that existed before the replay. Outputs keep their inputs'
// timestamps and Kafka's time retention judges records by them, so those
// would be deleted at the broker's next retention check, before (or while)
// anyone reads them. A record of the range counts as too old when the input's
// time index puts it before now minus the topic's retention.ms. Topics
// without time retention (retention.ms -1, no "delete" cleanup policy, or
// LogAppendTime timestamps) pass.
func (p *Processor) checkReplayRetention(ctx context.Context, adm *kadm.Client, topics []string) error {
	if len(topics) == 0 {
		return nil // created without time retention (and a broker may not describe a new topic yet)
	}
	described, err := adm.DescribeTopicConfigs(ctx, topics...)
	if err != nil {
		return fmt.Errorf("processor: describing topics %v: %w", topics, err)
	}
	now := time.Now() // the broker's clock judges retention, not Config.Now
	var problems []string
	for _, t := range topics {
		rc, err := described.On(t, nil)
		if err == nil {
			err = rc.Err
		}
		if err != nil {
			return fmt.Errorf("processor: describing topic %q: %w", t, err)
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
			return fmt.Errorf("processor: listing offsets of %q by time: %w", p.cfg.InputTopic, err)
		}
		var old int64
		var parts []string
		for _, part := range slices.Sorted(maps.Keys(p.cfg.Range)) {
			r := p.cfg.Range[part]
			o, ok := listed.Lookup(p.cfg.InputTopic, part)
			if !ok {
				continue
			}
			if n := min(o.Offset, r.End) - r.Start; n > 0 {
				old += n
				parts = append(parts, fmt.Sprintf("%d:[%d,%d)", part, r.Start, r.Start+n))
			}
		}
		if old > 0 {
			problems = append(problems, fmt.Sprintf("topic %q keeps records %s (retention.ms=%d), and %d records of the range are older than that (partition:[offsets) %s)",
				t, retention, retention.Milliseconds(), old, strings.Join(parts, " ")))
		}
	}
	if len(problems) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s. Their outputs keep their timestamps, and the broker would delete them at its next retention check. "+
		"Give the topic a longer retention (kafka-configs --alter --entity-type topics --entity-name <topic> --add-config retention.ms=-1), "+
		"replay into a new topic (created with retention.ms=-1), or start the replay anyway (IgnoreRetention; twosell replay --ignore-retention)",
		ErrOutputsWouldExpire, strings.Join(problems, "; "))
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
