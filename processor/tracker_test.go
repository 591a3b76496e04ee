package processor

import (
	"log/slog"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

func TestTrackerWatermark(t *testing.T) {
	type step struct {
		add  []int64 // offsets received
		done []int64 // offsets finished
		want int64   // watermark after the step; -1: nothing to commit
		// noEpoch: the record before the watermark is no longer known (a
		// rewind past compacted ones); the commit carries no epoch.
		noEpoch bool
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"nothing received", []step{{want: -1}}},
		{"received, none finished", []step{{add: []int64{5, 6, 7}, want: -1}}},
		{"in order", []step{
			{add: []int64{5, 6, 7}, done: []int64{5}, want: 6},
			{done: []int64{6, 7}, want: 8},
		}},
		{"out of order holds at the first unfinished", []step{
			{add: []int64{0, 1, 2, 3}, done: []int64{1, 2, 3}, want: -1},
			{done: []int64{0}, want: 4},
		}},
		{"gaps in offsets (compaction, transaction markers)", []step{
			{add: []int64{10, 13, 20}, done: []int64{10, 20}, want: 13},
			{done: []int64{13}, want: 21},
			{add: []int64{25}, want: 25},
		}},
		{"duplicate acknowledgement is ignored", []step{
			{add: []int64{0, 1}, done: []int64{0, 0}, want: 1},
		}},
		// franz-go rewinds after Kafka lost records (kgo.ErrDataLoss): the
		// records now at offsets received before must finish before the
		// watermark passes them, whichever acknowledgement of an offset
		// (the record received before or the one received again) comes
		// first.
		{"rewind into unfinished records", []step{
			{add: []int64{0, 1, 2, 3, 4}, done: []int64{0, 1}, want: 2},
			{add: []int64{3, 4}, want: 2},  // rewound to 3
			{done: []int64{2}, want: 3},    // the new 3 and 4 are not finished
			{done: []int64{3, 4}, want: 3}, // the old 3's and 4's acknowledgements
			{done: []int64{4}, want: 3},    // the new 4
			{done: []int64{3}, want: 5},    // the new 3
			{add: []int64{5}, done: []int64{5}, want: 6},
		}},
		{"rewind: the new record's acknowledgement before the old one's", []step{
			{add: []int64{0, 1, 2}, want: -1},
			{add: []int64{1, 2}, done: []int64{0, 1, 2}, want: 1}, // the new 1 and 2 (or the old): one each
			{done: []int64{1}, want: 2},
			{done: []int64{2}, want: 3},
		}},
		{"rewind below finished and compacted records", []step{
			{add: []int64{10, 11, 12, 13}, done: []int64{10, 11, 12}, want: 13},
			{add: []int64{11, 12}, want: 11, noEpoch: true}, // back into finished records: they are new ones
			{done: []int64{13}, want: 11, noEpoch: true},    // the old 13's
			{done: []int64{11, 12}, want: 13},
		}},
		{"rewind below the first record", []step{
			{add: []int64{10, 11}, done: []int64{10, 11}, want: 12},
			{add: []int64{4, 5}, want: -1}, // nothing finished since the first record, 4
			{done: []int64{4}, want: 5},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := newTracker()
			for i, s := range tt.steps {
				for _, o := range s.add {
					tr.add(o, 7)
				}
				for _, o := range s.done {
					tr.done(o)
				}
				got, epoch, ok := tr.watermark()
				if !ok {
					got = -1
				}
				if got != s.want {
					t.Fatalf("step %d: watermark = %d, want %d", i, got, s.want)
				}
				if want := map[bool]int32{false: 7, true: -1}[s.noEpoch]; ok && epoch != want {
					t.Fatalf("step %d: epoch = %d, want %d", i, epoch, want)
				}
			}
		})
	}
}

// Records finished in random order, with duplicate acknowledgements and
// offset gaps, against a model: the watermark is always the first
// unfinished offset, and finished records do not pile up.
func TestTrackerRandomOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	tr := newTracker()
	var unfinished []int64 // the model, in offset order
	next := int64(100)
	for range 20000 {
		if len(unfinished) < 500 && rng.IntN(2) == 0 {
			next += 1 + int64(rng.IntN(3)) // gaps: compaction, transaction markers
			tr.add(next, 7)
			unfinished = append(unfinished, next)
			continue
		}
		if len(unfinished) == 0 {
			continue
		}
		i := rng.IntN(len(unfinished))
		if rng.IntN(8) == 0 {
			i = 0 // the head, so that the watermark moves often
		}
		tr.done(unfinished[i])
		tr.done(unfinished[i]) // a duplicate acknowledgement changes nothing
		unfinished = append(unfinished[:i], unfinished[i+1:]...)

		want := next + 1
		if len(unfinished) > 0 {
			want = unfinished[0]
		}
		if got, _, _ := tr.watermark(); got != want {
			t.Fatalf("watermark = %d, want %d", got, want)
		}
		if held := len(tr.pending); held > 2*(len(tr.pending)-tr.head)+1 {
			t.Fatalf("%d records held for %d unfinished: finished ones pile up", held, len(tr.pending)-tr.head)
		}
	}
}

// A fetch that found Kafka lost records is logged as that, not as a fetch
// error the client retries.
func TestDataLossIsLogged(t *testing.T) {
	var logs strings.Builder
	p := &Processor{log: slog.New(slog.NewTextHandler(&logs, nil))}
	p.logFetchErrors(kgo.Fetches{{Topics: []kgo.FetchTopic{{Topic: "in", Partitions: []kgo.FetchPartition{
		{Partition: 2, Err: &kgo.ErrDataLoss{Topic: "in", Partition: 2, ConsumedTo: 90, ResetTo: 70}},
	}}}}})
	for _, want := range []string{"level=ERROR", "Kafka lost records of an input partition; consuming it again from reset_to", "partition=2", "consumed_to=90", "reset_to=70"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log %q lacks %q", logs.String(), want)
		}
	}
}

// A rewind above the watermark does not move it, so the epoch committed with
// it stays: a commit without one would turn off the next owner's truncation
// check (KIP-320) on the partition where Kafka just lost records. (Found by
// review: after a compaction the epoch was dropped.)
func TestTrackerRewindAboveTheWatermarkKeepsTheEpoch(t *testing.T) {
	tr := newTracker()
	for _, o := range []int64{0, 1, 2, 3} {
		tr.add(o, 7)
	}
	tr.done(0)
	tr.done(1) // compacted: head back at 0
	before, epochBefore, _ := tr.watermark()
	tr.add(3, 8) // rewound to 3
	after, epochAfter, ok := tr.watermark()
	if !ok || after != before || epochAfter != epochBefore {
		t.Errorf("a rewind above the watermark moved it: %d (epoch %d) -> %d (epoch %d)", before, epochBefore, after, epochAfter)
	}
}

// franz-go reports an empty loss on every failed rejoin during a broker
// outage: nothing is logged for it. (Found by review: a WARN with
// partitions=map[] every few seconds.)
func TestEmptyLossIsNotLogged(t *testing.T) {
	var logs strings.Builder
	p := &Processor{log: slog.New(slog.NewTextHandler(&logs, nil))}
	p.lost(t.Context(), nil, map[string][]int32{})
	if logs.Len() != 0 {
		t.Errorf("logged %q", logs.String())
	}
}

// add is addAll of one record.
func (t *tracker) add(offset int64, epoch int32) {
	t.mu.Lock()
	t.addLocked(offset, epoch)
	t.mu.Unlock()
}
