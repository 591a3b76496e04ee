package processor

import (
	"context"
	"testing"
	"time"
)

// A dispatcher's clock is read once per tickRecords records, anew when it is
// marked stale (before a wait it knows of), and anew once a tick has passed:
// a produce that waited for the brokers (an output topic down for an hour)
// is a wait it does not know of, and the records after it carried the time
// before it, for up to tickRecords records (an expired answer answering
// them, an old checked_at).
func TestTickClockReadsAnewAfterATick(t *testing.T) {
	var ticks clockTicks
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	c := tickClock{now: func() time.Time { return now }, ticks: &ticks}
	first := c.read()
	now = now.Add(time.Hour) // a produce waited an hour
	if got := c.read(); !got.Equal(first) {
		t.Fatalf("read %v before tickRecords records or a tick, want the time read before, %v", got, first)
	}
	ticks.n.Add(1)
	if got := c.read(); !got.Equal(now) {
		t.Fatalf("read %v after a tick, want the time now, %v", got, now)
	}
	// Without a tick, anew after tickRecords records, as before.
	read := now
	now = now.Add(time.Minute)
	for i := 1; i < tickRecords; i++ {
		if got := c.read(); !got.Equal(read) {
			t.Fatalf("read %d: %v, want %v", i, got, read)
		}
	}
	if got := c.read(); !got.Equal(now) {
		t.Fatalf("read after %d records: %v, want %v", tickRecords, got, now)
	}
}

// The ticks count those of their ticker, until the run ends.
func TestClockTicksCount(t *testing.T) {
	var ticks clockTicks
	ctx, cancel := context.WithCancel(t.Context())
	tick := make(chan time.Time)
	done := make(chan struct{})
	go func() { ticks.run(ctx, tick); close(done) }()
	tick <- time.Now()
	tick <- time.Now() // received: the first is counted, the second is being
	cancel()
	<-done
	if n := ticks.n.Load(); n != 2 {
		t.Errorf("%d ticks counted, want 2", n)
	}
}
