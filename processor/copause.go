package processor

import (
	"context"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// A partition paused with a full buffer resumes when the fetch in flight to
// its broker returns, as franz-go sends one fetch at a time to a broker. If
// every other partition the fetch holds is caught up, the broker holds it
// for Config.FetchMaxWait, and the resumed partition, the only one with
// records left, waits that long each time it fills: at the end of a
// backlog or a replay, the last partition waited out four or five such
// fetches (50 ms each) in one bench run in four, 0.2 s of a 0.45 s run.
//
// So while a partition is paused full and every other partition that
// fetches is caught up, those are paused too (pauseIdle): no fetch holds
// only them, and the full partition's resume starts a fetch at once. They
// resume with it, or after FetchMaxWait at the latest, which bounds what
// the co-pause adds to a record arriving there meanwhile to what a fetch
// held by the broker adds now.
//
// copauser decides it. A partition that fills looks at once, on the
// goroutine that filled it, before it pauses itself (fillLocked): franz-go
// sends its next fetch as soon as the poll takes the last one, while the
// poll loop hands the records over, and a fetch built after the full
// partition's pause and before the others' held only them. (A loop woken
// by a signal came too late in about half the stalls; a look right after
// the partition's own pause still let 4 to 24 of them through in a bench
// run of 1,000,000 events.) A full partition's resume, and a co-pause's
// end, are left to a loop. Each look takes the workers' locks one at a
// time, under the copauser's own.
type copauser struct {
	changed chan struct{} // capacity 1: "a partition's full pause may have changed"
	made    atomic.Int64  // co-pauses begun, for tests

	mu     sync.Mutex
	paused map[*partitionWorker]bool // co-paused
	full   map[*partitionWorker]bool // paused full at the last look
	spent  bool                      // the co-pause of the partitions full now ran out
	timer  *time.Timer               // ends the co-pause after FetchMaxWait
}

func newCopauser() *copauser {
	return &copauser{
		changed: make(chan struct{}, 1),
		paused:  make(map[*partitionWorker]bool),
		full:    make(map[*partitionWorker]bool),
	}
}

// signal tells the loop that a worker's full pause was set or cleared (a
// partition that catches up looks at once: fetched). It never blocks:
// callers hold their worker's lock.
func (c *copauser) signal() {
	select {
	case c.changed <- struct{}{}:
	default:
	}
}

// run looks on every signal until ctx ends, then resumes what is
// co-paused.
func (c *copauser) run(ctx context.Context, p *Processor) {
	defer func() {
		c.mu.Lock()
		c.resumeLocked()
		c.mu.Unlock()
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.changed:
			c.look(p, nil)
		}
	}
}

// look co-pauses the caught-up partitions if a partition is full and every
// other one that fetches is caught up, and resumes them otherwise. filling,
// if not nil, counts as full: it is about to pause (see fillLocked). The
// caller holds no worker's lock.
func (c *copauser) look(p *Processor, filling *partitionWorker) {
	ws := p.workerList()
	c.mu.Lock()
	defer c.mu.Unlock()
	now := make(map[*partitionWorker]bool)
	idle := make([]*partitionWorker, 0, len(ws))
	busy := false // a partition that fetches has records left: the fetch in flight returns at once
	for _, w := range ws {
		state := fetchFull
		if w != filling {
			state = w.fetchState()
		}
		switch state {
		case fetchFull:
			now[w] = true
			if !c.full[w] {
				c.spent = false // a partition newly full: a co-pause of its own
			}
		case fetchIdle:
			idle = append(idle, w)
		case fetchBusy:
			busy = true
		}
	}
	c.full = now
	if len(c.full) == 0 || busy {
		c.resumeLocked()
		return
	}
	if c.spent {
		return
	}
	for _, w := range idle {
		if !c.paused[w] && w.pauseIfIdle() {
			c.paused[w] = true
		}
	}
	if len(c.paused) > 0 && c.timer == nil {
		c.made.Add(1)
		c.timer = time.AfterFunc(p.cfg.FetchMaxWait, c.expire)
	}
}

// expire ends a co-pause that lasted FetchMaxWait: the full partitions stay
// full, and the others fetch again.
func (c *copauser) expire() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.timer = nil // before resumeLocked: this timer has fired
	c.resumeLocked()
	c.spent = true
}

func (c *copauser) resumeLocked() {
	for w := range c.paused {
		w.setPaused(pauseIdle, false)
	}
	clear(c.paused)
	if c.timer != nil {
		c.timer.Stop()
		c.timer = nil
	}
}

// workerList returns the workers of the partitions assigned now.
func (p *Processor) workerList() []*partitionWorker {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Collect(maps.Values(p.workers))
}

// fetched notes how far the last fetch of w's partition reached: caught up
// when its last record is the last of the partition then (the high
// watermark; exactly-once, the last stable offset). ftp has records.
func (w *partitionWorker) fetched(ftp *kgo.FetchTopicPartition) {
	end := ftp.HighWatermark
	if w.p.cfg.ExactlyOnce {
		end = ftp.LastStableOffset
	}
	caughtUp := ftp.Records[len(ftp.Records)-1].Offset+1 >= end
	if w.caughtUp.Swap(caughtUp) != caughtUp && caughtUp && w.p.copause != nil {
		w.p.copause.look(w.p, nil)
	}
}

// fetchState says what w's fetching means for a co-pause.
type fetchState uint8

const (
	fetchBusy fetchState = iota // fetching, and not known to be caught up
	fetchFull                   // paused with a full buffer
	fetchIdle                   // fetching or co-paused, and caught up
	fetchHeld                   // paused for the provider: in no fetch, and not full
)

func (w *partitionWorker) fetchState() fetchState {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case w.paused&pauseFull != 0:
		return fetchFull
	case w.paused&^pauseIdle != 0:
		return fetchHeld
	case w.caughtUp.Load(): // records buffered or not: the broker has none for it
		return fetchIdle
	}
	return fetchBusy
}

// pauseIfIdle pauses w for pauseIdle if it is still fetching and caught up,
// and reports whether it did.
func (w *partitionWorker) pauseIfIdle() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.paused != 0 || !w.caughtUp.Load() || w.ctx.Err() != nil { // released: see release
		return false
	}
	w.setPausedLocked(pauseIdle, true)
	return true
}
