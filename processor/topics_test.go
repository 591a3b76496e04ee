package processor_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/twosell/twosell/processor"
	"github.com/twosell/twosell/processor/kafkatest"
)

// topicRetention reads a topic's retention.ms.
func topicRetention(t *testing.T, adm *kadm.Client, topic string) string {
	t.Helper()
	described, err := adm.DescribeTopicConfigs(t.Context(), topic)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := described.On(topic, nil)
	if err == nil {
		err = rc.Err
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range rc.Configs {
		if c.Key == "retention.ms" {
			return c.MaybeValue()
		}
	}
	return ""
}

// A live run creates its output topics with the input's own retention, so
// that outputs, which keep their inputs' timestamps, are kept as long as
// those; and it warns when an existing output topic would delete the outputs
// of the group's backlog as soon as they are written, then runs on.
func TestRunOutputsKeptAsLongAsInputs(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 2)
	adm := kadm.NewClient(h.kafka.Client())
	month := fmt.Sprint(int64(30 * 24 * time.Hour / time.Millisecond))
	in := h.kafka.Name("registrations-30d")
	h.kafka.CreateTopicsWith(2, map[string]*string{"retention.ms": kadm.StringPtr(month)}, in)

	cfg := h.config(answer)
	cfg.InputTopic = in
	h.kafka.Produce(event(in, 100, false))
	_, stop := h.start(cfg)
	if got := h.kafka.Consume(t.Context(), countAtLeast(1), h.out); len(got) != 1 {
		t.Fatalf("%d outputs, want 1", len(got))
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	for _, topic := range []string{h.out, h.dlq} {
		if got := topicRetention(t, adm, topic); got != month {
			t.Errorf("created topic %s has retention.ms=%s; want the input's %s", topic, got, month)
		}
	}

	// An output topic that keeps a day, and a backlog two days old.
	day := fmt.Sprint(int64(24 * time.Hour / time.Millisecond))
	out := h.kafka.Name("enriched-1d")
	h.kafka.CreateTopicsWith(2, map[string]*string{"retention.ms": kadm.StringPtr(day)}, out)
	backlog := h.kafka.Name("registrations-backlog")
	h.kafka.CreateTopicsWith(2, map[string]*string{"retention.ms": kadm.StringPtr(month)}, backlog)
	var recs []*kgo.Record
	for i := range 4 {

		r := event(backlog, i, false)
		r.Partition, r.Timestamp = int32(i%2), time.Now().Add(-48*time.Hour)
		recs = append(recs, r)
	}
	produceManually(t, h.kafka.Client(kgo.RecordPartitioner(kgo.ManualPartitioner())), recs)
	var logs safeBuffer
	cfg.InputTopic, cfg.OutputTopic, cfg.Group = backlog, out, h.kafka.Name("group-backlog")
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	_, stop = h.start(cfg)
	defer stop()
	if got := h.kafka.Consume(t.Context(), countAtLeast(4), out); len(got) != 4 {
		t.Fatalf("%d outputs, want 4: the warning does not stop the run", len(got))
	}
	warned := logs.String()
	for _, want := range []string{"outputs of the group's backlog would be deleted", out, "4 records of the backlog", "0:[0,2) 1:[0,2)", "retention.ms=" + day} {
		if !strings.Contains(warned, want) {
			t.Errorf("the log does not say %q:\n%s", want, warned)
		}
	}
	if strings.Contains(warned, h.dlq+`\" keeps`) { // slog quotes the message
		t.Errorf("warned about %s, which keeps a month:\n%s", h.dlq, warned)
	}
}

// A group that comes back after the broker deleted records it had not read
// (stopped for longer than the input's retention) is told so: franz-go
// resumes at the log start and says it only at its info level. The gap is
// logged as a warning with its offsets and counted, and the rest is
// processed.
func TestRunCountsRecordsDeletedBeforeTheGroupReadThem(t *testing.T) {
	t.Parallel()
	bothModes(t, func(t *testing.T, eos bool) {
		h := newHarnessMode(t, 1, eos)
		h.produceEvents(20)
		h.commitGroup(5, 0)
		h.deleteRecords(15, 0)

		cfg := h.config(answer)
		logs := captureLog(t, &cfg)
		p, stop := h.start(cfg)
		got := h.kafka.Consume(t.Context(), countAtLeast(5), h.out)
		kafkatest.WaitFor(t, func() bool { return p.Stats().Deleted > 0 }) // counted on the partition's first fetch
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, r := range got {
			ids = append(ids, eventID(t, r.Value))
		}
		slices.Sort(ids) // records of other keys overtake each other
		if want := "e-15 e-16 e-17 e-18 e-19"; strings.Join(ids, " ") != want {
			t.Errorf("outputs of %v, want %s", ids, want)
		}
		if s := p.Stats(); s.Deleted != 10 || s.Consumed != 5 {
			t.Errorf("stats: %d consumed, %d deleted; want 5 and the 10 between the commit and the log start", s.Consumed, s.Deleted)
		}
		warned := logs.String()
		for _, want := range []string{"level=WARN", "the broker deleted 10 records of the input that the group had not read", "0:[5,15)"} {
			if !strings.Contains(warned, want) {
				t.Errorf("the log does not say %q:\n%s", want, warned)
			}
		}
		if n := strings.Count(warned, "level=WARN"); n != 1 {
			t.Errorf("%d warnings, want the start's only (the first fetch counts what it named):\n%s", n, warned)
		}
	})
}

// Two instances starting together both warn of what the broker deleted in
// the group's partitions, but count only what they fetch: their counts add
// up to the records deleted.
func TestRunCountsRecordsDeletedOnceAcrossInstances(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 2)
	h.produceByPartition(40, 2) // offsets 0-19 in each partition
	h.commitGroup(5, 0, 1)
	h.deleteRecords(15, 0, 1)

	// No record finishes, so nothing is committed, until both instances
	// have checked the group's backlog at their start.
	release := make(chan struct{})
	held := processor.EnricherFunc(func(ctx context.Context, l processor.Lookup) (processor.Result, error) {
		select {
		case <-release:
		case <-ctx.Done():
			return processor.Result{}, ctx.Err()
		}
		return answer(ctx, l)
	})
	const warning = "the broker deleted 20 records of the input that the group had not read"
	var logs [2]*safeBuffer
	var ps [2]*processor.Processor
	var stops [2]func() error
	for i := range 2 {
		cfg := h.config(held)
		logs[i] = captureLog(t, &cfg)
		ps[i], stops[i] = h.start(cfg)
	}
	kafkatest.WaitFor(t, func() bool {
		return strings.Contains(logs[0].String(), warning) && strings.Contains(logs[1].String(), warning)
	})
	close(release)
	h.kafka.Consume(t.Context(), countAtLeast(10), h.out)
	kafkatest.WaitFor(t, func() bool { return ps[0].Stats().Deleted+ps[1].Stats().Deleted >= 20 })
	for i := range 2 {
		if err := stops[i](); err != nil {
			t.Fatal(err)
		}
	}
	if a, b := ps[0].Stats().Deleted, ps[1].Stats().Deleted; a+b != 20 {
		t.Errorf("the instances counted %d and %d deleted records, want 20 in all", a, b)
	}
}

// TestRunCountsRecordsDeletedWhileRunning: a running group whose partition
// is paused (its record held back for the provider) while the broker deletes
// the records after it comes back past a gap. franz-go resumes at the log
// start and says so in a warning of its own; twosell counts the records it
// skipped and names them.
func TestRunCountsRecordsDeletedWhileRunning(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 1)
	h.produceEvents(3) // offsets 0-2: read, then held back

	var available atomic.Bool
	enricher := processor.EnricherFunc(func(ctx context.Context, l processor.Lookup) (processor.Result, error) {
		if !available.Load() {
			return processor.Result{}, processor.Unavailable(errors.New("provider down"))
		}
		return answer(ctx, l)
	})
	cfg := h.config(enricher)
	fetches := new(fetchesInFlight)
	cfg.ClientOpts = append(cfg.ClientOpts, kgo.WithHooks(fetches))
	logs := captureLog(t, &cfg)
	p, stop := h.start(cfg)
	kafkatest.WaitFor(t, func() bool { // the partition paused, holding its record back
		s := p.Stats()
		return s.HeldPartitions == 1 && s.PausedPartitions == 1 && s.Consumed == 3
	})
	// The fetch sent before the pause may still be waiting at the broker;
	// if it were answered with the records produced below, they could be
	// delivered after the resume, before the broker deletes them, and no
	// gap would be seen. A paused partition is in no later fetch.
	kafkatest.WaitFor(t, func() bool { return fetches.n.Load() == 0 })

	// While it is paused, 10 more records come (offsets 3-12) and the broker
	// deletes up to offset 8, the group's next offset (3) among them.
	var more []*kgo.Record
	for i := 3; i < 13; i++ {
		more = append(more, event(h.in, i, false))
	}
	h.kafka.Produce(more...)
	h.deleteRecords(8, 0)
	available.Store(true)

	got := h.kafka.Consume(t.Context(), countAtLeast(8), h.out)
	kafkatest.WaitFor(t, func() bool { return p.Stats().Deleted > 0 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range got {
		ids = append(ids, eventID(t, r.Value))
	}
	slices.Sort(ids)
	if want := "e-0 e-1 e-10 e-11 e-12 e-2 e-8 e-9"; strings.Join(ids, " ") != want {
		t.Errorf("outputs of %v, want %s", ids, want)
	}
	if s := p.Stats(); s.Deleted != 5 || s.Consumed != 8 {
		t.Errorf("stats: %d consumed, %d deleted; want 8 and the 5 between the group's position and the log start", s.Consumed, s.Deleted)
	}
	warned := logs.String()
	for _, want := range []string{
		"OFFSET_OUT_OF_RANGE while consuming", // franz-go's; kgoOutOfRangeWhileConsuming relies on it
		"the broker deleted 5 records of the input before the group read them", "0:[3,8)",
	} {
		if !strings.Contains(warned, want) {
			t.Errorf("the log does not say %q:\n%s", want, warned)
		}
	}
}

// fetchesInFlight counts a client's fetch requests sent and not yet
// answered.
type fetchesInFlight struct{ n atomic.Int64 }

func (f *fetchesInFlight) OnBrokerWrite(_ kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, err error) {
	if key == int16(kmsg.Fetch) && err == nil {
		f.n.Add(1)
	}
}

func (f *fetchesInFlight) OnBrokerRead(_ kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, _ error) {
	if key == int16(kmsg.Fetch) {
		f.n.Add(-1)
	}
}

// TestRunCountsRecordsDeletedBeforeATakeover: another member of the group
// holds a partition without consuming it while the broker deletes past the
// group's committed offset; when that member leaves, the rebalance hands
// the partition to the running instance at the deleted offset. franz-go
// resumes at the log start and says so only at its info level; twosell
// counts the records it skipped and names them, though its check at start
// found nothing.
func TestRunCountsRecordsDeletedBeforeATakeover(t *testing.T) {
	t.Parallel()
	bothModes(t, func(t *testing.T, eos bool) {
		h := newHarnessMode(t, 2, eos)
		h.produceByPartition(26, 2) // offsets 0-12 in each partition
		h.commitGroup(3, 0, 1)

		// The other member: in the group, holding what it is given, committing
		// nothing.
		var mu sync.Mutex
		var held []int32
		other := h.kafka.Client(kgo.ConsumerGroup(h.group), kgo.ConsumeTopics(h.in), kgo.DisableAutoCommit(),
			kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
				mu.Lock()
				defer mu.Unlock()
				held = append(held, m[h.in]...)
			}),
			kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
				mu.Lock()
				defer mu.Unlock()
				held = slices.DeleteFunc(held, func(p int32) bool { return slices.Contains(m[h.in], p) })
			}))
		holding := func() []int32 {
			mu.Lock()
			defer mu.Unlock()
			return slices.Sorted(slices.Values(held))
		}
		kafkatest.WaitFor(t, func() bool { return len(holding()) == 2 })

		cfg := h.config(answer)
		logs := captureLog(t, &cfg)
		p, stop := h.start(cfg)
		// The rebalance splits the partitions: the instance reads its own from
		// offset 3 to the end (10 records), the other member keeps one.
		kafkatest.WaitFor(t, func() bool { return p.Stats().Consumed == 10 && len(holding()) == 1 })
		kept := holding()[0]

		h.deleteRecords(8, kept)
		other.Close() // leaves the group: the instance takes the partition over at offset 3

		got := h.kafka.Consume(t.Context(), countAtLeast(15), h.out)
		kafkatest.WaitFor(t, func() bool { return p.Stats().Deleted > 0 })
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		if len(got) != 15 {
			t.Errorf("%d outputs, want 15: offsets 3-12 of one partition, 8-12 of the other", len(got))
		}
		if s := p.Stats(); s.Deleted != 5 || s.Consumed != 15 {
			t.Errorf("stats: %d consumed, %d deleted; want 15 and the 5 between the committed offset and the log start", s.Consumed, s.Deleted)
		}
		warned := logs.String()
		for _, want := range []string{
			"the broker deleted 5 records of the input before the group read them",
			fmt.Sprintf("%d:[3,8)", kept), "handed these partitions at committed offsets",
		} {
			if !strings.Contains(warned, want) {
				t.Errorf("the log does not say %q:\n%s", want, warned)
			}
		}
	})
}

// produceByPartition writes n events to the input, event i to partition
// i % partitions.
func (h *harness) produceByPartition(n int, partitions int32) {
	h.t.Helper()
	var recs []*kgo.Record
	for i := range n {
		r := event(h.in, i, false)
		r.Partition = int32(i) % partitions
		recs = append(recs, r)
	}
	produceManually(h.t, h.kafka.Client(kgo.RecordPartitioner(kgo.ManualPartitioner())), recs)
}

// commitGroup commits the group's offset at in partitions of the input.
func (h *harness) commitGroup(at int64, partitions ...int32) {
	h.t.Helper()
	var offsets kadm.Offsets
	for _, part := range partitions {
		offsets.Add(kadm.Offset{Topic: h.in, Partition: part, At: at, LeaderEpoch: -1})
	}
	if err := kadm.NewClient(h.kafka.Client()).CommitAllOffsets(h.t.Context(), h.group, offsets); err != nil {
		h.t.Fatalf("committing the group's offsets: %v", err)
	}
}

// deleteRecords deletes the input's records below at in partitions, as
// retention does.
func (h *harness) deleteRecords(at int64, partitions ...int32) {
	h.t.Helper()
	var offsets kadm.Offsets
	for _, part := range partitions {
		offsets.Add(kadm.Offset{Topic: h.in, Partition: part, At: at, LeaderEpoch: -1})
	}
	deleted, err := kadm.NewClient(h.kafka.Client()).DeleteRecords(h.t.Context(), offsets)
	if err == nil {
		err = deleted.Error()
	}
	if err != nil {
		h.t.Fatalf("deleting records: %v", err)
	}
}

// captureLog sends cfg's log to the buffer it returns, which a failed test
// prints.
func captureLog(t *testing.T, cfg *processor.Config) *safeBuffer {
	logs := new(safeBuffer)
	cfg.Logger = slog.New(slog.NewTextHandler(logs, nil))
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(logs.String())
		}
	})
	return logs
}
