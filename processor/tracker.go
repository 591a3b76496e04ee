package processor

import (
	"sort"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"
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
	pending []pendingOffset // received, in offset order; pending[head] is the first unfinished
	head    int             // records before it are finished, kept until compact drops them
	first   int64           // offset of the first record received; -1 before any
	next    int64           // offset after the last received record
	epoch   int32           // leader epoch of the last record finished contiguously
	// stale counts, by offset, the acknowledgements still to come of
	// records received before a rewind (addLocked) that are no longer tracked.
	stale map[int64]int
}

type pendingOffset struct {
	offset int64
	epoch  int32
	done   bool
}

func newTracker() *tracker { return &tracker{first: -1, next: -1, epoch: -1} }

// addAll registers a poll's received records, under one lock: the
// acknowledgements take it too, on the producer's goroutine, and a lock
// taken for every record went from core to core as often.
func (t *tracker) addAll(recs []*kgo.Record) {
	t.mu.Lock()
	for _, r := range recs {
		t.addLocked(r.Offset, r.LeaderEpoch)
	}
	t.mu.Unlock()
}

// addLocked registers a received record. franz-go returns a partition's
// records in increasing offset order, except after it found that Kafka lost
// records (kgo.ErrDataLoss: an unclean leader election, a truncated log): it
// then rewinds, and records at offsets received before (other records,
// written after the loss) come again. A rewind forgets the records received
// at and after the offset it goes back to: the records now there must finish
// before the watermark passes them. The acknowledgements of the forgotten
// ones that are still to come are ignored (stale), one per offset: whether
// the old record's or the new one's comes first, the offset is finished only
// when both are. The caller holds t.mu.
func (t *tracker) addLocked(offset int64, epoch int32) {
	if t.first < 0 || offset < t.first {
		t.first = offset
	}
	if offset < t.next {
		t.rewind(offset)
	}
	t.pending = append(t.pending, pendingOffset{offset: offset, epoch: epoch})
	t.next = offset + 1
}

// rewind forgets the records at offset and after (see addLocked). The caller
// holds t.mu.
func (t *tracker) rewind(offset int64) {
	watermark := t.next
	if t.head < len(t.pending) {
		watermark = t.pending[t.head].offset
	}
	i := sort.Search(len(t.pending), func(i int) bool { return t.pending[i].offset >= offset })
	for _, p := range t.pending[max(i, t.head):] {
		if !p.done {
			if t.stale == nil {
				t.stale = make(map[int64]int)
			}
			t.stale[p.offset]++
		}
	}
	t.pending = t.pending[:i]
	t.head = min(t.head, i)
	if offset < watermark {
		// The epoch committed with the watermark is the record's before
		// it: known if that record is still here, else none (-1). Above
		// the watermark, the epoch stays: the commit still checks for
		// truncation at the next owner (KIP-320).
		t.epoch = -1
		if t.head > 0 {
			t.epoch = t.pending[t.head-1].epoch
		}
	}
}

// done marks a record finished: its output or dead letter is acknowledged.
// Each record received must be acknowledged once: a second acknowledgement
// is ignored, except after a rewind, where a forgotten record's second one
// would finish the record now at its offset (the processor acknowledges
// each record once, from its output's or dead letter's promise).
func (t *tracker) done(offset int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if n := t.stale[offset]; n > 0 { // a record forgotten by a rewind
		if n == 1 {
			delete(t.stale, offset)
		} else {
			t.stale[offset] = n - 1
		}
		return
	}
	live := t.pending[t.head:]
	// A partition's offsets are mostly contiguous (gaps: transaction
	// markers, compaction), so the record is usually where its distance
	// from the first unfinished one says; else it is searched for.
	i := -1
	if len(live) > 0 {
		i = int(offset - live[0].offset)
	}
	if i < 0 || i >= len(live) || live[i].offset != offset {
		i = sort.Search(len(live), func(i int) bool { return live[i].offset >= offset })
	}
	if i == len(live) || live[i].offset != offset {
		return // already trimmed: a duplicate acknowledgement
	}
	live[i].done = true
	for t.head < len(t.pending) && t.pending[t.head].done {
		t.epoch = t.pending[t.head].epoch
		t.head++
	}
	t.compact()
}

// compact drops the finished records before head once they are at least
// half of pending: moving the unfinished ones down on every acknowledgement
// cost the cache-heavy bench 4% of its CPU, and reslicing instead would let
// the backing array grow without bound on a partition that never drains.
func (t *tracker) compact() {
	if t.head == 0 || t.head < len(t.pending)-t.head {
		return
	}
	t.pending = t.pending[:copy(t.pending, t.pending[t.head:])]
	t.head = 0
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
	if t.head < len(t.pending) {
		offset = t.pending[t.head].offset
	}
	return offset, t.epoch, offset > t.first
}
