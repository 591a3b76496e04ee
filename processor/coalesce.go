package processor

import (
	"context"
	"errors"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// flight is what a shared call hands its waiters: the answer, and which
// lookup made the call.
type flight struct {
	res    Result
	leader *Lookup
}

// share makes one call per mobile for a lookup the knowledge did not
// answer, shared with every concurrent lookup of it: the first lookup of a mobile makes the call
// (with its own date); the others wait for it, then look at the knowledge
// again, which the answer may now imply for their dates too (res 1 at a late
// date answers every earlier one). A waiter whose date it does not imply
// makes, or waits for, the next call.
//
// A waiter shares the call's failure only when it is the provider's, not
// the lookup's: unavailable and fatal errors are returned to every waiter;
// a rejection (the caller's date or number) and the caller's own
// cancellation are not, and the waiter tries with a call of its own.
func (c *CostControl) share(ctx context.Context, key MobileKey, l Lookup) (Result, error) {
	name := string(key[:])
	me := &l
	waited := false // counted once, however many calls it waits for
	for first := true; ; first = false {
		if !first { // the caller asked the knowledge before the first call
			if r, ok := c.answerKnown(key, l); ok {
				return r, nil
			}
		}
		// Do, not DoChan: the call runs on this goroutine, whose stack has
		// grown through the HTTP client already; DoChan would start a
		// goroutine per call and grow a fresh stack each time. A waiter
		// cannot leave early, but the call it waits for is bounded by the
		// client's timeouts and the leader's own context.
		v, err, _ := c.flights.Do(name, func() (any, error) {
			r, err := c.pay(ctx, key, l)
			return flight{res: r, leader: me}, err
		})
		fr := flightResult{v.(flight), err}
		if ctx.Err() != nil && fr.f.leader != me {
			return Result{}, ctx.Err()
		}
		if fr.f.leader == me {
			return fr.f.res, fr.err
		}
		if !waited {
			waited = true
			c.coalesced.Add(1)
			trace.SpanFromContext(ctx).SetAttributes(attribute.Bool("twosell.coalesced", true))
		}
		if fr.err != nil && sharedFailure(fr.err) {
			return Result{Mode: fr.f.res.Mode, Code: fr.f.res.Code}, fr.err
		}
		if fr.err == nil && fr.f.res.Status == StatusSkipped {
			// The budget is spent (EmitSkipped): so it is for this
			// lookup, unless knowledge answers it.
			if r, ok := c.cached(key, l.Date); ok {
				return r, nil
			}
			c.skipped.Add(1)
			return fr.f.res, nil
		}
	}
}

type flightResult struct {
	f   flight
	err error
}

// sharedFailure reports whether a call's failure is the provider's, which
// every waiter shares, rather than the calling lookup's own.
func sharedFailure(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, errStopping) {
		return false // the leader's partition stops, perhaps not the waiter's
	}
	return DispositionOf(err) != DispositionReject
}
