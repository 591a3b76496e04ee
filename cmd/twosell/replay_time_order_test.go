package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/twosell/twosell/juhe/juhesim"
)

// --from and --to are resolved to offsets as Kafka's own tools resolve times
// (each partition's first record at or after the time), and the range is
// those offsets. On a partition whose timestamps are not in offset order
// (producer-set event times: a backfill, a mirror, producers with skewed
// clocks), the range holds records of other times, which are replayed, and
// misses records of its times past its end. Found by review: that was
// silent, and replay -h promised "records with a timestamp at or after"
// --from and "before" --to. Now -h says what is selected, and the replay
// (and its dry run) count the records outside the times, in the summary and
// in one WARN line.
func TestReplayByTimeCountsRecordsOutsideTheTimes(t *testing.T) {
	k, _, cfg, _, _ := replayFixture(t)
	base := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	mobiles := juhesim.Population(6)
	secs := []int{0, 10, 5, 20, 15, 30} // offsets 0..5 of partition 0
	cl := k.Client(kgo.RecordPartitioner(kgo.ManualPartitioner()))
	for i, s := range secs {
		r := &kgo.Record{Topic: cfg.Kafka.InputTopic, Partition: 0, Timestamp: base.Add(time.Duration(s) * time.Second),
			Value: fmt.Appendf(nil, `{"event_id":"e-%d","mobile":%q,"registered_at":"2020-01-01"}`, i, mobiles[i])}
		if err := cl.ProduceSync(t.Context(), r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	out := k.Name("replay")
	from, to := base.Add(8*time.Second), base.Add(18*time.Second)
	rng := []string{"--partitions", "0", "--from", from.Format(time.RFC3339), "--to", to.Format(time.RFC3339)}

	// The dry run says it first.
	var stdout, stderr syncBuffer
	if code := Main(t.Context(), replayArgs(cfg, out, append(rng, "--dry-run")...), &stdout, &stderr); code != 0 {
		t.Fatalf("dry run: exit %d\n%s", code, stderr.String())
	}
	var e replayEstimate
	if err := json.Unmarshal([]byte(stdout.String()), &e); err != nil {
		t.Fatal(err)
	}
	if e.Events != 2 || e.OutsideTimes != 1 {
		t.Errorf("dry run: %d records, %d outside the times; want 2 (offsets 1 and 2), 1 (offset 2, +5s)", e.Events, e.OutsideTimes)
	}

	s, logs := runReplayCmd(t, replayArgs(cfg, out, rng...))
	// Offsets 1 (+10s) up to 3 (+20s, the first at or after --to), excluded.
	got := eventIDs(t, k, out)
	for i, sec := range secs {
		if want := i == 1 || i == 2; got[fmt.Sprintf("e-%d", i)] != want {
			t.Errorf("e-%d (offset %d, +%ds) replayed %v, want %v: the range is offsets 1 to 3", i, i, sec, !want, want)
		}
	}
	if s.OutsideTimes != 1 {
		t.Errorf("summary: outside_times %d, want 1 (e-2 at +5s, before --from)", s.OutsideTimes)
	}
	if n := strings.Count(logs, "timestamps outside [--from, --to)"); n != 1 || !strings.Contains(logs, `"offset":2`) {
		t.Errorf("%d WARN lines about records outside the times, want 1, naming offset 2:\n%s", n, logs)
	}

	// The text summary says it too.
	stdout, stderr = syncBuffer{}, syncBuffer{}
	var args []string
	for _, a := range replayArgs(cfg, k.Name("replay"), rng...) {
		if a != "--json" {
			args = append(args, a)
		}
	}
	if code := Main(t.Context(), args, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr.String())
	}
	if !strings.Contains(stdout.String(), "outside times  1") {
		t.Errorf("the summary does not count the record outside the times:\n%s", stdout.String())
	}

	// And -h says what is selected.
	stdout, stderr = syncBuffer{}, syncBuffer{}
	Main(t.Context(), []string{"replay", "-h"}, &stdout, &stderr)
	if h := flagHelp(t, stderr.String(), "from"); strings.Contains(h, "replay records with a timestamp at or after") || !strings.Contains(h, "first record") {
		t.Errorf("replay -h, --from:\n%s", h)
	}
	if h := flagHelp(t, stderr.String(), "to"); strings.Contains(h, "replay records with a timestamp before") || !strings.Contains(h, "first record") {
		t.Errorf("replay -h, --to:\n%s", h)
	}
}
