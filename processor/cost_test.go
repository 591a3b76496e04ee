package processor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"golang.org/x/time/rate"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace/noop"
)

// fakeClock is a clock that tests move.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// fakeProvider answers from a table of activation days, counting calls; a
// mobile not in the table has no record. With a gate, each call waits for
// it.
type fakeProvider struct {
	activation map[string]string // mobile → yyyymmdd; "" = res 3
	errFor     map[string]error  // mobile → the error its call returns
	gate       chan struct{}
	started    chan Lookup

	mu    sync.Mutex
	calls []Lookup
	n     int
}

func (f *fakeProvider) Enrich(ctx context.Context, l Lookup) (Result, error) {
	f.mu.Lock()
	f.calls = append(f.calls, l)
	f.n++
	n := f.n
	f.mu.Unlock()
	if f.started != nil {
		f.started <- l
	}
	if f.gate != nil {
		select {
		case <-f.gate:
		case <-ctx.Done():
			return Result{}, ctx.Err()
		}
	}
	if err := f.errFor[l.Mobile]; err != nil {
		return Result{Source: SourceAPI, Mode: "plain", Attempts: 1}, err
	}
	r := Result{Source: SourceAPI, Mode: "plain", Attempts: 1, OrderID: fmt.Sprintf("JH%04d", n)}
	a, ok := f.activation[l.Mobile]
	switch {
	case !ok:
		r.Status, r.Code, r.OrderID = StatusNoRecord, 232703, ""
	case a == "":
		r.Status, r.Res = StatusNoActivationDate, 3
	case a > l.Date:
		r.Status, r.Res = StatusRecycled, 1
	default:
		r.Status, r.Res = StatusNotRecycled, 2
	}
	return r, nil
}

// gatedProvider answers for 17300000010, activated on activation, one call
// at a time as the test lets it: it announces each call on started, then
// answers when gate is sent to.
func gatedProvider(activation string) *fakeProvider {
	return &fakeProvider{
		activation: map[string]string{"17300000010": activation},
		gate:       make(chan struct{}),
		started:    make(chan Lookup, 16),
	}
}

// releaseAll lets the gated call in flight answer, and each call that
// follows it, until none follows (within a synctest bubble), and returns the
// dates of the calls that followed.
func (f *fakeProvider) releaseAll() []string {
	var called []string
	for {
		f.gate <- struct{}{}
		synctest.Wait() // the waiters settled, and the next call, if any, started
		select {
		case l := <-f.started:
			called = append(called, l.Date)
		default:
			return called
		}
	}
}

func (f *fakeProvider) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.calls)
}

func newCost(t *testing.T, next Enricher, clock *fakeClock, change func(*CostConfig)) *CostControl {
	t.Helper()
	cfg := CostConfig{Secret: []byte("test-secret"), Now: clock.Now, PricePerCall: 0.4, Mode: "plain"}
	if change != nil {
		change(&cfg)
	}
	c, err := NewCostControl(next, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Open(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// A sequence of lookups of one mobile: which are paid, which come from the
// cache, with the order id of the answer they came from.
func TestCostControlPaysOncePerFact(t *testing.T) {
	t.Parallel()
	clock := &fakeClock{t: t0}
	p := &fakeProvider{activation: map[string]string{"17300000010": "20200315", "17300000011": ""}}
	c := newCost(t, p, clock, nil)
	steps := []struct {
		mobile, date string
		advance      time.Duration
		source       string
		status       Status
		orderFrom    int // the answer's order id: JH000n of the nth call; 0: none
	}{
		{"17300000010", "20190101", 0, SourceAPI, StatusRecycled, 1},                     // A > 20190101
		{"17300000010", "20180101", 0, SourceCache, StatusRecycled, 1},                   // implied: earlier date
		{"17300000010", "20190101", 0, SourceCache, StatusRecycled, 1},                   // the same date
		{"17300000010", "20210101", 0, SourceAPI, StatusNotRecycled, 2},                  // A ≤ 20210101
		{"17300000010", "20230101", 0, SourceCache, StatusNotRecycled, 2},                // implied: later date
		{"17300000010", "20200101", 0, SourceAPI, StatusRecycled, 3},                     // between the bounds
		{"17300000010", "20200101", 0, SourceCache, StatusRecycled, 3},                   // the lower bound moved up
		{"17300000010", "20240101", 7 * 24 * time.Hour, SourceAPI, StatusNotRecycled, 4}, // res 2 expired
		{"17300000010", "20100101", 0, SourceCache, StatusRecycled, 3},                   // res 1 never expires
		{"17300000011", "20240101", 0, SourceAPI, StatusNoActivationDate, 5},
		{"17300000011", "19990101", 0, SourceCache, StatusNoActivationDate, 5},
		{"17300000011", "19990101", time.Hour, SourceAPI, StatusNoActivationDate, 6}, // short TTL over
		{"17300000099", "20240101", 0, SourceAPI, StatusNoRecord, 0},
		{"17300000099", "20200101", 0, SourceCache, StatusNoRecord, 0},
	}
	paid := 0
	keys := map[string]MobileKey{}
	for i, s := range steps {
		clock.Add(s.advance)
		// Implied says beforehand what Enrich will do, and counts nothing
		// (wantCache below).
		key, implied := c.Implied(Lookup{Mobile: s.mobile, Date: s.date})
		if implied != (s.source == SourceCache) {
			t.Errorf("step %d (%s on %s): Implied = %v before a %s answer", i, s.mobile, s.date, implied, s.source)
		}
		if k, ok := keys[s.mobile]; ok && k != key || !ok && slices.Contains(slices.Collect(maps.Values(keys)), key) {
			t.Errorf("step %d: key %s for %s; keys so far %v", i, key, s.mobile, keys)
		}
		keys[s.mobile] = key
		r, err := c.Enrich(t.Context(), Lookup{Mobile: s.mobile, Date: s.date})
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		wantOrder := ""
		if s.orderFrom > 0 {
			wantOrder = fmt.Sprintf("JH%04d", s.orderFrom)
		}
		if r.Source != s.source || r.Status != s.status || r.OrderID != wantOrder {
			t.Errorf("step %d (%s on %s): %+v, want source %s status %s order %q", i, s.mobile, s.date, r, s.source, s.status, wantOrder)
		}
		if s.source == SourceAPI {
			paid++
		}
	}
	st := c.CostStats()
	if p.count() != paid || st.PaidCalls != int64(paid) {
		t.Errorf("provider calls %d, PaidCalls %d, want %d", p.count(), st.PaidCalls, paid)
	}
	wantCache := map[string]int64{"recycled": 4, "not_recycled": 1, "no_activation_date": 1, "no_record": 1}
	for k, v := range wantCache {
		if st.CacheAnswers[k] != v {
			t.Errorf("CacheAnswers[%s] = %d, want %d (all: %v)", k, st.CacheAnswers[k], v, st.CacheAnswers)
		}
	}
	if st.SpendCNY != math.Round(float64(paid)*0.4*1e6)/1e6 || st.BudgetRemaining != -1 {
		t.Errorf("SpendCNY %v, BudgetRemaining %d", st.SpendCNY, st.BudgetRemaining)
	}
}

// With the cache off, every lookup is paid.
func TestCostControlWithoutCache(t *testing.T) {
	t.Parallel()
	clock := &fakeClock{t: t0}
	p := &fakeProvider{activation: map[string]string{"17300000010": "20200315"}}
	c := newCost(t, p, clock, func(c *CostConfig) { c.DisableCache = true })
	for range 5 {
		if r, err := c.Enrich(t.Context(), Lookup{Mobile: "17300000010", Date: "20190101"}); err != nil || r.Source != SourceAPI {
			t.Fatalf("%+v %v", r, err)
		}
	}
	if p.count() != 5 || c.CostStats().PaidCalls != 5 {
		t.Fatalf("calls %d, want 5", p.count())
	}
}

// Concurrent lookups of one mobile share the call in flight: those whose
// dates its answer implies get a cache answer; one whose date it does not
// imply makes a call of its own afterwards.
func TestCostControlCoalesces(t *testing.T) {
	t.Parallel()
	synctest.Test(t, testCoalesces) // channels made in the bubble: synctest.Wait sees who waits
}

func testCoalesces(t *testing.T) {
	p := gatedProvider("20200315")
	c := newCost(t, p, &fakeClock{t: t0}, nil)
	type answer struct {
		r   Result
		err error
	}
	ask := func(date string) chan answer {
		ch := make(chan answer, 1)
		go func() {
			r, err := c.Enrich(t.Context(), Lookup{Mobile: "17300000010", Date: date})
			ch <- answer{r, err}
		}()
		return ch
	}
	implied := []string{"20190101", "20200101", "20150101", "20000101"}
	leader := ask("20200101") // res 1: implies every date up to 20200101
	if l := <-p.started; l.Date != "20200101" {
		t.Fatalf("first call for %s", l.Date)
	}
	var followers []chan answer
	for _, d := range implied {
		followers = append(followers, ask(d))
	}
	other := ask("20220101") // not implied by res 1 at 20200101
	synctest.Wait()          // all five wait for the leader's call
	p.gate <- struct{}{}

	if a := <-leader; a.err != nil || a.r.Source != SourceAPI || a.r.Status != StatusRecycled {
		t.Fatalf("leader: %+v %v", a.r, a.err)
	}
	for i, ch := range followers {
		if a := <-ch; a.err != nil || a.r.Source != SourceCache || a.r.Status != StatusRecycled || a.r.OrderID != "JH0001" {
			t.Errorf("follower %s: %+v %v", implied[i], a.r, a.err)
		}
	}
	if l := <-p.started; l.Date != "20220101" {
		t.Fatalf("second call for %s, want 20220101", l.Date)
	}
	p.gate <- struct{}{}
	if a := <-other; a.err != nil || a.r.Source != SourceAPI || a.r.Status != StatusNotRecycled {
		t.Fatalf("the lookup not implied: %+v %v", a.r, a.err)
	}
	st := c.CostStats()
	if p.count() != 2 || st.PaidCalls != 2 || st.Coalesced != int64(len(implied)+1) {
		t.Fatalf("calls %d, paid %d, coalesced %d; want 2, 2, %d", p.count(), st.PaidCalls, st.Coalesced, len(implied)+1)
	}
}

// enrichInBackground returns ask, which looks 17300000010 up on a date in a
// goroutine of its own and sends Enrich's error to errs.
func enrichInBackground(t *testing.T, c *CostControl, errs chan<- error) func(date string) {
	return func(date string) {
		go func() {
			_, err := c.Enrich(t.Context(), Lookup{Mobile: "17300000010", Date: date})
			errs <- err
		}()
	}
}

// A lookup counts as coalesced once, however many calls it waited for.
func TestCostControlCoalescedCountsLookups(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		p := gatedProvider("20200315")
		c := newCost(t, p, &fakeClock{t: t0}, nil)
		done := make(chan error, 3)
		ask := enrichInBackground(t, c, done)
		ask("20200101") // res 1: implies neither of the two below
		<-p.started
		ask("20210101")
		ask("20220101")
		synctest.Wait() // both wait for the first call
		p.gate <- struct{}{}
		synctest.Wait() // one leads the second call, the other waits again
		for finished := 0; finished < 3; {
			select {
			case <-p.started:
				p.gate <- struct{}{}
			case err := <-done:
				if err != nil {
					t.Fatal(err)
				}
				finished++
			}
		}
		if st := c.CostStats(); st.Coalesced != 2 {
			t.Errorf("coalesced %d, want 2: the two lookups that waited, once each (paid calls %d)", st.Coalesced, st.PaidCalls)
		}
	})
}

// The lookups waiting for a mobile's call, whose dates its answer leaves in
// doubt, take turns in the order that needs the fewest calls: the date
// farthest on the side the answers leave open, then, once the activation
// date is bounded on both sides, the median. Fifteen dates in doubt take
// one call when the activation date is outside them all, and five when it
// is among them, not fifteen.
func TestCostControlCoalescedCallOrder(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name, activation, first string
		want                    []string // the calls after the first, in order
	}{
		// Res 2 at 2026: of 2011–2025, the earliest, whose res 2 settles
		// them all.
		{"not re-issued", "20050101", "20260101", []string{"20110101"}},
		// Res 1 at 2010: the latest, whose res 1 settles them all.
		{"re-issued after all", "20300101", "20100101", []string{"20250101"}},
		// Res 1 at 2010, then res 2 at 2025 leaves 2011–2024 in doubt:
		// 2018 (res 1: 2011–2018 settled), then of 2019–2024 2022 (res 2),
		// then of 2019–2021 2020 (res 1), then 2021.
		{"re-issued among them", "20200315", "20100101", []string{"20250101", "20180101", "20220101", "20200101", "20210101"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				p := gatedProvider(tt.activation)
				c := newCost(t, p, &fakeClock{t: t0}, nil)
				type answer struct {
					date string
					r    Result
					err  error
				}
				answers := make(chan answer, 16)
				ask := func(date string) {
					go func() {
						r, err := c.Enrich(t.Context(), Lookup{Mobile: "17300000010", Date: date})
						answers <- answer{date, r, err}
					}()
				}
				ask(tt.first)
				<-p.started
				for _, y := range []int{2017, 2011, 2025, 2019, 2013, 2022, 2015, 2024, 2012, 2020, 2018, 2014, 2023, 2016, 2021} {
					ask(fmt.Sprintf("%d0101", y)) // in no order the turns may follow
				}
				synctest.Wait() // fifteen wait for the first call
				called := p.releaseAll()
				if !slices.Equal(called, tt.want) {
					t.Errorf("calls after the first for %v, want %v", called, tt.want)
				}
				for range 16 {
					a := <-answers
					wantStatus, wantSource := StatusRecycled, SourceCache
					if a.date >= tt.activation {
						wantStatus = StatusNotRecycled
					}
					if a.date == tt.first || slices.Contains(tt.want, a.date) {
						wantSource = SourceAPI
					}
					if a.err != nil || a.r.Status != wantStatus || a.r.Source != wantSource {
						t.Errorf("%s: %+v %v, want %s from %s", a.date, a.r, a.err, wantStatus, wantSource)
					}
				}
				if st := c.CostStats(); st.PaidCalls != int64(1+len(tt.want)) || st.Coalesced != 15 {
					t.Errorf("paid %d, coalesced %d; want %d, 15", st.PaidCalls, st.Coalesced, 1+len(tt.want))
				}
			})
		})
	}
}

// A lookup that found the knowledge short, and comes to make a call once
// the call in flight for its mobile has ended, asks the knowledge again:
// that call's answer may imply its date. (A replay paid twice for one fact
// when the two crossed.)
func TestCostControlSharedCallRechecksKnowledge(t *testing.T) {
	t.Parallel()
	p := &fakeProvider{activation: map[string]string{"17300000010": "20200315"}}
	c := newCost(t, p, &fakeClock{t: t0}, nil)
	l := Lookup{Mobile: "17300000010", Date: "20250429"}
	key := c.hasher.key(l.Mobile)
	if c.answerKnown(key, &l, new(Result)) {
		t.Fatal("known before any answer")
	}
	// Meanwhile, another lookup's call ends: res 2 at an earlier date.
	if _, err := c.Enrich(t.Context(), Lookup{Mobile: "17300000010", Date: "20240801"}); err != nil {
		t.Fatal(err)
	}
	r, err := c.share(t.Context(), key, l)
	if err != nil || r.Source != SourceCache || r.Status != StatusNotRecycled || r.OrderID != "JH0001" {
		t.Errorf("%+v %v, want not_recycled from the cache, by JH0001", r, err)
	}
	if p.count() != 1 {
		t.Errorf("%d calls, want 1", p.count())
	}
}

// A waiter that gives up leaves the others waiting: while it waits, or
// once chosen to make the next call, whose end then passes the turn on.
func TestCostControlCoalescedWaiterLeaves(t *testing.T) {
	t.Parallel()
	for _, chosen := range []bool{false, true} {
		t.Run(fmt.Sprintf("chosen=%v", chosen), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				p := gatedProvider("20200315")
				c := newCost(t, p, &fakeClock{t: t0}, nil)
				ctx, leave := context.WithCancel(t.Context())
				defer leave()
				done := make(chan error, 3)
				ask := func(ctx context.Context, date string) {
					go func() {
						_, err := c.Enrich(ctx, Lookup{Mobile: "17300000010", Date: date})
						done <- err
					}()
				}
				ask(t.Context(), "20100101") // res 1: leaves both below in doubt
				<-p.started
				// Res 1 at 2010 bounds A below only: the later of 2021 and 2022 is chosen.
				leaving, staying := "20210101", "20220101"
				if chosen {
					leaving, staying = staying, leaving
				}
				ask(ctx, leaving)
				ask(t.Context(), staying)
				synctest.Wait() // both wait for the first call
				var errs []error
				if !chosen {
					leave()
					synctest.Wait()
					select {
					case err := <-done:
						errs = append(errs, err) // it left before the call ended
					default:
						t.Fatal("the leaver waits for the call")
					}
				}
				p.gate <- struct{}{}
				if chosen {
					if l := <-p.started; l.Date != leaving {
						t.Fatalf("the second call for %s, want %s", l.Date, leaving)
					}
					leave() // during its call
				}
				if l := <-p.started; l.Date != staying {
					t.Fatalf("the next call for %s, want %s", l.Date, staying)
				}
				p.gate <- struct{}{}
				for len(errs) < 3 {
					errs = append(errs, <-done)
				}
				if errs = slices.DeleteFunc(errs, func(err error) bool { return err == nil }); len(errs) != 1 || !errors.Is(errs[0], context.Canceled) {
					t.Errorf("errors %v, want the leaver's cancellation alone", errs)
				}
				if st := c.CostStats(); st.PaidCalls != 2 || st.Coalesced != 2 {
					t.Errorf("paid %d, coalesced %d; want 2, 2", st.PaidCalls, st.Coalesced)
				}
			})
		})
	}
}

// Re-dividing the group's rate takes effect at once, also for the lookups
// already waiting: they do not keep turns taken at the old rate. (Fake
// time: synctest.)
func TestGroupRateRedivisionAppliesToWaiters(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		g := newGroupRate(20)
		w := startWaiters(t, g)
		w.add(41)
		synctest.Wait() // one passed at once; the others wait, at 20/s
		g.setMembers(2) // 10/s from now on
		passed := w.passed()
		// One at once, then 40 at 10/s: the last at about 4 s (the one
		// turn taken before the change may keep its 50 ms). At the old
		// 20/s it would be 2 s.
		if last := passed[len(passed)-1]; last < 3900*time.Millisecond {
			t.Errorf("the last of 41 calls passed at %v, want about 4s: the waiters kept the old rate", last)
		}
	})
}

// A group rate re-divided upwards (members left) applies to the lookups
// already waiting: with qps 1 among 10 members (0.1/s) and then alone
// (1/s), the two waiters queued behind the first call should pass within
// about 2 s of the change, not keep the old 10 s spacing.
func TestGroupRateRaisedAppliesToWaiters(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		g := newGroupRate(1)
		g.setMembers(10) // 0.1/s
		w := startWaiters(t, g)
		w.add(3)
		synctest.Wait() // one passed; two hold reservations at the old rate
		time.Sleep(time.Second)
		g.setMembers(1) // 1/s from now on
		passed := w.passed()
		if last := passed[len(passed)-1]; last > 4*time.Second {
			t.Errorf("after the share rose to 1/s at 1s, the waiters passed at %v: the old 0.1/s spacing was kept", passed)
		}
	})
}

// A waiter shares the provider's unavailability, but not a rejection of the
// leader's own lookup.
func TestCostControlCoalescedFailures(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name      string
		err       error
		wantCalls int
		wantErr   bool
	}{
		{"unavailable is shared", Unavailable(errors.New("breaker open")), 1, true},
		{"fatal is shared", Fatal(errors.New("bad key")), 1, true},
		{"a rejection is the lookup's own", Reject("bad_parameter", errors.New("232702")), 2, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				p := &fakeProvider{
					errFor:  map[string]error{"17300000010": tt.err},
					gate:    make(chan struct{}, 2),
					started: make(chan Lookup, 4),
				}
				c := newCost(t, p, &fakeClock{t: t0}, nil)
				errs := make(chan error, 2)
				for _, d := range []string{"20200101", "20210101"} {
					go func() {
						_, err := c.Enrich(t.Context(), Lookup{Mobile: "17300000010", Date: d})
						errs <- err
					}()
					if d == "20200101" {
						<-p.started
					}
				}
				synctest.Wait() // both wait: the second for the first's call
				p.gate <- struct{}{}
				p.gate <- struct{}{}
				for range 2 {
					if err := <-errs; (err != nil) != tt.wantErr || DispositionOf(err) != DispositionOf(tt.err) {
						t.Errorf("err %v, want %v", err, tt.err)
					}
				}
				if p.count() != tt.wantCalls {
					t.Errorf("calls %d, want %d", p.count(), tt.wantCalls)
				}
				if c.CostStats().PaidCalls != 0 {
					t.Errorf("failed calls counted as paid")
				}
			})
		})
	}
}

// A call whose provider panicked, the panic recovered by the caller (a
// library's user), is handed on: a lookup waiting for it makes the call,
// and later lookups do not wait for it for good.
func TestCostControlRecoveredPanicHandsTheCallOn(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		p := gatedProvider("20200315")
		panicked := false
		c := newCost(t, EnricherFunc(func(ctx context.Context, l Lookup) (Result, error) {
			r, err := p.Enrich(ctx, l)
			if !panicked {
				panicked = true
				panic("a provider bug")
			}
			return r, err
		}), &fakeClock{t: t0}, nil)
		go func() {
			defer func() { _ = recover() }()
			_, _ = c.Enrich(t.Context(), Lookup{Mobile: "17300000010", Date: "20200101"})
		}()
		<-p.started
		waiter := make(chan error, 1)
		go func() {
			r, err := c.Enrich(t.Context(), Lookup{Mobile: "17300000010", Date: "20200101"})
			if err == nil && r.Source != SourceAPI {
				err = fmt.Errorf("answer %+v, want the waiter's own call", r)
			}
			waiter <- err
		}()
		synctest.Wait() // the waiter waits for the call that panics
		p.gate <- struct{}{}
		<-p.started // the waiter makes the call
		p.gate <- struct{}{}
		if err := <-waiter; err != nil {
			t.Error(err)
		}
		if r, err := c.Enrich(t.Context(), Lookup{Mobile: "17300000010", Date: "20191231"}); err != nil || r.Source != SourceCache {
			t.Errorf("then: %+v %v, want a cache answer", r, err)
		}
	})
}

// Every lookup the budget refuses is counted, the waiters that share the
// refusal of their number's call too.
func TestCostControlCountsSharedBudgetRefusals(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		p := gatedProvider("20230315")
		c := newCost(t, p, &fakeClock{t: t0}, func(c *CostConfig) { c.DailyBudget = 1 })
		errs := make(chan error, 4)
		ask := enrichInBackground(t, c, errs)
		ask("20200101") // paid: res 1, which answers none of the later dates
		<-p.started
		for _, d := range []string{"20250101", "20260101", "20270101"} {
			ask(d)
		}
		synctest.Wait()
		p.gate <- struct{}{}
		refused := 0
		for range 4 {
			if err := <-errs; errors.Is(err, ErrBudgetSpent) {
				refused++
			}
		}
		if s := c.CostStats(); refused != 3 || s.BudgetRefusals != 3 {
			t.Errorf("%d lookups refused, %d refusals counted; want 3 and 3", refused, s.BudgetRefusals)
		}
	})
}

// A call's end answers its waiters from what its answer proves even when
// the cache no longer holds it (evicted meanwhile): asked of the cache
// alone, a waiter for the very date answered made a paid call of its own.
func TestCostControlWaitersAnsweredAfterEviction(t *testing.T) {
	t.Parallel()
	c := newCost(t, &fakeProvider{}, &fakeClock{t: t0}, nil)
	key := c.hasher.key("17300000010")
	w := &waiter{l: &Lookup{Mobile: "17300000010", Date: "20190101", key: key, keyed: true}, day: dayOf("20190101"), wake: make(chan wakeup, 1)}
	sh := c.calls.shard(key)
	sh.mu.Lock()
	sh.pending[key] = &pendingCall{started: true, waiters: []*waiter{w}}
	sh.mu.Unlock()
	// The leader's answer, which the cache (empty) does not hold.
	c.endCall(key, "20200101", Result{Status: StatusRecycled, Res: 1, OrderID: "JH7", Source: SourceAPI, Mode: "plain"}, nil)
	if u := <-w.wake; u.lead || u.err != nil || u.res.Source != SourceCache || u.res.OrderID != "JH7" {
		t.Errorf("waiter woken with %+v, want the answer JH7 implies", u)
	}
	if n := c.CallsInFlight(); n != 0 {
		t.Errorf("%d calls pending after the last waiter was answered", n)
	}
}

// With on_budget: emit, a lookup that finds the rest of the budget reserved
// by calls in flight is held back, not skipped: a call that fails gives
// its unit back, and the held lookup pays with it.
func TestCostControlBudgetInFlightIsNotSpent(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		p := gatedProvider("20200315")
		p.errFor = map[string]error{"17300000010": Unavailable(errors.New("down"))}
		c := newCost(t, p, &fakeClock{t: t0}, func(c *CostConfig) { c.DailyBudget, c.EmitSkipped = 1, true })
		first := make(chan error, 1)
		go func() {
			_, err := c.Enrich(t.Context(), Lookup{Mobile: "17300000010", Date: "20200101"})
			first <- err
		}()
		<-p.started // the budget's one unit is in flight
		r, err := c.Enrich(t.Context(), Lookup{Mobile: "17300000011", Date: "20200101"})
		if !errors.Is(err, errBudgetInFlight) || DispositionOf(err) != DispositionUnavailable || r.Status == StatusSkipped {
			t.Fatalf("with the last unit in flight: %+v %v, want held back (Unavailable), not skipped", r, err)
		}
		p.gate <- struct{}{}
		if err := <-first; DispositionOf(err) != DispositionUnavailable {
			t.Fatalf("the first call: %v, want its failure", err)
		}
		go func() { <-p.started; p.gate <- struct{}{} }()
		if r, err := c.Enrich(t.Context(), Lookup{Mobile: "17300000011", Date: "20200101"}); err != nil || r.Source != SourceAPI {
			t.Errorf("tried again after the unit came back: %+v %v, want a paid answer", r, err)
		}
		if r, err := c.Enrich(t.Context(), Lookup{Mobile: "17300000012", Date: "20200101"}); err != nil || r.Status != StatusSkipped {
			t.Errorf("with the budget spent: %+v %v, want skipped", r, err)
		}
	})
}

// A call that waits for the rate past midnight is the new day's: counted
// for the day it reserved in, every call waiting at midnight came on top of
// the new day's budget.
func TestCostControlBudgetAcrossMidnight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clock := &fakeClock{t: time.Date(2024, 6, 1, 23, 59, 59, 0, time.UTC)}
		p := &dayProvider{clock: clock, days: map[string]int{}}
		c := newCost(t, p, clock, func(c *CostConfig) { c.DailyBudget, c.QPS, c.Location = 2, 1, time.UTC })
		var wg sync.WaitGroup
		for _, m := range []string{"17300000001", "17300000002"} {
			wg.Go(func() { _, _ = c.Enrich(context.Background(), Lookup{Mobile: m, Date: "20240101"}) })
		}
		synctest.Wait() // one is paid; the other has its unit of 20240601 and waits for the rate
		clock.Add(2 * time.Second)
		wg.Wait()
		for _, m := range []string{"17300000003", "17300000004", "17300000005"} {
			_, _ = c.Enrich(context.Background(), Lookup{Mobile: m, Date: "20240101"})
		}
		if want := map[string]int{"20240601": 1, "20240602": 2}; !maps.Equal(p.days, want) {
			t.Errorf("calls by day %v, want %v: a daily budget of 2", p.days, want)
		}
	})
}

// dayProvider answers every lookup, counting its calls by the clock's day.
type dayProvider struct {
	clock *fakeClock
	mu    sync.Mutex
	days  map[string]int
}

func (p *dayProvider) Enrich(_ context.Context, l Lookup) (Result, error) {
	p.mu.Lock()
	p.days[DayOf(p.clock.Now(), time.UTC)]++
	p.mu.Unlock()
	return Result{Source: SourceAPI, Mode: "plain", Status: StatusNotRecycled, Res: 2, OrderID: "JH" + l.Mobile}, nil
}

// The daily budget: concurrent lookups never make more calls than it
// allows; then they are held back (Unavailable) or skipped; cache answers go
// on; failed calls give their unit back; the next day renews it.
func TestCostControlBudget(t *testing.T) {
	t.Parallel()
	for _, emit := range []bool{false, true} {
		t.Run(fmt.Sprintf("emit=%v", emit), func(t *testing.T) {
			shanghai := time.FixedZone("CST", 8*3600)
			clock := &fakeClock{t: time.Date(2024, 6, 1, 23, 0, 0, 0, shanghai)}
			act := map[string]string{}
			for i := range 40 {
				act[fmt.Sprintf("173000001%02d", i)] = "20200101"
			}
			p := &fakeProvider{activation: act, errFor: map[string]error{"17300000999": Unavailable(errors.New("down"))}}
			logs := &logLines{t: t}
			c := newCost(t, p, clock, func(c *CostConfig) {
				c.DailyBudget, c.EmitSkipped, c.Location = 10, emit, shanghai
				c.Logger = slog.New(slog.NewTextHandler(logs, nil))
			})
			// A failed call does not spend the budget.
			if _, err := c.Enrich(t.Context(), Lookup{Mobile: "17300000999", Date: "20240101"}); DispositionOf(err) != DispositionUnavailable {
				t.Fatalf("failed call: %v", err)
			}
			var wg sync.WaitGroup
			results := make(chan error, 40)
			skipped := make(chan bool, 40)
			for m := range act {
				wg.Go(func() {
					r, err := c.Enrich(t.Context(), Lookup{Mobile: m, Date: "20240101"})
					// Refused while the budget's last units were in flight:
					// held back and tried again, as the processor does,
					// until those calls are paid (or give their units back).
					for errors.Is(err, errBudgetInFlight) {
						runtime.Gosched()
						r, err = c.Enrich(t.Context(), Lookup{Mobile: m, Date: "20240101"})
					}
					results <- err
					skipped <- r.Status == StatusSkipped
				})
			}
			wg.Wait()
			close(results)
			close(skipped)
			refused, nSkipped := 0, 0
			for err := range results {
				if err != nil {
					if !errors.Is(err, ErrBudgetSpent) || DispositionOf(err) != DispositionUnavailable {
						t.Errorf("refusal %v, want Unavailable(ErrBudgetSpent)", err)
					}
					// Tried again at midnight at the latest, an hour away.
					if de, ok := errors.AsType[*DispositionError](err); !ok || de.RetryWithin != time.Hour {
						t.Errorf("refusal %v: retried within %v, want the hour until midnight in Shanghai", err, de.RetryWithin)
					}
					refused++
				}
			}
			for s := range skipped {
				if s {
					nSkipped++
				}
			}
			if p.count() != 1+10 {
				t.Fatalf("provider calls %d, want the failed one and exactly 10", p.count())
			}
			if emit && (nSkipped != 30 || refused != 0) || !emit && (refused != 30 || nSkipped != 0) {
				t.Fatalf("refused %d, skipped %d", refused, nSkipped)
			}
			st := c.CostStats()
			if st.BudgetRemaining != 0 || st.PaidCalls != 10 {
				t.Fatalf("remaining %d, paid %d", st.BudgetRemaining, st.PaidCalls)
			}
			// Cache answers go on.
			var known string
			for m := range act {
				if _, ok := c.Known(m); ok {
					known = m
					break
				}
			}
			if r, err := c.Enrich(t.Context(), Lookup{Mobile: known, Date: "20240102"}); err != nil || r.Source != SourceCache {
				t.Fatalf("cache answer with the budget spent: %+v %v", r, err)
			}
			// Midnight in Shanghai renews it.
			clock.Add(time.Hour)
			if r, err := c.Enrich(t.Context(), Lookup{Mobile: "17300000100", Date: "20100101"}); err != nil || r.Source != SourceAPI {
				t.Fatalf("after midnight: %+v %v", r, err)
			}
			if st := c.CostStats(); st.BudgetRemaining != 9 {
				t.Fatalf("remaining %d on the new day, want 9", st.BudgetRemaining)
			}
			// The operator is told once, whichever way the records go.
			want := "holding back records"
			if emit {
				want = `with status \"skipped\"`
			}
			if got := logs.String(); strings.Count(got, "daily budget spent") != 1 || !strings.Contains(got, want) {
				t.Errorf("%d warnings of the spent budget, want 1 saying %q:\n%s", strings.Count(got, "daily budget spent"), want, got)
			}
			// And once that it renewed.
			if _, err := c.Enrich(t.Context(), Lookup{Mobile: "17300000101", Date: "20100101"}); err != nil {
				t.Fatal(err)
			}
			if got := logs.String(); strings.Count(got, "daily budget renewed") != 1 {
				t.Errorf("%d lines of the budget's renewal, want 1:\n%s", strings.Count(got, "daily budget renewed"), got)
			}
		})
	}
}

// An event older than SkipOlderThan that needs a call is skipped; one the
// cache answers is answered.
func TestCostControlSkipOlderThan(t *testing.T) {
	t.Parallel()
	clock := &fakeClock{t: t0}
	p := &fakeProvider{activation: map[string]string{"17300000010": "20200315", "17300000011": "20200315"}}
	c := newCost(t, p, clock, func(c *CostConfig) { c.SkipOlderThan = 10 * time.Minute })
	if r, err := c.Enrich(t.Context(), Lookup{Mobile: "17300000010", Date: "20240601", At: t0.Add(-time.Minute)}); err != nil || r.Source != SourceAPI {
		t.Fatalf("a fresh event: %+v %v", r, err)
	}
	old := t0.Add(-11 * time.Minute)
	if r, err := c.Enrich(t.Context(), Lookup{Mobile: "17300000011", Date: "20240601", At: old}); err != nil || r.Status != StatusSkipped || r.Mode != "plain" {
		t.Fatalf("an old event: %+v %v", r, err)
	}
	if r, err := c.Enrich(t.Context(), Lookup{Mobile: "17300000010", Date: "20240601", At: old}); err != nil || r.Source != SourceCache {
		t.Fatalf("an old event the cache answers: %+v %v", r, err)
	}
	if r, err := c.Enrich(t.Context(), Lookup{Mobile: "17300000011", Date: "20240601"}); err != nil || r.Source != SourceAPI {
		t.Fatalf("an event of unknown time: %+v %v", r, err)
	}
	if p.count() != 2 || c.CostStats().Skipped != 1 {
		t.Fatalf("calls %d, skipped %d", p.count(), c.CostStats().Skipped)
	}
}

// A lookup that waits for another's call and becomes older than
// SkipOlderThan meanwhile is skipped when the call does not answer it: it
// does not make the next call.
func TestCostControlWaiterGrowsTooOld(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		clock := &fakeClock{t: t0}
		p := gatedProvider("20200315")
		c := newCost(t, p, clock, func(c *CostConfig) { c.SkipOlderThan = 10 * time.Minute })
		leader := make(chan Result, 1)
		go func() {
			r, _ := c.Enrich(t.Context(), Lookup{Mobile: "17300000010", Date: "20200101", At: t0})
			leader <- r
		}()
		<-p.started
		type answer struct {
			r   Result
			err error
		}
		waiter := make(chan answer, 1)
		go func() { // res 1 at 20200101 does not answer 20220101
			r, err := c.Enrich(t.Context(), Lookup{Mobile: "17300000010", Date: "20220101", At: t0.Add(-9 * time.Minute)})
			waiter <- answer{r, err}
		}()
		synctest.Wait()
		clock.Add(2 * time.Minute) // the waiter's event is 11 minutes old now
		p.gate <- struct{}{}
		if r := <-leader; r.Source != SourceAPI || r.Status != StatusRecycled {
			t.Fatalf("leader: %+v", r)
		}
		if a := <-waiter; a.err != nil || a.r.Status != StatusSkipped {
			t.Fatalf("waiter: %+v %v, want skipped", a.r, a.err)
		}
		if st := c.CostStats(); p.count() != 1 || st.Skipped != 1 || st.Coalesced != 1 {
			t.Fatalf("calls %d, skipped %d, coalesced %d; want 1, 1, 1", p.count(), st.Skipped, st.Coalesced)
		}
	})
}

// The group's rate is divided among its members.
func TestGroupRate(t *testing.T) {
	t.Parallel()
	g := newGroupRate(30)
	for _, tt := range []struct {
		members int
		want    float64
	}{{1, 30}, {3, 10}, {4, 7.5}, {0, 30}} {
		g.setMembers(tt.members)
		if got, _ := g.share(); got != tt.want {
			t.Errorf("%d members: %v per instance, want %v", tt.members, got, tt.want)
		}
	}
	if got, _ := newGroupRate(0).share(); got != 0 {
		t.Errorf("unlimited: %v", got)
	}
	if err := newGroupRate(0).wait(t.Context(), nil); err != nil {
		t.Error(err)
	}
}

func TestBudgetCountsTheLedger(t *testing.T) {
	t.Parallel()
	clock := &fakeClock{t: time.Date(2024, 6, 1, 12, 0, 0, 0, time.UTC)}
	b := newBudget(5, time.UTC, clock.Now)
	b.count("20240601", 3) // other instances, today
	b.count("20240531", 9) // yesterday: not today's
	b.count("20200101", 9) // long ago: dropped
	if got := b.remaining(); got != 2 {
		t.Fatalf("remaining %d, want 2", got)
	}
	d1, err1 := b.reserve()
	d2, err2 := b.reserve()
	_, err3 := b.reserve()
	if err1 != nil || err2 != nil || !errors.Is(err3, errBudgetInFlight) {
		t.Fatalf("reservations %v %v %v, want two, then the rest in flight", err1, err2, err3)
	}
	b.release(d1) // not made: the unit comes back
	d3, err := b.reserve()
	if err != nil {
		t.Fatal("a unit given back cannot be reserved")
	}
	for _, d := range []string{d2, d3} {
		if d, err = b.confirm(d); err != nil {
			t.Fatalf("a call with a unit reserved within the budget: %v", err)
		}
		b.settle(d, true)
	}
	if _, err := b.reserve(); !errors.Is(err, ErrBudgetSpent) || errors.Is(err, errBudgetInFlight) {
		t.Fatalf("reservation after the budget was paid: %v, want spent", err)
	}
	if len(b.days) > 2 {
		t.Errorf("old days kept: %v", b.days)
	}
	if err := b.spentError(); !errors.Is(err, ErrBudgetSpent) {
		t.Errorf("spentError %v", err)
	}
	if newBudget(0, time.UTC, clock.Now).remaining() != -1 {
		t.Error("no budget: remaining is not -1")
	}
}

// The spent signal of a day closes when that day's budget is spent while it
// is today, whether by this instance's calls or others' (the ledger); not
// for counts of a day gone, which would end the waits of calls that count
// for the new day.
func TestBudgetSpentSignal(t *testing.T) {
	t.Parallel()
	clock := &fakeClock{t: time.Date(2024, 6, 1, 23, 0, 0, 0, time.UTC)}
	b := newBudget(2, time.UTC, clock.Now)
	closed := func(ch <-chan struct{}) bool {
		select {
		case <-ch:
			return true
		default:
			return false
		}
	}
	if newBudget(0, time.UTC, clock.Now).spentSignal("20240601") != nil {
		t.Error("no budget: a spent signal")
	}
	today := b.spentSignal("20240601")
	d, err := b.reserve()
	if err == nil {
		d, err = b.confirm(d)
	}
	if err != nil {
		t.Fatal(err)
	}
	b.settle(d, true)
	if closed(today) {
		t.Fatal("closed with 1 of 2 calls paid")
	}
	b.count("20240601", 1) // another instance's call
	if !closed(today) {
		t.Fatal("not closed with 2 of 2 calls paid")
	}
	if !closed(b.spentSignal("20240601")) {
		t.Error("a signal asked for after the day was spent is not closed")
	}
	clock.t = clock.t.Add(2 * time.Hour) // the 2nd
	second := b.spentSignal("20240602")
	b.count("20240602", 1)
	if closed(second) {
		t.Error("the 2nd's signal closed with 1 of 2 calls")
	}
	b2 := newBudget(2, time.UTC, clock.Now)
	gone := b2.spentSignal("20240601")
	b2.count("20240601", 2) // read late, the day gone
	if closed(gone) {
		t.Error("the 1st's signal closed by a count read on the 2nd: it would end the waits of calls that count for the 2nd")
	}
}

// The cost of a lookup the knowledge answers: the hot path once warm.
func BenchmarkCostControlCacheAnswer(b *testing.B) {
	clock := &fakeClock{t: t0}
	act := map[string]string{}
	var mobiles []string
	for i := range 100 {
		m := fmt.Sprintf("173000001%02d", i)
		act[m] = "20200101"
		mobiles = append(mobiles, m)
	}
	// Without tracing, as twosell runs without a collector.
	c, err := NewCostControl(&fakeProvider{activation: act}, CostConfig{Secret: []byte("s"), Now: clock.Now, TracerProvider: noop.NewTracerProvider()})
	if err != nil {
		b.Fatal(err)
	}
	for _, m := range mobiles { // res 1 at 20191231 and res 2 at 20200101: every date known
		if _, err := c.Enrich(context.Background(), Lookup{Mobile: m, Date: "20191231"}); err != nil {
			b.Fatal(err)
		}
		if _, err := c.Enrich(context.Background(), Lookup{Mobile: m, Date: "20200101"}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			r, err := c.Enrich(context.Background(), Lookup{Mobile: mobiles[i%len(mobiles)], Date: "20230101"})
			if err != nil || r.Source != SourceCache {
				b.Fatalf("%+v %v", r, err)
			}
			i++
		}
	})
}

// Each lookup has a twosell.cache span saying where its answer came from;
// the paid call's spans are its children.
func TestCostControlSpans(t *testing.T) {
	t.Parallel()
	clock := &fakeClock{t: t0}
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	p := EnricherFunc(func(ctx context.Context, l Lookup) (Result, error) {
		_, s := tp.Tracer("test").Start(ctx, "juhe.query")
		s.End()
		return (&fakeProvider{activation: map[string]string{"17300000010": "20200315"}}).Enrich(ctx, l)
	})
	c := newCost(t, p, clock, func(c *CostConfig) { c.TracerProvider = tp })
	for _, d := range []string{"20190101", "20180101"} {
		if _, err := c.Enrich(t.Context(), Lookup{Mobile: "17300000010", Date: d}); err != nil {
			t.Fatal(err)
		}
	}
	var cache []sdktrace.ReadOnlySpan
	var query sdktrace.ReadOnlySpan
	for _, s := range spans.Ended() {
		switch s.Name() {
		case "twosell.cache":
			cache = append(cache, s)
		case "juhe.query":
			query = s
		}
		if strings.Contains(fmt.Sprint(s.Attributes()), "17300000010") {
			t.Errorf("span %s holds the number", s.Name())
		}
	}
	if len(cache) != 2 || query == nil || query.Parent().SpanID() != cache[0].SpanContext().SpanID() {
		t.Fatalf("spans: %d twosell.cache, juhe.query %v", len(cache), query)
	}
	for i, want := range []string{SourceAPI, SourceCache} {
		found := false
		for _, a := range cache[i].Attributes() {
			if a.Key == "twosell.source" && a.Value.AsString() == want {
				found = true
			}
		}
		if !found {
			t.Errorf("span %d: attributes %v, want source %s", i, cache[i].Attributes(), want)
		}
	}
}

// A request-limit answer sets the instance's rate to 9/10 of the answers of
// the last second; answers within the quiet time after a cut teach nothing;
// the rate rises by a tenth every rateProbeEvery without one, and a rate
// that reaches the configured share is forgotten. (Fake time: synctest.)
func TestGroupRateLearnsFromRequestLimits(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		answer := func(g *groupRate, n int, over time.Duration) {
			if over >= time.Second { // a whole second of answers: in the 10 tenths the counter counts
				time.Sleep(time.Until(time.Now().Truncate(100 * time.Millisecond).Add(100 * time.Millisecond)))
			}
			for i := range n {
				if i > 0 {
					time.Sleep(over / time.Duration(n))
				}
				g.answered(time.Now(), time.Now())
			}
		}
		g := newGroupRate(0) // no juhe.qps
		if _, ok := g.limited(time.Now()); ok {
			t.Error("a refusal with no answer in the last second taught a rate")
		}
		// The start of a run: calls made at once, the provider answers 50
		// and refuses the others, and a refusal comes in with only 2 of
		// the answers counted.
		began := time.Now()
		answer(g, 2, 50*time.Millisecond)
		if r, ok := g.limited(time.Now()); !ok || r != 1.8 {
			t.Errorf("a refusal 50 ms into the answers: %v %v, want 9/10 of the 2 answers so far", r, ok)
		}
		for range 48 { // the other answers of the calls made before the refusal
			g.answered(began, time.Now())
		}
		if q, _ := g.share(); q != 45 {
			t.Errorf("after the answers of the calls made before the refusal: share %v, want 9/10 of 50", q)
		}
		g.answered(time.Now(), time.Now()) // a call made after the cut
		time.Sleep(time.Second)
		g.answered(began, time.Now()) // the first second is over
		if q, _ := g.share(); q != 45 {
			t.Errorf("after answers of calls made after the cut or after the first second: share %v, want 45", q)
		}
		time.Sleep(30 * time.Second)         // a pause (the breaker open)
		answer(g, 100, 500*time.Millisecond) // half a second of answers after it
		if r, ok := g.limited(time.Now()); !ok || math.Abs(r-31.5) > 1e-9 {
			t.Errorf("a refusal half a second after a pause: %v %v, want 7/10 of the 45 learned", r, ok)
		}

		g = newGroupRate(0)
		answer(g, 300, time.Second)
		if r, ok := g.limited(time.Now()); !ok || r != 270 {
			t.Errorf("after 300 answers in a second: %v %v, want 270", r, ok)
		}
		if q, _ := g.share(); q != 270 {
			t.Errorf("share %v, want 270", q)
		}
		time.Sleep(time.Second)
		if _, ok := g.limited(time.Now()); ok {
			t.Error("a refusal 1s after a cut (a call made at the old rate) cut again")
		}
		time.Sleep(200 * time.Millisecond)
		answer(g, 200, time.Second) // past the quiet time: 200 answers in the last second
		if r, ok := g.limited(time.Now()); !ok || r != 180 {
			t.Errorf("after 200 answers in a second: %v %v, want 180", r, ok)
		}
		time.Sleep(rateProbeEvery - time.Second)
		if _, ok := g.answered(time.Now(), time.Now()); ok {
			t.Error("raised before rateProbeEvery")
		}
		time.Sleep(time.Second)
		if r, ok := g.answered(time.Now(), time.Now()); !ok || math.Abs(r-198) > 1e-9 {
			t.Errorf("after rateProbeEvery: %v %v, want 198", r, ok)
		}
		answer(g, 300, time.Second) // a burst the provider let through, then refused
		if r, ok := g.limited(time.Now()); !ok || math.Abs(r-138.6) > 1e-9 {
			t.Errorf("a learned rate refused again: %v %v, want 7/10 of 198", r, ok)
		}
		for range 6 { // calls at the learned rate for rateSteady and more: it was nearly kept up
			answer(g, 150, time.Second)
		}
		if r, ok := g.limited(time.Now()); !ok || math.Abs(r-124.74) > 1e-9 {
			t.Errorf("refused after %v at a learned rate: %v %v, want 9/10 of 138.6", rateSteady, r, ok)
		}

		g = newGroupRate(100) // juhe.qps 100 for the group
		g.setMembers(2)       // 50 for this instance
		answer(g, 50, time.Second)
		if r, ok := g.limited(time.Now()); !ok || r != 45 {
			t.Errorf("share 50, 50 answers: %v %v, want 45", r, ok)
		}
		time.Sleep(rateProbeEvery)
		if r, _ := g.answered(time.Now(), time.Now()); math.Abs(r-49.5) > 1e-9 {
			t.Errorf("first raise: %v, want 49.5", r)
		}
		g.setMembers(1) // the share is 100 now; the learned 49.5 stays below it
		if q, _ := g.share(); math.Abs(q-49.5) > 1e-9 {
			t.Errorf("after the group shrank: share %v, want the learned 49.5", q)
		}
		for range 8 { // 49.5 × 1.1^8 > 100: the share again
			time.Sleep(rateProbeEvery)
			g.answered(time.Now(), time.Now())
		}
		if q, _ := g.share(); q != 100 || g.learned != 0 {
			t.Errorf("after the raises: share %v, learned %v; want the share 100 and nothing learned", q, g.learned)
		}
	})
}

// A provider that refuses calls over 100 a second, asked as fast as 20
// lookups at a time can: after the first refusals (a cut from the answers so
// far, which include the provider's burst, or a second cut), the cost
// controls call it at 8/10 to 9/10 of its limit and it refuses no more.
// (Fake time: synctest.)
func TestCostControlSlowsDownOnRequestLimits(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		limit := rate.NewLimiter(100, 100)
		var mu sync.Mutex
		refusedAt := map[int]int{} // second → refusals
		answeredAt := map[int]int{}
		start := time.Now()
		provider := EnricherFunc(func(ctx context.Context, l Lookup) (Result, error) {
			time.Sleep(10 * time.Millisecond)
			sec := int(time.Since(start) / time.Second)
			mu.Lock()
			defer mu.Unlock()
			if !limit.Allow() {
				refusedAt[sec]++
				return Result{Mode: "plain", Code: 10012}, RateLimited(errors.New("10012 over the request limit"))
			}
			answeredAt[sec]++
			return Result{Status: StatusNotRecycled, Res: 2, Source: "api", Mode: "plain", OrderID: fmt.Sprintf("o-%d", answeredAt[sec])}, nil
		})
		c := newCost(t, provider, &fakeClock{t: t0}, nil)
		ctx, cancel := context.WithTimeout(t.Context(), 12*time.Second)
		defer cancel()
		var n atomic.Int64
		var wg sync.WaitGroup
		for range 20 {
			wg.Go(func() {
				for ctx.Err() == nil {
					i := n.Add(1)
					_, err := c.Enrich(ctx, Lookup{Mobile: fmt.Sprintf("173%08d", i), Date: "20240102"})
					if err != nil && !errors.Is(err, ErrRateLimited) && ctx.Err() == nil {
						t.Errorf("lookup: %v", err)
					}
				}
			})
		}
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		for sec := 3; sec < 12; sec++ {
			if refusedAt[sec] != 0 {
				t.Errorf("second %d: %d refusals, want none once the rate is learned (refusals by second: %v)", sec, refusedAt[sec], refusedAt)
			}
			if a := answeredAt[sec]; sec > 3 && (a < 80 || a > 100) { // the third changes rate midway
				t.Errorf("second %d: %d answers, want 80 to 100 (answers by second: %v)", sec, a, answeredAt)
			}
		}
		if q := c.CostStats().QPS; q < 80 || q > 95 {
			t.Errorf("the instance's rate is %v, want 8/10 to 9/10 of the provider's 100", q)
		}
	})
}
