package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/twosell/twosell/juhe"
	"github.com/twosell/twosell/juhe/juhesim"
	"github.com/twosell/twosell/processor/kafkatest"
)

// Found by an operator drill (a wrong key): a fatal answer (10001) is followed by
// one WARN "cannot call the provider: holding records back ... until
// juhe.breaker.open_for (30s) has passed" and one INFO "held records given
// up as their partitions stop" per record in flight (19 pairs of each for
// 1000 events in the drill): a flood, and a misleading one (nothing waits
// 30 s: the process is stopping on a fatal error). README ("Observability"):
// "Logs: structured (slog), one line per state change (breaker, held
// partitions, rebalance), not per record."
func TestFatalDoesNotFloodHoldLines(t *testing.T) {
	k := kafkatest.New(t)
	_, url := newSim(t, juhesim.Faults{ErrorRates: map[int]float64{10001: 1}})
	cfg := testConfig(t, k, url, juhe.ModePlain)
	var evs []pipelineEvent
	for i, e := range pipelineEvents(cfg.Kafka.InputTopic, 1000) {
		if !e.bad {
			e.rec.Key = []byte(fmt.Sprintf("user-%d", i)) // distinct keys: many lookups in flight, as in a live topic
			evs = append(evs, e)
		}
	}
	k.Produce(records(evs)...)

	// The breaker opens on the first fatal answer (as it does on the fifth by
	// default): the other lookups are refused by it while the run stops.
	c := startChild(t, cfg, "TWOSELL_JUHE_BREAKER_FAILURES=1")
	if code := c.wait(t); code != 1 {
		t.Fatalf("exit status %d after a fatal error; want 1", code)
	}
	stderr := c.stderr.String()
	at := strings.Index(stderr, "FATAL")
	if at < 0 {
		t.Fatalf("no FATAL line:\n%s", stderr)
	}
	after := stderr[at:]
	holding := strings.Count(after, "cannot call the provider: holding records back")
	givenUp := strings.Count(after, "held records given up")
	t.Logf("after FATAL: holding lines %d, given-up lines %d", holding, givenUp)
	if holding > 0 || givenUp > 1 {
		t.Errorf("after the FATAL line: %d lines %q (it says records wait for juhe.breaker.open_for, but the run is stopping) and %d lines %q; want none of the first and at most one of the second",
			holding, "cannot call the provider: holding records back", givenUp, "held records given up")
	}
}
