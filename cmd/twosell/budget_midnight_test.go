package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/twosell/twosell/config"
	"github.com/twosell/twosell/juhe"
	"github.com/twosell/twosell/juhe/juhesim"
	"github.com/twosell/twosell/processor/kafkatest"
)

// Found by a walkthrough: the records held back for a spent budget came
// back after midnight one by one, each at the end of its own backoff (up to
// processing.max_retry_backoff: 28 s for 156 calls), and no log line said
// the budget renewed. They now come back at midnight, whatever their
// backoff (an hour here: before, they waited it out), and a line says so.
func TestHeldForTheBudgetGoOnAtMidnight(t *testing.T) {
	var start time.Time // set as the processor starts: 3 s before midnight
	base := time.Date(2024, 6, 1, 23, 59, 57, 0, time.FixedZone("CST", 8*3600))
	costNow = func() time.Time { return base.Add(time.Since(start)) }
	t.Cleanup(func() { costNow = time.Now })

	const budget, n = 5, 10
	k := kafkatest.New(t)
	sim, url := newSim(t, juhesim.Faults{})
	cfg := testConfig(t, k, url, juhe.ModePlain)
	cfg.Juhe.DailyBudget = budget
	cfg.Processing.OnBudget = config.OnBudgetPause
	cfg.Processing.RetryBackoff, cfg.Processing.MaxRetryBackoff = time.Hour, time.Hour
	var recs []*kgo.Record
	for i, m := range juhesim.Population(n) { // distinct: each needs a call
		recs = append(recs, &kgo.Record{Topic: cfg.Kafka.InputTopic, Key: []byte(m),
			Value: fmt.Appendf(nil, `{"event_id":"e-%d","mobile":%q,"registered_at":"2021-05-01"}`, i, m)})
	}
	k.Produce(recs...)

	logs := &syncBuffer{}
	start = time.Now()
	proc, _, stop := runWithCostLogs(t, cfg, logs)

	kafkatest.WaitFor(t, func() bool { s := proc.Stats(); return s.Produced == budget && s.HeldPartitions > 0 })
	if day := costNow().Format("20060102"); day != "20240601" {
		t.Fatalf("the budget was spent on %s; the test needs it spent before midnight (a slow start?)", day)
	}
	kafkatest.WaitFor(t, func() bool { return proc.Stats().Produced == n })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if got := sim.Stats().Requests; got != n {
		t.Errorf("%d paid calls, want %d: %d on each day", got, n, budget)
	}
	if got := logs.String(); !strings.Contains(got, "daily budget renewed") {
		t.Errorf("no line says the budget renewed:\n%s", got)
	}
}
