package processor

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// ErrBudgetSpent is the error (wrapped in Unavailable) of a lookup that
// needs a paid call after the day's call budget is spent.
var ErrBudgetSpent = errors.New("the daily budget of paid calls is spent")

// budget counts paid calls per calendar day (in the configured zone) against
// a daily limit. The count is the whole deployment's: this instance's calls,
// and the calls of other instances and earlier runs as the ledger reports
// them. A call reserves a unit before it is made, so that concurrent calls
// never exceed the limit, and settles it after: a call that was not paid
// (a provider fault, a canceled call) gives its unit back.
type budget struct {
	limit int64 // 0: unlimited
	loc   *time.Location
	now   func() time.Time

	mu sync.Mutex
	// members is how many instances share the budget (the consumer
	// group's members, as the rate is divided): each holds at most its
	// share of what is left in flight at once (reserve).
	members int
	days    map[string]int64 // paid calls counted, by day (yyyymmdd)
	// reserved counts the units held, by day of reservation: of calls
	// waiting for the rate, and of calls made (calling) and not yet
	// settled.
	reserved map[string]int64
	// calling counts, of reserved, the calls made (confirm): the share
	// holds these, which the other instances have not yet read of.
	calling map[string]int64
	// calls are the ledger's call records counted, by day and "instance/id":
	// a record written twice (another writer on the topic, a mirror, a
	// restore; until compaction) is one call.
	calls map[string]map[string]struct{}
	// spentSignals are closed when their day's budget is spent while it is
	// today (spentLocked): the calls waiting for the rate with a unit of
	// that day give up their places at once (spentSignal).
	spentSignals map[string]chan struct{}
}

func newBudget(limit int64, loc *time.Location, now func() time.Time) *budget {
	return &budget{limit: limit, loc: loc, now: now, members: 1, days: make(map[string]int64), reserved: make(map[string]int64),
		calling: make(map[string]int64), calls: make(map[string]map[string]struct{}),
		spentSignals: make(map[string]chan struct{})}
}

// setMembers sets how many instances share the budget (at least 1).
func (b *budget) setMembers(n int) {
	b.mu.Lock()
	b.members = max(n, 1)
	b.mu.Unlock()
}

// shareLocked is how many calls of day this instance may have in flight at
// once: what is left of the day's budget divided among the members, rounded
// up. An instance learns of the others' calls only from their ledger
// records, written once answered: if each could reserve all that is left,
// members starting together would pay members times the budget (found by
// review: two instances, a budget of 5, 10 calls). With the share, they pay
// at most members − 1 calls over it (each rounding up), as long as each has
// read the others' records of the calls they finished.
//
// A lookup's retry is held to it as a new call is, the lookup's earlier
// requests that may have been billed counted as in flight: until the
// lookup ends and they are written to the ledger, the others cannot see
// them (found by review: retries exempt from the share, two instances
// whose first requests timed out together paid 10 on a budget of 5). A
// request the provider cannot have billed gives its unit back before the
// retry (BeforeRetryBilled), so a passing fault's retry fits a share of 1
// (found by review: a budget of 10 and 10 members refused the only
// lookup's retry after a 503).
func (b *budget) shareLocked(day string) int64 {
	left := b.limit - b.days[day]
	m := int64(b.members)
	return (left + m - 1) / m
}

// today is the budget's current day.
func (b *budget) today() string { return DayOf(b.now(), b.loc) }

// untilRenewal is how long until the budget's next day begins.
func (b *budget) untilRenewal() time.Duration {
	now := b.now()
	loc := b.loc
	if loc == nil {
		loc = time.UTC
	}
	y, m, d := now.In(loc).Date()
	return time.Date(y, m, d+1, 0, 0, 0, 0, loc).Sub(now)
}

// reserve takes a unit of today's budget for a call about to be made. It
// returns the day to settle it with, or, when there is none to take, an
// error: the budget is spent, or what is left of it is reserved by calls in
// flight (errBudgetInFlight), which may yet fail and give their units back.
func (b *budget) reserve() (day string, err error) {
	day = b.today()
	b.mu.Lock()
	defer b.mu.Unlock()
	return day, b.reserveLocked(day)
}

func (b *budget) reserveLocked(day string) error {
	switch {
	case b.limit <= 0:
	case b.days[day] >= b.limit:
		return ErrBudgetSpent
	case b.days[day]+b.reserved[day] >= b.limit:
		return fmt.Errorf("%w: the last %d of today's %d calls are in flight", errBudgetInFlight, b.limit-b.days[day], b.limit)
	case b.reserved[day] >= b.shareLocked(day):
		return fmt.Errorf("%w: this instance's share of the %d calls left today (%d, divided among %d members) is in flight",
			errBudgetInFlight, b.limit-b.days[day], b.shareLocked(day), b.members)
	}
	b.reserved[day]++
	return nil
}

// confirm is called when a call that reserved a unit of day is about to be
// made, after its wait for the rate: it keeps the unit, counted as calling,
// if the day's calls and the calls being made leave room for it, and this
// instance's share of what is left has room for it;
// otherwise it gives the unit back and returns reserve's error. A wait that
// crossed midnight moves its unit to the new day, whatever that day's
// reservations: those are of the calls queued behind it (found by review:
// held to them, the call that waited since before midnight was refused at
// its slot, and the calls queued after midnight behind it were paid).
//
// Calls other instances made meanwhile, read from the ledger, may have
// spent what was left: with a rate of 1/s, an instance's queue holds
// minutes of calls, each holding a unit reserved before it learned of them
// (found by review: a budget of 3 paid 6 calls).
//
// The share holds the calls being made, not those still waiting for the
// rate: when it shrinks (the group grew, or others spent), the calls that
// waited longest go first, each in its own rate slot. Held to the units
// reserved, waiting ones included, the oldest calls were refused at their
// slots until the queue fitted the new share, and those slots had no call
// (found by review: at 1/s, going from 1 member to 2 with a queue of 8
// made no call for 8 seconds and held back the 4 oldest lookups).
func (b *budget) confirm(day string) (string, error) {
	today := b.today()
	b.mu.Lock()
	defer b.mu.Unlock()
	if today != day {
		b.releaseLocked(day)
		b.reserved[today]++
		day = today
	}
	switch left := b.limit - b.days[day]; {
	case b.limit <= 0:
	case left <= 0:
		b.releaseLocked(day)
		return day, ErrBudgetSpent
	case b.calling[day] >= left:
		b.releaseLocked(day)
		return day, fmt.Errorf("%w: the last %d of today's %d calls are being made", errBudgetInFlight, left, b.limit)
	case b.calling[day] >= b.shareLocked(day):
		b.releaseLocked(day)
		return day, fmt.Errorf("%w: this instance's share of the %d calls left today (%d, divided among %d members) is being made",
			errBudgetInFlight, left, b.shareLocked(day), b.members)
	}
	b.calling[day]++
	return day, nil
}

// errBudgetInFlight refuses a call while the rest of the day's budget is
// reserved by calls in flight: the lookup is held back and tried again, with
// on_budget: emit too, rather than skipped for good while a unit may yet
// come back. It is an ErrBudgetSpent for the processor, which never emits it
// as "unavailable".
var errBudgetInFlight = fmt.Errorf("%w for now", ErrBudgetSpent)

// settle ends the reservation of a call made (confirm): it was paid
// (counted) or not (the unit goes back).
func (b *budget) settle(day string, paid bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.calling[day]--; b.calling[day] <= 0 {
		delete(b.calling, day)
	}
	b.releaseLocked(day)
	if paid {
		b.days[day]++
		b.spentLocked()
	}
}

// spentSignal returns a channel closed once today's budget is spent while
// day is today or before it (nil without a limit): a call waiting for the
// rate with a unit of day gives up its place then, and its lookup is held
// back or written "skipped" at once, not when its rate slot comes (with
// on_budget: emit at 1/s, a queue of 256 calls took 4 minutes to be written
// "skipped"). A call whose wait crossed midnight counts for the new day
// (confirm), so it gives up when that day is spent (found by review).
func (b *budget) spentSignal(day string) <-chan struct{} {
	if b.limit <= 0 {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	ch := b.spentSignals[day]
	if ch == nil {
		ch = make(chan struct{})
		b.spentSignals[day] = ch
		b.spentLocked()
		b.pruneLocked(b.today())
	}
	return ch
}

// spentLocked closes the spent signals of today and the days before it
// once today's budget is spent: counts that come later for a day gone
// (another instance's records, late) do not end the waits of calls, which
// count for the new day.
func (b *budget) spentLocked() {
	today := b.today()
	if b.limit <= 0 || b.days[today] < b.limit {
		return
	}
	for day, ch := range b.spentSignals {
		if day > today {
			continue
		}
		select {
		case <-ch:
		default:
			close(ch)
		}
	}
}

// pruneLocked forgets the days before yesterday: only today and yesterday
// matter (yesterday: a clock a little behind).
func (b *budget) pruneLocked(today string) {
	for d := range b.days {
		if d < previousDay(today) {
			delete(b.days, d)
			delete(b.calls, d)
		}
	}
	for d := range b.spentSignals {
		if d < previousDay(today) {
			delete(b.spentSignals, d)
		}
	}
}

// release gives back the unit of a call not made (reserved, never
// confirmed).
func (b *budget) release(day string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.releaseLocked(day)
}

func (b *budget) releaseLocked(day string) {
	if b.reserved[day]--; b.reserved[day] <= 0 {
		delete(b.reserved, day)
	}
}

// countCall counts a call another instance (or an earlier run) paid, read
// from the ledger: its day and its id there (instance and order id), once.
func (b *budget) countCall(day, id string) {
	if day < previousDay(b.today()) {
		return
	}
	b.mu.Lock()
	seen := b.calls[day]
	if seen == nil {
		seen = make(map[string]struct{})
		b.calls[day] = seen
	}
	_, dup := seen[id]
	seen[id] = struct{}{}
	b.mu.Unlock()
	if !dup {
		b.count(day, 1)
	}
}

// count adds calls that others paid (read from the ledger) to day.
func (b *budget) count(day string, n int64) {
	today := b.today()
	b.mu.Lock()
	defer b.mu.Unlock()
	if day < previousDay(today) {
		return // only today and yesterday matter (yesterday: a clock a little behind)
	}
	b.days[day] += n
	b.spentLocked()
	b.pruneLocked(today)
}

// spent returns today's paid calls, of every instance the ledger reports.
func (b *budget) spent() int64 {
	day := b.today()
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.days[day]
}

// remaining returns what is left of today's budget, or -1 without a limit.
func (b *budget) remaining() int64 {
	if b.limit <= 0 {
		return -1
	}
	return max(0, b.limit-b.spent())
}

// spentError is the error of a lookup refused for the budget: it says when
// the budget renews.
func (b *budget) spentError() error {
	now := b.now().In(b.loc)
	y, m, d := now.Date()
	next := time.Date(y, m, d+1, 0, 0, 0, 0, b.loc)
	return fmt.Errorf("%w: %d of %d calls today; it renews at %s (in %s)",
		ErrBudgetSpent, b.spent(), b.limit, next.Format(time.RFC3339), next.Sub(now).Round(time.Second))
}

// previousDay returns the day before day (yyyymmdd).
func previousDay(day string) string {
	t, err := time.Parse("20060102", day)
	if err != nil {
		return day
	}
	return t.AddDate(0, 0, -1).Format("20060102")
}

// groupRate limits this instance's provider calls to its share of a
// request rate set for the whole consumer group: the rate divided by the
// group's current members, re-divided when the membership changes.
//
// It also learns from the provider's request-limit answers (limited): a
// provider that says calls come too often (juhe 10011-10013) sets this
// instance's rate below what it answered in the last second, with or
// without a configured rate, and the rate rises back by a tenth every
// rateProbeEvery without such an answer, up to the share.
type groupRate struct {
	qps float64 // for the whole group; 0: unlimited
	lim atomic.Pointer[rate.Limiter]
	// turn lets one waiter at a time reserve the limiter's next token, at
	// most rateLookahead (or one interval) before it is due. The limiter
	// gives every waiter its time at once, at the rate of the moment: 256
	// lookups waiting at 20/s would have kept their 50 ms spacing for
	// seconds after the group grew and the share fell to 10/s, and two
	// instances sent 30 requests a second under a limit of 20. Reserving a
	// little ahead (rateLookahead) keeps the wake-ups' lateness out of the
	// rate.
	turn chan struct{}

	mu      sync.Mutex
	members int
	// changed is closed, and replaced, when the limit changes: the waiter
	// holding the turn reserves again (wait); the queue's were reserved
	// again by the change.
	changed chan struct{}
	// queue holds the waiters past the turn, in the order of their
	// reservations: a change reserves for them again on the new limiter in
	// that order, so that none is overtaken (wait).
	queue    []*rateWaiter
	lastPass time.Time // the last call wait or now let pass
	// learned is the rate the request-limit answers taught, below the
	// share; 0: none.
	learned  float64
	cutAt    time.Time // when learned was last lowered
	raisedAt time.Time // when it was last raised
	answers  secondCounter
	// early: learned was cut from answers of less than a second (the start
	// of a run, or after a pause), which early.n counts; the answers of
	// calls made before the cut that come in later, within that second,
	// add to it and raise learned (see answered).
	early struct {
		until time.Time // the end of that second; zero: not early
		n     int64
		cap   float64 // what the cut's other limits allowed
	}
}

// The learning of limited and answered.
const (
	rateCut        = 0.9             // of the answers of the last second
	rateRecut      = 0.7             // of a learned rate refused again
	rateFloor      = 1.0             // calls a second, at least
	rateQuiet      = 2 * time.Second // after a cut: the answers of calls made at the old rate
	rateSteady     = 5 * time.Second // of calls at a learned rate: it was nearly kept up
	rateProbeEvery = 5 * time.Minute // without a request-limit answer: raise by a tenth
	// rateForget: a learned rate raised this high limits nothing and is
	// forgotten, as one that reaches the share is. Without juhe.qps it
	// rose for good: after 26 days without a refusal it overflowed to
	// +Inf, the limiter was dropped, and the next answer panicked.
	rateForget = 1e6
)

func newGroupRate(qps float64) *groupRate {
	g := &groupRate{qps: qps, members: 1, turn: make(chan struct{}, 1)}
	g.applyLocked() // nobody else has g yet
	return g
}

// setMembers divides the group's rate among n members.
func (g *groupRate) setMembers(n int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.members = max(n, 1)
	g.applyLocked()
}

// applyLocked sets the limiter to the share, or to what was learned if
// lower; without either there is no limiter. A burst of one: calls are
// spaced evenly, so that no second holds more than the share even when the
// instances' bursts coincide.
func (g *groupRate) applyLocked() {
	r := math.Inf(1)
	if g.qps > 0 {
		r = g.qps / float64(g.members)
	}
	if g.learned > 0 {
		r = min(r, g.learned)
	}
	switch lim := g.lim.Load(); {
	case math.IsInf(r, 1) && lim == nil, lim != nil && lim.Limit() == rate.Limit(r):
		return // unchanged
	case math.IsInf(r, 1):
		g.lim.Store(nil)
	default:
		// A new limiter, its last token taken at the last call: the
		// waiters' reservations on the old one are dropped (they reserve
		// again), not cancelled, which CancelAt gets wrong across a
		// SetLimit. The first (from unlimited) too.
		l := rate.NewLimiter(rate.Limit(r), 1)
		if !g.lastPass.IsZero() {
			l.ReserveN(g.lastPass, 1)
		}
		g.lim.Store(l)
	}
	g.requeueLocked()
}

// requeueLocked reserves again, on the limiter now in force, for the
// waiters past the turn, in their order, and tells them (and the turn's
// holder, which reserves after them) by closing changed.
func (g *groupRate) requeueLocked() {
	lim := g.lim.Load()
	for _, w := range g.queue {
		w.r = nil // unlimited: it passes
		if lim != nil {
			w.r = lim.Reserve() // a burst of 1: always possible
		}
	}
	if g.changed != nil {
		close(g.changed)
		g.changed = nil
	}
}

// rateWaiter is a call waiting in wait, past the turn: its reservation,
// replaced at each change (requeueLocked); nil: no limit, it passes.
type rateWaiter struct{ r *rate.Reservation }

// changedLocked returns the channel closed at the next change.
func (g *groupRate) changedLocked() <-chan struct{} {
	if g.changed == nil {
		g.changed = make(chan struct{})
	}
	return g.changed
}

// share returns this instance's rate (0: unlimited) and the members it was
// divided among.
func (g *groupRate) share() (float64, int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	lim := g.lim.Load()
	if lim == nil {
		return 0, g.members
	}
	return float64(lim.Limit()), g.members
}

// limited learns from a request-limit answer at now: this instance's rate
// becomes rateCut of the answers of the last second, and at most rateCut of
// its rate now, or rateRecut of a rate learned before if the calls at it
// began less than rateSteady ago. Answers within rateQuiet of a cut are of
// calls made before it, and teach nothing.
//
// Answers of less than a second (the start of a run, or after a pause) are
// what the provider answered in that time, and the cut is made from them;
// the calls made before the cut may still be answered within that second,
// after refusals the provider sent at the same time (a refusal 75 ms into a
// run, with 2 answers counted of the 50 the provider gave, taught 1.8/s),
// and answered raises the rate by them. Without an answer in the last
// second (the provider refuses everything) nothing is learned: its breaker
// and the hold back off. It returns the new rate, or false when it did not
// change.
func (g *groupRate) limited(now time.Time) (float64, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.cutAt.IsZero() && now.Sub(g.cutAt) < rateQuiet {
		return 0, false
	}
	answered := g.answers.last(now)
	if answered == 0 {
		return 0, false
	}
	limit := math.Inf(1)
	if g.learned > 0 {
		// Refused again soon after calls began at a rate learned before:
		// the answers that taught it overstated what the provider keeps
		// up (a bucket's burst), so cut by more than a tenth. Refused
		// after rateSteady of calls at it, the provider nearly kept it
		// up (a raise by a tenth went too far), and a tenth less will do.
		calling := g.answers.since // answers without a gap since
		if g.raisedAt.After(calling) {
			calling = g.raisedAt // the rate's last change
		}
		if now.Sub(calling) < rateSteady {
			limit = rateRecut * g.learned
		}
	}
	if lim := g.lim.Load(); lim != nil {
		limit = min(limit, rateCut*float64(lim.Limit()))
	}
	r := max(min(rateCut*float64(answered), limit), rateFloor)
	g.learned, g.cutAt, g.raisedAt = r, now, now
	g.early.until = time.Time{}
	if !g.answers.fullSecond(now) {
		g.early.until, g.early.n, g.early.cap = g.answers.since.Add(time.Second), answered, limit
	}
	g.applyLocked()
	return r, true
}

// answered counts an answer at now to a call made at began. It raises a
// rate cut early (see limited) by the answer of a call made before the cut;
// and, once rateProbeEvery has passed since it last changed, a learned rate
// by a tenth: a rate that reaches the share is forgotten. It returns the
// rate after a raise by a tenth, with true, or false when there was none.
func (g *groupRate) answered(began, now time.Time) (float64, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.answers.add(now)
	if now.Before(g.early.until) && began.Before(g.cutAt) {
		g.early.n++
		if r := min(rateCut*float64(g.early.n), g.early.cap); r > g.learned {
			g.learned = r
			g.applyLocked()
		}
		return 0, false
	}
	if g.learned == 0 || now.Sub(g.raisedAt) < rateProbeEvery {
		return 0, false
	}
	g.learned *= 1.1
	g.raisedAt = now
	if g.qps > 0 && g.learned >= g.qps/float64(g.members) || g.learned >= rateForget {
		g.learned = 0
	}
	g.applyLocked()
	lim := g.lim.Load()
	if lim == nil { // forgotten, without a configured rate: unlimited
		return 0, true
	}
	return float64(lim.Limit()), true
}

// secondCounter counts events over the last second, in tenths of a second.
type secondCounter struct {
	tenth  int64 // the tenth of a second (since the epoch) counts[tenth%10] is for
	counts [10]int64
	// since is when the events began to come without a gap of a second;
	// latest is the last one.
	since, latest time.Time
}

// fullSecond reports whether events have come for a second (to a tenth)
// without a gap of a second: then last counts a whole second of them.
func (c *secondCounter) fullSecond(now time.Time) bool {
	return !c.since.IsZero() && now.Sub(c.latest) <= time.Second && now.Sub(c.since) >= 900*time.Millisecond
}

func (c *secondCounter) advance(now time.Time) {
	t := now.UnixMilli() / 100
	switch {
	case t <= c.tenth:
		return
	case t-c.tenth >= 10:
		clear(c.counts[:])
	default:
		for i := c.tenth + 1; i <= t; i++ {
			c.counts[i%10] = 0
		}
	}
	c.tenth = t
}

func (c *secondCounter) add(now time.Time) {
	c.advance(now)
	c.counts[c.tenth%10]++
	if c.latest.IsZero() || now.Sub(c.latest) > time.Second {
		c.since = now
	}
	c.latest = now
}

// last returns the events of the last second (the current tenth and the
// nine before it).
func (c *secondCounter) last(now time.Time) int64 {
	c.advance(now)
	var n int64
	for _, v := range c.counts {
		n += v
	}
	return n
}

// wait blocks until a call may be made, or ctx or stop (if not nil) ends.
//
// Waiters pass in the order they came, and keep their places when the
// limit changes: the one holding the turn reserves again at once, after
// those past it (the queue), whom the change reserved for again in their
// order (requeueLocked); none goes back to the turn's queue, where frequent
// changes could keep one waiting for good.
func (g *groupRate) wait(ctx, stop context.Context) error { return g.waitUnless(ctx, stop, nil) }

// waitUnless is wait, which gives up its place and returns errSpentWaiting
// when spent (if not nil) is closed first.
func (g *groupRate) waitUnless(ctx, stop context.Context, spent <-chan struct{}) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if stop != nil && stop.Err() != nil {
		return context.Canceled // as when stop ends during the wait
	}
	if g.lim.Load() == nil && g.passedUnlimited() {
		return nil
	}
	if stop != nil {
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(ctx)
		defer cancel()
		defer context.AfterFunc(stop, cancel)()
	}
	select {
	case g.turn <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	case <-spent:
		return errSpentWaiting
	}
	w := new(rateWaiter)
	var changed <-chan struct{}
	for { // holding the turn
		var lim *rate.Limiter
		if lim, changed = g.reserve(w); lim == nil { // unlimited: passed
			<-g.turn
			return nil
		}
		ahead := max(time.Duration(float64(time.Second)/float64(lim.Limit())), rateLookahead)
		early := w.r.Delay() - ahead
		if early <= 0 {
			break
		}
		err := sleepUnless(ctx, early, changed, spent)
		if err == nil {
			break
		}
		if err != errRateChanged {
			w.r.Cancel()
			<-g.turn
			return err
		}
		// Reserved at the old limit: again, at the new one, keeping the turn.
	}
	if changed = g.enqueue(w, changed); changed == nil { // unlimited meanwhile: passed
		<-g.turn
		return nil
	}
	<-g.turn // the next waiter reserves the following slot meanwhile
	for {
		var d time.Duration // no limit since the change: pass at once
		if r := g.reservation(w); r != nil {
			d = r.Delay()
		}
		err := sleepUnless(ctx, d, changed, spent)
		if err != nil && err != errRateChanged {
			g.leave(w)
			return err
		}
		var passed bool
		if passed, changed = g.passedQueued(w, changed); passed {
			return nil
		}
		// The limit changed (as the sleep ended, perhaps): reserved again.
	}
}

// reserve reserves w the next token of the limiter in force, and returns
// the limiter and the channel closed at the next change; with no limit, it
// records the call's pass and returns no limiter.
func (g *groupRate) reserve(w *rateWaiter) (*rate.Limiter, <-chan struct{}) {
	g.mu.Lock()
	defer g.mu.Unlock()
	lim := g.lim.Load()
	if lim == nil {
		g.lastPass = time.Now()
		return nil, nil
	}
	w.r = lim.Reserve() // a burst of 1: always possible
	return lim, g.changedLocked()
}

// enqueue puts w, holding the turn with a reservation made before changed
// closed, last in the queue, reserving again if the limit changed since;
// it returns the channel closed at the next change, or nil when there is no
// limit (the call's pass recorded).
func (g *groupRate) enqueue(w *rateWaiter, changed <-chan struct{}) <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-changed:
		lim := g.lim.Load()
		if lim == nil {
			g.lastPass = time.Now()
			return nil
		}
		w.r = lim.Reserve()
	default:
	}
	g.queue = append(g.queue, w)
	return g.changedLocked()
}

// reservation returns w's reservation (nil: no limit).
func (g *groupRate) reservation(w *rateWaiter) *rate.Reservation {
	g.mu.Lock()
	defer g.mu.Unlock()
	return w.r
}

// passedQueued ends w's wait at the end of a sleep, unless the limit
// changed (changed is closed) and w, reserved again, waits on: then it
// returns the channel of the next change. A pass is recorded (lastPass).
func (g *groupRate) passedQueued(w *rateWaiter, changed <-chan struct{}) (bool, <-chan struct{}) {
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-changed:
		if w.r != nil {
			return false, g.changedLocked()
		}
	default:
	}
	g.dequeueLocked(w)
	g.lastPass = time.Now()
	return true, nil
}

// leave takes w out of the queue without a pass. Its slot is given back:
// the waiters after it, and the turn's holder, reserve again in their
// order on a new limiter whose last token is at the last pass, as at a
// change (x/time/rate's Cancel gives nothing back once a later
// reservation was made).
func (g *groupRate) leave(w *rateWaiter) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.dequeueLocked(w)
	lim := g.lim.Load()
	if w.r == nil || lim == nil {
		return
	}
	l := rate.NewLimiter(lim.Limit(), 1)
	if !g.lastPass.IsZero() {
		l.ReserveN(g.lastPass, 1)
	}
	g.lim.Store(l)
	g.requeueLocked()
}

// dequeueLocked takes w out of the queue.
func (g *groupRate) dequeueLocked(w *rateWaiter) {
	if i := slices.Index(g.queue, w); i >= 0 {
		g.queue = slices.Delete(g.queue, i, i+1)
	}
}

// passedUnlimited records a call's pass (lastPass) while there is no limit,
// and reports whether there was none: a first limit built meanwhile takes
// its token at this pass, or the call waits for it.
func (g *groupRate) passedUnlimited() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.lim.Load() != nil {
		return false
	}
	g.lastPass = time.Now()
	return true
}

// errRateChanged ends sleepUnless when the limit changed.
var errRateChanged = errors.New("processor: the provider rate changed")

// errSpentWaiting ends a wait for the rate (waitUnless) when the budget of
// the waiting call's day is spent.
var errSpentWaiting = fmt.Errorf("%w while the call waited for the rate", ErrBudgetSpent)

// sleepUnless is sleep, ended early with errRateChanged when changed is
// closed, or errSpentWaiting when spent is.
func sleepUnless(ctx context.Context, d time.Duration, changed, spent <-chan struct{}) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-changed:
		return errRateChanged
	case <-spent:
		return errSpentWaiting
	case <-ctx.Done():
		return ctx.Err()
	}
}

// now takes a call's place at once if the rate has one free, without
// waiting or queueing behind the waiters; it reports whether it did.
func (g *groupRate) now() bool {
	if g.lim.Load() == nil && g.passedUnlimited() {
		return true
	}
	select {
	case g.turn <- struct{}{}:
	default:
		return false // a waiter holds the turn: the next place is its
	}
	defer func() { <-g.turn }()
	g.mu.Lock()
	defer g.mu.Unlock()
	if lim := g.lim.Load(); lim != nil && !lim.Allow() {
		return false
	}
	g.lastPass = time.Now()
	return true
}

// rateLookahead is how far ahead of its slot a waiter may reserve it (or one
// interval, if longer): the wake-ups of the waiters taking turns may be late
// by this much without costing the rate, and a new share applies to the
// calls after it.
const rateLookahead = 50 * time.Millisecond

// sleep waits d, or until ctx ends (then its error).
func sleep(ctx context.Context, d time.Duration) error { return sleepUnless(ctx, d, nil, nil) }
