package processor

import (
	"sort"
	"sync"
)

// tracker follows the records of one partition from the moment they are
// received until their output or dead letter is acknowledged, and tells the
// committer how far the partition is contiguously finished.
//
// franz-go's own marks commit the highest offset seen; we must commit only up
// to the lowest unfinished record, because outputs are acknowledged out of
// order (they go to different output partitions) and a crash must re-deliver
// everything not yet acknowledged.
type tracker struct {
	mu      sync.Mutex
	pending []pendingOffset // received, in offset order, from the first unfinished
	first   int64           // offset of the first record received; -1 before any
	next    int64           // offset after the last received record
	epoch   int32           // leader epoch of the last record finished contiguously
}

type pendingOffset struct {
	offset int64
	epoch  int32
	done   bool
}

func newTracker() *tracker { return &tracker{first: -1, next: -1, epoch: -1} }

// add registers a received record. Offsets must be added in increasing order,
// which is the order franz-go returns them for a partition.
func (t *tracker) add(offset int64, epoch int32) {
	t.mu.Lock()
	if t.first < 0 {
		t.first = offset
	}
	t.pending = append(t.pending, pendingOffset{offset: offset, epoch: epoch})
	t.next = offset + 1
	t.mu.Unlock()
}

// done marks a record finished: its output or dead letter is acknowledged.
func (t *tracker) done(offset int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	i := sort.Search(len(t.pending), func(i int) bool { return t.pending[i].offset >= offset })
	if i == len(t.pending) || t.pending[i].offset != offset {
		return // already trimmed: a duplicate acknowledgement
	}
	t.pending[i].done = true
	n := 0
	for n < len(t.pending) && t.pending[n].done {
		t.epoch = t.pending[n].epoch
		n++
	}
	if n > 0 {
		// Shift rather than reslice so the backing array does not grow
		// without bound on a partition that never drains.
		t.pending = t.pending[:copy(t.pending, t.pending[n:])]
	}
}

// watermark returns the offset to commit (the first unfinished record, or the
// offset after the last received one when all are finished), the leader epoch
// to commit with, and whether any record has been finished: a partition where
// nothing is finished has nothing to commit.
func (t *tracker) watermark() (offset int64, epoch int32, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.first < 0 {
		return 0, -1, false
	}
	offset = t.next
	if len(t.pending) > 0 {
		offset = t.pending[0].offset
	}
	return offset, t.epoch, offset > t.first
}
