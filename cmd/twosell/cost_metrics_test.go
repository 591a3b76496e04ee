package main

import (
	"context"
	"log/slog"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/twosell/twosell/juhe"
	"github.com/twosell/twosell/juhe/juhesim"
	"github.com/twosell/twosell/processor/kafkatest"
)

// The cost controls' metrics, scraped from /metrics of a run wired as
// "twosell run" wires it, agree with the processor's Stats and with the
// provider's own count: paid calls, cache answers by kind, coalesced waits,
// the budget left and allowed, the estimated spend, and the knowledge
// cache's size and evictions (a cache smaller than the numbers seen).
func TestCostMetrics(t *testing.T) {
	useCostClock(t)
	k := kafkatest.New(t)
	sim, url := newSim(t, juhesim.Faults{})
	cfg := testConfig(t, k, url, juhe.ModePlain)
	const mobiles, budget, maxEntries = 40, 5000, 25
	cfg.Juhe.DailyBudget = budget
	cfg.Juhe.PricePerCall = 0.5
	cfg.Cache.MaxEntries = maxEntries
	evs, recs := tenTimes(cfg.Kafka.InputTopic, juhesim.Population(mobiles))
	k.Produce(recs...)

	log := slog.New(slog.NewTextHandler(logWriter{t, &syncBuffer{}}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	tp := sdktrace.NewTracerProvider()
	ops, err := newOperations(log)
	if err != nil {
		t.Fatal(err)
	}
	defer ops.Close()
	client, err := newJuheClient(cfg, tp, ops.meterProvider(), log)
	if err != nil {
		t.Fatal(err)
	}
	cost, err := openCostControl(t.Context(), cfg, juheEnricher{client}, "run", tp, log)
	if err != nil {
		t.Fatal(err)
	}
	proc, err := newProcessor(cfg, cost, tp, log, ops.kafkaOpts()...)
	if err != nil {
		t.Fatal(err)
	}
	if err := ops.start(cfg, proc, client); err != nil {
		t.Fatal(err)
	}
	stop := runUntilStopped(t, proc, func() { closeCostControl(context.Background(), cost) })
	kafkatest.WaitFor(t, func() bool { s := proc.Stats(); return s.Produced+s.DeadLettered == int64(len(evs)) })
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	s, c := proc.Stats(), cost.CostStats()
	m := parseSamples(t, scrape(t, "http://"+ops.addr()+pathMetrics))
	requests := sim.Stats().Requests
	checks := []struct {
		what      string
		got, want float64
	}{
		{"twosell_paid_calls_total", m["twosell_paid_calls_total"], float64(requests)},
		{"Stats.PaidCalls", float64(s.PaidCalls), float64(requests)},
		{"sum of twosell_cache_answers_total", first(m.sum("twosell_cache_answers_total")), float64(sum(s.CacheAnswers))},
		{"paid calls and cache answers", float64(requests + sum(s.CacheAnswers) + s.Coalesced), float64(len(evs))},
		{"twosell_coalesced_total", m["twosell_coalesced_total"], float64(s.Coalesced)},
		{"twosell_budget_remaining", m["twosell_budget_remaining"], float64(budget - requests)},
		{"twosell_budget_daily_calls", m["twosell_budget_daily_calls"], budget},
		{"twosell_spend_cny_total", m["twosell_spend_cny_total"], float64(requests) * 0.5},
		{"twosell_cache_entries", m["twosell_cache_entries"], float64(c.CacheEntries)},
		{"twosell_cache_evictions_total", m["twosell_cache_evictions_total"], float64(c.CacheEvictions)},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %v, want %v", ch.what, ch.got, ch.want)
		}
	}
	for kind, n := range s.CacheAnswers {
		if got := m[`twosell_cache_answers_total{kind="`+kind+`"}`]; got != float64(n) {
			t.Errorf("twosell_cache_answers_total{kind=%q} = %v, want %d", kind, got, n)
		}
	}
	// Every kind of answer has a series from the start, so that rate() sees
	// its first answers.
	if _, n := m.sum("twosell_cache_answers_total"); n != 4 {
		t.Errorf("%d series of twosell_cache_answers_total, want one per kind of answer (4)", n)
	}
	if c.CacheEntries > maxEntries || c.CacheEntries == 0 || c.CacheEvictions < mobiles-maxEntries {
		t.Errorf("%d mobiles known, %d evicted, for %d mobiles in a cache of %d", c.CacheEntries, c.CacheEvictions, mobiles, maxEntries)
	}
	t.Logf("%d events of %d mobiles, a cache of %d: %d paid calls, %d cache answers, %d coalesced, %d evictions",
		len(evs), mobiles, maxEntries, requests, sum(s.CacheAnswers), s.Coalesced, c.CacheEvictions)
}
