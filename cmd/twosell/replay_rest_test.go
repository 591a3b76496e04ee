package main

import (
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/twosell/twosell/processor/kafkatest"
)

// Found by a walkthrough: an interrupted replay said "run it again to
// finish", and run again it wrote every output it had written a second
// time. It now says which offsets are left, and replaying those finishes
// the range with no output lost and only the few finished past the first
// unfinished record written again.
func TestInterruptedReplaySaysWhatIsLeft(t *testing.T) {
	k, _, cfg, evs, recs := replayFixture(t)
	k.Produce(recs...)
	out := k.Name("replay-out")
	args := append(replayArgs(cfg, out, "--qps", "40"), "--max-in-flight", "4") // slow: interrupted midway

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var stdout, stderr syncBuffer
	code := make(chan int, 1)
	go func() { code <- Main(ctx, args, &stdout, &stderr) }()
	kafkatest.WaitFor(t, func() bool {
		return strings.Contains(stderr.String(), "paid calls") && len(k.ConsumeAll(t.Context(), out)) >= 20
	})
	cancel()
	if c := <-code; c != 1 {
		t.Fatalf("interrupted replay: exit %d, want 1\n%s", c, stderr.String())
	}
	var first replaySummary
	if err := json.Unmarshal([]byte(stdout.String()), &first); err != nil {
		t.Fatalf("summary %q: %v", stdout.String(), err)
	}
	flags := regexp.MustCompile(`replay the rest: (--partitions \S+ --start-offsets \S+ --end-offsets \S+)`).FindStringSubmatch(stderr.String())
	if first.Complete || len(first.Rest) == 0 || flags == nil {
		t.Fatalf("interrupted replay: summary %+v, stderr:\n%s\nwant what is left, in the summary and as flags", first, stderr.String())
	}

	second, _ := runReplayCmd(t, append(replayArgs(cfg, out), strings.Fields(flags[1])...))
	if !second.Complete {
		t.Fatalf("the rest: %+v", second)
	}
	// Every event has its output; those finished past a partition's first
	// unfinished record are written again, each once more at most.
	outputs := k.ConsumeAll(t.Context(), out)
	var once []*kgo.Record
	seen := map[string]int{}
	for _, r := range outputs {
		var e enrichment
		if err := json.Unmarshal(r.Value, &e); err != nil {
			t.Fatal(err)
		}
		if seen[e.EventID]++; seen[e.EventID] == 1 {
			once = append(once, r)
		} else if seen[e.EventID] > 2 {
			t.Errorf("%s written %d times", e.EventID, seen[e.EventID])
		}
	}
	checkStream(t, evs, once)
	again := len(outputs) - len(once)
	if again >= int(first.Outputs) {
		t.Errorf("%d outputs written twice of the %d the interrupted replay wrote: the rest replayed them all", again, first.Outputs)
	}
	t.Logf("interrupted after %d outputs; the rest (%s) wrote %d, %d of them again", first.Outputs, flags[1], second.Outputs, again)
}
