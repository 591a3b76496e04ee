package juhe

import (
	"context"
	"math/rand/v2"
	"time"
)

// backoff computes the wait before a retry: exponential from base, capped
// at max, with full jitter (a uniform draw in [0, cap]). Full jitter spreads
// the retries of many concurrent queries that failed together, so that they
// do not return to the provider in one burst.
type backoff struct {
	base, max time.Duration
}

// delay returns the wait before retry n (1 for the first retry).
func (b backoff) delay(n int) time.Duration {
	ceiling := b.max
	if n >= 1 && n < 63 {
		if d := b.base << (n - 1); d > 0 && d>>(n-1) == b.base && d < ceiling {
			ceiling = d
		}
	}
	if ceiling <= 0 {
		return 0
	}
	return rand.N(ceiling + 1)
}

// sleep waits for d or until ctx is done, whichever comes first, and
// returns ctx's error in the second case.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
