package processor

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Lookup is one question for the provider: was Mobile re-issued after Date?
type Lookup struct {
	Mobile string // normalized: 11 digits, ^1[3-9]\d{9}$
	Date   string // yyyymmdd, a calendar day in the configured time zone
	// At is the instant Date came from: the date field's instant, midnight
	// in the configured zone for a field that is a day (yyyymmdd,
	// yyyy-mm-dd), or the record timestamp. Zero when unknown. The cost
	// controls' real-time deadline (skip_older_than) uses it.
	At time.Time

	key   MobileKey // the mobile's key, once a CostControl computed it
	keyed bool
	// memo is the dispatcher's memo of keys, for the CostControl's first
	// look at the knowledge (known); nil elsewhere.
	memo *keyMemo
	// coalesced: the lookup waited for another's call (await), and was
	// counted in CostStats.Coalesced.
	coalesced bool
	// w and offset are the record's worker and offset; w is nil outside
	// the processor. See stop and overtaken.
	w      *partitionWorker
	offset int64
	// quit, if set, is the stop of the lookup's exactly-once batch
	// (txnBatch.ctx), which stop returns instead of the worker's.
	quit context.Context
	// leads: the lookup makes the next call of its mobile, which its
	// Enrich makes (or hands on): woken from await to make it, or the
	// first to need it (await found no call in flight).
	leads bool
	// now, if not zero, is the time the cost controls take as now: the
	// dispatcher's clock (tickClock), read once for many records.
	now time.Time
	// shared: the lookup was woken from await with the failure of the
	// call it waited for, which its Enrich returns, as share does to a
	// waiter on a task: the record is held back and tried again later,
	// not at once.
	shared *wakeup
}

// stop ends when the record's partition stops taking new work (shutdown,
// revoke, an interrupted replay), or, exactly once, when the record's batch
// does (a stop, a record not handed over, half the transaction timeout);
// nil outside the processor. The cost controls start no paid call after it:
// a record still waiting for the rate limit is given up, not paid for
// during the grace period, which is for the calls already in flight (paid
// for either way). A record that later records overtook is the exception
// (overtaken).
func (l *Lookup) stop() context.Context {
	switch {
	case l.quit != nil:
		return l.quit
	case l.w == nil:
		return nil
	}
	return l.w.stopCtx
}

// overtaken reports whether later records of the lookup's partition have
// started. At a stop such a record makes its paid call if the rate limit
// lets it go at once: given up, it would hold the commit below the outputs
// of those records, and the partition's next owner would write them again
// and pay the same call.
func (l *Lookup) overtaken() bool { return l.w != nil && l.w.overtook(l.offset) }

// Status is the outcome written in the output's status field.
type Status string

// The statuses of the output contract.
const (
	StatusRecycled         Status = "recycled"           // res 1: activated after the date
	StatusNotRecycled      Status = "not_recycled"       // res 2: activated on or before the date
	StatusNoActivationDate Status = "no_activation_date" // res 3
	StatusNoRecord         Status = "no_record"          // provider code 232703
	StatusUnavailable      Status = "unavailable"        // provider unavailable and on_unavailable: emit
	StatusSkipped          Status = "skipped"            // not asked (budget, deadline)
)

// StatusOfRes maps the provider's res value (1, 2 or 3) to a Status.
func StatusOfRes(res int) (Status, bool) {
	switch res {
	case 1:
		return StatusRecycled, true
	case 2:
		return StatusNotRecycled, true
	case 3:
		return StatusNoActivationDate, true
	}
	return "", false
}

// Result is an answer to a Lookup.
type Result struct {
	Status   Status
	Res      int    // the provider's res (1, 2, 3); 0 when it gave none
	OrderID  string // the provider's order id, if any
	Source   string // "api" or "cache"
	Mode     string // how the mobile was sent: plain, md5, sha256, aes, md5+aes, sha256+aes
	Code     int    // the provider's error_code (0 on success, 232703 for no record)
	Attempts int    // provider calls made for this answer (0 from a cache)
	// Billable counts the requests made for this answer that the provider
	// may have billed, retries included (the juhe client's
	// Answer.Billable), for the daily budget and the ledger. 0 from an
	// Enricher that does not say: a paid answer counts as one, a failure as
	// none.
	Billable int
	// BillableRequests says which requests Billable counts, if the
	// Enricher knows (the juhe client's Answer.BillableRequests): bit i for
	// the (i+1)th, the first, then each retry, of the first 64. Without it,
	// the first requests are taken as the billable ones; with it, a request
	// that may have been billed is counted on the day it was sent, when a
	// retry is sent after midnight.
	BillableRequests uint64
	// Resent counts the requests the Enricher's transport sent again by
	// itself, which took no rate token and no unit of the budget (the juhe
	// client's Answer.Resent: net/http repeating a GET). Each may have been
	// billed: the cost controls count it as paid, on the day of the
	// lookup's last request, and write it to the ledger as a request whose
	// outcome is unknown.
	Resent int

	durable *durable // a paid answer's ledger write, when it may still be in flight (CostControl)
}

// Enricher answers lookups. The processor calls it from many goroutines at
// once; implementations must be safe for concurrent use.
//
// The context is canceled when the record's work is abandoned (shutdown,
// rebalance, fatal error elsewhere); an implementation returns promptly with
// the context's error, which the processor never counts as the record's fault.
//
// Errors tell the processor what to do with the record, through the
// wrappers below: Reject (dead-letter it), Unavailable (hold it back and try
// again later) and Fatal (stop consuming). Any other error is treated as
// Unavailable: a record is never dead-lettered for a reason nobody named.
type Enricher interface {
	Enrich(ctx context.Context, l Lookup) (Result, error)
}

// EnricherFunc adapts a function to the Enricher interface.
type EnricherFunc func(ctx context.Context, l Lookup) (Result, error)

// Enrich calls f.
func (f EnricherFunc) Enrich(ctx context.Context, l Lookup) (Result, error) { return f(ctx, l) }

// Disposition is what the processor does with a record whose lookup failed.
type Disposition int

const (
	// DispositionUnavailable holds the record back (pausing its partition)
	// and retries it later, or emits it with status unavailable when the
	// operator chose on_unavailable: emit.
	DispositionUnavailable Disposition = iota
	// DispositionReject dead-letters the record with the error as its reason.
	DispositionReject
	// DispositionFatal stops consumption: nothing further is committed.
	DispositionFatal
)

func (d Disposition) String() string {
	switch d {
	case DispositionReject:
		return "reject"
	case DispositionFatal:
		return "fatal"
	}
	return "unavailable"
}

// DispositionError carries a Disposition and the dead-letter class for a
// failed lookup.
type DispositionError struct {
	Disposition Disposition
	Class       string // dead-letter class (twosell-error-class) for rejects
	Err         error
	// RetryIn, if set, is when the provider can be called again
	// (UnavailableFor).
	RetryIn time.Duration
	// RetryWithin, if set, is when the call may be possible again
	// (UnavailableWithin): a held record is tried again then at the
	// latest, not later.
	RetryWithin time.Duration
}

func (e *DispositionError) Error() string { return e.Err.Error() }
func (e *DispositionError) Unwrap() error { return e.Err }

// Reject marks err as the record's own fault: the record is dead-lettered with
// class and err's message as the reason.
func Reject(class string, err error) error {
	return &DispositionError{Disposition: DispositionReject, Class: class, Err: err}
}

// Unavailable marks err as the provider being unavailable for now.
func Unavailable(err error) error {
	return &DispositionError{Disposition: DispositionUnavailable, Err: err}
}

// UnavailableFor marks err as the provider being unavailable for d, as a
// circuit breaker that refuses calls knows: a record held back is tried
// again after d (and a little jitter), rather than after its growing
// backoff, so that the records held back come back as soon as the provider
// can be called (d <= 0: as Unavailable).
func UnavailableFor(err error, d time.Duration) error {
	return &DispositionError{Disposition: DispositionUnavailable, Err: err, RetryIn: max(d, 0)}
}

// UnavailableWithin marks err as the provider being unavailable for now,
// and possibly again in d, as a spent daily budget is at midnight: a
// record held back is tried again after its backoff or after d (and a
// little jitter), whichever comes first. Found by a walkthrough: at
// midnight, the records held for the budget came back one by one over
// processing.max_retry_backoff.
func UnavailableWithin(err error, d time.Duration) error {
	return &DispositionError{Disposition: DispositionUnavailable, Err: err, RetryWithin: max(d, 0)}
}

// ErrRateLimited is in the chain of an error that says the provider refused
// a call for its request limit (RateLimited).
var ErrRateLimited = errors.New("over the provider's request limit")

// RateLimited marks err as the provider refusing the call for its request
// limit (juhe 10011-10013): Unavailable, and the cost controls lower this
// instance's request rate below what the provider answered in the last
// second (CostControl).
func RateLimited(err error) error {
	return Unavailable(rateLimitedError{err})
}

type rateLimitedError struct{ error }

func (e rateLimitedError) Unwrap() error        { return e.error }
func (e rateLimitedError) Is(target error) bool { return target == ErrRateLimited }

// Fatal marks err as a fault that no retry will fix (a bad key, a stopped
// API): the processor stops consuming and Run returns an error wrapping it.
func Fatal(err error) error {
	return &DispositionError{Disposition: DispositionFatal, Err: err}
}

// DispositionOf returns what to do with a record whose lookup returned err.
func DispositionOf(err error) Disposition {
	var de *DispositionError
	if errors.As(err, &de) {
		return de.Disposition
	}
	return DispositionUnavailable
}

// FatalError is returned by Run when consumption stopped on a fatal error.
type FatalError struct{ Err error }

func (e *FatalError) Error() string { return fmt.Sprintf("fatal: %v", e.Err) }
func (e *FatalError) Unwrap() error { return e.Err }
