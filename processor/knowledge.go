package processor

import (
	"slices"
	"time"
)

// FactKind is what one paid answer proves about the holder's activation
// date A (DESIGN.md, "Cost controls").
type FactKind uint8

// The kinds of facts. The zero FactKind is "no fact".
const (
	// FactAfter is res 1 at Date: A > Date (activated after that calendar
	// day). It answers every date up to Date and never expires: A only
	// grows, when a number is re-issued.
	FactAfter FactKind = iota + 1
	// FactNotAfter is res 2 at Date: A ≤ Date. It answers every date from
	// Date on, for KnowledgeTTL.NotRecycled after the answer: the number
	// may be re-issued later, which would move A past Date.
	FactNotAfter
	// FactNoActivationDate is res 3: the provider knows no activation
	// date. It answers any date, for KnowledgeTTL.Short.
	FactNoActivationDate
	// FactNoRecord is code 232703: the provider has no record of the
	// number. It answers any date, for KnowledgeTTL.Short.
	FactNoRecord
)

// String returns the status the fact answers with ("recycled", …), which is
// also how cache answers are counted by kind.
func (k FactKind) String() string {
	switch k {
	case FactAfter:
		return string(StatusRecycled)
	case FactNotAfter:
		return string(StatusNotRecycled)
	case FactNoActivationDate:
		return string(StatusNoActivationDate)
	case FactNoRecord:
		return string(StatusNoRecord)
	}
	return ""
}

// parseFactKind is the inverse of String.
func parseFactKind(s string) FactKind {
	for k := FactAfter; k <= FactNoRecord; k++ {
		if k.String() == s {
			return k
		}
	}
	return 0
}

// Fact is one paid answer kept as knowledge.
type Fact struct {
	Kind    FactKind
	Date    string    // the day asked, yyyymmdd
	OrderID string    // the provider's order id of the answer ("" for no record)
	Mode    string    // how the mobile was sent for that answer
	At      time.Time // when the provider answered
}

// FactOf turns a paid answer to a lookup of date into a Fact; false for a
// result that proves nothing (unavailable, skipped).
func FactOf(r Result, date string, at time.Time) (Fact, bool) {
	f := Fact{Date: date, OrderID: r.OrderID, Mode: r.Mode, At: at}
	switch r.Status {
	case StatusRecycled:
		f.Kind = FactAfter
	case StatusNotRecycled:
		f.Kind = FactNotAfter
	case StatusNoActivationDate:
		f.Kind = FactNoActivationDate
	case StatusNoRecord:
		f.Kind = FactNoRecord
	default:
		return Fact{}, false
	}
	return f, true
}

// Result is the answer the fact gives, as a cache answer: source "cache",
// the order id of the answer it came from, no provider call.
func (f Fact) Result() Result {
	var r Result
	r.setCache(f.Kind, f.OrderID, f.Mode)
	return r
}

// setCache sets r to the answer of a fact of kind k given by the call of
// orderID, sent in mode (Fact.Result), in place: the knowledge cache
// answers most records.
func (r *Result) setCache(k FactKind, orderID, mode string) {
	*r = Result{Status: Status(k.String()), OrderID: orderID, Source: SourceCache, Mode: mode}
	switch k {
	case FactAfter:
		r.Res = 1
	case FactNotAfter:
		r.Res = 2
	case FactNoActivationDate:
		r.Res = 3
	case FactNoRecord:
		r.Code = codeNoRecord
	}
}

// codeNoRecord is the provider's "no record" error_code, which a cache
// answer of that kind repeats.
const codeNoRecord = 232703

// Sources of a Result.
const (
	SourceAPI   = "api"   // a paid provider call
	SourceCache = "cache" // implied by earlier answers; no call
)

// KnowledgeTTL says how long the facts that can go stale answer lookups.
type KnowledgeTTL struct {
	NotRecycled time.Duration // FactNotAfter (res 2)
	Short       time.Duration // FactNoActivationDate and FactNoRecord (res 3, 232703)
}

// Knowledge is everything the paid answers about one mobile prove: bounds on
// the holder's activation date A, and a short-lived fact for the answers that
// bound nothing. The zero value knows nothing.
//
// The bounds are Lower (A > Lower.Date, from res 1) and Upper (A ≤
// Upper.Date, from res 2), and Tighter, older upper bounds at earlier dates
// than Upper's; each keeps the answer that proved it, for its order id and
// time. Facts merge by these rules (Observe):
//
//   - Lower bounds combine: the larger date wins (both are true, as A only
//     grows).
//   - Upper bounds: every one that no other is both as new as and as
//     strong as (at a date no later) is kept, up to maxUppers of them, the
//     newest first: Upper, then Tighter, each older and stronger than the
//     one before. Each answers the dates from its own until it expires.
//     (With one slot, a newer, weaker res 2, such as another instance's
//     read from the ledger, replaced a stronger one still live, and the
//     dates between them were paid for again; with two, the answers
//     depended on the order of the facts when the strongest was proven
//     stale; found by review.) When more than maxUppers are kept at once,
//     the oldest is dropped and StaleBefore moves to its time, as if it
//     were proven stale: a res 2 as old is no longer kept (never a wrong
//     answer; at most a call the dropped one would have spared, and the
//     order the facts come in may then matter).
//   - Two facts that contradict each other (a lower bound at or above an
//     upper bound) cannot both hold now: the newer one wins, and a res 1
//     newer than an upper bound it contradicts proves it stale even when
//     a newer upper bound rejects the res 1 (the provider correcting
//     itself: an upper bound merged after the rejected res 1 is not
//     compared with it, as the last paragraph says). A res 1 newer
//     than a res 2 at or below its date means the number was re-issued
//     since; a res 2 newer than a res 1 at or above its date is the
//     provider correcting itself. Equal times favour res 1, the answer
//     that flags the risk.
//   - A res 2 that a newer res 1 drops or rejects predates a re-issue:
//     the number was re-issued after it was given. So was every res 2
//     given at or before it (StaleBefore): such an answer, merged now or
//     later, is stale, and is not kept. (Without this, a res 2 merged after
//     the facts that prove it stale came back as the upper bound: the
//     answers depended on the order the ledger was read in.)
//   - The short-lived fact (res 3, no record) is the provider's latest word
//     while it is newer than every res 1 and res 2 answer (BoundsAt): it
//     answers every date until it expires, after which the bounds answer
//     again. A res 1 or res 2 answer newer than it replaces it.
//
// The result of merging a set of facts does not depend on their order, as
// long as no two of them contradict each other; so instances that exchange
// facts through the ledger, in whatever order they arrive, agree.
type Knowledge struct {
	Lower Fact // Kind FactAfter, or zero
	Upper Fact // Kind FactNotAfter, or zero
	// Tighter are the res 2 older than Upper and at earlier dates, the
	// newest first; zero ones last.
	Tighter [maxUppers - 1]Fact
	Short   Fact // Kind FactNoActivationDate or FactNoRecord, or zero
	// BoundsAt is when the newest res 1 or res 2 answer merged in was
	// given, kept or not (a lower bound at a smaller date is not kept, but
	// still says the provider knew A then).
	BoundsAt time.Time
	// StaleBefore is when the newest res 2 answer that a newer res 1
	// proves stale was given: the number was re-issued after it, so no
	// res 2 given at or before it holds now. Zero: none known.
	StaleBefore time.Time
}

// newest is the latest time k knows of: of its facts, BoundsAt and
// StaleBefore.
func (k *Knowledge) newest() time.Time {
	t := k.BoundsAt
	for _, u := range []time.Time{k.StaleBefore, k.Lower.At, k.Upper.At, k.Short.At} { // Tighter are older than Upper
		if u.After(t) {
			t = u
		}
	}
	return t
}

// Empty reports whether k knows nothing.
func (k *Knowledge) Empty() bool {
	return k.Lower.Kind == 0 && k.Upper.Kind == 0 && k.Short.Kind == 0
}

// Merge merges everything other knows into k (as Observe does each of its
// facts). It reports whether k changed.
func (k *Knowledge) Merge(other Knowledge) bool {
	before := *k
	for _, f := range append([]Fact{other.Lower, other.Upper, other.Short}, other.Tighter[:]...) {
		k.Observe(f)
	}
	if other.BoundsAt.After(k.BoundsAt) {
		k.BoundsAt = other.BoundsAt
	}
	k.staleUntil(other.StaleBefore)
	k.supersedeShort()
	return *k != before
}

// staleUntil records that no res 2 given at or before t holds now (see
// StaleBefore), and drops the upper bound if it is one of them.
func (k *Knowledge) staleUntil(t time.Time) {
	if !t.After(k.StaleBefore) {
		return
	}
	k.StaleBefore = t
	k.keepUppers(func(u Fact) bool { return u.At.After(t) })
}

// keepUppers keeps the upper bounds that keep reports true of.
func (k *Knowledge) keepUppers(keep func(Fact) bool) {
	var us [maxUppers]Fact
	n := 0
	for _, u := range k.uppers() {
		if u.Kind != 0 && keep(u) {
			us[n] = u
			n++
		}
	}
	k.Upper, k.Tighter = us[0], [maxUppers - 1]Fact(us[1:])
}

// uppers are Upper and Tighter, the newest first (zero ones last).
func (k *Knowledge) uppers() [maxUppers]Fact {
	var us [maxUppers]Fact
	us[0] = k.Upper
	copy(us[1:], k.Tighter[:])
	return us
}

// supersedeShort drops the short-lived fact when a res 1 or res 2 answer is
// newer.
func (k *Knowledge) supersedeShort() {
	if k.Short.Kind != 0 && k.BoundsAt.After(k.Short.At) {
		k.Short = Fact{}
	}
}

// Observe merges f into k (see Knowledge for the rules). It reports whether
// k changed.
func (k *Knowledge) Observe(f Fact) bool {
	before := *k
	switch f.Kind {
	case FactAfter:
		// The upper bounds f contradicts: one newer than f rejects it;
		// the ones older were given before a re-issue.
		var rejected, stale bool
		var until time.Time
		for _, u := range k.uppers() {
			switch {
			case u.Kind == 0 || f.Date < u.Date:
			case f.At.Before(u.At):
				rejected = true
			case u.At.After(until):
				stale, until = true, u.At
			}
		}
		if stale {
			k.staleUntil(until) // re-issued since the res 2 answer
		}
		if rejected {
			return *k != before // contradicted by a newer answer
		}
		if k.Lower.Kind == 0 || f.Date > k.Lower.Date || (f.Date == k.Lower.Date && later(f, k.Lower)) {
			k.Lower = f
		}
		if f.At.After(k.BoundsAt) {
			k.BoundsAt = f.At
		}
	case FactNotAfter:
		if !f.At.After(k.StaleBefore) {
			return false // given before a re-issue the facts prove
		}
		if k.Lower.Kind != 0 && f.Date <= k.Lower.Date {
			if !f.At.After(k.Lower.At) {
				// Contradicted by a newer (or as new) res 1: re-issued
				// since, which makes the older upper bounds stale too.
				k.staleUntil(f.At)
				return *k != before
			}
			k.Lower = Fact{} // the provider corrected itself
		}
		k.addUpper(f)
		if f.At.After(k.BoundsAt) {
			k.BoundsAt = f.At
		}
	case FactNoActivationDate, FactNoRecord:
		if k.Short.Kind == 0 || later(f, k.Short) {
			k.Short = f
		}
	default:
		return false
	}
	k.supersedeShort()
	return *k != before
}

// maxUppers is how many upper bounds Knowledge keeps (Upper and Tighter).
const maxUppers = 4

// addUpper adds the upper bound f, if no kept one is as new and as strong,
// and drops those it is as new and as strong as, then the oldest beyond
// maxUppers.
func (k *Knowledge) addUpper(f Fact) {
	us := k.uppers()
	for _, u := range us {
		if u.Kind != 0 && (u == f || dominates(u, f)) {
			return
		}
	}
	var kept [maxUppers + 1]Fact
	n := 0
	for _, u := range us {
		if u.Kind != 0 && !dominates(f, u) {
			kept[n] = u
			n++
		}
	}
	kept[n] = f
	n++
	all := kept[:n]
	slices.SortFunc(all, func(a, b Fact) int {
		switch {
		case betterUpper(a, b):
			return -1
		case betterUpper(b, a):
			return 1
		}
		return 0
	})
	var out [maxUppers]Fact
	copy(out[:], all)
	k.Upper, k.Tighter = out[0], [maxUppers - 1]Fact(out[1:])
	if len(all) > maxUppers {
		// The oldest, dropped for room: no res 2 as old is kept from now
		// on, as if proven stale. Without this, a res 2 it was newer and
		// stronger than, or one a res 1 merged later would have proven
		// stale by it, was kept, and could answer wrongly (found by
		// review). It costs at most a call.
		if t := all[maxUppers].At; t.After(k.StaleBefore) {
			k.StaleBefore = t
		}
	}
}

// dominates reports whether the upper bound a makes b useless: a is as new
// and as strong (at a date no later), and better by betterUpper's order.
func dominates(a, b Fact) bool {
	return !a.At.Before(b.At) && a.Date <= b.Date && betterUpper(a, b)
}

// betterUpper orders upper bounds: the newer, then (same instant) the
// stronger (smaller date), then by order id.
func betterUpper(a, b Fact) bool {
	switch {
	case !a.At.Equal(b.At):
		return a.At.After(b.At)
	case a.Date != b.Date:
		return a.Date < b.Date
	}
	return a.OrderID > b.OrderID
}

// later orders facts by time, then by order id, so that merging is
// deterministic even for answers given in the same instant.
func later(a, b Fact) bool {
	if !a.At.Equal(b.At) {
		return a.At.After(b.At)
	}
	return a.OrderID > b.OrderID
}

// Answer returns the fact that answers a lookup of date (yyyymmdd) at time
// now, if k implies the answer.
func (k *Knowledge) Answer(date string, now time.Time, ttl KnowledgeTTL) (Fact, bool) {
	if k.Short.Kind != 0 && now.Before(k.Short.At.Add(ttl.Short)) {
		return k.Short, true
	}
	if k.Lower.Kind != 0 && date <= k.Lower.Date {
		return k.Lower, true
	}
	if k.Upper.Kind != 0 && date >= k.Upper.Date && now.Before(k.Upper.At.Add(ttl.NotRecycled)) {
		return k.Upper, true
	}
	for _, u := range k.Tighter {
		if u.Kind != 0 && date >= u.Date && now.Before(u.At.Add(ttl.NotRecycled)) {
			return u, true
		}
	}
	return Fact{}, false
}

// Live returns k without the facts that expired by now: what is worth
// keeping and writing to the ledger.
func (k Knowledge) Live(now time.Time, ttl KnowledgeTTL) Knowledge {
	if k.Short.Kind != 0 && !now.Before(k.Short.At.Add(ttl.Short)) {
		k.Short = Fact{}
	}
	k.keepUppers(func(u Fact) bool { return now.Before(u.At.Add(ttl.NotRecycled)) })
	// Every res 2 StaleBefore refuses has expired: it refuses nothing live.
	if !k.StaleBefore.IsZero() && !now.Before(k.StaleBefore.Add(ttl.NotRecycled)) {
		k.StaleBefore = time.Time{}
	}
	return k
}
