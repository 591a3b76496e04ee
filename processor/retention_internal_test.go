package processor

import (
	"maps"
	"testing"
)

// TestRetentionWatchCountsOnce: what franz-go reports more than once (its
// warning again, for an offset counted already, or one the broker lost
// rather than deleted) is counted once, and other topics not at all.
func TestRetentionWatchCountsOnce(t *testing.T) {
	w := newRetentionWatch()
	starts := map[topicPartition]int64{{"in", 0}: 8, {"in", 1}: 50, {"other", 0}: 99}
	logStart := func(tp topicPartition) (int64, bool) { o, ok := starts[tp]; return o, ok }
	steps := []struct {
		pending map[topicPartition]int64
		want    map[int32]OffsetRange
	}{
		{map[topicPartition]int64{{"in", 0}: 3}, map[int32]OffsetRange{0: {3, 8}}},
		{map[topicPartition]int64{{"in", 0}: 3}, map[int32]OffsetRange{}},                           // reported again
		{map[topicPartition]int64{{"in", 1}: 60}, map[int32]OffsetRange{}},                          // past the log start: lost, not deleted
		{map[topicPartition]int64{{"other", 0}: 1}, map[int32]OffsetRange{}},                        // not the input
		{map[topicPartition]int64{{"in", 2}: 1}, map[int32]OffsetRange{}},                           // no log start listed
		{map[topicPartition]int64{{"in", 0}: 5, {"in", 1}: 40}, map[int32]OffsetRange{1: {40, 50}}}, // 0 is counted to 8
	}
	for i, st := range steps {
		if got := w.unread("in", st.pending, logStart); !maps.Equal(got, st.want) {
			t.Errorf("step %d: got %v, want %v", i, got, st.want)
		}
	}
	starts[topicPartition{"in", 0}] = 20 // the broker deleted more, and franz-go reports the old offset
	if got, want := w.unread("in", map[topicPartition]int64{{"in", 0}: 8}, logStart), (map[int32]OffsetRange{0: {8, 20}}); !maps.Equal(got, want) {
		t.Errorf("after more deletion: got %v, want %v", got, want)
	}
	w.note(whileConsuming, "in", 0, 30)
	w.note(whileConsuming, "in", 0, 25) // the lowest is kept
	w.note(onFirstFetch, "in", 0, 27)   // kept apart: its warning says another cause
	if w.pending[whileConsuming][topicPartition{"in", 0}] != 25 || w.pending[onFirstFetch][topicPartition{"in", 0}] != 27 || len(w.wake) != 1 {
		t.Errorf("note: pending %v, wake %d; want 25 and 27 by cause and one wake-up", w.pending, len(w.wake))
	}

	// What the start's check warned of is known as warned, range by range.
	w.warnedAtStart("in", map[int32]OffsetRange{3: {2, 9}, 4: {0, 5}})
	for _, c := range []struct {
		rng  map[int32]OffsetRange
		want bool
	}{
		{map[int32]OffsetRange{3: {2, 9}}, true},
		{map[int32]OffsetRange{3: {2, 9}, 4: {1, 5}}, true},
		{map[int32]OffsetRange{3: {2, 10}}, false}, // deleted further since
		{map[int32]OffsetRange{5: {0, 1}}, false},
	} {
		if got := w.allWarned("in", c.rng); got != c.want {
			t.Errorf("allWarned(%v) = %v, want %v", c.rng, got, c.want)
		}
	}
	if w.allWarned("other", map[int32]OffsetRange{3: {2, 9}}) {
		t.Error("another topic's range counted as warned")
	}
}
