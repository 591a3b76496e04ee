package processor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// CostConfig configures CostControl (DESIGN.md, "Cost controls"). The zero
// value of every optional field is replaced by its default (in parentheses).
type CostConfig struct {
	// Secret keys the hash of mobile numbers (HMAC-SHA256) in the knowledge
	// cache and the ledger (required). Instances that share a ledger must
	// share it: a number hashed under another secret is another key.
	Secret []byte

	// DisableCache makes every lookup a paid call: no knowledge cache and no
	// coalescing. The budget, the rate limit and the ledger still apply.
	DisableCache bool
	// MaxEntries bounds the knowledge cache (1,000,000 mobiles); the least
	// recently used entry goes first.
	MaxEntries int
	// TTL says how long res 2 (NotRecycled, 168h) and res 3 / no record
	// (Short, 1h) answer lookups; res 1 never expires.
	TTL KnowledgeTTL

	// QPS is the request rate allowed to the whole consumer group; each
	// instance takes QPS divided by the group's members that hold input
	// partitions (SetMembers).
	// 0: unlimited.
	QPS float64
	// DailyBudget caps paid calls per calendar day in Location, counted
	// across every instance and run that writes the ledger. 0: unlimited.
	DailyBudget int64
	// EmitSkipped answers a lookup that would need a paid call once the
	// budget is spent with status "skipped", instead of holding the record
	// back (Unavailable wrapping ErrBudgetSpent) until the budget renews.
	EmitSkipped bool
	// SkipOlderThan answers "skipped" to a lookup whose event (Lookup.At)
	// is older than this and that would need a paid call: a real-time
	// deadline. 0: off.
	SkipOlderThan time.Duration
	// PricePerCall is the estimated price of one paid call, for SpendCNY.
	PricePerCall float64
	// OneShot is a caller that makes a single lookup (twosell query), whose
	// result says what happened: the warning that the budget is spent
	// (records held back or written "skipped") is left to its error, and
	// the ledger's load is logged at DEBUG, not at INFO on every lookup.
	OneShot bool
	// Location is the time zone of the budget's day (UTC).
	Location *time.Location
	// Mode is the mode written in skipped outputs (how numbers would have
	// been sent).
	Mode string

	// Ledger, if set, is the compacted topic where every paid answer is
	// written and from which knowledge and the day's spend are loaded.
	Ledger *LedgerConfig

	TracerProvider trace.TracerProvider // (otel's global provider)
	Logger         *slog.Logger         // (slog.Default())
	Now            func() time.Time     // clock for knowledge and the budget (time.Now)
}

func (c *CostConfig) setDefaults() {
	setDefault(&c.MaxEntries, 1_000_000)
	setDefault(&c.TTL.NotRecycled, 168*time.Hour)
	setDefault(&c.TTL.Short, time.Hour)
	if c.Location == nil {
		c.Location = time.UTC
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.TracerProvider == nil {
		c.TracerProvider = otel.GetTracerProvider()
	}
}

func (c *CostConfig) validate() error {
	var errs []error
	if len(c.Secret) == 0 {
		errs = append(errs, errors.New("processor: CostConfig.Secret is required: it keys the hash of mobile numbers"))
	}
	if c.MaxEntries < 1 || c.TTL.NotRecycled < 0 || c.TTL.Short < 0 {
		errs = append(errs, errors.New("processor: CostConfig.MaxEntries must be positive and the TTLs not negative"))
	}
	if c.QPS < 0 || c.DailyBudget < 0 || c.SkipOlderThan < 0 || c.PricePerCall < 0 {
		errs = append(errs, errors.New("processor: CostConfig.QPS, DailyBudget, SkipOlderThan and PricePerCall must not be negative"))
	}
	if c.Ledger != nil && c.Ledger.Topic == "" {
		errs = append(errs, errors.New("processor: LedgerConfig.Topic is required"))
	}
	return errors.Join(errs...)
}

// CostStats is a snapshot of what the cost controls did since they started.
type CostStats struct {
	// PaidCalls counts the requests this instance made that the provider
	// may have billed: every answer, and each request whose outcome is
	// unknown (UncertainCalls).
	PaidCalls int64
	// UncertainCalls counts the requests among PaidCalls that gave no
	// answer but may have been answered and billed (timed out, cut off).
	UncertainCalls int64
	// CacheAnswers counts lookups answered without a call, by the status
	// they answered with: recycled, not_recycled, no_activation_date,
	// no_record.
	CacheAnswers map[string]int64
	// Coalesced counts lookups that waited for another lookup's call of the
	// same mobile instead of making their own.
	Coalesced int64
	// BudgetRemaining is what is left of today's budget, for every
	// instance together; -1 without a budget.
	BudgetRemaining int64
	// BudgetSpentToday is today's paid calls, of every instance the ledger
	// reports.
	BudgetSpentToday int64
	// SpendCNY is PaidCalls times the price per call.
	SpendCNY float64
	// Skipped counts lookups answered "skipped" (budget spent with
	// EmitSkipped, or older than SkipOlderThan).
	Skipped int64
	// BudgetRefusals counts lookups refused for the budget (held back).
	BudgetRefusals int64

	CacheEntries   int   // mobiles known now
	CacheEvictions int64 // mobiles forgotten to stay within MaxEntries
	LedgerRecords  int64 // ledger records read (loaded, then followed)
	// LedgerUnreadable counts, of LedgerRecords, those skipped because
	// twosell could not read them: another tool's, or another version's.
	LedgerUnreadable int64
	LedgerErrors     int64 // paid calls (answers, and requests whose outcome is unknown) whose ledger records could not be written
	// LedgerLost counts, of them, the call records given up unwritten when
	// the ledger closed (logged as an error with their order ids).
	LedgerLost int64
	Members    int     // consumer group members the rate is divided among
	QPS        float64 // this instance's rate limit now: its share, or what request-limit refusals taught if lower; 0: unlimited

	// LedgerForeignLoaded and LedgerForeignFollowed count the ledger's
	// knowledge records written under another cache secret, skipped (they
	// answer nothing here): read while loading it, and while following it,
	// that is written by an instance that runs now. See ledgerSecretHeader.
	LedgerForeignLoaded, LedgerForeignFollowed int64
}

// CostReporter is what a Processor asks for the cost counters of its
// Stats (Config.Cost). CostControl implements it.
type CostReporter interface {
	CostStats() CostStats
}

// CostControl is an Enricher that wraps another (the paid provider) with
// the cost controls: it answers from what earlier paid answers prove (the
// knowledge cache), lets concurrent lookups of one mobile share a call,
// writes every paid answer to the ledger and learns from everyone else's,
// and keeps calls within the group's request rate and the daily budget.
//
// Answers from knowledge say Source "cache" and carry the order id of the
// answer they came from. A lookup that needs a call when the budget is spent
// fails with Unavailable(ErrBudgetSpent), which the processor holds back,
// or, with EmitSkipped, is answered Status "skipped".
//
// Call Open before the first lookup, to load the ledger, and Close after the
// last. CostControl is safe for concurrent use.
type CostControl struct {
	next   Enricher
	cfg    CostConfig
	log    *slog.Logger
	tracer trace.Tracer // nil when not tracing
	hasher *mobileHasher
	cache  *knowledgeCache // nil with DisableCache
	budget *budget
	rate   *groupRate
	ledger *ledger // nil without a ledger

	calls *calls
	// afterObserve, if set (by tests), is called in pay between the cache's
	// learning a paid answer and the answer's ledger write.
	afterObserve func(MobileKey)

	paid, uncertain, coalesced, skipped, refusals, ledgerErrors atomic.Int64
	warnedDay                                                   atomic.Value // string: the day the budget-spent warning was logged
	refusedDay                                                  atomic.Value // string: the last day a lookup found no unit of the budget
	renewedDay                                                  atomic.Value // string: the day its renewal was logged (noteRenewed)

	// life orders Open and Close: a second Open does nothing, and a Close
	// before Open (an error path closing what it has) leaves a later Open
	// and Close whole (found by review: the first left the ledger's client
	// running; the second made Close wait for ever).
	life           sync.Mutex
	opened, closed bool
}

// NewCostControl wraps next with the cost controls of cfg.
func NewCostControl(next Enricher, cfg CostConfig) (*CostControl, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if next == nil {
		return nil, errors.New("processor: NewCostControl: nil Enricher")
	}
	c := &CostControl{
		next:   next,
		cfg:    cfg,
		log:    cfg.Logger,
		hasher: newMobileHasher(cfg.Secret),
		budget: newBudget(cfg.DailyBudget, cfg.Location, cfg.Now),
		rate:   newGroupRate(cfg.QPS),
		calls:  newCalls(),
	}
	if tracing(cfg.TracerProvider) {
		c.tracer = cfg.TracerProvider.Tracer("github.com/twosell/twosell/processor")
	}
	if !cfg.DisableCache {
		c.cache = newKnowledgeCache(cfg.MaxEntries)
	}
	if cfg.Ledger != nil {
		c.ledger = newLedger(*cfg.Ledger, cfg.Logger, c.apply)
		c.ledger.failed = c.ledgerFailed
		c.ledger.secretID = secretID(c.hasher)
	}
	return c, nil
}

// Open loads the ledger, if there is one: the knowledge it holds and the
// day's paid calls, creating the topic if it is missing and allowed to. It
// returns once everything written before the call is loaded, and keeps
// following the ledger (other instances' answers) until Close. A second
// Open does nothing.
func (c *CostControl) Open(ctx context.Context) error {
	c.life.Lock()
	defer c.life.Unlock()
	if c.ledger == nil || c.opened || c.closed {
		return nil
	}
	start := time.Now()
	if err := c.ledger.open(ctx); err != nil {
		return err
	}
	c.opened = true
	// Without the cache nothing is kept of what the ledger knows: say so,
	// rather than "0 mobiles known" (found by a walkthrough: query --fresh
	// seemed to have lost the ledger).
	known := slog.Any("mobiles_known", "not kept (the cache is off)")
	if c.cache != nil {
		entries, _ := c.cacheStats()
		known = slog.Int("mobiles_known", entries)
	}
	level := slog.LevelInfo
	if c.cfg.OneShot {
		level = slog.LevelDebug
	}
	c.log.Log(ctx, level, "ledger loaded", "topic", c.cfg.Ledger.Topic, "records", c.ledger.read.Load(), "unreadable", c.ledger.bad.Load(),
		known, "paid_today", c.budget.spent(), "took", time.Since(start).Round(time.Millisecond))
	if n := c.ledger.bad.Load(); n > 0 {
		c.log.Warn("skipped ledger records twosell cannot read: what they know is not reused, and the numbers are paid for again; "+
			"records written by a later twosell version are read by that version (run it again after a rollback), "+
			"and records of other tools do not belong on the ledger topic",
			"topic", c.cfg.Ledger.Topic, "unreadable", n, "records", c.ledger.read.Load())
	}
	if n := c.ledger.foreignLoaded.Load(); n > 0 {
		c.log.Warn("the ledger holds knowledge written under a different cache.secret: it cannot answer lookups here, "+
			"and the numbers it knows will be paid for again; to reuse it, set cache.secret to the secret it was written under "+
			"(when cache.secret is not set, it is derived from juhe.key: after a change of key, the previous key's; README, Ledger, says how to compute it)",
			"topic", c.cfg.Ledger.Topic, "knowledge_records", n)
	}
	return nil
}

// Close stops following the ledger and waits, up to ctx, for the ledger
// records being written.
func (c *CostControl) Close(ctx context.Context) {
	c.life.Lock()
	open := c.opened && !c.closed
	c.closed = c.closed || c.opened
	c.life.Unlock()
	if open {
		c.ledger.close(ctx)
	}
}

// SetMembers divides the group's rate, and what is left of the daily
// budget, among n members: give it to Config.OnAssigned.
func (c *CostControl) SetMembers(n int) {
	c.rate.setMembers(n)
	c.budget.setMembers(n)
	share, _ := c.rate.share()
	if c.cfg.QPS > 0 {
		c.log.Info("provider rate divided among the group", "group_qps", c.cfg.QPS, "members", n, "instance_qps", share)
	}
}

// LedgerUnreadable returns why the ledger could not be read at its last
// poll (the topic deleted, the brokers unreachable), or nil when it could or
// there is no ledger: while it cannot be read, other instances' answers are
// not learned, and the outputs of paid answers may wait for their ledger
// records.
func (c *CostControl) LedgerUnreadable() error {
	if c.ledger == nil {
		return nil
	}
	return c.ledger.Unreadable()
}

// LedgerUnwritable returns why the ledger cannot be written now (its
// writes in flight unanswered for 10 s), or nil when it can or there is no
// ledger: the outputs of paid answers wait for their ledger records.
func (c *CostControl) LedgerUnwritable() error {
	if c.ledger == nil {
		return nil
	}
	return c.ledger.Unwritable(time.Now())
}

// CostStats returns a snapshot of the counters.
func (c *CostControl) CostStats() CostStats {
	s := CostStats{
		PaidCalls:        c.paid.Load(),
		UncertainCalls:   c.uncertain.Load(),
		CacheAnswers:     make(map[string]int64, 4),
		Coalesced:        c.coalesced.Load(),
		BudgetRemaining:  c.budget.remaining(),
		BudgetSpentToday: c.budget.spent(),
		Skipped:          c.skipped.Load(),
		BudgetRefusals:   c.refusals.Load(),
		LedgerErrors:     c.ledgerErrors.Load(),
	}
	// Rounded to a millionth of a yuan: the product's binary noise
	// (3 × 0.4 = 1.2000000000000002) showed in the metric (found by review).
	s.SpendCNY = math.Round(float64(s.PaidCalls)*c.cfg.PricePerCall*1e6) / 1e6
	var answers [FactNoRecord + 1]int64
	if c.cache != nil {
		answers = c.cache.answers()
	}
	for k := FactAfter; k <= FactNoRecord; k++ {
		s.CacheAnswers[k.String()] = answers[k]
	}
	s.CacheEntries, s.CacheEvictions = c.cacheStats()
	if c.ledger != nil {
		s.LedgerRecords, s.LedgerUnreadable = c.ledger.read.Load(), c.ledger.bad.Load()
		s.LedgerLost = c.ledger.lost.Load()
		s.LedgerForeignLoaded, s.LedgerForeignFollowed = c.ledger.foreignLoaded.Load(), c.ledger.foreignFollowed.Load()
	}
	s.QPS, s.Members = c.rate.share()
	return s
}

func (c *CostControl) cacheStats() (int, int64) {
	if c.cache == nil {
		return 0, 0
	}
	return c.cache.stats()
}

// Known returns what the cache knows about mobile (for tests and tools).
func (c *CostControl) Known(mobile string) (Knowledge, bool) {
	if c.cache == nil {
		return Knowledge{}, false
	}
	return c.cache.get(c.hasher.key(mobile))
}

// Implied reports whether what is known now (the cache, as loaded from the
// ledger and kept since) answers l without a paid call, and returns the
// mobile's key, by which callers can count distinct mobiles without holding
// the numbers. Unlike Enrich it counts nothing: it is for estimates
// ("replay --dry-run"). Without a cache nothing is implied.
func (c *CostControl) Implied(l Lookup) (MobileKey, bool) {
	key := c.hasher.key(l.Mobile)
	if c.cache == nil {
		return key, false
	}
	k, ok := c.cache.get(key)
	if !ok {
		return key, false
	}
	_, ok = k.Answer(l.Date, c.cfg.Now(), c.cfg.TTL)
	return key, ok
}

// apply takes in a record read from the ledger.
func (c *CostControl) apply(r ledgerRecord) {
	switch {
	case r.call != nil && !r.own:
		c.budget.countCall(r.call.Day, r.call.Instance+"/"+r.call.ID)
		if r.hasFact && c.cache != nil {
			c.cache.observe(r.key, r.fact)
		}
	case r.knowledge != nil && c.cache != nil:
		c.cache.merge(r.key, r.knowledge.knowledge())
	}
}

// Enrich answers l: from knowledge when earlier answers imply it, else by
// one paid call (shared with concurrent lookups of the same mobile) within
// the rate and the budget. See coalesce.go. Its span, twosell.cache, holds
// the paid call's spans, and says where the answer came from.
//
// A paid answer is returned once the ledger holds it.
func (c *CostControl) Enrich(ctx context.Context, l Lookup) (Result, error) {
	r, err := c.enrichDeferred(ctx, l)
	if r.durable != nil {
		_ = r.durable.wait(ctx) // a failed write is counted and logged by pay
		r.durable = nil
	}
	return r, err
}

// enrichDeferred is Enrich returning before the ledger holds a paid answer:
// the processor waits for Result.durable without holding an in-flight slot.
func (c *CostControl) enrichDeferred(ctx context.Context, l Lookup) (Result, error) {
	if c.tracer == nil {
		return c.enrich(ctx, l)
	}
	ctx, span := c.tracer.Start(ctx, "twosell.cache")
	defer span.End()
	r, err := c.enrich(ctx, l)
	if span.IsRecording() {
		span.SetAttributes(attribute.String("twosell.source", r.Source), attribute.String("twosell.status", string(r.Status)))
		if err != nil {
			span.SetStatus(codes.Error, DispositionOf(err).String()) // the error itself is on the call's span
		}
	}
	return r, err
}

func (c *CostControl) enrich(ctx context.Context, l Lookup) (Result, error) {
	if l.shared != nil {
		return l.shared.res, l.shared.err
	}
	key := l.key
	if !l.keyed {
		key = c.hasher.key(l.Mobile)
	}
	// Asked again after known's miss: another lookup's answer may imply
	// this one by now.
	var r Result
	if c.answerKnown(key, &l, &r) {
		if l.leads && c.claim(key) { // no call needed after all: the waiters are asked again
			c.called(key, Result{}, nil)
		}
		return r, nil // the hot path: nothing else to do, nothing allocated
	}
	if l.leads {
		if c.claim(key) {
			return c.lead(ctx, key, l)
		}
		return c.share(ctx, key, l) // taken over while it waited for a slot: it waits for that call
	}
	if c.cache == nil {
		return c.pay(ctx, key, l)
	}
	return c.share(ctx, key, l)
}

// known answers l if that needs no call: from knowledge, or skipped as too
// old. It keeps the mobile's key in l for the Enrich that follows a miss.
// The processor asks it first, and runs the lookups it answers without
// handing them to a task.
func (c *CostControl) known(ctx context.Context, l *Lookup, r *Result) bool {
	l.key, l.keyed = c.hasher.keyIn(l.memo, l.Mobile), true
	ok := c.answerKnown(l.key, l, r)
	if ok && c.tracer != nil {
		_, span := c.tracer.Start(ctx, "twosell.cache")
		span.SetAttributes(attribute.String("twosell.source", r.Source), attribute.String("twosell.status", string(r.Status)))
		span.End()
	}
	return ok
}

// answerKnown answers l into r without a call if it can: from what is
// known about key, or skipped as too old.
func (c *CostControl) answerKnown(key MobileKey, l *Lookup, r *Result) bool {
	if c.cache != nil && c.cached(key, l.Date, l.now, r) {
		return true
	}
	res, ok := c.tooOld(l)
	if ok {
		*r = res
	}
	return ok
}

// knownNow is answerKnown at the time now, for a lookup that waited for
// the rate: not at the dispatcher's time before the wait (Lookup.now).
func (c *CostControl) knownNow(key MobileKey, l Lookup, r *Result) bool {
	l.now = time.Time{}
	return c.answerKnown(key, &l, r)
}

// cached answers date into r from what is known about key, if that
// implies it, at the time now (zero: the clock's, if an answer needs it).
func (c *CostControl) cached(key MobileKey, date string, now time.Time, r *Result) bool {
	clock := c.cfg.Now
	if !now.IsZero() {
		clock = func() time.Time { return now }
	}
	return c.cache.answer(key, date, clock, c.cfg.TTL, r)
}

// tooOld answers "skipped" to a lookup older than SkipOlderThan.
func (c *CostControl) tooOld(l *Lookup) (Result, bool) {
	if c.cfg.SkipOlderThan <= 0 || l.At.IsZero() {
		return Result{}, false
	}
	now := l.now
	if now.IsZero() {
		now = c.cfg.Now()
	}
	if now.Sub(l.At) <= c.cfg.SkipOlderThan {
		return Result{}, false
	}
	c.skipped.Add(1)
	return Result{Status: StatusSkipped, Mode: c.cfg.Mode}, true
}

// pay makes one paid call within the budget and the rate, learns from its
// answer and writes it to the ledger.
//
// Each request counts, retries inside the Enricher included (BeforeRetry):
// each takes a rate token and a unit of the budget first, and a unit is
// given back only for a request the provider cannot have billed
// (Result.Billable); the others are paid, and written to the ledger (a
// request whose outcome is unknown as an "unavailable" call record), so
// that the budget is a cap on what the provider may bill.
func (c *CostControl) pay(ctx context.Context, key MobileKey, l Lookup) (res Result, err error) {
	res, _, err = c.payUnlessKnown(ctx, key, l)
	return res, err
}

// payUnlessKnown is pay, which reports whether it answered l without the
// call (known): once the rate let it go, what is known may answer l after
// all (an answer learned meanwhile, from another lookup or another
// instance's ledger record), or l may have grown older than SkipOlderThan
// while it waited. Found by review: such lookups were paid for.
func (c *CostControl) payUnlessKnown(ctx context.Context, key MobileKey, l Lookup) (res Result, known bool, err error) {
	day, berr := c.budget.reserve()
	if berr != nil {
		res, err = c.noBudget(ctx, berr)
		return res, false, err
	}
	c.noteRenewed(day)
	held := true         // day's unit, reserved for the first request and not yet confirmed
	var units []callUnit // the budget units of the requests made, one per request
	var fact Fact
	var answered bool
	var enriched Result // what the Enricher answered, for the uncertain requests' records
	defer func() {
		if held { // no request made
			c.budget.release(day)
		}
		// The answer, if any, is the last request's: its unit is paid, on
		// its day. Of the others, those that may have been billed are:
		// each by its bit when the Enricher says which, else as many as it
		// counts, the first ones (the units' days differ only when the
		// requests straddle midnight).
		last := len(units) - btoi(answered)
		var uncertain []string
		kept := 0 // units not given back so far
		for i, u := range units {
			if u.given { // given back before a retry (BeforeRetryBilled): not billed
				continue
			}
			paid := i >= last
			switch {
			case paid:
			case enriched.BillableRequests != 0 && len(units) <= 64:
				paid = enriched.BillableRequests&(1<<i) != 0
			default: // the first ones of those not given back
				paid = kept < enriched.Billable-btoi(answered)
			}
			kept++
			c.budget.settle(u.day, paid)
			if paid && i < last {
				uncertain = append(uncertain, u.day)
			}
		}
		if n := enriched.Resent; n > 0 {
			// Sent again by the Enricher's transport, with no unit of
			// their own: paid, over the budget if need be (they were made),
			// on the day of the last request (given back or not).
			d := units[len(units)-1].day
			c.budget.count(d, int64(n))
			for range n {
				uncertain = append(uncertain, d)
			}
		}
		if len(uncertain) > 0 {
			// What comes of the lookup (an output, committed) waits for
			// these records too: a crash before they are written would
			// leave the restart's budget short by them.
			res.durable = joinDurable(res.durable, c.uncertainCalls(key, l, enriched, uncertain)...)
		}
	}()
	stop := l.stop()
	if err := c.rate.waitUnless(ctx, stop, c.budget.spentSignal(day)); err != nil {
		switch {
		case ctx.Err() != nil:
			return Result{}, false, ctx.Err()
		case errors.Is(err, ErrBudgetSpent): // spent while it waited
			if c.knownNow(key, l, &res) {
				return res, true, nil
			}
			res, err = c.noBudget(ctx, err)
			return res, false, err
		case stop == nil || stop.Err() == nil:
			return Result{Mode: c.cfg.Mode}, false, Unavailable(fmt.Errorf("provider rate limit: %w", err))
		case !l.overtaken() || !c.rate.now():
			return Result{Mode: c.cfg.Mode}, false, errStopping
		}
	} else if stop != nil && stop.Err() != nil && !l.overtaken() {
		return Result{Mode: c.cfg.Mode}, false, errStopping
	}
	if c.knownNow(key, l, &res) {
		return res, true, nil
	}
	// The wait for the rate may have crossed midnight (the call is the new
	// day's, in its budget and in the ledger: counted for the old day, every
	// call waiting at midnight came on top of the new day's budget), and
	// other instances may have spent the rest of the budget meanwhile.
	day, berr = c.budget.confirm(day)
	held = false // confirmed, or given back by confirm
	if berr != nil {
		res, err = c.noBudget(ctx, berr)
		return res, false, err
	}
	units = []callUnit{{day: day}}
	began := time.Now()
	retries := retryGate{c: c, stop: stop, units: &units, key: key, l: l}
	res, err = c.next.Enrich(context.WithValue(ctx, retryGateKey{}, &retries), l)
	enriched = res
	if err != nil && retries.refused != nil {
		// A retry was not made: the lookup ends for the reason it was not,
		// not with the fault before it (which a record with
		// on_unavailable: emit would be written "unavailable" for).
		switch {
		case retries.known != nil:
			return *retries.known, true, nil
		case errors.Is(retries.refused, ErrBudgetSpent):
			res, err = c.noBudget(ctx, retries.refused)
			return res, false, err
		case ctx.Err() != nil:
			return Result{}, false, ctx.Err()
		case stop != nil && stop.Err() != nil:
			return Result{Mode: c.cfg.Mode}, false, errStopping
		}
	}
	if err != nil {
		if errors.Is(err, ErrRateLimited) {
			if r, cut := c.rate.limited(time.Now()); cut {
				c.log.Warn(fmt.Sprintf("the provider refused a call for its request limit: calling it at most %.1f/s from now on "+
					"(9/10 of what it answered in the last second; after less than a second of answers, of those so far and those still to come "+
					"of the calls already made), "+
					"a tenth more every %v without such a refusal; "+
					"set juhe.qps to the plan's limit to avoid the refusals", r, rateProbeEvery), "err", err)
			}
		}
		return res, false, err
	}
	switch r, raised := c.rate.answered(began, time.Now()); {
	case raised && r == 0:
		c.log.Info(fmt.Sprintf("no request-limit refusal for %v: the learned provider rate is forgotten (no limit)", rateProbeEvery))
	case raised:
		c.log.Info(fmt.Sprintf("no request-limit refusal for %v: raising the provider rate to %.1f/s", rateProbeEvery, r))
	}
	at := c.cfg.Now()
	if fact, answered = FactOf(res, l.Date, at); !answered {
		return res, false, nil // nothing paid for, nothing learned
	}
	day = units[len(units)-1].day // the last request's, which answered
	c.paid.Add(1)
	var k Knowledge
	var written *durable // the ledger write, as the cache's answers wait for it
	if c.ledger != nil && c.cache != nil {
		written = &durable{pending: 1}
	}
	if c.cache != nil {
		k = c.cache.observeWriting(key, fact, written)
	} else {
		k.Observe(fact)
	}
	if c.afterObserve != nil {
		c.afterObserve(key)
	}
	if c.ledger != nil {
		call := LedgerCall{
			Key: key.String(), Day: day, At: at, Date: l.Date, Status: res.Status, Res: res.Res,
			Code: res.Code, OrderID: res.OrderID, Mode: res.Mode,
		}
		res.durable = c.ledger.write(call, k.Live(at, c.cfg.TTL))
		if written != nil {
			res.durable.whenDone(written.resolve)
		}
	}
	return res, false, nil
}

// callUnit is the budget unit of a request of a lookup: its day, and
// whether it was given back before the lookup ended (a request the provider
// cannot have billed, before a retry).
type callUnit struct {
	day   string
	given bool
}

// retryGate is what BeforeRetry does for a call of pay's: a retry takes a
// unit of the budget and a rate token, as the call's first request did.
type retryGate struct {
	c     *CostControl
	stop  context.Context
	units *[]callUnit
	// refused is why BeforeRetry refused a retry, if it did.
	refused error
	// key and l are the lookup's: a retry that waited for the rate asks
	// the knowledge again, as pay's first request does.
	// (A copy: a pointer to pay's l moved it to the heap on every call.)
	key MobileKey
	l   Lookup
	// known is the answer that spared a retry, if one did (refused is
	// then errKnownNow).
	known *Result
}

// errKnownNow refuses a retry that what is known answers by now.
var errKnownNow = errors.New("answered by what was learned while the retry waited for the rate")

type retryGateKey struct{}

// BeforeRetry is for an Enricher that retries a request itself (the juhe
// client takes BeforeRetryBilled: juhe.WithRetryGate): called before each
// retry of a lookup that CostControl passed to it, it takes a unit of the
// daily budget and waits for the provider rate, as the lookup's first
// request did, so that
// juhe.qps and juhe.daily_budget count requests, retries included. It
// returns an error, and the retry is not made, when the budget is spent or
// this instance's share of it is in flight (the lookup's earlier requests
// included), or the rate cannot be had (ctx ended, the processor stopping);
// it returns nil for a ctx that CostControl did not pass (no budget and no
// rate to count). The request before the retry counts as one the provider
// may have billed: see BeforeRetryBilled.
func BeforeRetry(ctx context.Context) error { return BeforeRetryBilled(ctx, true) }

// BeforeRetryBilled is BeforeRetry told whether the request before the
// retry may have been billed (juhe: an answer, or an outcome unknown). One
// that cannot have been (a known error code, a connection never made)
// gives its unit back now, before the retry is held to the share, rather
// than when the lookup ends: a passing fault's retry then fits a share of 1.
func BeforeRetryBilled(ctx context.Context, billed bool) error {
	g, ok := ctx.Value(retryGateKey{}).(*retryGate)
	if !ok {
		return nil
	}
	if units := *g.units; !billed && len(units) > 0 && !units[len(units)-1].given {
		u := &units[len(units)-1]
		g.c.budget.settle(u.day, false)
		u.given = true
	}
	day, err := g.c.budget.reserve()
	if err == nil {
		if err = g.c.rate.waitUnless(ctx, g.stop, g.c.budget.spentSignal(day)); err != nil {
			g.c.budget.release(day)
		} else {
			// As in pay: the wait may have crossed midnight, or other
			// instances spent the rest of the budget meanwhile.
			day, err = g.c.budget.confirm(day)
		}
	}
	if err == nil {
		var r Result
		if g.c.knownNow(g.key, g.l, &r) {
			g.c.budget.settle(day, false)
			g.known, err = &r, errKnownNow
		}
	}
	if err != nil {
		g.refused = err
		return err
	}
	*g.units = append(*g.units, callUnit{day: day})
	return nil
}

// uncertainCalls counts the requests of a lookup whose outcome is unknown
// (timed out, cut off) as paid, one budget unit each on days, and writes
// each to the ledger as an "unavailable" call record without an order id:
// the provider may have answered and billed them, and the budget of every
// instance, and the bill's reconciliation, must see them. It returns the
// writes.
func (c *CostControl) uncertainCalls(key MobileKey, l Lookup, res Result, days []string) []*durable {
	c.paid.Add(int64(len(days)))
	c.uncertain.Add(int64(len(days)))
	if c.ledger == nil {
		return nil
	}
	at := c.cfg.Now()
	writes := make([]*durable, len(days))
	for i, d := range days {
		writes[i] = c.ledger.writeCall(LedgerCall{
			Key: key.String(), Day: d, At: at, Date: l.Date, Status: StatusUnavailable,
			Code: res.Code, Mode: res.Mode,
		})
	}
	return writes
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// ledgerFailed hears of a paid call the ledger could not write: an answer,
// which is paid for and right, and kept, or a request whose outcome is
// unknown (an "unavailable" call record). Its call record is written again
// until the brokers take it (ledger.rewrite); a call record never written
// is logged as an error with its order id when the ledger closes.
func (c *CostControl) ledgerFailed(call LedgerCall, err error, callFailed, knowledgeFailed bool) {
	c.ledgerErrors.Add(1)
	if call.Status == StatusUnavailable {
		c.log.Warn("the call record of a request whose outcome is unknown (paid) could not be written to the ledger: "+
			"it is written again until the brokers take it", "topic", c.cfg.Ledger.Topic, "day", call.Day, "err", err)
		return
	}
	var what string
	switch {
	case callFailed && knowledgeFailed:
		what = "its call record is written again until the brokers take it; its knowledge record is not " +
			"(other instances may pay for the number again)"
	case callFailed:
		what = "its call record is written again until the brokers take it (its knowledge record was written)"
	default:
		what = "its knowledge record could not be written (its call record was): other instances may pay for the number again"
	}
	c.log.Warn("a paid answer could not be written to the ledger: "+what, "topic", c.cfg.Ledger.Topic,
		"order_id", call.OrderID, "err", err)
}

// noBudget answers a lookup that found no unit of the budget to reserve
// (budget.reserve's error).
func (c *CostControl) noBudget(ctx context.Context, err error) (Result, error) {
	trace.SpanFromContext(ctx).SetAttributes(attribute.Bool("twosell.budget_spent", true))
	c.refusedDay.Store(c.budget.today())
	if errors.Is(err, errBudgetInFlight) { // tried again as the units may come back, and at midnight at the latest
		c.refusals.Add(1)
		return Result{Mode: c.cfg.Mode}, UnavailableWithin(err, c.budget.untilRenewal())
	}
	return c.budgetSpent()
}

// noteRenewed logs, once, that the budget renewed, at the first call of a
// day after a day on which lookups found it spent (a walkthrough saw the
// held records go on at midnight without a word).
func (c *CostControl) noteRenewed(day string) {
	spent, _ := c.refusedDay.Load().(string)
	if spent == "" || spent >= day {
		return
	}
	if renewed, _ := c.renewedDay.Swap(day).(string); renewed != day {
		c.log.Info("daily budget renewed: paid calls go on", "day", day, "budget", c.cfg.DailyBudget, "spent_on", spent)
	}
}

// budgetSpent answers a lookup that needs a call after the budget is spent.
// It says so in a warning once a day, either way.
func (c *CostControl) budgetSpent() (Result, error) {
	err := c.budget.spentError()
	if day := c.budget.today(); !c.cfg.OneShot && c.warnedDay.Swap(day) != day {
		what := "holding back records that need a paid call until it renews"
		if c.cfg.EmitSkipped {
			what = `writing records that need a paid call with status "skipped" until it renews`
		}
		c.log.Warn("daily budget spent: "+what+" (cache answers go on)", "budget", c.cfg.DailyBudget, "err", err)
	}
	if c.cfg.EmitSkipped {
		c.skipped.Add(1)
		return Result{Status: StatusSkipped, Mode: c.cfg.Mode}, nil
	}
	c.refusals.Add(1)
	return Result{Mode: c.cfg.Mode}, UnavailableWithin(err, c.budget.untilRenewal())
}
