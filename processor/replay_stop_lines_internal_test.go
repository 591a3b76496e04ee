package processor

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

// A replay has no group and commits nothing: the lines a stop writes say
// what happens to its records in a replay's terms (running it again writes
// them). Found by review: an interrupted or failed replay wrote the live
// group's "not committed and will be delivered again" and "nothing further
// will be committed".
func TestReplayStopLinesSpeakOfTheReplay(t *testing.T) {
	for _, replay := range []bool{false, true} {
		var buf bytes.Buffer
		_, cancel := context.WithCancelCause(t.Context())
		p := &Processor{log: slog.New(slog.NewTextHandler(&buf, nil)), stats: newCounters(), cancelRun: cancel}
		if replay {
			p.cfg.Range = map[int32]OffsetRange{0: {Start: 0, End: 1}}
		}
		w := &partitionWorker{p: p, tp: topicPartition{"in", 0}}
		w.holds = 1
		p.held.Store(1)
		w.unhold(true)
		p.fail(errors.New("fatal answer"))
		out := buf.String()
		live := strings.Contains(out, "will be delivered again") && strings.Contains(out, "nothing further will be committed")
		again := strings.Count(out, "running the replay again writes them") == 2
		if replay && (strings.Contains(out, "committed") || strings.Contains(out, "delivered again") || !again) {
			t.Errorf("replay: the stop's lines speak of a group, or not of running the replay again:\n%s", out)
		}
		if !replay && (!live || strings.Contains(out, "replay")) {
			t.Errorf("live: the stop's lines changed:\n%s", out)
		}
	}
}
