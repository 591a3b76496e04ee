package processor

import (
	"context"
	"testing"

	"golang.org/x/sync/semaphore"
)

// A stop that has begun wins over a free slot: no record starts once it
// has (a select with both ready took either; found by review, once under
// -race: a record taken before a stop started during it, and was written
// and committed).
func TestAcquireAfterAStopBeganStartsNothing(t *testing.T) {
	p := &Processor{slots: make(chan struct{}, 1), slotBytes: semaphore.NewWeighted(1 << 20)}
	p.cfg.MaxInFlightBytes = 1 << 20
	stopped, cancel := context.WithCancel(t.Context())
	cancel()
	for i := range 100 {
		if p.acquire(stopped, t.Context(), 10) {
			t.Fatalf("try %d: a slot acquired after the stop began", i)
		}
		if p.acquire(t.Context(), stopped, 10) {
			t.Fatalf("try %d: a slot acquired for an abandoned record", i)
		}
	}
	if len(p.slots) != 0 {
		t.Errorf("%d slots held after the refusals, want 0", len(p.slots))
	}
	if !p.acquire(t.Context(), t.Context(), 10) {
		t.Error("no slot acquired without a stop")
	}
}
