package processor

import (
	"sync"
	"sync/atomic"
)

// Stats is a snapshot of what a Processor has done since it started.
type Stats struct {
	Consumed     int64 // records received from the input topic
	Produced     int64 // enriched events acknowledged by Kafka
	DeadLettered int64 // dead letters acknowledged by Kafka
	// Unavailable counts events emitted with status "unavailable"
	// (EmitUnavailable only).
	Unavailable int64
	Commits     int64 // partition offsets committed
	// Deleted counts input records the broker deleted (retention) before
	// they were read: of a replay's range (they are not replayed), or of
	// the group's input partitions this instance fetches (they are not
	// enriched): between the committed offset it fetched a partition at (at
	// its start, or handed over by a rebalance) and the log start, or
	// between where a lagging partition was and the log start.
	Deleted int64
	// EmptyOffsets counts the offsets of a replay's range that held no
	// record to replay: transaction markers, records of aborted
	// transactions, records compaction removed. With Deleted and the
	// records done, they make up the range.
	EmptyOffsets int64
	// WrittenBefore counts the records received and not processed because
	// the partition's previous owner wrote them above its last commit,
	// which named them (at least once: ahead.go). Consumed counts them.
	WrittenBefore    int64
	PausedPartitions int              // partitions whose fetching is paused now
	HeldPartitions   int              // partitions holding a record back for the provider now
	InFlight         int              // records being processed now (at most MaxInFlight)
	ByStatus         map[Status]int64 // produced events by status
	ByErrorClass     map[string]int64 // dead letters by class

	// The cost controls (Config.Cost; zero without them, BudgetRemaining -1).
	PaidCalls int64 // provider answers paid for by this instance
	// UncertainCalls counts the requests among PaidCalls that gave no
	// answer but may have been billed (CostStats').
	UncertainCalls int64
	// CacheAnswers counts lookups answered from knowledge without a call, by
	// kind: recycled, not_recycled, no_activation_date, no_record.
	CacheAnswers    map[string]int64
	Coalesced       int64   // lookups that waited for another lookup's call of the same mobile
	CacheEntries    int     // mobiles the knowledge cache holds now (at most cache.max_entries)
	CacheEvictions  int64   // mobiles the knowledge cache forgot to stay within cache.max_entries
	BudgetRemaining int64   // paid calls left today for the whole deployment; -1 without a budget
	SpendCNY        float64 // PaidCalls times the configured price per call
	// LedgerForeignLoaded and LedgerForeignFollowed: CostStats'.
	LedgerForeignLoaded, LedgerForeignFollowed int64
	// ProviderRate is this instance's provider request rate limit now, in
	// calls a second: its share of the group's, or what request-limit
	// refusals taught if lower; 0: unlimited.
	ProviderRate float64
	Skipped      int64 // events emitted with status "skipped" (budget spent, or too old)
}

type counters struct {
	consumed, produced, deadLettered, unavailable, commits, deleted, empty atomic.Int64
	paused                                                                 atomic.Int32
	// aheadOfCommit counts the records finished (written) above their
	// partition's committed offset when the partition was given up: the
	// next owner reads them again and writes them a second time.
	aheadOfCommit atomic.Int64
	// writtenBefore counts the records skipped because the partition's
	// previous owner wrote them above its last commit (ahead.go).
	writtenBefore atomic.Int64

	// Outputs by status: the statuses twosell writes in lock-free counters
	// (one count per output, from the producer's goroutines), any other
	// in byStatus.
	known    [len(knownStatuses)]atomic.Int64
	mu       sync.Mutex
	byStatus map[Status]int64
	byClass  map[string]int64
}

// knownStatuses are the statuses counted without a lock.
var knownStatuses = [...]Status{StatusRecycled, StatusNotRecycled, StatusNoActivationDate, StatusNoRecord, StatusUnavailable, StatusSkipped}

// knownStatus returns s's index in knownStatuses, or -1.
func knownStatus(s Status) int {
	switch s { // in knownStatuses' order; a switch, not a search: it runs for every output
	case StatusRecycled:
		return 0
	case StatusNotRecycled:
		return 1
	case StatusNoActivationDate:
		return 2
	case StatusNoRecord:
		return 3
	case StatusUnavailable:
		return 4
	case StatusSkipped:
		return 5
	}
	return -1
}

func newCounters() counters {
	return counters{byStatus: make(map[Status]int64), byClass: make(map[string]int64)}
}

// count adds a finished record.
func (c *counters) count(o outcome) {
	if o.class != "" {
		c.mu.Lock()
		c.byClass[o.class]++
		c.mu.Unlock()
		c.deadLettered.Add(1)
		return
	}
	if i := knownStatus(o.status); i >= 0 {
		c.known[i].Add(1)
	} else {
		c.mu.Lock()
		c.byStatus[o.status]++
		c.mu.Unlock()
	}
	if o.status == StatusUnavailable {
		c.unavailable.Add(1)
	}
	c.produced.Add(1)
}

// Stats returns a snapshot of the processor's counters. It is safe to call
// at any time from any goroutine.
func (p *Processor) Stats() Stats {
	s := Stats{
		Consumed:         p.stats.consumed.Load(),
		Produced:         p.stats.produced.Load(),
		DeadLettered:     p.stats.deadLettered.Load(),
		Unavailable:      p.stats.unavailable.Load(),
		Commits:          p.stats.commits.Load(),
		Deleted:          p.stats.deleted.Load(),
		EmptyOffsets:     p.stats.empty.Load(),
		WrittenBefore:    p.stats.writtenBefore.Load(),
		PausedPartitions: int(p.stats.paused.Load()),
		HeldPartitions:   int(p.held.Load()),
		InFlight:         len(p.slots),
		ByStatus:         make(map[Status]int64),
		ByErrorClass:     make(map[string]int64),
	}
	p.addCostStats(&s)
	p.stats.mu.Lock()
	defer p.stats.mu.Unlock()
	for k, v := range p.stats.byStatus {
		s.ByStatus[k] = v
	}
	for i, st := range knownStatuses {
		if v := p.stats.known[i].Load(); v != 0 {
			s.ByStatus[st] = v
		}
	}
	for k, v := range p.stats.byClass {
		s.ByErrorClass[k] = v
	}
	s.Skipped = s.ByStatus[StatusSkipped]
	return s
}

// addCostStats fills the cost controls' fields of s from Config.Cost.
func (p *Processor) addCostStats(s *Stats) {
	s.BudgetRemaining = -1
	if p.cfg.Cost == nil {
		s.CacheAnswers = make(map[string]int64)
		return
	}
	c := p.cfg.Cost.CostStats()
	s.PaidCalls, s.UncertainCalls, s.CacheAnswers, s.Coalesced = c.PaidCalls, c.UncertainCalls, c.CacheAnswers, c.Coalesced
	s.CacheEntries, s.CacheEvictions = c.CacheEntries, c.CacheEvictions
	s.BudgetRemaining, s.SpendCNY = c.BudgetRemaining, c.SpendCNY
	s.ProviderRate = c.QPS
	s.LedgerForeignLoaded, s.LedgerForeignFollowed = c.LedgerForeignLoaded, c.LedgerForeignFollowed
}
