package processor

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

// complete reports whether outputs held for the record went, judged under
// its lock: the record after the next one completes first, and is held;
// the next one hands both over and reports it. (The check was waiting
// before and after the call: with both completing at once, each could see
// waiting end where it began, 0, and neither resumed a partition that
// filled meanwhile: it stayed paused with nothing in it, once in about a
// hundred runs of TestPartitionOrderingBoundsOutputsWaitingForASlowRecord.)
func TestSequencerReportsHeldOutputsThatWent(t *testing.T) {
	s := sequencer{pending: make(map[uint64]emission), brokenAt: noBreak}
	var emitted []int64
	emit := func(e emission) { emitted = append(emitted, e.rec.Offset) }
	out := func(o int64) emission { return emission{rec: &kgo.Record{Offset: o}} }

	if s.complete(1, out(1), emit) {
		t.Error("the record after the next one, held: reported held outputs gone")
	}
	if s.waiting.Load() != 1 {
		t.Errorf("waiting %d, want 1", s.waiting.Load())
	}
	if !s.complete(0, out(0), emit) {
		t.Error("the next record, handing the held one over: reported no held output gone")
	}
	if s.complete(2, out(2), emit) {
		t.Error("the next record with nothing held: reported held outputs gone")
	}
	if len(emitted) != 3 || emitted[0] != 0 || emitted[1] != 1 || emitted[2] != 2 || s.waiting.Load() != 0 {
		t.Errorf("emitted %v, waiting %d; want [0 1 2], 0", emitted, s.waiting.Load())
	}
}
