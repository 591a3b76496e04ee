package processor

import (
	"math/rand/v2"
	"testing"
)

func TestTrackerWatermark(t *testing.T) {
	type step struct {
		add  []int64 // offsets received
		done []int64 // offsets finished
		want int64   // watermark after the step; -1: nothing to commit
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
				if ok && epoch != 7 {
					t.Fatalf("step %d: epoch = %d, want 7", i, epoch)
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
