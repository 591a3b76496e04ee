package main

import (
	"context"
	"encoding/csv"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/twosell/twosell/processor"
	"github.com/twosell/twosell/processor/kafkatest"
)

// A call record whose value decodes without error but does not hold the
// fields this version reads (a later version's layout, or another writer's)
// is counted by the daily budget by its key (day 20240601); the export took
// its day, order id and instance from the value alone: its row had an empty
// day, order id and instance, and an export of that very day
// (--from-day/--to-day 20240601) left the call out. It is exported as an
// unreadable call now, with what its key says.
func TestLedgerExportTakesTheKeyOfADecodableForeignCall(t *testing.T) {
	k := kafkatest.New(t)
	topic := k.Name("ledger")
	k.CreateTopics(1, topic)
	// A later version's call record: same key layout, a value of another shape.
	k.Produce(&kgo.Record{Topic: topic, Key: []byte("c/20240601/run.ffffffffffff/JH7777"),
		Value: []byte(`{"v":2,"call":{"day":"20240601","order_id":"JH7777","status":"recycled","res":1}}`)})

	// The budget counts it on 20240601.
	day := time.Date(2024, 6, 1, 12, 0, 0, 0, time.FixedZone("CST", 8*3600))
	cost, err := processor.NewCostControl(processor.EnricherFunc(func(context.Context, processor.Lookup) (processor.Result, error) {
		t.Fatal("no call expected")
		return processor.Result{}, nil
	}), processor.CostConfig{Secret: []byte("s"), DailyBudget: 10, Location: day.Location(),
		Now:    func() time.Time { return day },
		Logger: slog.New(slog.DiscardHandler),
		Ledger: &processor.LedgerConfig{ClientOpts: []kgo.Opt{kgo.SeedBrokers(k.Brokers...)}, Topic: topic}})
	if err != nil {
		t.Fatal(err)
	}
	if err := cost.Open(t.Context()); err != nil {
		t.Fatal(err)
	}
	spent := cost.CostStats().BudgetSpentToday
	cost.Close(context.Background())
	if spent != 1 {
		t.Fatalf("the budget counts %d calls on 20240601, want 1 (the record's key)", spent)
	}

	export := func(args ...string) [][]string {
		t.Helper()
		var stdout, stderr syncBuffer
		args = append([]string{"ledger", "export", "--brokers", strings.Join(k.Brokers, ","), "--ledger-topic", topic}, args...)
		if code := Main(t.Context(), args, &stdout, &stderr); code != 0 {
			t.Fatalf("exit %d: %s", code, stderr.String())
		}
		rows, err := csv.NewReader(strings.NewReader(stdout.String())).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		return rows[1:]
	}
	all := export()
	if len(all) != 1 || all[0][0] != "20240601" || all[0][2] != "JH7777" || all[0][9] != "run.ffffffffffff" {
		t.Errorf("export: rows %q; want one row with day 20240601, order id JH7777 and instance run.ffffffffffff (what its key says, and what the budget counted)", all)
	}
	if day := export("--from-day", "20240601", "--to-day", "20240601"); len(day) != 1 {
		t.Errorf("export of 20240601: %d rows %q; want the 1 call the budget counted on that day", len(day), day)
	}
}

// --output in a directory that does not exist names --output, not the
// temporary file the export writes first (found by review).
func TestLedgerExportOutputInAMissingDirectory(t *testing.T) {
	output := t.TempDir() + "/missing/june.csv"
	var stdout, stderr syncBuffer
	code := Main(t.Context(), []string{"ledger", "export", "--brokers", "127.0.0.1:1", "--output", output}, &stdout, &stderr)
	if got := stderr.String(); code != 1 || !strings.Contains(got, "--output "+output) || strings.Contains(got, ".june.csv.") {
		t.Errorf("exit %d, stderr %q; want exit 1 naming --output %s, not the temporary file", code, got, output)
	}
}
