package processor

import (
	"context"
	"errors"
	"fmt"

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
	for _, t := range []string{p.cfg.OutputTopic, p.cfg.DLQTopic} {
		if topics.Has(t) {
			continue
		}
		if !p.cfg.CreateTopics {
			return fmt.Errorf("%w: %q", ErrTopicMissing, t)
		}
		resp, err := adm.CreateTopic(ctx, int32(len(in.Partitions)), -1, nil, t)
		if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			if resp.ErrMessage != "" {
				err = fmt.Errorf("%w: %s", err, resp.ErrMessage)
			}
			return fmt.Errorf("processor: creating topic %q: %w", t, err)
		}
		if err == nil {
			p.log.Info("created topic", "topic", t, "partitions", len(in.Partitions))
		}
	}
	return nil
}
