package processor

import "testing"

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
