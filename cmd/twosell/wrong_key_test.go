package main

import (
	"strings"
	"testing"
	"time"

	"github.com/twosell/twosell/juhe"
	"github.com/twosell/twosell/juhe/juhesim"
	"github.com/twosell/twosell/processor/kafkatest"
)

// Found by a walkthrough: run with a wrong key stopped at the first 10001,
// as it should, but the requests in flight then (cut off by the stop) were
// written to the ledger as calls that may have been billed and spent the
// daily budget: 97 of 104 requests, more at every start of a deployment
// restarted in a loop. The provider refuses every request made with a
// wrong key: the ledger now holds no call, and the budget none.
func TestWrongKeyPaysNothing(t *testing.T) {
	k := kafkatest.New(t)
	sim, url := newSim(t, juhesim.Faults{Latency: 20 * time.Millisecond}) // many requests in flight at the first refusal
	cfg := testConfig(t, k, url, juhe.ModePlain)
	evs := goodEvents(cfg.Kafka.InputTopic, 200)
	k.Produce(records(evs)...)

	c := startChild(t, cfg, "TWOSELL_JUHE_KEY=wrong-key-0123456789", "TWOSELL_CACHE_SECRET=wrong-key-test-secret")
	if code := c.wait(t); code == 0 {
		t.Fatal("exit status 0 with a wrong key")
	}
	if !strings.Contains(c.stderr.String(), "10001") {
		t.Fatalf("stderr does not name 10001:\n%s", c.stderr.String())
	}
	st := sim.Stats()
	if st.Requests < 10 {
		t.Fatalf("the simulator saw %d requests; the test needs many in flight at the first refusal", st.Requests)
	}
	if rows := ledgerRows(t, k, cfg.Ledger.Topic); len(rows) != 1 {
		t.Errorf("%d calls in the ledger after %d requests all refused for a wrong key (%d cut off); want none:\n%q",
			len(rows)-1, st.Requests, st.Abandoned, rows)
	}
}
