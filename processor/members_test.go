package processor_test

import (
	"sync/atomic"
	"testing"
	"time"
)

// OnAssigned hears the group's member count after every rebalance: one,
// then two when a second instance joins, then one again when it leaves.
func TestOnAssignedCountsMembers(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 3)
	var a, b atomic.Int64
	cfg := h.config(answer)
	cfg.OnAssigned = func(n int) { a.Store(int64(n)) }
	_, _ = h.start(cfg)
	waitCount(t, "first instance alone", func() bool { return a.Load() == 1 })
	cfg.OnAssigned = func(n int) { b.Store(int64(n)) }
	_, stopB := h.start(cfg)
	waitCount(t, "both see two members", func() bool { return a.Load() == 2 && b.Load() == 2 })
	if err := stopB(); err != nil {
		t.Fatal(err)
	}
	waitCount(t, "the first sees one member again", func() bool { return a.Load() == 1 })
}

func waitCount(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
