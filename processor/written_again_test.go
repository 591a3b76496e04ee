package processor_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twosell/twosell/processor"
)

// A stop that gives up a record has written the records after it, whose
// offsets no commit can cover while it is unfinished. Found by a
// walkthrough: with records held back for the rate, a graceful stop had
// 220 of its 299 outputs written again by the partition's next owner, and
// the "stopped" line spoke only of the records not finished. The last
// commit now names them in its metadata, and the next owner skips them.
// Here e-0 never finishes in the first processor (its lookup waits for the
// stop), e-1 to e-5 are written; the second writes e-0 alone.
func TestNextOwnerSkipsWhatTheLastWroteAboveItsCommit(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 1)
	h.produceEvents(6) // e-i at offset i, keys u-0 to u-5
	cfg := h.config(processor.EnricherFunc(func(ctx context.Context, l processor.Lookup) (processor.Result, error) {
		if strings.HasSuffix(l.Mobile, "0000") { // e-0
			<-ctx.Done()
			return processor.Result{}, ctx.Err()
		}
		return fakeAnswer(l), nil
	}))
	cfg.ShutdownTimeout = 100 * time.Millisecond // e-0 is given up
	logs := captureLog(t, &cfg)
	_, stop := h.start(cfg)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	h.kafka.Consume(ctx, countAtLeast(5), h.out)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if l := logLine(logs.String(), `msg="partitions revoked"`); !strings.Contains(l, "written_above_commit=5 named_in_commit=5") ||
		strings.Contains(l, "written_again") {
		t.Errorf("want 5 written above the commit, all named in it, in:\n%s", l)
	}
	if l := logLine(logs.String(), "msg=stopped"); !strings.Contains(l, "not_finished=1 ") || strings.Contains(l, "written_again") {
		t.Errorf("want e-0 not finished, and nothing written again, in:\n%s", l)
	}
	if got := h.kafka.CommittedOffsets(h.group, h.in); got[0] > 0 {
		t.Errorf("committed %v; want nothing past e-0, at offset 0", got)
	}

	next := h.config(processor.EnricherFunc(func(_ context.Context, l processor.Lookup) (processor.Result, error) {
		return fakeAnswer(l), nil
	}))
	nextLogs := captureLog(t, &next)
	p, stop := h.start(next)
	h.kafka.Consume(ctx, countAtLeast(6), h.out)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range h.kafka.ConsumeAll(ctx, h.out) {
		ids = append(ids, eventID(t, r.Value))
	}
	if slices.Sort(ids); !slices.Equal(ids, []string{"e-0", "e-1", "e-2", "e-3", "e-4", "e-5"}) {
		t.Errorf("outputs %v; want each event once", ids)
	}
	if l := logLine(nextLogs.String(), "msg=stopped"); !strings.Contains(l, "consumed=6 produced=1 dead_lettered=0 written_before=5") ||
		strings.Contains(l, "not_finished") {
		t.Errorf("want 6 consumed, e-0 produced, 5 written before, in:\n%s", l)
	}
	if s := p.Stats(); s.WrittenBefore != 5 || s.Consumed != 6 {
		t.Errorf("stats: %d consumed, %d written before; want 6 and 5", s.Consumed, s.WrittenBefore)
	}
	if got := h.kafka.CommittedOffsets(h.group, h.in); got[0] != 6 {
		t.Errorf("committed %v; want 6, past every event", got)
	}
}

// logLine is the last line of logs that holds s.
func logLine(logs, s string) string {
	found := ""
	for l := range strings.SplitSeq(logs, "\n") {
		if strings.Contains(l, s) {
			found = l
		}
	}
	return found
}
