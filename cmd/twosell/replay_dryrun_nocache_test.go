package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/twosell/twosell/juhe/juhesim"
)

// With cache.enabled: false every lookup is paid (no knowledge, no
// coalescing: README's table; the replay's summary shows 0 shared calls), so
// the dry run's range is one call per unknown event at both ends, and its
// "known" line claims no answers. Found by review: it printed "paid calls 20
// to 100" for 100 events of 20 mobiles, and the replay then paid 100 (an
// earlier review found the most below what was paid).
func TestReplayDryRunWithoutCachePaysEveryEvent(t *testing.T) {
	k, _, cfg, _, _ := replayFixture(t)
	var recs []*kgo.Record
	for i, m := range juhesim.Population(20) {
		for j := range 5 {
			recs = append(recs, &kgo.Record{Topic: cfg.Kafka.InputTopic, Key: []byte(m),
				Value: fmt.Appendf(nil, `{"event_id":"e-%d-%d","mobile":%q,"registered_at":"2023-05-01"}`, i, j, m)})
		}
	}
	k.Produce(recs...)
	t.Setenv("TWOSELL_CACHE_ENABLED", "false")
	out := k.Name("replay")
	var stdout, stderr syncBuffer
	if code := Main(t.Context(), replayArgs(cfg, out, "--dry-run"), &stdout, &stderr); code != 0 {
		t.Fatalf("dry run: exit %d\n%s", code, stderr.String())
	}
	var e replayEstimate
	if err := json.Unmarshal([]byte(stdout.String()), &e); err != nil {
		t.Fatal(err)
	}
	if e.Cache || e.Unknown != 100 || e.MinPaidCalls != 100 || e.MaxPaidCalls != 100 {
		t.Errorf("without the cache: cache %v, %d to %d paid calls for %d unknown events; want false, 100 to 100 for 100",
			e.Cache, e.MinPaidCalls, e.MaxPaidCalls, e.Unknown)
	}
	if e.MinCostCNY != e.MaxCostCNY {
		t.Errorf("cost %v to %v CNY: want one cost", e.MinCostCNY, e.MaxCostCNY)
	}

	// The text says so, and claims no answer from the ledger.
	var args []string
	for _, a := range replayArgs(cfg, out, "--dry-run") {
		if a != "--json" {
			args = append(args, a)
		}
	}
	stdout, stderr = syncBuffer{}, syncBuffer{}
	if code := Main(t.Context(), args, &stdout, &stderr); code != 0 {
		t.Fatalf("dry run: exit %d\n%s", code, stderr.String())
	}
	text := stdout.String()
	if strings.Contains(text, "answered by what the ledger holds") || !strings.Contains(text, "cache.enabled is false") ||
		!strings.Contains(text, "paid calls       100 to 100") {
		t.Errorf("dry run without the cache:\n%s", text)
	}

	// And the replay pays what it said.
	s, _ := runReplayCmd(t, replayArgs(cfg, out))
	if s.PaidCalls != e.MinPaidCalls {
		t.Errorf("the replay paid %d, the estimate said %d to %d", s.PaidCalls, e.MinPaidCalls, e.MaxPaidCalls)
	}
}
