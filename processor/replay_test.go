package processor_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/twosell/twosell/processor"
	"github.com/twosell/twosell/processor/kafkatest"
)

// answer is the fake provider as an Enricher.
var answer = processor.EnricherFunc(func(_ context.Context, l processor.Lookup) (processor.Result, error) {
	return fakeAnswer(l), nil
})

// endOffsets lists the input's end offsets by partition.
func (h *harness) endOffsets() map[int32]int64 {
	h.t.Helper()
	ends, err := kadm.NewClient(h.kafka.Client()).ListEndOffsets(h.t.Context(), h.in)
	if err != nil {
		h.t.Fatal(err)
	}
	out := make(map[int32]int64)
	ends.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
	return out
}

// replay runs a processor over rng and returns when Run does, by itself.
func (h *harness) replay(rng map[int32]processor.OffsetRange, opts ...kgo.Opt) *processor.Processor {
	h.t.Helper()
	cfg := h.config(answer)
	cfg.Group, cfg.Range = "", rng
	cfg.ClientOpts = append(cfg.ClientOpts, opts...)
	p, err := processor.New(cfg)
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(h.t.Context(), 60*time.Second)
	defer cancel()
	if err := p.Run(ctx); err != nil {
		h.t.Fatal(err)
	}
	if ctx.Err() != nil {
		h.t.Fatal("Run returned only when its context ended; a replay ends at its range's end")
	}
	if !p.RangeComplete() {
		h.t.Error("RangeComplete is false after a replay that ended by itself")
	}
	return p
}

// startReplay runs a replay until cancel; ran receives Run's error.
func startReplay(t *testing.T, cfg processor.Config) (p *processor.Processor, cancel context.CancelFunc, ran chan error) {
	t.Helper()
	p, err := processor.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	ran = make(chan error, 1)
	go func() { ran <- p.Run(ctx) }()
	return p, cancel, ran
}

// An interrupted replay returns without error and says its range is not
// complete.
func TestReplayInterrupted(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 1)
	h.produceEvents(10)
	var calls atomic.Int64
	cfg := h.config(processor.EnricherFunc(func(ctx context.Context, l processor.Lookup) (processor.Result, error) {
		if calls.Add(1) == 1 {
			return answer(ctx, l)
		}
		<-ctx.Done() // a provider that never answers again
		return processor.Result{}, ctx.Err()
	}))
	cfg.Group, cfg.Range = "", map[int32]processor.OffsetRange{0: {Start: 0, End: 10}}
	cfg.ShutdownTimeout = 100 * time.Millisecond
	p, cancel, ran := startReplay(t, cfg)
	kafkatest.WaitFor(t, func() bool { return p.Stats().Produced == 1 })
	cancel()
	if err := <-ran; err != nil {
		t.Fatalf("Run = %v, want nil when interrupted", err)
	}
	if p.RangeComplete() || p.Stats().Produced != 1 {
		t.Errorf("RangeComplete %v with %d of 10 produced, want false", p.RangeComplete(), p.Stats().Produced)
	}
}

// A replay interrupted while its last record is in flight finishes it
// within the grace period, and then its range is complete after all.
func TestReplayInterruptedAtTheEnd(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 1)
	h.produceEvents(10)
	last, release := make(chan struct{}), make(chan struct{})
	cfg := h.config(processor.EnricherFunc(func(ctx context.Context, l processor.Lookup) (processor.Result, error) {
		if strings.HasSuffix(l.Mobile, "0009") { // the range's last record
			close(last)
			<-release
		}
		return answer(ctx, l)
	}))
	cfg.Group, cfg.Range = "", map[int32]processor.OffsetRange{0: {Start: 0, End: 10}}
	cfg.MaxInFlight = 1 // in order: the last record is the last in flight
	p, cancel, ran := startReplay(t, cfg)
	<-last
	cancel() // interrupted, with the last record's call in flight
	close(release)
	if err := <-ran; err != nil {
		t.Fatalf("Run = %v, want nil", err)
	}
	if !p.RangeComplete() || p.Stats().Produced != 10 {
		t.Errorf("RangeComplete %v with %d of 10 produced, want true and all", p.RangeComplete(), p.Stats().Produced)
	}
}

// A replay processes exactly its range — part of one partition, all of
// another, none of a third — ends by itself, and commits nothing.
func TestReplayRange(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 3)
	const n = 300
	var recs []*kgo.Record
	for i := range n {
		r := event(h.in, i, i%25 == 0)
		r.Partition = int32(i % 3)
		recs = append(recs, r)
	}
	produceManually(t, h.kafka.Client(kgo.RecordPartitioner(kgo.ManualPartitioner())), recs)
	ends := h.endOffsets()
	rng := map[int32]processor.OffsetRange{
		0: {Start: 10, End: ends[0] - 20},
		1: {Start: 0, End: ends[1]},
		2: {Start: ends[2], End: ends[2]},
	}
	want := map[string]bool{}
	for _, r := range recs {
		if rr, ok := rng[r.Partition]; ok && r.Offset >= rr.Start && r.Offset < rr.End {
			want[eventID(t, r.Value)] = true
		}
	}
	p := h.replay(rng)

	got := h.kafka.ConsumeAll(t.Context(), h.out, h.dlq)
	seen := map[string]int{}
	for _, r := range got {
		seen[eventID(t, r.Value)]++
	}
	for id := range want {
		if seen[id] != 1 {
			t.Errorf("%s seen %d times, want once", id, seen[id])
		}
	}
	for id := range seen {
		if !want[id] {
			t.Errorf("%s is outside the range", id)
		}
	}
	if s := p.Stats(); s.Produced+s.DeadLettered != int64(len(want)) || s.Consumed != int64(len(want)) {
		t.Errorf("stats %+v, want %d records", s, len(want))
	}
	if !h.kafka.Real { // a shared cluster has the groups of other tests
		groups, err := kadm.NewClient(h.kafka.Client()).ListGroups(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if len(groups) != 0 {
			t.Errorf("a replay created consumer groups: %v", groups.Groups())
		}
	}
}

// produceManually writes records to the partitions they name. A real
// broker may not host a topic created a moment ago yet: a record refused
// for that is written again.
func produceManually(t *testing.T, cl *kgo.Client, recs []*kgo.Record) {
	t.Helper()
	for attempt := 0; ; attempt++ {
		results := cl.ProduceSync(t.Context(), recs...)
		var retry []*kgo.Record
		for _, r := range results {
			switch {
			case r.Err == nil:
			case errors.Is(r.Err, kerr.UnknownTopicOrPartition) && attempt < 50:
				retry = append(retry, r.Record)
			default:
				t.Fatal(r.Err)
			}
		}
		if len(retry) == 0 {
			return
		}
		recs = retry
		time.Sleep(100 * time.Millisecond)
	}
}

// A range that ends in transaction markers and an aborted transaction ends
// too, with the committed records only.
func TestReplayTransactionalInput(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 1)
	txn := h.kafka.Client(kgo.TransactionalID(h.kafka.Name("producer")))
	write := func(from, to int, commit bool) {
		if err := txn.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for i := from; i < to; i++ {
			if err := txn.ProduceSync(t.Context(), event(h.in, i, false)).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		if err := txn.EndTransaction(t.Context(), kgo.TransactionEndTry(commit)); err != nil {
			t.Fatal(err)
		}
	}
	write(0, 20, true)
	write(20, 30, false)
	write(30, 40, true)
	write(40, 45, false) // the range ends in an aborted transaction and its marker
	// A real broker writes the markers after EndTransaction returns: the
	// range would end before the last one (48 offsets, 18 empty; seen on
	// Kafka 4.4). 45 records and 4 markers.
	kafkatest.WaitFor(t, func() bool { return h.endOffsets()[0] == 49 })
	ends := h.endOffsets()
	p := h.replay(map[int32]processor.OffsetRange{0: {Start: 0, End: ends[0]}})
	got := h.kafka.ConsumeAll(t.Context(), h.out)
	ids := map[string]bool{}
	for _, r := range got {
		ids[eventID(t, r.Value)] = true
	}
	for i := range 45 {
		id := fmt.Sprintf("e-%d", i)
		if committed := i < 20 || i >= 30 && i < 40; ids[id] != committed {
			t.Errorf("%s replayed %v, committed %v", id, ids[id], committed)
		}
	}
	if len(got) != 30 {
		t.Errorf("%d outputs, want 30", len(got))
	}
	// Offsets the range passed without a record to replay: 4 markers, 15
	// aborted records.
	if s := p.Stats(); s.EmptyOffsets != 19 || s.Produced+s.EmptyOffsets != ends[0] {
		t.Errorf("%d outputs and %d empty offsets, want 30 and 19: the %d offsets of the range", s.Produced, s.EmptyOffsets, ends[0])
	}
}

// A range can end in records that are never returned, and nothing else
// tells: here, at the last stable offset, records of a transaction that was
// aborted after another one began, whose marker lies past that offset until
// the other one ends. The replay reads on (probe), sees that nothing of its
// range is left, and ends, instead of waiting for the other transaction;
// with more aborted records than one read returns (1 MiB) too. Only the
// probe can end these replays: the stalled partitions' nudge is put off.
func TestReplayEndsBeforeAnAbortedTail(t *testing.T) {
	defer processor.SetReplayStallAfter(time.Hour)()
	for _, tt := range []struct {
		name   string
		n, pad int // aborted records, and the bytes added to each
	}{
		{"one record", 1, 0},
		{"more than a read returns", 24, 100 << 10},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, 1)
			h.kafka.Produce(event(h.in, 0, false)) // offset 0
			h.abortedTail(t, 1, tt.n, tt.pad)
			p := h.replay(map[int32]processor.OffsetRange{0: {Start: 0, End: int64(tt.n + 1)}})
			if s := p.Stats(); s.Produced != 1 || s.EmptyOffsets != int64(tt.n) {
				t.Errorf("%d outputs and %d empty offsets, want 1 and %d (the aborted records)", s.Produced, s.EmptyOffsets, tt.n)
			}
		})
	}
}

// abortedTail writes, after what partition 0 of the input holds, n records
// of a transaction (b's: the events from first on, each padded by pad
// bytes), then one record of another transaction (a's) begun before b's is
// aborted: b's marker lies past the last stable offset, a's record, until
// a's transaction ends, at the test's end.
func (h *harness) abortedTail(t *testing.T, first, n, pad int) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	b := h.kafka.Client(kgo.TransactionalID(h.kafka.Name("b")), kgo.ProducerBatchCompression(kgo.NoCompression()))
	a := h.kafka.Client(kgo.TransactionalID(h.kafka.Name("a")), kgo.TransactionTimeout(time.Minute))
	must(b.BeginTransaction())
	for i := first; i < first+n; i++ { // b's
		r := event(h.in, i, false)
		r.Value = bytes.Replace(r.Value, []byte(`"big":`), []byte(`"pad":"`+strings.Repeat("y", pad)+`","big":`), 1)
		must(b.ProduceSync(t.Context(), r).FirstErr())
	}
	must(a.BeginTransaction())
	open, err := a.ProduceSync(t.Context(), event(h.in, first+n, false)).First() // a's, open
	must(err)
	must(b.EndTransaction(t.Context(), kgo.TryAbort)) // b's marker, past a's record
	t.Cleanup(func() {
		if err := a.EndTransaction(context.Background(), kgo.TryAbort); err != nil {
			t.Error(err)
		}
	})
	// A real broker writes b's marker after EndTransaction returns: until
	// then, b's transaction holds the last stable offset.
	adm := kadm.NewClient(h.kafka.Client())
	kafkatest.WaitFor(t, func() bool {
		lso, err := adm.ListCommittedOffsets(t.Context(), h.in)
		must(err)
		o, _ := lso.Lookup(h.in, 0)
		return o.Offset == open.Offset
	})
}

// A range that starts past its partition's end, or on a partition the
// topic does not have, is refused: fetched there, the broker answers that
// the offset is out of range, as for records deleted before they were
// read, and the replay went back to the log start and replayed records
// outside its range.
func TestReplayRefusesARangePastTheEnd(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 1)
	h.produceEvents(10)
	for _, tt := range []struct {
		rng  map[int32]processor.OffsetRange
		want string
	}{
		{map[int32]processor.OffsetRange{0: {Start: 100, End: 200}}, "the Range of partition 0 starts at offset 100, past the partition's end (10)"},
		{map[int32]processor.OffsetRange{0: {Start: 0, End: 10}, 3: {Start: 0, End: 10}}, fmt.Sprintf("topic %q has no partition 3", h.in)},
	} {
		cfg := h.config(answer)
		cfg.Group, cfg.Range = "", tt.rng
		p, err := processor.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		// Accepted, the first range would wait for good for offset 199.
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		err = p.Run(ctx)
		cancel()
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Run over %v: %v; want an error saying %q", tt.rng, err, tt.want)
		}
		if s := p.Stats(); s.Consumed != 0 {
			t.Errorf("Run over %v read %d records", tt.rng, s.Consumed)
		}
	}
	if got := h.kafka.ConsumeAll(t.Context(), h.out); len(got) != 0 {
		t.Errorf("%d outputs; a refused replay writes none", len(got))
	}
}

// A replay fetches as the live consumer does: its fetch wait is
// processing.fetch_max_wait, not franz-go's 5 s, which a partition resumed
// after a pause can wait out whole while the fetch in flight holds only
// partitions at or past their end (a replay once took 5.6 s instead of
// 0.6).
func TestReplayFetchMaxWait(t *testing.T) {
	h := newHarness(t, 2)
	fetchWaits := h.recordFetchWaits()
	h.produceEvents(20)
	ends := h.endOffsets()
	h.replay(map[int32]processor.OffsetRange{0: {Start: 0, End: ends[0]}, 1: {Start: 0, End: ends[1]}})
	if waits := fetchWaits(); len(waits) != 1 || waits[50] == 0 {
		t.Errorf("fetches by MaxWaitMillis: %v; want all 50", waits)
	}
}

// Range is validated.
func TestReplayConfig(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 1)
	cfg := h.config(answer)
	cfg.Group = ""
	if _, err := processor.New(cfg); err == nil {
		t.Error("no group and no range: accepted")
	}
	cfg.Range = map[int32]processor.OffsetRange{0: {Start: 5, End: 2}}
	if _, err := processor.New(cfg); err == nil {
		t.Error("a range that ends before it starts: accepted")
	}
	cfg.Range = map[int32]processor.OffsetRange{0: {Start: 0, End: 2}}
	cfg.ExactlyOnce = true
	if _, err := processor.New(cfg); err == nil {
		t.Error("an exactly-once replay: accepted")
	}
	// An empty range ends at once.
	h.replay(map[int32]processor.OffsetRange{0: {Start: 0, End: 0}})
}

// pauseOnFirstFetch pauses a partition when its first batch is read, before
// the poll that would return it: the poll then drops it. A partition whose
// records stop coming for no reason of the replay's own.
type pauseOnFirstFetch struct {
	topic     string
	partition int32
	then      func() // if set, called once the partition is paused
	cl        atomic.Pointer[kgo.Client]
	once      sync.Once
}

func (h *pauseOnFirstFetch) OnNewClient(cl *kgo.Client) { h.cl.Store(cl) }

func (h *pauseOnFirstFetch) OnFetchBatchRead(_ kgo.BrokerMetadata, topic string, partition int32, _ kgo.FetchBatchMetrics) {
	if topic == h.topic && partition == h.partition {
		h.once.Do(func() {
			h.cl.Load().PauseFetchPartitions(map[string][]int32{topic: {partition}})
			if h.then != nil {
				h.then()
			}
		})
	}
}

// stallHarness is a harness with 40 events over two partitions, and their
// whole range.
func stallHarness(t *testing.T) (*harness, []*kgo.Record, map[int32]processor.OffsetRange) {
	h := newHarness(t, 2)
	var recs []*kgo.Record
	for i := range 40 {
		r := event(h.in, i, false)
		r.Partition = int32(i % 2)
		recs = append(recs, r)
	}
	produceManually(t, h.kafka.Client(kgo.RecordPartitioner(kgo.ManualPartitioner())), recs)
	ends := h.endOffsets()
	return h, recs, map[int32]processor.OffsetRange{0: {Start: 0, End: ends[0]}, 1: {Start: 0, End: ends[1]}}
}

// A partition whose records stop coming short of its end (here: paused
// behind the replay's back) is fetched again after a while, from where it
// stands, and the replay still ends with every record of its range once.
func TestReplayFetchesAStalledPartitionAgain(t *testing.T) {
	defer processor.SetReplayStallAfter(200 * time.Millisecond)()
	h, recs, rng := stallHarness(t)
	h.replay(rng, kgo.WithHooks(&pauseOnFirstFetch{topic: h.in, partition: 1}))
	got := h.kafka.ConsumeAll(t.Context(), h.out)
	seen := map[string]int{}
	for _, r := range got {
		seen[eventID(t, r.Value)]++
	}
	if len(seen) != len(recs) || len(got) != len(recs) {
		t.Errorf("%d outputs of %d distinct events; want each of the %d once", len(got), len(seen), len(recs))
	}
}

// Records of the range that the broker deletes before they are read (time
// retention: replayed events are old) cannot come. The stalled partition is
// found done, the gap logged, and the replay ends with the rest.
func TestReplayEndsWhenItsRangeWasDeleted(t *testing.T) {
	defer processor.SetReplayStallAfter(200 * time.Millisecond)()
	h, _, rng := stallHarness(t)
	// Partition 1 is paused before its first records are polled, and its
	// whole range deleted meanwhile.
	deleted := make(chan error, 1)
	hook := &pauseOnFirstFetch{topic: h.in, partition: 1, then: func() {
		go func() {
			adm := kadm.NewClient(h.kafka.Client())
			_, err := adm.DeleteRecords(context.Background(), kadm.Offsets{h.in: {1: {Topic: h.in, Partition: 1, At: rng[1].End}}})
			deleted <- err
		}()
	}}
	p := h.replay(rng, kgo.WithHooks(hook))
	if err := <-deleted; err != nil {
		t.Fatalf("deleting partition 1's records: %v", err)
	}
	if s := p.Stats(); s.Deleted != rng[1].End || s.Consumed != 20 {
		t.Errorf("stats: %d records read, %d deleted; want 20 read and the %d of partition 1 deleted", s.Consumed, s.Deleted, rng[1].End)
	}
	if got := len(h.kafka.ConsumeAll(t.Context(), h.out)); got != 20 {
		t.Errorf("%d outputs; want the 20 events of partition 0 (partition 1's were deleted before they were read)", got)
	}
}

// A replay refuses to write outputs that their topic's time retention would
// delete at once (outputs keep their inputs' timestamps), saying which topic,
// which records and what to do; IgnoreRetention starts it anyway; and the
// topics a replay creates itself keep what it writes.
func TestReplayRefusesOutputsItsTopicWouldDelete(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 2)
	adm := kadm.NewClient(h.kafka.Client())
	day := int64(24 * time.Hour / time.Millisecond)
	h.kafka.CreateTopicsWith(2, map[string]*string{"retention.ms": kadm.StringPtr(fmt.Sprint(day))}, h.out)
	// Partition 0: three events two days old; partition 1: two of now.
	var recs []*kgo.Record
	for i := range 5 {
		r := event(h.in, i, false)
		r.Partition, r.Timestamp = 1, time.Now()
		if i < 3 {
			r.Partition, r.Timestamp = 0, time.Now().Add(-48*time.Hour)
		}
		recs = append(recs, r)
	}
	produceManually(t, h.kafka.Client(kgo.RecordPartitioner(kgo.ManualPartitioner())), recs)
	rng := map[int32]processor.OffsetRange{0: {Start: 0, End: 3}, 1: {Start: 0, End: 2}}

	cfg := h.config(answer)
	cfg.Group, cfg.Range = "", rng
	p, err := processor.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	err = p.Run(t.Context())
	if !errors.Is(err, processor.ErrOutputsWouldExpire) {
		t.Fatalf("Run: %v; want ErrOutputsWouldExpire", err)
	}
	for _, want := range []string{fmt.Sprintf("%q", h.out), fmt.Sprintf("retention.ms=%d", day), "3 records", "0:[0,3)", "--ignore-retention"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "1:[") {
		t.Errorf("error %q names partition 1, whose events are recent", err)
	}
	if s := p.Stats(); s.Consumed != 0 {
		t.Errorf("a refused replay consumed %d records", s.Consumed)
	}

	cfg.IgnoreRetention = true
	p, err = processor.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	if err := p.Run(ctx); err != nil {
		t.Fatalf("Run with IgnoreRetention: %v", err)
	}
	if s := p.Stats(); s.Produced != 5 {
		t.Errorf("%d outputs with IgnoreRetention; want 5", s.Produced)
	}

	// Into topics of its own, the same replay runs: it creates them
	// without time retention.
	cfg.IgnoreRetention = false
	cfg.OutputTopic, cfg.DLQTopic = h.kafka.Name("backfill"), h.kafka.Name("backfill.dlq")
	p, err = processor.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Run(ctx); err != nil {
		t.Fatalf("Run into new topics: %v", err)
	}
	described, err := adm.DescribeTopicConfigs(t.Context(), cfg.OutputTopic, cfg.DLQTopic)
	if err != nil {
		t.Fatal(err)
	}
	for _, topic := range []string{cfg.OutputTopic, cfg.DLQTopic} {
		rc, err := described.On(topic, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range rc.Configs {
			if c.Key == "retention.ms" && c.MaybeValue() != "-1" {
				t.Errorf("created topic %s has retention.ms=%s; want -1", topic, c.MaybeValue())
			}
		}
	}
}

// deleteAfterFirstBatch deletes a partition's records below at once the
// replay has read its first batch: retention catching up with a replay.
type deleteAfterFirstBatch struct {
	adm  *kadm.Client
	at   int64
	once sync.Once
	err  error
}

func (h *deleteAfterFirstBatch) OnFetchBatchRead(_ kgo.BrokerMetadata, topic string, partition int32, _ kgo.FetchBatchMetrics) {
	h.once.Do(func() {
		_, h.err = h.adm.DeleteRecords(context.Background(), kadm.Offsets{topic: {partition: {Topic: topic, Partition: partition, At: h.at}}})
	})
}

// Records of the range that the broker deletes while a replay reads them
// are counted and logged as not replayed (franz-go alone would resume at the
// log start without a word), and the replay ends with the rest.
func TestReplayCountsRecordsDeletedWhileReading(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 1)
	cl := h.kafka.Client(kgo.ProducerLinger(0))
	for i := range 40 { // a batch each
		if err := cl.ProduceSync(t.Context(), event(h.in, i, false)).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	ends := h.endOffsets()
	hook := &deleteAfterFirstBatch{adm: kadm.NewClient(h.kafka.Client()), at: 30}
	p := h.replay(map[int32]processor.OffsetRange{0: {Start: 0, End: ends[0]}},
		kgo.FetchMaxBytes(1), kgo.FetchMaxPartitionBytes(1), kgo.WithHooks(hook))
	if hook.err != nil {
		t.Fatalf("deleting records: %v", hook.err)
	}
	s := p.Stats()
	if s.Deleted < 20 || s.Deleted+s.Consumed != 40 || s.Produced != s.Consumed {
		t.Errorf("stats: %d read, %d deleted, %d outputs; want every one of the 40 either read (and output) or counted deleted, most deleted",
			s.Consumed, s.Deleted, s.Produced)
	}
	if got := len(h.kafka.ConsumeAll(t.Context(), h.out)); int64(got) != s.Consumed {
		t.Errorf("%d outputs, want one per record read (%d)", got, s.Consumed)
	}
}

// A partition whose range is fetched stays paused while the others finish,
// even when its last records filled its buffer: the buffer's drain does not
// resume it, so the records past its end are not fetched on to the log's
// end (and dropped) meanwhile.
func TestReplayKeepsAFetchedPartitionPaused(t *testing.T) {
	h := newHarness(t, 2)
	var recs []*kgo.Record
	for i := range 300 { // partition 0: 50 in the range, 250 past its end
		r := event(h.in, i, false)
		r.Partition = 0
		recs = append(recs, r)
	}
	last := event(h.in, 999, false) // partition 1: one record, held until the end
	last.Partition = 1
	recs = append(recs, last)
	produceManually(t, h.kafka.Client(kgo.RecordPartitioner(kgo.ManualPartitioner())), recs)
	ends := h.endOffsets()
	rng := map[int32]processor.OffsetRange{0: {Start: 0, End: 50}, 1: {Start: 0, End: ends[1]}}

	release := make(chan struct{})
	var fetched atomic.Pointer[kgo.Client]
	cfg := h.config(processor.EnricherFunc(func(ctx context.Context, l processor.Lookup) (processor.Result, error) {
		if l.Mobile == "17312340999" {
			select {
			case <-release:
			case <-ctx.Done():
				return processor.Result{}, ctx.Err()
			}
		}
		return fakeAnswer(l), nil
	}))
	cfg.Group, cfg.Range = "", rng
	cfg.MaxBufferedRecords = 10 // the 50 records fill it: paused full, then drained
	cfg.ClientOpts = append(cfg.ClientOpts, kgo.WithHooks(newClientHook(func(cl *kgo.Client) { fetched.Store(cl) })))
	p, cancel, ran := startReplay(t, cfg)
	defer cancel()
	kafkatest.WaitFor(t, func() bool { return p.Stats().Produced == 50 })
	if paused := fetched.Load().PauseFetchPartitions(nil)[h.in]; !slices.Contains(paused, 0) {
		t.Errorf("partition 0 fetched on past its range's end while partition 1 is not done (paused: %v)", paused)
	}
	close(release)
	if err := <-ran; err != nil {
		t.Fatal(err)
	}
	if !p.RangeComplete() {
		t.Error("the replay did not complete its range")
	}
	if s := p.Stats(); s.Produced != 51 {
		t.Errorf("%d outputs, want 51", s.Produced)
	}
}

// newClientHook calls f with each client created with it.
type newClientHook func(*kgo.Client)

func (f newClientHook) OnNewClient(cl *kgo.Client) { f(cl) }
