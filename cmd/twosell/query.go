package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/trace/noop"

	"github.com/twosell/twosell/config"
	"github.com/twosell/twosell/juhe"
	"github.com/twosell/twosell/processor"
)

// queryResult is the one JSON line "twosell query" prints.
type queryResult struct {
	Mobile   string `json:"mobile"` // masked: the line may end up in a log
	Date     string `json:"date"`
	Status   string `json:"status"`
	Source   string `json:"source"` // api: a paid call; cache: the ledger's knowledge answered
	Res      int    `json:"res,omitempty"`
	OrderID  string `json:"order_id,omitempty"`
	Mode     string `json:"mode"`
	Attempts int    `json:"attempts"`
}

// cmdQuery is "twosell query MOBILE --date YYYYMMDD": one lookup through the
// same client, breaker and retries as the processor, printed as one JSON
// line. The mobile and date are read as the processor reads them (+86,
// dashes, full-width digits; any accepted date format).
//
// With the ledger (ledger.enabled, the default) the lookup goes through the
// cost controls as run's do: answered from the ledger's knowledge when it
// implies the answer (unless --fresh), else a paid call counted in
// juhe.daily_budget and written to the ledger, so that the bill reconciles
// and every instance learns it. Without it, a direct call outside both.
func cmdQuery(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("query", flag.ContinueOnError)
	fs.SetOutput(stderr)
	date := fs.String("date", "", "the date to check against: yyyymmdd (or yyyy-mm-dd, RFC 3339); required")
	fresh := fs.Bool("fresh", false, "ask the provider even when the ledger's knowledge answers (the call is still counted in juhe.daily_budget and written to the ledger)")
	cfg, rest, err := config.LoadWith("query", fs, args, os.LookupEnv)
	// The command line first: a usage error (exit 2) before what the
	// configuration lacks (returned with the arguments, rest).
	if err != nil && rest == nil {
		return err
	}
	if len(rest) != 1 {
		return usageError{"want exactly one MOBILE argument: twosell query MOBILE --date YYYYMMDD"}
	}
	if *date == "" {
		return usageError{"--date is required: the day to check against, as yyyymmdd"}
	}
	mobile, merr := processor.NormalizeMobile(rest[0])
	if merr != nil {
		return usageError{merr.Error()}
	}
	// The day is read in input.time_zone; whether --date reads at all does
	// not depend on it, and is checked before the configuration's errors.
	loc := time.UTC
	if cfg != nil {
		loc = cfg.Input.Location()
	}
	day, derr := processor.ParseDate([]byte(strconv.Quote(*date)), loc)
	if derr != nil {
		return usageError{"--date: " + derr.Error()}
	}
	if err != nil {
		return err
	}
	registerSecrets(cfg)
	log, err := newLogger(stderr, cfg.Log.Level, cfg.Log.Format)
	if err != nil {
		return err
	}
	// The query sends the key to the provider (found by review: plain
	// http to a remote provider went without the warning run gives).
	warnInsecureJuhe(cfg, log)
	warnSecrets(cfg, log)
	client, err := newJuheClient(cfg, noop.NewTracerProvider(), nil, log)
	if err != nil {
		return err
	}
	defer client.Close() // the provider's connections
	var enricher processor.Enricher = juheEnricher{client}
	var cost *processor.CostControl
	if cfg.Ledger.Enabled {
		if cost, err = openQueryCost(ctx, cfg, enricher, *fresh, log); err != nil {
			return err
		}
		enricher = cost // closed right after its one lookup
	}
	res, err := enricher.Enrich(ctx, processor.Lookup{Mobile: mobile, Date: day})
	var lost error
	if cost != nil {
		closeCostControl(ctx, cost) // the ledger's writes end: written, or given up
		s := cost.CostStats()
		if errors.Is(err, processor.ErrBudgetSpent) {
			return queryBudgetSpent(cfg, s.PaidCalls, s.LedgerLost)
		}
		if s.LedgerLost > 0 {
			lost = fmt.Errorf("the call record of this paid call could not be written to the ledger %s (the error above says why; check that this user may write it): "+
				"ledger export and the daily budget of every instance miss it; reconcile it by its order id", cfg.Ledger.Topic)
		}
	}
	if err != nil && juhe.IsTransport(err) {
		// No reply from the provider: one query cannot tell a passing fault
		// from a wrong address (found by review: nothing named the setting).
		return fmt.Errorf("%w; check juhe.url (--juhe-url, TWOSELL_JUHE_URL) and that the provider is reachable from here", err)
	}
	if err != nil {
		return err
	}
	if err := printJSONLine(stdout, queryResult{
		Mobile: processor.MaskMobile(mobile), Date: day, Status: string(res.Status), Source: res.Source,
		Res: res.Res, OrderID: res.OrderID, Mode: res.Mode, Attempts: res.Attempts,
	}); err != nil {
		return err
	}
	return lost
}

// queryBudgetSpent is the error of a query the daily budget refused: before
// its first request, or (paid, the requests made before it, of which lost
// could not be written to the ledger) a retry.
func queryBudgetSpent(cfg *config.Config, paid, lost int64) error {
	what := "no call made"
	switch {
	case lost > 0:
		what = fmt.Sprintf("%d request(s) made and failed, their outcome unknown (counted as paid; %d of their call records could not be written to the ledger: "+
			"the error above says why, and ledger export and the other instances' budgets miss them), and no retry", paid, lost)
	case paid > 0:
		what = fmt.Sprintf("%d request(s) made and failed, their outcome unknown (counted as paid, and in the ledger as unavailable), and no retry", paid)
	}
	return fmt.Errorf("%s: juhe.daily_budget (%d a day, counted in the ledger %s with every instance's paid calls) is spent for today; "+
		"it renews at midnight in %s (juhe.budget_time_zone); to query outside the budget and the ledger, set ledger.enabled: false and juhe.daily_budget: 0",
		what, cfg.Juhe.DailyBudget, cfg.Ledger.Topic, cfg.Juhe.BudgetLocation())
}

// openQueryCost opens the cost controls of a query: the ledger loaded (its
// knowledge, and today's paid calls), the knowledge asked unless fresh, and
// a spent budget an error rather than a "skipped" answer or a wait.
func openQueryCost(ctx context.Context, cfg *config.Config, next processor.Enricher, fresh bool, log *slog.Logger) (*processor.CostControl, error) {
	q := *cfg
	q.Cache.Enabled = cfg.Cache.Enabled && !fresh
	q.Processing.OnBudget = config.OnBudgetPause // the lookup fails with ErrBudgetSpent
	q.Processing.SkipOlderThan = 0               // a query has no event time
	cost, err := openCostControl(ctx, &q, next, "query", noop.NewTracerProvider(), log)
	if err != nil {
		return nil, fmt.Errorf("%w (ledger.enabled: false, with juhe.daily_budget: 0, queries without the ledger, outside the budget)", err)
	}
	return cost, nil
}

// printJSONLine writes v as one line of JSON: what --json prints.
func printJSONLine(w io.Writer, v any) error {
	line, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", line)
	return err
}
