package processor

import "time"

// SetReplayStallAfter sets how long a replay waits for a stalled partition
// before it fetches it again, until the returned function restores it.
func SetReplayStallAfter(d time.Duration) (restore func()) {
	old := replayStallAfter
	replayStallAfter = d
	return func() { replayStallAfter = old }
}

// SetMembersTimeout sets how long a rebalance asks the coordinator for the
// group's members, until the returned function restores it. Not for
// parallel tests.
func SetMembersTimeout(d time.Duration) (restore func()) {
	old := membersTimeout.Swap(int64(d))
	return func() { membersTimeout.Store(old) }
}

// Stopping returns a channel closed once the worker of a partition assigned
// to p is told to stop (a revoke, or the stop at the end of Run), or nil if
// p has no worker for it.
func (p *Processor) Stopping(topic string, partition int32) <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	if w := p.workers[topicPartition{topic, partition}]; w != nil {
		return w.stopCtx.Done()
	}
	return nil
}

// Holds returns how many records of a partition assigned to p are held back
// for the provider now (see partitionWorker.hold), or -1 if p has no worker
// for it.
func (p *Processor) Holds(topic string, partition int32) int {
	p.mu.Lock()
	w := p.workers[topicPartition{topic, partition}]
	p.mu.Unlock()
	if w == nil {
		return -1
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.holds
}

// CallsInFlight returns how many mobiles have a paid call in flight, or
// led by a lookup that waits for a slot to make it.
func (c *CostControl) CallsInFlight() int {
	n := 0
	for i := range c.calls.shards {
		sh := &c.calls.shards[i]
		sh.mu.Lock()
		n += len(sh.pending)
		sh.mu.Unlock()
	}
	return n
}

// NewTestClock returns the cost tests' clock (fakeClock), set to t, for
// the external tests.
func NewTestClock(t time.Time) *fakeClock { return &fakeClock{t: t} }

// Frontier returns the highest offset the worker of a partition assigned to
// p has started (taken to begin), or -2 if p has no worker for it.
func (p *Processor) Frontier(topic string, partition int32) int64 {
	p.mu.Lock()
	w := p.workers[topicPartition{topic, partition}]
	p.mu.Unlock()
	if w == nil {
		return -2
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.frontier
}

// DigitsOf is digitsOf, for the external tests.
var DigitsOf = digitsOf
