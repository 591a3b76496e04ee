package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/twosell/twosell/config"
	"github.com/twosell/twosell/juhe"
	"github.com/twosell/twosell/juhe/juhesim"
	"github.com/twosell/twosell/processor"
	"github.com/twosell/twosell/processor/kafkatest"
)

// The settings of the cost controls that no other test follows from the
// configuration to the cost controls "twosell run" opens (openCostControl):
// cache.not_recycled_ttl, cache.short_ttl and processing.skip_older_than.
// The others are followed elsewhere: juhe.daily_budget and
// processing.on_budget (TestDailyBudget), juhe.budget_time_zone
// (TestBudgetDayIsTheBudgetTimeZonesNotTheInputs), cache.enabled
// (TestPaysOncePerFact), juhe.price_per_call (TestJSONCostIsToTheFen,
// TestReplayTwice, TestCostMetrics), cache.max_entries (TestCostMetrics).

// loadRunConfig loads the configuration "twosell run --config <file>" would
// run with, the file holding yaml, and juhe.key from the environment.
func loadRunConfig(t *testing.T, yaml string) *config.Config {
	t.Helper()
	path := filepath.Join(t.TempDir(), "twosell.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"TWOSELL_JUHE_KEY": testKey}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	var stderr strings.Builder
	cfg, _, err := config.Load("run", []string{"--config", path}, lookup, &stderr)
	if err != nil {
		t.Fatalf("config %s: %v\n%s", yaml, err, stderr.String())
	}
	return cfg
}

// cache.short_ttl and cache.not_recycled_ttl, set in the config file, are
// how long a no-record answer, and a res 2 answer, answer later lookups
// without a call: past them, the number is paid for again. The defaults
// (1h, 168h) would still answer at each step that pays.
func TestCacheTTLsFromTheConfigFile(t *testing.T) {
	cfg := loadRunConfig(t, `
cache:
  not_recycled_ttl: 2h
  short_ttl: 10m
ledger:
  enabled: false
`)
	t0 := time.Date(2024, 6, 1, 12, 0, 0, 0, time.FixedZone("CST", 8*3600))
	var elapsed atomic.Int64 // the cost clock: t0 plus this
	costNow = func() time.Time { return t0.Add(time.Duration(elapsed.Load())) }
	t.Cleanup(func() { costNow = time.Now })

	const notRecycled, noRecord = "17300000101", "17300000102"
	var mu sync.Mutex
	paid := map[string]int{}
	provider := processor.EnricherFunc(func(_ context.Context, l processor.Lookup) (processor.Result, error) {
		mu.Lock()
		paid[l.Mobile]++
		order := fmt.Sprintf("JH%s-%d", l.Mobile[7:], paid[l.Mobile])
		mu.Unlock()
		r := processor.Result{OrderID: order, Source: processor.SourceAPI, Mode: "plain", Attempts: 1, Billable: 1}
		if l.Mobile == notRecycled {
			r.Status, r.Res = processor.StatusNotRecycled, 2
		} else {
			r.Status, r.Code = processor.StatusNoRecord, 232703
		}
		return r, nil
	})
	cost, err := openCostControl(t.Context(), cfg, provider, "run", sdktrace.NewTracerProvider(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer closeCostControl(context.Background(), cost)

	for _, step := range []struct {
		at           time.Duration // after t0
		mobile, date string
		source       string // api: paid for; cache: answered by knowledge
	}{
		{0, notRecycled, "20240101", processor.SourceAPI}, // res 2 at 20240101
		{0, noRecord, "20240101", processor.SourceAPI},
		{9 * time.Minute, noRecord, "20200101", processor.SourceCache},      // within short_ttl
		{9 * time.Minute, notRecycled, "20240301", processor.SourceCache},   // a later date, within not_recycled_ttl
		{11 * time.Minute, noRecord, "20200101", processor.SourceAPI},       // past short_ttl (10m): paid again
		{119 * time.Minute, notRecycled, "20240401", processor.SourceCache}, // within not_recycled_ttl
		{121 * time.Minute, notRecycled, "20240501", processor.SourceAPI},   // past not_recycled_ttl (2h): paid again
	} {
		elapsed.Store(int64(step.at))
		r, err := cost.Enrich(t.Context(), processor.Lookup{Mobile: step.mobile, Date: step.date})
		if err != nil {
			t.Fatalf("%v: %s on %s: %v", step.at, step.mobile, step.date, err)
		}
		if r.Source != step.source {
			t.Errorf("%v after the first answers: %s on %s answered from %q (%s), want %q (cache.short_ttl %v, cache.not_recycled_ttl %v)",
				step.at, step.mobile, step.date, r.Source, r.Status, step.source, cfg.Cache.ShortTTL, cfg.Cache.NotRecycledTTL)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if paid[notRecycled] != 2 || paid[noRecord] != 2 {
		t.Errorf("paid calls %v, want 2 for each number", paid)
	}
}

// processing.skip_older_than, set in the config file: an event older than
// it that needs a call is written "skipped" without a call; a recent one
// is paid for.
func TestSkipOlderThanFromTheConfigFile(t *testing.T) {
	useCostClock(t) // noon on 2024-06-01 in Shanghai
	k := kafkatest.New(t)
	sim, url := newSim(t, juhesim.Faults{})
	topics := testConfig(t, k, url, juhe.ModePlain) // names, and the input topic created
	brokers, _ := json.Marshal(k.Brokers)
	cfg := loadRunConfig(t, fmt.Sprintf(`
kafka:
  brokers: %s
  group: %q
  input_topic: %q
  output_topic: %q
  dlq_topic: %q
  session_timeout: 6s
juhe:
  url: %q
processing:
  skip_older_than: 24h
  commit_interval: 50ms
ledger:
  topic: %q
telemetry:
  metrics_addr: ""
`, brokers, topics.Kafka.Group, topics.Kafka.InputTopic, topics.Kafka.OutputTopic, topics.Kafka.DLQTopic, url, topics.Ledger.Topic))

	mobiles := juhesim.Population(2)
	events := []streamEvent{
		{id: "e-old", mobile: mobiles[0], date: "20240530"},    // midnight in Shanghai: 60h before the cost clock
		{id: "e-recent", mobile: mobiles[1], date: "20240601"}, // 12h before
	}
	for _, e := range events {
		k.Produce(&kgo.Record{Topic: cfg.Kafka.InputTopic, Key: []byte(e.mobile),
			Value: fmt.Appendf(nil, `{"event_id":%q,"mobile":%q,"registered_at":%q}`, e.id, e.mobile, e.date)})
	}
	proc, cost, stop := runWithCost(t, cfg)
	kafkatest.WaitFor(t, func() bool { s := proc.Stats(); return s.Produced+s.DeadLettered == 2 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	outs := map[string]enrichment{}
	for _, r := range k.ConsumeAll(t.Context(), cfg.Kafka.OutputTopic) {
		var e enrichment
		if err := json.Unmarshal(r.Value, &e); err != nil {
			t.Fatal(err)
		}
		outs[e.EventID] = e
	}
	if got := outs["e-old"].Twosell.Status; got != string(processor.StatusSkipped) {
		t.Errorf("an event 60h old with skip_older_than 24h: status %q, want skipped", got)
	}
	if got, want := outs["e-recent"].Twosell.Status, expectStatus(mobiles[1], "20240601"); got != want || outs["e-recent"].Twosell.Source != processor.SourceAPI {
		t.Errorf("an event 12h old: status %q from %q, want %q from the API", got, outs["e-recent"].Twosell.Source, want)
	}
	if got := sim.Stats().Requests; got != 1 {
		t.Errorf("the provider received %d requests, want 1 (the recent event's)", got)
	}
	if s := cost.CostStats(); s.Skipped != 1 || s.PaidCalls != 1 {
		t.Errorf("cost controls: %d skipped, %d paid; want 1 and 1", s.Skipped, s.PaidCalls)
	}
}
