package processor_test

import (
	"context"
	"fmt"

	"github.com/twosell/twosell/processor"
)

// A CostControl pays for the first answer and derives the second from it:
// res 1 ("re-issued after 2023-06-01") also answers every earlier date.
func ExampleCostControl() {
	provider := processor.EnricherFunc(func(_ context.Context, l processor.Lookup) (processor.Result, error) {
		return processor.Result{Status: processor.StatusRecycled, Res: 1, OrderID: "JH0001", Source: processor.SourceAPI, Mode: "plain", Attempts: 1}, nil
	})
	cost, err := processor.NewCostControl(provider, processor.CostConfig{Secret: []byte("a secret shared by the instances")})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	for _, date := range []string{"20230601", "20210101"} {
		r, _ := cost.Enrich(ctx, processor.Lookup{Mobile: "17312345678", Date: date})
		fmt.Println(date, r.Status, r.Source, r.OrderID)
	}
	fmt.Println("paid calls:", cost.CostStats().PaidCalls)
	// Output:
	// 20230601 recycled api JH0001
	// 20210101 recycled cache JH0001
	// paid calls: 1
}
