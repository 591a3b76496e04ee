package processor

import (
	"context"
	"fmt"
	"strconv"
	"testing"
)

// The estimated spend is PaidCalls × the price without binary noise: 3
// calls at 0.4 showed as 1.2000000000000002 in the metric (found by review).
func TestSpendHasNoBinaryNoise(t *testing.T) {
	c, err := NewCostControl(EnricherFunc(func(_ context.Context, l Lookup) (Result, error) {
		return paidRecycled(l), nil
	}), CostConfig{Secret: []byte("s"), PricePerCall: 0.4})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := c.Enrich(t.Context(), Lookup{Mobile: fmt.Sprintf("1730000050%d", i), Date: "20240101"}); err != nil {
			t.Fatal(err)
		}
	}
	if s := c.CostStats(); s.PaidCalls != 3 || strconv.FormatFloat(s.SpendCNY, 'g', -1, 64) != "1.2" {
		t.Errorf("%d paid calls, spend %v; want 3 and 1.2", s.PaidCalls, s.SpendCNY)
	}
}
