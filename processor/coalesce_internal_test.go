package processor

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type recWake struct{ ch chan wakeup }

func (r recWake) woken(u wakeup) { r.ch <- u }

// A lookup that asked the knowledge just before a call of its number ended,
// and reaches share while the next call is led by an await waiter that has
// no slot yet (pendingCall.started false), takes that call over without
// asking the knowledge again: it pays for a date the call that just ended
// answered. (The p == nil branch asks again for this very reason.) (Found
// by review.)
func TestTakeoverAsksTheKnowledgeFirst(t *testing.T) {
	const m = "17300000010"
	p := gatedProvider("20200315") // A = 20200315
	var armed atomic.Bool
	inNow, release := make(chan struct{}), make(chan struct{})
	base := &fakeClock{t: t0}
	now := func() time.Time {
		if armed.CompareAndSwap(true, false) {
			close(inNow)
			<-release
		}
		return base.Now()
	}
	c := newCost(t, p, base, func(cfg *CostConfig) {
		cfg.Now = now
		cfg.SkipOlderThan = 1000 * time.Hour // only so that a miss reads the clock (tooOld)
	})
	key := c.hasher.key(m)

	// X: a call for 20200101, in flight.
	var wg sync.WaitGroup
	wg.Go(func() {
		if r, err := c.Enrich(context.Background(), Lookup{Mobile: m, Date: "20200101"}); err != nil || r.Status != StatusRecycled {
			t.Errorf("X: %+v %v", r, err)
		}
	})
	<-p.started
	// W: a record of the dispatcher waiting for X (await), for a date X's
	// answer will not settle.
	wch := make(chan wakeup, 1)
	w := &waiter{l: &Lookup{Mobile: m, Date: "20210101", key: key, keyed: true}, to: recWake{wch}}
	if !c.await(w) {
		t.Fatal("await found no call in flight")
	}
	// S: a retried lookup for 20190101; it asks the knowledge (a miss)...
	armed.Store(true)
	var sres Result
	wg.Go(func() {
		var err error
		sres, err = c.Enrich(context.Background(), Lookup{Mobile: m, Date: "20190101", At: t0})
		if err != nil {
			t.Errorf("S: %v", err)
		}
	})
	<-inNow
	// ... X answers res 1 at 20200101 (A > 20200101: 20190101 is recycled),
	// and W is chosen to lead the next call; it waits for a slot.
	p.gate <- struct{}{}
	if u := <-wch; !u.lead {
		t.Fatalf("W woken with %+v, want lead", u)
	}
	go func() { // answer any further call
		for range p.started {
			p.gate <- struct{}{}
		}
	}()
	close(release) // S goes on to share
	wg.Wait()
	if n := p.count(); n != 1 {
		t.Errorf("%d paid calls, want 1: S (20190101) paid although X's res 1 at 20200101 implied it (S: %+v)", n, sres)
	}
	if c.claim(key) {
		c.called(key, Result{}, context.Canceled)
	}
}

type orderWake struct {
	name  string
	mu    *sync.Mutex
	order *[]string
	lead  *bool
}

func (o orderWake) woken(u wakeup) {
	o.mu.Lock()
	defer o.mu.Unlock()
	*o.order = append(*o.order, o.name)
	if u.lead {
		*o.lead = true
	}
}

// When a call ends, the waiter that makes the number's next call is woken
// before those its answer settled: each of these builds and hands over its
// output as it is woken, and the next call waited for all of them (on the
// cache-warm bench, up to 28 ms between a number's answer and its next
// call).
func TestNextCallerIsWokenFirst(t *testing.T) {
	const m = "17300000010"
	p := gatedProvider("20200315") // A = 20200315
	c := newCost(t, p, &fakeClock{t: t0}, nil)
	key := c.hasher.key(m)

	var wg sync.WaitGroup
	wg.Go(func() {
		if r, err := c.Enrich(context.Background(), Lookup{Mobile: m, Date: "20200101"}); err != nil || r.Status != StatusRecycled {
			t.Errorf("the call: %+v %v", r, err)
		}
	})
	<-p.started
	var mu sync.Mutex
	var order []string
	var led bool
	for _, w := range []struct{ name, date string }{
		{"settled-1", "20190101"}, // res 1 at 20200101 settles it
		{"in-doubt", "20210101"},  // not settled: makes the next call
		{"settled-2", "20190601"},
	} {
		wt := &waiter{l: &Lookup{Mobile: m, Date: w.date, key: key, keyed: true}, to: orderWake{name: w.name, mu: &mu, order: &order, lead: &led}}
		if !c.await(wt) {
			t.Fatal("await found no call in flight")
		}
	}
	p.gate <- struct{}{}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if len(order) != 3 || order[0] != "in-doubt" || !led {
		t.Errorf("woken in the order %v (a lead: %v), want the waiter in doubt first, as the lead", order, led)
	}
	if c.claim(key) {
		c.called(key, Result{}, context.Canceled)
	}
}
