package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/twosell/twosell/config"
	"github.com/twosell/twosell/processor"
)

// costCloseTimeout bounds waiting for the ledger records in flight at exit.
const costCloseTimeout = 10 * time.Second

// costNow is the cost controls' clock: knowledge expiry and the budget's
// day. Tests set it to a day of their own, so that no test straddles
// midnight.
var costNow = time.Now

// openCostControl wraps the provider's Enricher with the cost controls of
// cfg (knowledge cache, coalescing, ledger, rate and budget) and loads the
// ledger, so that it returns only once everything paid for before is known.
// role names the writer in the ledger's call records (run, replay, dev).
// Close it with closeCostControl.
func openCostControl(ctx context.Context, cfg *config.Config, next processor.Enricher, role string, tp trace.TracerProvider, log *slog.Logger) (*processor.CostControl, error) {
	secret := cfg.CacheSecret()
	if secret == "" {
		return nil, errors.New("cache.secret (TWOSELL_CACHE_SECRET or cache.secret_file) or juhe.key, from which it is derived, must be set: it keys the hash by which the cache and the ledger know numbers")
	}
	cc := processor.CostConfig{
		Secret:         []byte(secret),
		DisableCache:   !cfg.Cache.Enabled,
		MaxEntries:     cfg.Cache.MaxEntries,
		TTL:            processor.KnowledgeTTL{NotRecycled: cfg.Cache.NotRecycledTTL, Short: cfg.Cache.ShortTTL},
		QPS:            cfg.Juhe.QPS,
		DailyBudget:    int64(cfg.Juhe.DailyBudget),
		EmitSkipped:    cfg.Processing.OnBudget == config.OnBudgetEmit,
		SkipOlderThan:  cfg.Processing.SkipOlderThan,
		PricePerCall:   cfg.Juhe.PricePerCall,
		OneShot:        role == "query", // its output and error say what happened
		Location:       cfg.Juhe.BudgetLocation(),
		Mode:           string(cfg.Juhe.Mode),
		Logger:         log,
		TracerProvider: tp,
		Now:            costNow,
	}
	if cfg.Ledger.Enabled {
		opts, err := kafkaOpts(cfg)
		if err != nil {
			return nil, err
		}
		cc.Ledger = &processor.LedgerConfig{
			ClientOpts:  opts,
			Topic:       cfg.Ledger.Topic,
			CreateTopic: cfg.Kafka.CreateTopics,
			Role:        role,
		}
	}
	c, err := processor.NewCostControl(next, cc)
	if err != nil {
		return nil, err
	}
	if err := c.Open(ctx); err != nil {
		if errors.Is(err, processor.ErrTopicMissing) {
			return nil, fmt.Errorf("%w on %v: kafka.create_topics: true allows twosell to create it; ledger.enabled: false runs without the ledger", err, cfg.Kafka.Brokers)
		}
		return nil, explainKafka(cfg, err)
	}
	return c, nil
}

// closeCostControl waits a little for the ledger records in flight and
// stops following the ledger.
func closeCostControl(ctx context.Context, c *processor.CostControl) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), costCloseTimeout)
	defer cancel()
	c.Close(ctx)
}

// costReporter is the processor's Config.Cost for enricher: the cost
// controls' counters when it is a CostControl.
func costReporter(enricher processor.Enricher) processor.CostReporter {
	if c, ok := enricher.(*processor.CostControl); ok {
		return c
	}
	return nil
}

// onAssigned is the processor's Config.OnAssigned for enricher: a
// CostControl divides the group's provider rate by the members.
func onAssigned(enricher processor.Enricher) func(int) {
	if c, ok := enricher.(*processor.CostControl); ok {
		return c.SetMembers
	}
	return nil
}

// sum adds up counters by kind.
func sum(m map[string]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}
