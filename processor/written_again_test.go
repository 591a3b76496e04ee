package processor_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twosell/twosell/processor"
)

// A stop that gives up a record says how many records it finished after
// that record: their outputs are written, and their offsets cannot be
// committed past the unfinished one, so the partition's next owner writes
// them again. Found by a walkthrough: with records held back for the rate,
// a graceful stop had 220 of its 299 outputs written again, and the
// "stopped" line spoke only of the records not finished. Here e-0 never
// finishes (its lookup waits for the stop), and e-1 to e-5 are written.
func TestStopSaysWhatItWroteAndCouldNotCommit(t *testing.T) {
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
	var revoked, stopped string
	for _, l := range strings.Split(logs.String(), "\n") {
		switch {
		case strings.Contains(l, `msg="partitions revoked"`):
			revoked = l
		case strings.Contains(l, "msg=stopped"):
			stopped = l
		}
	}
	for _, l := range []string{revoked, stopped} {
		if !strings.Contains(l, "written_not_committed=5 ") || !strings.Contains(l, "written again by the partition's next owner") {
			t.Errorf("want 5 written and not committed, written again by the next owner, in:\n%s", l)
		}
	}
	if !strings.Contains(stopped, "not_finished=1 ") {
		t.Errorf("want e-0 not finished in:\n%s", stopped)
	}
	if got := h.kafka.CommittedOffsets(h.group, h.in); got[0] > 0 {
		t.Errorf("committed %v; want nothing past e-0, at offset 0", got)
	}
}
