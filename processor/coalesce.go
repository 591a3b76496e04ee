package processor

import (
	"cmp"
	"context"
	"errors"
	"runtime"
	"slices"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// calls coordinates the paid calls of each mobile: at most one at a time,
// shared by every concurrent lookup of it.
//
// The first lookup of a mobile that the knowledge does not answer makes the
// call (with its own date); the lookups that come while it is in flight wait
// for it. When it ends, the knowledge is asked again for each waiter, which
// the answer may now imply (res 1 at a late date answers every earlier one).
// Of the waiters it does not answer, one makes the next call, and the
// others wait for that one. Which one is chosen to need the fewest calls,
// one after the other, to settle them all (taking them as they come could
// need one per date in doubt):
//
//   - when the answers so far bound the holder's activation date A on one
//     side only, the date farthest on the open side: after a res 2 at D
//     (A ≤ D), the earliest date in doubt, which settles every one if A is
//     before them all, as it is for a number not re-issued since; after a
//     res 1 at D (A > D), the latest. If A is among them after all, that
//     answer bounds it on both sides, and the next rule applies.
//   - when A is bounded on both sides (or not at all), the median of the
//     dates in doubt: whatever the answer, it settles at least half of
//     them, so k dates take about log2(k) calls.
//
// A waiter shares the call's failure only when it is the provider's, not
// the lookup's: unavailable and fatal errors are returned to every waiter;
// a rejection (the caller's date or number) and the caller's own
// cancellation are not, and a waiter makes the next call instead.
//
// The processor's waiters hold no in-flight slot and no task while they
// wait (await): a slot is for a call, and a number's first answers are a
// chain of calls, one at a time, that the records of other numbers must
// not wait behind. (With 256 slots and waiters in them, a bench run of 100
// numbers did almost nothing for its first 120 ms while the chains ran.)
//
// The mobiles are split into shards by key, each with its own lock: when a
// call ends, its waiters are asked again under the lock, and with one lock
// the first answers of a cache-warm bench run, 100 numbers with about 100
// waiters each, queued behind one another, and the dispatchers behind them
// (570 ms of waiting for the lock in a run of 0.4 s).
type calls struct {
	shards [callShards]callShard
}

const callShards = 64

type callShard struct {
	mu      sync.Mutex
	pending map[MobileKey]*pendingCall // the mobiles with a call in flight
	_       [48]byte                   // a cache line each
}

func newCalls() *calls {
	c := new(calls)
	for i := range c.shards {
		c.shards[i].pending = make(map[MobileKey]*pendingCall)
	}
	return c
}

// shard returns key's shard (keys are HMACs: uniform).
func (c *calls) shard(key MobileKey) *callShard { return &c.shards[key[1]%callShards] }

// pendingCall is a mobile's call in flight and the lookups waiting for it.
type pendingCall struct {
	waiters []*waiter
	// started: the lookup that leads the call holds an in-flight slot (it
	// is making the call). Not yet when the leader came through await, or
	// was woken from it to make the next call: it waits for a slot, and a
	// lookup that holds one takes the call over (share), so that lookups
	// holding every slot (records held back, retrying) never wait for a
	// leader that waits for a slot.
	started bool
}

// waiter is a lookup waiting for another's call of its mobile. It is woken
// once: with its answer, or to make the next call.
type waiter struct {
	l *Lookup
	// day is l.Date as a number (packDay; 0 if it is not a day): a call's
	// end asks the knowledge again for each waiter, and reading the date
	// here, rather than through l, spares it two cache misses a waiter.
	day  int32
	wake chan wakeup // buffered: the waker never blocks
	// to, if set, is woken instead of sending on wake, once, after the
	// call's shard lock is released (await).
	to wakeable
}

// wakeable is a waiter of await's: its woken is called once.
type wakeable interface{ woken(wakeup) }

// wake is a waiter of await's to wake, and with what: what a call's end
// collects under its shard's lock, to wake once it is released.
type wake struct {
	to wakeable
	u  wakeup
}

// send wakes w with u: at once on its channel, or, for await's waiters,
// by adding it to later, which the waker wakes once it has released its
// shard's lock.
func (w *waiter) send(u wakeup, later *[]wake) {
	if w.to == nil {
		w.wake <- u
		return
	}
	*later = append(*later, wake{w.to, u})
}

type wakeup struct {
	lead bool // make the next call
	res  Result
	err  error
}

// share makes one call at a time per mobile for a lookup the knowledge did
// not answer (see calls).
func (c *CostControl) share(ctx context.Context, key MobileKey, l Lookup) (Result, error) {
	sh := c.calls.shard(key)
	sh.mu.Lock()
	p := sh.pending[key]
	if p == nil {
		// The caller asked the knowledge before it came here; a call of
		// this mobile may have ended since, and taught what answers l.
		// Asked again under the lock: a call's answer is in the knowledge
		// before its entry here goes (called), so none can slip between.
		// (A replay of 20,000 events paid again, one run in about twenty,
		// for a date that an answer of a moment before implied.)
		var r Result
		if c.answerKnown(key, &l, &r) {
			sh.mu.Unlock()
			return r, nil
		}
		sh.pending[key] = &pendingCall{started: true}
		sh.mu.Unlock()
		return c.lead(ctx, key, l)
	}
	if !p.started {
		// Asked again first, as above: the call that just ended (whose
		// waiter now leads) may have answered l. (A lookup that asked
		// before that answer paid for a date it implied.)
		var r Result
		if c.answerKnown(key, &l, &r) {
			sh.mu.Unlock()
			return r, nil
		}
		p.started = true // the leader finds it taken over (claim) and waits for this call
		sh.mu.Unlock()
		return c.lead(ctx, key, l)
	}
	w := &waiter{l: &l, day: dayOf(l.Date), wake: make(chan wakeup, 1)}
	p.waiters = append(p.waiters, w)
	sh.mu.Unlock()

	if !l.coalesced { // counted already if it waited in await, and found its call taken over since
		c.coalesced.Add(1)
	}
	trace.SpanFromContext(ctx).SetAttributes(attribute.Bool("twosell.coalesced", true))
	select {
	case u := <-w.wake:
		if u.lead {
			return c.lead(ctx, key, l)
		}
		return u.res, u.err
	case <-ctx.Done():
	}
	sh.mu.Lock()
	left := p.remove(w)
	sh.mu.Unlock()
	if !left { // woken meanwhile
		if u := <-w.wake; u.lead {
			c.called(key, Result{}, ctx.Err()) // the next waiter calls instead
		}
	}
	return Result{}, ctx.Err()
}

// await is share for the processor's dispatcher, without blocking: if a
// call of w.l's mobile is in flight, w waits for it without a task,
// w.to.woken is called once, on the goroutine of the call that ends the
// wait, and await returns true (leave ends the wait early). With no call in
// flight, it returns false, and w.l leads its mobile's call from now on
// (Lookup.leads): the lookup takes the usual way (Enrich, on a task), and
// the lookups of its mobile that come while it waits for a slot wait for
// it here, rather than each taking a slot to wait in share.
//
// w.to.woken gets the answer, a shared failure, or lead: w.l makes the
// next call of its mobile, which its Enrich does (Lookup.leads) and which
// must be made or handed on (c.called with the lookup's own cancellation).
func (c *CostControl) await(w *waiter) bool {
	if c.cache == nil {
		return false
	}
	l := w.l
	key := l.key
	sh := c.calls.shard(key)
	sh.mu.Lock()
	p := sh.pending[key]
	if p == nil {
		sh.pending[key] = &pendingCall{}
		l.leads = true
		sh.mu.Unlock()
		return false
	}
	w.day = dayOf(l.Date)
	p.waiters = append(p.waiters, w)
	l.coalesced = true
	sh.mu.Unlock()
	c.coalesced.Add(1)
	return true
}

// leave ends the wait of w, await's waiter, early, and reports whether it
// was still waiting (false: it is woken, or will be).
func (c *CostControl) leave(w *waiter) bool {
	key := w.l.key
	sh := c.calls.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	p := sh.pending[key]
	return p != nil && p.remove(w)
}

// claim starts the call of key that a lookup was made to lead while it had
// no slot (await), now that it has one, and reports whether it is still
// its to make: false when a lookup holding a slot took it over meanwhile
// (share), or it ended.
func (c *CostControl) claim(key MobileKey) bool {
	sh := c.calls.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	p := sh.pending[key]
	if p == nil || p.started {
		return false
	}
	p.started = true
	return true
}

// errLeaderPanicked ends, for its waiters, a call whose Enricher panicked
// (and whose caller recovered): not shared, the next waiter makes the call.
var errLeaderPanicked = errors.New("processor: the lookup making the call panicked")

// lead makes the call of key for l, then settles the lookups waiting for it.
func (c *CostControl) lead(ctx context.Context, key MobileKey, l Lookup) (Result, error) {
	settled := false
	defer func() {
		// A panic that a caller recovers (a library's user) would leave the
		// call pending for good, and every later lookup of the number
		// waiting for it.
		if !settled {
			c.endCall(key, "", Result{}, errLeaderPanicked)
		}
	}()
	r, known, err := c.payUnlessKnown(ctx, key, l)
	settled = true
	if known {
		// Answered without the call, by what was learned while it waited
		// for the rate: its waiters are asked again, and one of those in
		// doubt makes the call.
		c.called(key, Result{}, nil)
		return r, nil
	}
	c.endCall(key, l.Date, r, err)
	return r, err
}

// called settles the lookups that waited for the call of key that ended
// with r and err, and chooses who makes the next call, if one is needed.
func (c *CostControl) called(key MobileKey, r Result, err error) { c.endCall(key, "", r, err) }

// endCall is called, for a call that asked about date ("" for a call
// handed on unmade): what its answer proves answers the waiters even if
// the cache no longer holds it.
func (c *CostControl) endCall(key MobileKey, date string, r Result, err error) {
	var later []wake
	c.calledLocked(key, date, r, err, &later)
	for i, w := range later {
		w.to.woken(w.u)
		if i == 0 && w.u.lead && len(later) > 1 {
			// The lead's task is this core's next goroutine: let it
			// make its call before the others' outputs are built.
			// (Measured on the cache-warm bench, 4 runs each: between
			// a number's answer and its next call, 84–182 ms in all
			// before, 18–33 ms with this and the lead woken first.)
			runtime.Gosched()
		}
	}
}

func (c *CostControl) calledLocked(key MobileKey, date string, r Result, err error, later *[]wake) {
	sh := c.calls.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	p := sh.pending[key]
	if n := len(p.waiters) + 1; cap(*later) < n {
		*later = make([]wake, 0, n) // grown once: a first answer wakes a hundred
	}
	doubt := p.waiters[:0] // the waiters the knowledge does not answer
	var known knownReading
	if err == nil && date != "" && len(p.waiters) > 0 {
		known.answered, known.hasAnswered = FactOf(r, date, c.cfg.Now())
	}
	defer known.counted(c, key)
	for _, w := range p.waiters {
		switch {
		case err != nil && sharedFailure(err):
			if errors.Is(err, ErrBudgetSpent) {
				c.refusals.Add(1) // as the call's own lookup was
			}
			w.send(wakeup{res: Result{Mode: r.Mode, Code: r.Code}, err: err}, later)
		case err == nil && r.Status == StatusSkipped:
			// The budget is spent (EmitSkipped): so it is for this
			// lookup, unless knowledge answers it.
			var a Result
			if c.cached(key, w.l.Date, time.Time{}, &a) {
				w.send(wakeup{res: a}, later)
				continue
			}
			c.skipped.Add(1)
			w.send(wakeup{res: r}, later)
		default:
			if a, ok := known.answer(c, key, w); ok {
				switch {
				case a.Source != SourceCache:
				case known.written != nil:
					// Its output cites a call whose ledger write may be in
					// flight, this one's or an earlier one's (found by
					// review: a waiter answered from the call before this
					// one did not wait): written once the ledger holds it.
					a.durable = known.written
				case r.durable != nil && known.fromCall(a):
					// The cache no longer holds the number: the call's own
					// answer, written once the ledger holds it.
					a.durable = r.durable
				}
				w.send(wakeup{res: a}, later)
				continue
			}
			doubt = append(doubt, w)
		}
	}
	clear(p.waiters[len(doubt):]) // woken: not kept alive by the slice
	if len(doubt) == 0 {
		delete(sh.pending, key)
		return
	}
	i := nextCaller(doubt, known.live(c)) // every waiter in doubt was asked: known is read
	next := doubt[i]
	p.waiters = slices.Delete(doubt, i, i+1)
	p.started = next.to == nil // share's waiters hold a slot; await's wait for one
	next.send(wakeup{lead: true}, later)
	if n := len(*later); n > 1 && (*later)[n-1].u.lead {
		// The next call first: the answered waiters build and hand over
		// their outputs as they are woken, one after the other, and the
		// number's next answer should not wait for them.
		(*later)[0], (*later)[n-1] = (*later)[n-1], (*later)[0]
	}
}

// knownReading answers the waiters of a call that ended from one reading
// of what is known about their mobile, rather than each from the cache
// (its lock, its map and its list for every waiter): in the first second of
// a cache-warm bench run, a number's hundred waiters were asked again after
// each of its calls, and that was 8% of the CPU.
type knownReading struct {
	read, ok bool
	k        packedKnowledge
	// written is the ledger writes still in flight of the calls whose
	// facts k holds (cacheEntry.written): an answer from k waits for them,
	// as the cache's own answers do.
	written *durable
	// answered is what the call's answer proved (if hasAnswered): it
	// answers the waiters when the cache evicted the number meanwhile.
	answered    Fact
	hasAnswered bool
	now         time.Time // the clock, once a fact that expires could answer
	answers     [FactNoRecord + 1]int64
}

// answer is answerKnown for w, a waiter of key's call, at the time the
// call ended.
func (r *knownReading) answer(c *CostControl, key MobileKey, w *waiter) (Result, bool) {
	if !r.read {
		r.k, r.written, r.ok = c.cache.peek(key)
		if !r.ok && r.hasAnswered {
			var k Knowledge
			k.Observe(r.answered)
			r.k, r.ok = pack(k), true
		}
		r.read = true
	}
	if r.ok {
		now := func() time.Time { return r.clock(c) }
		if f, ok := r.k.answerDay(w.day, w.l.Date, now, c.cfg.TTL); ok {
			r.answers[f.Kind]++
			return f.Result(), true
		}
	}
	return c.tooOld(w.l)
}

// fromCall reports whether a, an answer of answer's, is the call's own
// answer's fact.
func (r *knownReading) fromCall(a Result) bool {
	return r.hasAnswered && a.OrderID == r.answered.OrderID && a.Status == Status(r.answered.Kind.String())
}

// clock is the time the call ended, read once.
func (r *knownReading) clock(c *CostControl) time.Time {
	if r.now.IsZero() {
		r.now = c.cfg.Now()
	}
	return r.now
}

// live is what the reading knows that has not expired.
func (r *knownReading) live(c *CostControl) Knowledge {
	if !r.ok {
		return Knowledge{}
	}
	return r.k.unpack().Live(r.clock(c), c.cfg.TTL)
}

// counted counts the answers given in the cache's metrics.
func (r *knownReading) counted(c *CostControl, key MobileKey) {
	if r.answers != ([FactNoRecord + 1]int64{}) {
		c.cache.count(key, &r.answers)
	}
}

// nextCaller sorts the waiters in doubt by date and returns the index of
// the one to make the next call (see calls), given k, what is known of
// their mobile.
func nextCaller(doubt []*waiter, k Knowledge) int {
	byDate := func(a, b *waiter) int {
		if a.day != 0 || b.day != 0 {
			return cmp.Compare(a.day, b.day)
		}
		return cmp.Compare(a.l.Date, b.l.Date)
	}
	slices.SortStableFunc(doubt, byDate)
	switch lower, upper := k.Lower.Kind != 0, k.Upper.Kind != 0; {
	case lower && !upper:
		return len(doubt) - 1
	case upper && !lower:
		return 0
	}
	// The median of the dates, not of the waiters: many waiters for one
	// date would pull the call onto it, and the calls a binary search
	// needs depend on the dates in doubt alone.
	var starts []int // where each date's waiters start
	for i := range doubt {
		if i == 0 || byDate(doubt[i-1], doubt[i]) != 0 {
			starts = append(starts, i)
		}
	}
	return starts[len(starts)/2]
}

// remove takes w from the waiters, and reports whether it was there (not
// woken yet). Its shard's lock must be held.
func (p *pendingCall) remove(w *waiter) bool {
	i := slices.Index(p.waiters, w)
	if i < 0 {
		return false
	}
	p.waiters = slices.Delete(p.waiters, i, i+1)
	return true
}

// sharedFailure reports whether a call's failure is the provider's, which
// every waiter shares, rather than the calling lookup's own.
func sharedFailure(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, errStopping) ||
		errors.Is(err, errLeaderPanicked) {
		return false // the leader's partition stops, perhaps not the waiter's
	}
	return DispositionOf(err) != DispositionReject
}
