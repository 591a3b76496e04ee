package processor

import (
	"errors"
	"testing"
	"time"
)

// A retry is held to the instance's share of the budget, its lookup's own
// earlier requests counted as spent. Not held to it, two instances whose
// first requests (their shares: 3 each of a budget of 5) timed out together
// retried until each alone had the whole budget in flight: 10 requests
// paid, not the 6 that members − 1 over allows (found by review). Both
// instances here have read everything the other finished (nothing yet).
func TestRetryIsHeldToTheShare(t *testing.T) {
	now := func() time.Time { return time.Date(2024, 1, 1, 12, 0, 0, 0, time.UTC) }
	for _, tt := range []struct {
		name           string
		limit, members int
		first          int  // first requests in flight, each its lookup's
		retry          bool // whether a retry of one of them may be made
	}{
		{"two instances, budget 5: a share of 3 in flight", 5, 2, 3, false},
		{"two instances, budget 100: 50 in flight", 100, 2, 50, true}, // ceil((100-1)/2) = 50 > 49 others
		{"two instances, budget 101: 51 in flight", 101, 2, 51, false},
		{"one instance, budget 5: 3 in flight", 5, 1, 3, true},
		{"ten instances, budget 10: the only lookup", 10, 10, 1, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := newBudget(int64(tt.limit), time.UTC, now)
			b.setMembers(tt.members)
			var day string
			for range tt.first {
				d, err := b.reserve(nil)
				if err == nil {
					d, err = b.confirm(d, nil)
				}
				if err != nil {
					t.Fatalf("first requests: %v", err)
				}
				day = d
			}
			if full := tt.first*tt.members >= tt.limit; full {
				if _, err := b.reserve(nil); !errors.Is(err, errBudgetInFlight) {
					t.Fatalf("a new lookup with the share in flight: %v, want held back", err)
				}
			}
			d, err := b.reserve([]string{day})
			if err == nil {
				_, err = b.confirm(d, []string{day})
			}
			if got := err == nil; got != tt.retry {
				t.Errorf("retry allowed %v (%v), want %v", got, err, tt.retry)
			}
		})
	}
}
