package main

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/twosell/twosell/config"
	"github.com/twosell/twosell/processor"
	"github.com/twosell/twosell/processor/kafkatest"
)

// The budget's day is juhe.budget_time_zone's, not input.time_zone's, which
// reads the events' dates. Before, two processes on one ledger whose
// input.time_zone differed (a replay of a topic whose dates are UTC beside
// the live group) counted each other's calls on another day: at 03:00 in
// Shanghai, the UTC process's calls were "yesterday" for the Shanghai one,
// and a budget of 5 let 10 calls through within the hour (found by review).
func TestBudgetDayIsTheBudgetTimeZonesNotTheInputs(t *testing.T) {
	k := kafkatest.New(t)
	ledger := k.Name("ledger")
	k.CreateTopics(1, ledger)
	costNow = func() time.Time { return time.Date(2024, 6, 1, 19, 0, 0, 0, time.UTC) } // 03:00 on June 2 in Shanghai
	t.Cleanup(func() { costNow = time.Now })
	calls := 0
	paid := processor.EnricherFunc(func(_ context.Context, l processor.Lookup) (processor.Result, error) {
		calls++
		return processor.Result{Status: processor.StatusNotRecycled, Res: 2, OrderID: fmt.Sprintf("JH%d", calls),
			Source: processor.SourceAPI, Mode: "plain", Attempts: 1, Billable: 1}, nil
	})
	open := func(zone string) *processor.CostControl {
		cfg := config.Default()
		cfg.Kafka.Brokers = k.Brokers
		cfg.Juhe.Key = "test-key"
		cfg.Juhe.DailyBudget = 5
		cfg.Ledger.Topic = ledger
		cfg.Input.TimeZone = zone
		if err := cfg.Validate("run"); err != nil {
			t.Fatal(err)
		}
		c, err := openCostControl(t.Context(), &cfg, paid, "run", sdktrace.NewTracerProvider(), slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { closeCostControl(context.Background(), c) })
		return c
	}
	utc := open("UTC")
	for i := range 5 {
		if _, err := utc.Enrich(t.Context(), processor.Lookup{Mobile: fmt.Sprintf("173000002%02d", i), Date: "20240101"}); err != nil {
			t.Fatal(err)
		}
	}
	shanghai := open("Asia/Shanghai") // loads the ledger, with the five calls, before it returns
	if s := shanghai.CostStats(); s.BudgetSpentToday != 5 || s.BudgetRemaining != 0 {
		t.Errorf("after another process spent the budget of 5: %d spent today, %d left; want 5 and 0", s.BudgetSpentToday, s.BudgetRemaining)
	}
	if _, err := shanghai.Enrich(t.Context(), processor.Lookup{Mobile: "17300000299", Date: "20240101"}); err == nil || calls != 5 {
		t.Errorf("a sixth lookup: %v, %d calls; want the budget spent and 5 calls", err, calls)
	}
}
