package main

import (
	"strings"
	"testing"

	"github.com/twosell/twosell/juhe/juhesim"
)

// Found by a walkthrough: a replay through an outage said "paid calls 128"
// for 64 answers: the provider's 503 replies count as paid (it may have
// billed them), and nothing said so. The summary now tells the answered
// calls from those with no answer read, and the JSON has them.
func TestReplaySummarySaysWhichPaidCallsWereAnswered(t *testing.T) {
	k, sim, cfg, _, recs := replayFixture(t)
	const answered = 10
	if err := sim.SetFaults(juhesim.Faults{Outage: juhesim.Outage503, AfterRequests: answered}); err != nil {
		t.Fatal(err)
	}
	k.Produce(recs...)
	t.Setenv("TWOSELL_JUHE_RETRIES", "0")
	t.Setenv("TWOSELL_PROCESSING_ON_UNAVAILABLE", "emit") // the replay ends, its calls in the outage written unavailable
	args := replayArgs(cfg, k.Name("replay-out"))
	s, _ := runReplayCmd(t, args)
	st := sim.Stats()
	if s.PaidCalls != st.Requests || s.UncertainCalls != st.Requests-answered || s.UncertainCalls == 0 {
		t.Fatalf("summary: paid %d, uncertain %d; the simulator answered %d of %d requests", s.PaidCalls, s.UncertainCalls, answered, st.Requests)
	}
	var text strings.Builder
	if err := printSummary(&text, s, false); err != nil {
		t.Fatal(err)
	}
	if want := "(10 answered; "; !strings.Contains(text.String(), want) {
		t.Errorf("the summary does not tell the answered calls apart (%q):\n%s", want, text.String())
	}
}
