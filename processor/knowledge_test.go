package processor

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

var (
	t0  = time.Date(2024, 6, 1, 12, 0, 0, 0, time.UTC)
	ttl = KnowledgeTTL{NotRecycled: 7 * 24 * time.Hour, Short: time.Hour}
)

func fact(kind FactKind, date string, at time.Time, order string) Fact {
	return Fact{Kind: kind, Date: date, OrderID: order, Mode: "plain", At: at}
}

// Every kind of answer, asked about before, on and after its date, fresh
// and expired: which lookups it answers, with what.
func TestKnowledgeAnswersOneFact(t *testing.T) {
	t.Parallel()
	const d = "20230615"
	dates := map[string]string{"before": "20230614", "on": d, "after": "20230616"}
	ages := map[string]time.Duration{
		"fresh":                0,
		"just before 1h":       time.Hour - time.Nanosecond,
		"at 1h":                time.Hour,
		"just before 7d":       7*24*time.Hour - time.Nanosecond,
		"at 7d":                7 * 24 * time.Hour,
		"ten years":            10 * 365 * 24 * time.Hour,
		"before it was learnt": -time.Minute, // a clock behind the answer's
	}
	type want struct{ res int }
	// expect returns the res the fact answers with, 0 for none.
	expect := func(kind FactKind, when string, age time.Duration) int {
		switch kind {
		case FactAfter: // A > D: every date up to D, forever
			if when != "after" {
				return 1
			}
		case FactNotAfter: // A ≤ D: every date from D on, for 7 days
			if when != "before" && age < 7*24*time.Hour {
				return 2
			}
		case FactNoActivationDate: // any date, for 1h
			if age < time.Hour {
				return 3
			}
		case FactNoRecord:
			if age < time.Hour {
				return -1 // no record: status no_record, no res
			}
		}
		return 0
	}
	for _, kind := range []FactKind{FactAfter, FactNotAfter, FactNoActivationDate, FactNoRecord} {
		for when, date := range dates {
			for ageName, age := range ages {
				t.Run(fmt.Sprintf("%s/asked %s/%s", kind, when, ageName), func(t *testing.T) {
					var k Knowledge
					if !k.Observe(fact(kind, d, t0, "JH1")) {
						t.Fatal("a first fact changed nothing")
					}
					f, ok := k.Answer(date, t0.Add(age), ttl)
					want := expect(kind, when, age)
					switch {
					case want == 0 && ok:
						t.Fatalf("answered %+v, want no answer", f)
					case want != 0 && !ok:
						t.Fatalf("no answer, want res %d", want)
					case !ok:
						return
					}
					r := f.Result()
					if r.Source != SourceCache || r.OrderID != "JH1" || r.Mode != "plain" || r.Attempts != 0 {
						t.Errorf("result %+v: want source cache, the answer's order id and mode, no attempts", r)
					}
					if want == -1 {
						if r.Status != StatusNoRecord || r.Code != 232703 || r.Res != 0 {
							t.Errorf("result %+v, want no_record", r)
						}
						return
					}
					if st, _ := StatusOfRes(want); r.Res != want || r.Status != st {
						t.Errorf("result %+v, want res %d", r, want)
					}
				})
			}
		}
	}
}

// Two res 1 answers, the larger date the older: the larger still bounds the
// activation date (it only grows), in either order. TestKnowledgeCombines'
// pair gives the larger date the newer time too, so "the newest wins"
// would pass it.
func TestKnowledgeLargerLowerBoundWinsWhateverItsAge(t *testing.T) {
	const a, b = "20200101", "20210101"
	lookups := []string{"20191231", a, "20200601", b, "20210601"}
	for _, reversed := range []bool{false, true} {
		facts := []Fact{fact(FactAfter, b, t0, "L-big-old"), fact(FactAfter, a, t0.Add(time.Hour), "L-small-new")}
		if reversed {
			facts[0], facts[1] = facts[1], facts[0]
		}
		var k Knowledge
		for _, f := range facts {
			k.Observe(f)
		}
		checkAnswers(t, k, lookups, t0.Add(2*time.Hour), []int{1, 1, 1, 1, 0})
	}
}

// Pairs of answers, in both orders: what the knowledge then says about
// dates around them. Dates: a < b < c.
func TestKnowledgeCombines(t *testing.T) {
	t.Parallel()
	const a, b, c = "20200101", "20210101", "20220101"
	early, late := t0, t0.Add(time.Hour)
	lookups := []string{"20191231", a, "20200601", b, "20210601", c, "20230101"}
	tests := []struct {
		name  string
		facts []Fact
		// want is the res each of lookups gets at late+1ns (0: no answer).
		want []int
	}{
		{"two lower bounds: the larger wins",
			[]Fact{fact(FactAfter, a, early, "L1"), fact(FactAfter, b, late, "L2")},
			[]int{1, 1, 1, 1, 0, 0, 0}},
		{"two upper bounds: the newer wins",
			[]Fact{fact(FactNotAfter, c, early, "U1"), fact(FactNotAfter, b, late, "U2")},
			[]int{0, 0, 0, 2, 2, 2, 2}},
		{"an older, stronger upper bound answers the dates before the newer one's",
			[]Fact{fact(FactNotAfter, a, early, "U1"), fact(FactNotAfter, c, late, "U2")},
			[]int{0, 2, 2, 2, 2, 2, 2}},
		{"bounds that agree: A in (a, c]",
			[]Fact{fact(FactAfter, a, early, "L"), fact(FactNotAfter, c, late, "U")},
			[]int{1, 1, 0, 0, 0, 2, 2}},
		{"re-issued: a newer res 1 at or above the res 2's date replaces it",
			[]Fact{fact(FactNotAfter, a, early, "U"), fact(FactAfter, b, late, "L")},
			[]int{1, 1, 1, 1, 0, 0, 0}},
		{"re-issued on the very day of the res 2",
			[]Fact{fact(FactNotAfter, b, early, "U"), fact(FactAfter, b, late, "L")},
			[]int{1, 1, 1, 1, 0, 0, 0}},
		{"a newer res 2 at or below the res 1's date: the provider corrected itself",
			[]Fact{fact(FactAfter, b, early, "L"), fact(FactNotAfter, a, late, "U")},
			[]int{0, 2, 2, 2, 2, 2, 2}},
		{"a res 3 newer than the bounds answers every date while fresh",
			[]Fact{fact(FactAfter, a, early, "L"), fact(FactNoActivationDate, b, late, "S")},
			[]int{3, 3, 3, 3, 3, 3, 3}},
		{"a bound newer than a no-record replaces it",
			[]Fact{fact(FactNoRecord, b, early, "S"), fact(FactNotAfter, b, late, "U")},
			[]int{0, 0, 0, 2, 2, 2, 2}},
		{"the newer of two short facts",
			[]Fact{fact(FactNoRecord, a, early, "S1"), fact(FactNoActivationDate, a, late, "S2")},
			[]int{3, 3, 3, 3, 3, 3, 3}},
		{"the same answer twice",
			[]Fact{fact(FactNotAfter, b, early, "U"), fact(FactNotAfter, b, early, "U")},
			[]int{0, 0, 0, 2, 2, 2, 2}},
		{"contradiction in the same instant: res 1 wins",
			[]Fact{fact(FactNotAfter, a, early, "U"), fact(FactAfter, b, early, "L")},
			[]int{1, 1, 1, 1, 0, 0, 0}},
	}
	for _, tt := range tests {
		for _, order := range []string{"in order", "reversed"} {
			t.Run(tt.name+"/"+order, func(t *testing.T) {
				facts := append([]Fact(nil), tt.facts...)
				if order == "reversed" {
					facts[0], facts[1] = facts[1], facts[0]
				}
				var k Knowledge
				for _, f := range facts {
					k.Observe(f)
				}
				checkAnswers(t, k, lookups, late.Add(time.Nanosecond), tt.want)
			})
		}
	}
}

// A res 2 that a newer res 1 proves stale (re-issued since) takes with it
// every res 2 given at or before it, whichever order they merge in: one
// merged after the proof must not come back as the upper bound.
func TestKnowledgeStaleUpperBounds(t *testing.T) {
	t.Parallel()
	const a, b, c = "20200101", "20210101", "20220101"
	t1, t2, t3 := t0.Add(time.Hour), t0.Add(2*time.Hour), t0.Add(3*time.Hour)
	lookups := []string{a, b, "20210601", c, "20230101"}
	tests := []struct {
		name  string
		facts []Fact
		want  []int // the res each of lookups gets at t3+1ns (0: no answer)
	}{
		{"dropped: an older res 2 at a later date is stale too",
			[]Fact{fact(FactNotAfter, c, t0, "U0"), fact(FactNotAfter, a, t1, "U1"), fact(FactAfter, b, t3, "L")},
			[]int{1, 1, 0, 0, 0}},
		{"rejected: an older res 2 at or below the res 1's date",
			[]Fact{fact(FactNotAfter, c, t0, "U0"), fact(FactAfter, b, t3, "L"), fact(FactNotAfter, a, t1, "U1")},
			[]int{1, 1, 0, 0, 0}},
		{"given in the same instant as the stale one",
			[]Fact{fact(FactNotAfter, c, t1, "U0"), fact(FactNotAfter, a, t1, "U1"), fact(FactAfter, b, t3, "L")},
			[]int{1, 1, 0, 0, 0}},
		{"given after the stale one: it may hold (A in (b, c])",
			[]Fact{fact(FactNotAfter, a, t1, "U1"), fact(FactNotAfter, c, t2, "U2"), fact(FactAfter, b, t3, "L")},
			[]int{1, 1, 0, 2, 2}},
	}
	perms := [][3]int{{0, 1, 2}, {0, 2, 1}, {1, 0, 2}, {1, 2, 0}, {2, 0, 1}, {2, 1, 0}}
	for _, tt := range tests {
		for _, p := range perms {
			t.Run(fmt.Sprintf("%s/%v", tt.name, p), func(t *testing.T) {
				var k, x, y Knowledge
				for i, j := range p {
					k.Observe(tt.facts[j])
					if i == 0 {
						x.Observe(tt.facts[j])
					} else {
						y.Observe(tt.facts[j])
					}
				}
				x.Merge(y) // as an instance merges another's knowledge record
				checkAnswers(t, k, lookups, t3.Add(time.Nanosecond), tt.want)
				checkAnswers(t, x, lookups, t3.Add(time.Nanosecond), tt.want)
			})
		}
	}
	// Once every res 2 it refuses has expired, StaleBefore is not kept.
	var k Knowledge
	k.Observe(fact(FactNotAfter, a, t1, "U1"))
	k.Observe(fact(FactAfter, b, t3, "L"))
	if k.StaleBefore != t1 {
		t.Fatalf("StaleBefore = %v, want %v", k.StaleBefore, t1)
	}
	if live := k.Live(t1.Add(ttl.NotRecycled-1), ttl); live.StaleBefore != t1 {
		t.Errorf("Live before the TTL dropped StaleBefore: %+v", live)
	}
	if live := k.Live(t1.Add(ttl.NotRecycled), ttl); !live.StaleBefore.IsZero() {
		t.Errorf("Live after the TTL kept StaleBefore: %+v", live)
	}
}

// checkAnswers checks the res k answers each of lookups with at now
// (0: no answer) against want.
func checkAnswers(t *testing.T, k Knowledge, lookups []string, now time.Time, want []int) {
	t.Helper()
	for i, d := range lookups {
		f, ok := k.Answer(d, now, ttl)
		got := 0
		if ok {
			got = f.Result().Res
		}
		if got != want[i] {
			t.Errorf("lookup %s: res %d (%+v), want %d; knowledge %+v", d, got, f, want[i], k)
		}
	}
}

// Expiry moves with the clock: a res 2 answers for NotRecycled, then its
// dates need a call again; a short fact that shadows the bounds gives them
// back when it expires.
func TestKnowledgeExpiry(t *testing.T) {
	t.Parallel()
	var k Knowledge
	k.Observe(fact(FactAfter, "20200101", t0, "L"))
	k.Observe(fact(FactNotAfter, "20210101", t0, "U"))
	k.Observe(fact(FactNoRecord, "20200101", t0.Add(time.Minute), "S"))
	steps := []struct {
		at       time.Duration
		date     string
		wantKind FactKind
	}{
		{30 * time.Minute, "20190101", FactNoRecord},
		{time.Minute + time.Hour, "20190101", FactAfter}, // the short fact expired
		{time.Minute + time.Hour, "20220101", FactNotAfter},
		{7*24*time.Hour - 1, "20220101", FactNotAfter},
		{7 * 24 * time.Hour, "20220101", 0},            // res 2 expired
		{1000 * 24 * time.Hour, "20190101", FactAfter}, // res 1 never does
	}
	for _, s := range steps {
		f, ok := k.Answer(s.date, t0.Add(s.at), ttl)
		if (s.wantKind == 0) == ok || f.Kind != s.wantKind {
			t.Errorf("at +%s, %s: %+v %v, want kind %v", s.at, s.date, f, ok, s.wantKind)
		}
	}
	live := k.Live(t0.Add(7*24*time.Hour), ttl)
	if live.Short.Kind != 0 || live.Upper.Kind != 0 || live.Lower.Kind != FactAfter {
		t.Errorf("Live after 7 days = %+v, want only the lower bound", live)
	}
}

// Facts that do not contradict each other give the same knowledge in any
// order: instances that exchange them through the ledger agree.
func TestKnowledgeOrderIndependent(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	activation := 20180000
	for trial := range 200 {
		// Answers of a provider with a fixed A (no re-issue): consistent.
		var facts []Fact
		for i := range 6 {
			d := fmt.Sprintf("%d0%d15", 2015+rng.IntN(8), 1+rng.IntN(9))
			at := t0.Add(time.Duration(i*rng.IntN(5)) * time.Minute)
			kind := FactNotAfter
			if atoi8(d) < activation+trial%3*10000 {
				kind = FactAfter
			}
			if rng.IntN(5) == 0 {
				kind = FactNoActivationDate
			}
			facts = append(facts, fact(kind, d, at, fmt.Sprintf("JH%d", i)))
		}
		var want Knowledge
		for _, f := range facts {
			want.Observe(f)
		}
		for range 5 {
			rng.Shuffle(len(facts), func(i, j int) { facts[i], facts[j] = facts[j], facts[i] })
			var got Knowledge
			for _, f := range facts {
				got.Observe(f)
			}
			if got != want {
				t.Fatalf("trial %d: order changes the knowledge:\n got %+v\nwant %+v\nfacts %+v", trial, got, want, facts)
			}
			// Two instances that learnt half each, merged (the ledger).
			var x, y Knowledge
			for i, f := range facts {
				if i%2 == 0 {
					x.Observe(f)
				} else {
					y.Observe(f)
				}
			}
			x.Merge(y)
			if x != want {
				t.Fatalf("trial %d: merging halves differs:\n got %+v\nwant %+v\nfacts %+v", trial, x, want, facts)
			}
		}
	}
}

func atoi8(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}

func TestFactOf(t *testing.T) {
	t.Parallel()
	for _, st := range []Status{StatusRecycled, StatusNotRecycled, StatusNoActivationDate, StatusNoRecord} {
		f, ok := FactOf(Result{Status: st, OrderID: "JH9", Mode: "md5"}, "20240102", t0)
		if !ok || Status(f.Kind.String()) != st || f.Date != "20240102" || f.OrderID != "JH9" || f.Mode != "md5" {
			t.Errorf("FactOf(%s) = %+v, %v", st, f, ok)
		}
		if parseFactKind(f.Kind.String()) != f.Kind {
			t.Errorf("kind %v does not round-trip", f.Kind)
		}
	}
	for _, st := range []Status{StatusUnavailable, StatusSkipped, ""} {
		if _, ok := FactOf(Result{Status: st}, "20240102", t0); ok {
			t.Errorf("FactOf(%q) proves something", st)
		}
	}
}
