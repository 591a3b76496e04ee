package juhesim

import (
	"testing"
	"time"
)

// TestOrderIDCounterWraps: the counter keeps four digits past 9999, so an
// order id is always 23 characters, as in the document.
func TestOrderIDCounterWraps(t *testing.T) {
	s, err := New(Config{Keys: []string{"k"}, Population: -1,
		Now: func() time.Time { return time.Date(2019, 11, 8, 7, 25, 22, 0, time.UTC) }})
	if err != nil {
		t.Fatal(err)
	}
	s.orders.Store(9998)
	for _, want := range []string{"JH327201911081525229999", "JH327201911081525220000", "JH327201911081525220001"} {
		if got := s.orderID(); got != want {
			t.Errorf("orderID() = %s, want %s", got, want)
		}
	}
}
