package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/twosell/twosell/juhe/juhesim"
	"github.com/twosell/twosell/processor/kafkatest"
)

// With the ledger (the default), "twosell query" pays once per fact as run
// does: its paid answer is written to the ledger (in "ledger export", by
// order id) and counted in juhe.daily_budget; a query the ledger's
// knowledge answers makes no call and names the answer it came from;
// --fresh asks the provider all the same; a spent budget is an error that
// makes no call. Each query is a process of its own: what the next one
// knows, it read from the ledger. (Before, every query was a paid call
// outside the ledger and the budget.)
func TestQueryPaysOncePerFact(t *testing.T) {
	useCostClock(t)
	k := kafkatest.New(t)
	sim, url := newSim(t, juhesim.Faults{})
	ledger := k.Name("ledger")
	t.Setenv("TWOSELL_JUHE_KEY", testKey)
	t.Setenv("TWOSELL_JUHE_DAILY_BUDGET", "2")
	recycled := ""
	for _, m := range juhesim.Population(100) {
		if _, res := juhesim.Expect(m, "20200101"); res == 1 {
			recycled = m
			break
		}
	}
	query := func(want int, args ...string) (queryResult, string) {
		t.Helper()
		var stdout, stderr syncBuffer
		args = append([]string{"query", "--juhe-url", url, "--brokers", strings.Join(k.Brokers, ","), "--ledger-topic", ledger}, args...)
		if code := Main(t.Context(), args, &stdout, &stderr); code != want {
			t.Fatalf("query %v: exit %d, want %d; stderr: %s", args[7:], code, want, stderr.String())
		}
		var got queryResult
		if want == 0 {
			if err := json.Unmarshal([]byte(stdout.String()), &got); err != nil {
				t.Fatalf("stdout %q: %v", stdout.String(), err)
			}
		}
		if out := stdout.String() + stderr.String(); strings.Contains(out, recycled) || strings.Contains(out, testKey) {
			t.Errorf("the number or the key was printed: %s", out)
		}
		return got, stderr.String()
	}

	paid, _ := query(0, recycled, "--date", "20200101")
	if paid.Source != "api" || paid.Status != "recycled" || paid.OrderID == "" || sim.Stats().Requests != 1 {
		t.Fatalf("first query: %+v, %d requests; want a paid recycled answer", paid, sim.Stats().Requests)
	}
	// res 1 on 20200101 also answers every earlier date.
	for _, date := range []string{"20200101", "20190305"} {
		got, _ := query(0, recycled, "--date", date)
		if got.Source != "cache" || got.Status != "recycled" || got.OrderID != paid.OrderID || sim.Stats().Requests != 1 {
			t.Errorf("query on %s after the paid one: %+v, %d requests; want the ledger's answer, order id %s, no call",
				date, got, sim.Stats().Requests, paid.OrderID)
		}
	}
	fresh, _ := query(0, recycled, "--date", "20200101", "--fresh")
	if fresh.Source != "api" || fresh.OrderID == paid.OrderID || sim.Stats().Requests != 2 {
		t.Errorf("--fresh: %+v, %d requests; want a paid call", fresh, sim.Stats().Requests)
	}
	// Both paid calls are in the ledger, by order id.
	var csv, said syncBuffer
	if code := Main(t.Context(), []string{"ledger", "export", "--brokers", strings.Join(k.Brokers, ","), "--ledger-topic", ledger}, &csv, &said); code != 0 {
		t.Fatalf("ledger export: exit %d: %s", code, said.String())
	}
	for _, id := range []string{paid.OrderID, fresh.OrderID} {
		if !strings.Contains(csv.String(), id) {
			t.Errorf("ledger export lacks the query's order id %s:\n%s", id, csv.String())
		}
	}
	// Two paid calls today, the budget's two: a third is refused without
	// a call; the knowledge still answers.
	_, stderr := query(1, recycled, "--date", "20200101", "--fresh")
	if !strings.Contains(stderr, "no call made") || !strings.Contains(stderr, "juhe.daily_budget (2 paid calls a day") || sim.Stats().Requests != 2 {
		t.Errorf("third paid query with a budget of 2: %d requests, stderr %q", sim.Stats().Requests, stderr)
	}
	if got, _ := query(0, recycled, "--date", "20180101"); got.Source != "cache" || sim.Stats().Requests != 2 {
		t.Errorf("a query the knowledge answers, budget spent: %+v, %d requests", got, sim.Stats().Requests)
	}
}
