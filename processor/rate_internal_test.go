package processor

import (
	"context"
	"fmt"
	"math"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// now takes a place only when the rate has one free at once, and never
// from under a waiter that holds the turn.
func TestGroupRateNow(t *testing.T) {
	if !newGroupRate(0).now() {
		t.Error("unlimited: now refused")
	}
	g := newGroupRate(0.001) // one call, then none for 1000 s
	if !g.now() {
		t.Fatal("the first call's place refused")
	}
	if g.now() {
		t.Error("a second place at once, over the rate")
	}
	g = newGroupRate(1000)
	g.turn <- struct{}{} // a waiter reserving its place
	if g.now() {
		t.Error("a place taken from under the waiter holding the turn")
	}
	<-g.turn
	if !g.now() {
		t.Error("refused once the turn is free")
	}
}

// When the share rises (qps 1 among m0 members, then alone: 1/s), the calls
// passed after it are still at least 1 s apart. Cancelling the waiters'
// reservations across a change (x/time/rate's CancelAt after a SetLimit)
// gave back more tokens than they took: calls came as close as 125 ms.
// (Fake time: synctest. Goroutine order varies, so a grid of cases is run.)
func TestGroupRateRaiseKeepsSpacing(t *testing.T) {
	t.Parallel()
	var bad []string
	for _, m0 := range []int{10, 4, 2} {
		for _, n := range []int{2, 3, 5} {
			for _, late := range []int{0, 1, 3} {
				for _, at := range []time.Duration{500 * time.Millisecond, time.Second, 1500 * time.Millisecond} {
					var passed []time.Duration
					synctest.Test(t, func(t *testing.T) {
						g := newGroupRate(1)
						g.setMembers(m0)
						w := startWaiters(t, g)
						w.add(n)
						synctest.Wait()
						time.Sleep(at)
						g.setMembers(1) // 1/s from now on
						w.add(late)
						passed = w.passed()
					})
					for i := 1; i < len(passed); i++ {
						if gap := passed[i] - passed[i-1]; gap < time.Second-time.Millisecond {
							bad = append(bad, fmt.Sprintf("members %d->1 at %v, %d+%d waiters: calls at %v (%v apart)", m0, at, n, late, passed, gap))
							break
						}
					}
				}
			}
		}
	}
	if len(bad) > 0 {
		t.Errorf("at 1/s, %d of 81 cases passed calls less than 1s apart; e.g. %s", len(bad), bad[0])
	}
}

// Changes of the limit more often than its interval do not stop the calls:
// at qps 1 with the members going 1, 2, 1, 2... every 300 ms (1/s and
// 0.5/s), 20 waiters make about 15 calls in 20 s, at least 0.5/s. With the
// waiters cancelling their reservations at each change, each change lost a
// token: 1 to 3 calls.
func TestGroupRateFrequentChangesDoNotStarve(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		g := newGroupRate(1)
		start := time.Now()
		const dur = 20 * time.Second
		var calls atomic.Int64
		var wg sync.WaitGroup
		for range 20 {
			wg.Go(func() {
				for time.Since(start) < dur {
					if err := g.wait(t.Context(), nil); err != nil {
						t.Error(err)
						return
					}
					if time.Since(start) < dur {
						calls.Add(1)
					}
				}
			})
		}
		for i := 0; time.Since(start) < dur; i++ {
			time.Sleep(300 * time.Millisecond)
			g.setMembers(1 + i%2)
		}
		wg.Wait()
		t.Logf("%d calls in %v", calls.Load(), dur)
		if n := calls.Load(); n < 10 {
			t.Errorf("%d calls in %v at 0.5-1/s with the limit changing every 300ms (%.2f/s): the waiters starve", n, dur, float64(n)/dur.Seconds())
		}
	})
}

// A lookup keeps its place when the limit changes: with qps 10 and the
// members going 3, 4, 3, 4... every second, 20 lookups always waiting and a
// new one as each passes, none waits long. (Each change sent the waiters
// holding reservations to the back of the turn's queue: one waited the
// whole 10 minutes.)
func TestGroupRateChangesKeepTheWaitersPlaces(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		const dur = 600 * time.Second
		g := newGroupRate(10)
		start := time.Now()
		var mu sync.Mutex
		var longest time.Duration
		var calls int
		var wg sync.WaitGroup
		var lookup func()
		lookup = func() {
			in := time.Now()
			if err := g.wait(t.Context(), nil); err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			longest = max(longest, time.Since(in))
			calls++
			mu.Unlock()
			if time.Since(start) < dur {
				wg.Go(lookup)
			}
		}
		for range 20 {
			wg.Go(lookup)
		}
		for i := 0; time.Since(start) < dur; i++ {
			time.Sleep(time.Second)
			g.setMembers(3 + i%2)
		}
		wg.Wait()
		t.Logf("%d calls in %v; longest wait of a lookup %v", calls, dur, longest)
		if longest > 60*time.Second {
			t.Errorf("a lookup waited %v while %d others passed (20 waiting, 2.5-3.3/s, the limit changing every 1s): "+
				"each change sends the waiters holding reservations to the back of the turn's queue", longest, calls)
		}
	})
}

// The first limit learned without a configured rate (qps 0: unlimited until
// the provider refuses) spaces the next call from the last one: calls every
// 100 ms, a refusal 10 ms after the last teaches 9/s (111 ms), and the next
// call should not pass 10 ms after the last.
func TestGroupRateFirstCutKeepsSpacing(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		g := newGroupRate(0)
		var last time.Time
		for i := range 10 {
			if i > 0 {
				time.Sleep(100 * time.Millisecond)
			}
			if err := g.wait(t.Context(), nil); err != nil {
				t.Fatal(err)
			}
			last = time.Now()
			g.answered(last, last)
		}
		time.Sleep(10 * time.Millisecond)
		r, cut := g.limited(time.Now())
		if !cut {
			t.Fatal("no cut")
		}
		if err := g.wait(t.Context(), nil); err != nil {
			t.Fatal(err)
		}
		gap, iv := time.Since(last), time.Duration(float64(time.Second)/r)
		t.Logf("cut to %.1f/s (%v); the next call passed %v after the last", r, iv, gap)
		if gap < iv {
			t.Errorf("the first call after the cut to %.1f/s passed %v after the last call, less than its interval %v", r, gap, iv)
		}
	})
}

// blockedIn spins (no time passes) until some goroutine's stack holds all of
// frames: a goroutine blocked on a sync.Mutex is not durably blocked, so
// synctest.Wait cannot be used for it.
func blockedIn(t *testing.T, frames ...string) {
	t.Helper()
	buf := make([]byte, 1<<20)
	for range 200000 {
		runtime.Gosched()
		n := runtime.Stack(buf, true)
		for _, gr := range strings.Split(string(buf[:n]), "\n\n") {
			ok := true
			for _, f := range frames {
				ok = ok && strings.Contains(gr, f)
			}
			if ok {
				return
			}
		}
	}
	t.Fatalf("no goroutine blocked in %v", frames)
}

// A call on the unlimited path (wait or now while there is no limit) that
// records its pass as the first limit is built is counted by that limit,
// or waits for it: it passed unaccounted before, and the next call 11 ms
// after it under 9/s. The window is made certain by holding g.mu while the
// caller records its pass, and doing what limited() does under it.
func TestGroupRateUnlimitedPassRacesFirstLimiter(t *testing.T) {
	for _, via := range []string{"wait", "now"} {
		t.Run(via, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				g := newGroupRate(0)
				if err := g.wait(t.Context(), nil); err != nil { // lastPass = 0
					t.Fatal(err)
				}
				time.Sleep(100 * time.Millisecond)
				g.mu.Lock()
				done := make(chan bool)
				go func() {
					if via == "wait" {
						done <- g.wait(t.Context(), nil) == nil
					} else {
						done <- g.now()
					}
				}()
				blockedIn(t, "(*groupRate).passed", "sync.(*Mutex).Lock")
				g.learned = 9 // limited(): cut to 9/s (111ms), under g.mu
				g.applyLocked()
				g.mu.Unlock()
				if !<-done {
					if via == "now" {
						return // refused: the new limit had no place free
					}
					t.Fatal("the racing call did not pass")
				}
				racer := time.Now()
				if err := g.wait(t.Context(), nil); err != nil {
					t.Fatal(err)
				}
				gap, iv := time.Since(racer), time.Second/9
				t.Logf("%s: racing pass at %v; the next passed %v later (interval %v)", via, racer.Sub(time.Unix(946684800, 0)), gap, iv)
				if gap < iv {
					t.Errorf("%s: a call passed %v after the racing unlimited pass, under a limit of 9/s (%v)", via, gap, iv)
				}
			})
		})
	}
}

// A stop already done when wait is called ends it: the AfterFunc that
// cancels the derived ctx runs on another goroutine, and wait took a free
// token and returned nil (268 of 300 trials; always when unlimited), so
// that BeforeRetry let a retry go at a stop.
func TestGroupRateStopAlreadyDone(t *testing.T) {
	for _, qps := range []float64{1, 0} {
		passed := 0
		const trials = 300
		for range trials {
			synctest.Test(t, func(t *testing.T) {
				g := newGroupRate(qps)
				stop, cancel := context.WithCancel(context.Background())
				cancel()
				if g.wait(t.Context(), stop) == nil {
					passed++
				}
				if len(g.turn) != 0 {
					t.Fatal("turn held")
				}
			})
		}
		t.Logf("qps %v: wait(ctx, stop already done) returned nil in %d of %d trials", qps, passed, trials)
		if passed > 0 {
			t.Errorf("qps %v: a wait whose stop had ended passed %d of %d times (a token taken, lastPass set)", qps, passed, trials)
		}
	}
}

// waiters are goroutines that each wait for a groupRate once.
type waiters struct {
	t     *testing.T
	g     *groupRate
	start time.Time
	wg    sync.WaitGroup
	mu    sync.Mutex
	at    []time.Duration
}

func startWaiters(t *testing.T, g *groupRate) *waiters {
	return &waiters{t: t, g: g, start: time.Now()}
}

// add starts n more.
func (w *waiters) add(n int) {
	for range n {
		w.wg.Go(func() {
			if err := w.g.wait(w.t.Context(), nil); err != nil {
				w.t.Error(err)
			}
			w.mu.Lock()
			w.at = append(w.at, time.Since(w.start))
			w.mu.Unlock()
		})
	}
}

// passed waits for them all and returns when each passed, from the start,
// sorted.
func (w *waiters) passed() []time.Duration {
	w.wg.Wait()
	slices.Sort(w.at)
	return w.at
}

// Waiters pass in the order they came, whatever the changes of the limit:
// at qps 1 with the members going 1, 2, 1, 2... every 300 ms, each waiter
// past the turn reserved again on its own at each change, in whatever
// order the scheduler woke them, and one waited 37 s against a 5.9 s mean,
// overtaken 26 times. A lookup comes every 1.5 s (about what passes), and
// 10 wait from the start.
func TestGroupRateChangesKeepTheWaitersOrder(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		const dur = 120 * time.Second
		g := newGroupRate(1)
		start := time.Now()
		var mu sync.Mutex
		var order []int // arrival numbers, in the order they passed
		var longest time.Duration
		var wg sync.WaitGroup
		lookup := func(n int) {
			in := time.Now()
			if err := g.wait(t.Context(), nil); err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			order = append(order, n)
			longest = max(longest, time.Since(in))
			mu.Unlock()
		}
		n := 0
		for range 10 { // in turn: each is in wait before the next comes
			k := n
			wg.Go(func() { lookup(k) })
			synctest.Wait()
			n++
		}
		changes := time.NewTicker(300 * time.Millisecond)
		arrivals := time.NewTicker(1500 * time.Millisecond)
		for i := 0; time.Since(start) < dur; {
			select {
			case <-changes.C:
				g.setMembers(1 + i%2)
				i++
			case <-arrivals.C:
				k := n
				wg.Go(func() { lookup(k) })
				synctest.Wait()
				n++
			}
		}
		changes.Stop()
		arrivals.Stop()
		g.setMembers(1)
		wg.Wait()
		overtaken := 0
		for i, a := range order {
			for _, b := range order[i+1:] {
				if b < a {
					overtaken++
				}
			}
		}
		t.Logf("%d lookups; longest wait %v; %d pairs out of order", len(order), longest, overtaken)
		if overtaken > 0 {
			t.Errorf("%d pairs of lookups passed out of the order they came in (longest wait %v): the waiters reserve again in no order at each change", overtaken, longest)
		}
	})
}

// A waiter that gives up gives its slot back: at 1/s, a call at 0, A
// reserving 1 s and B 2 s; A's lookup is abandoned at 0.5 s, and B passes at
// 1 s. x/time/rate's Cancel gives nothing back once a later reservation was
// made: B passed at 2 s, and the rate lost a call.
func TestGroupRateLeaverGivesItsSlotBack(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		g := newGroupRate(1)
		start := time.Now()
		if err := g.wait(t.Context(), nil); err != nil {
			t.Fatal(err)
		}
		ctxA, cancelA := context.WithCancel(t.Context())
		errA := make(chan error, 1)
		go func() { errA <- g.wait(ctxA, nil) }()
		synctest.Wait()
		passedB := make(chan time.Duration, 1)
		go func() {
			if err := g.wait(t.Context(), nil); err != nil {
				t.Error(err)
			}
			passedB <- time.Since(start)
		}()
		synctest.Wait()
		time.Sleep(500 * time.Millisecond)
		cancelA()
		if err := <-errA; err == nil {
			t.Fatal("A passed")
		}
		if b := <-passedB; b != time.Second {
			t.Errorf("B passed at %v, want 1s: A's slot was not given back", b)
		}
	})
}

// Without juhe.qps, a learned rate that rises on and on is forgotten
// (rateForget) rather than overflowing: raised by a tenth every 5 minutes
// without a refusal, it reached +Inf after 7,417 raises (26 days), the
// limiter was dropped, and answered panicked on it. (Found by review.)
func TestGroupRateLearnedRateIsForgottenNotOverflowed(t *testing.T) {
	t.Parallel()
	g := newGroupRate(0)
	t0 := time.Unix(1_700_000_000, 0)
	for i := range 20 {
		at := t0.Add(time.Duration(i) * 50 * time.Millisecond)
		g.answered(at, at)
	}
	if _, cut := g.limited(t0.Add(time.Second)); !cut {
		t.Fatal("no rate learned from the refusal")
	}
	now := t0.Add(time.Second)
	forgotten := false
	for i := 0; i < 10000 && !forgotten; i++ {
		now = now.Add(rateProbeEvery)
		r, raised := g.answered(now, now)
		if raised && r == 0 {
			forgotten = true
		}
		if rate, _ := g.share(); math.IsInf(rate, 0) || math.IsNaN(rate) {
			t.Fatalf("raise %d: the rate is %v", i, rate)
		}
	}
	if !forgotten {
		t.Fatal("the learned rate was never forgotten")
	}
	if rate, _ := g.share(); rate != 0 {
		t.Errorf("after it was forgotten the rate is %v/s, want none", rate)
	}
	if err := g.wait(t.Context(), nil); err != nil { // unlimited: passes at once
		t.Fatal(err)
	}
}
