package main

// Defects of "twosell replay" found by a review (twenty-second session).

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/twosell/twosell/config"
	"github.com/twosell/twosell/juhe/juhesim"
)

// replayRun runs a replay and returns its exit code, its JSON summary (if
// any) and stderr.
func replayRun(t *testing.T, ctx context.Context, args []string) (int, replaySummary, string, string) {
	t.Helper()
	var stdout, stderr syncBuffer
	code := Main(ctx, args, &stdout, &stderr)
	var s replaySummary
	if out := strings.TrimSpace(stdout.String()); out != "" {
		if err := json.Unmarshal([]byte(out), &s); err != nil {
			t.Fatalf("summary %q: %v", out, err)
		}
	}
	return code, s, stdout.String(), stderr.String()
}

// README (Replay): a replay "refuses to start when an existing [output or
// dead-letter topic] would delete some of the range's outputs". The broker's
// time index answers the first transaction's marker (stamped by the broker
// when written) where the records carry their events' old times; the check
// reads on from there, as --from does (firstRecordsAt). Found by review: it
// asked the index alone, a range after that marker was taken for recent,
// the replay started, and its outputs (timestamps of 2024, the topic keeps
// a day) were deleted at the broker's next retention check.
func TestReplayRetentionCheckOfATransactionalInputWithEventTimes(t *testing.T) {
	k, _, cfg, _, _ := replayFixture(t)
	out := k.Name("backfill")
	day := fmt.Sprint(int64(24 * time.Hour / time.Millisecond))
	k.CreateTopicsWith(1, map[string]*string{"retention.ms": &day}, out, out+".dlq")
	base := marchEventsInTransactions(t, k, cfg.Kafka.InputTopic)
	for _, tt := range []struct {
		name, want, notWant string // in the refusal: the partition and offsets named
		args                []string
	}{
		// The range: e-10 (offset 11) to e-20 (offset 22), excluded.
		{"by time", "0:[11,", "", []string{"--from", base.Add(10 * time.Minute).Format(time.RFC3339), "--to", base.Add(20 * time.Minute).Format(time.RFC3339)}},
		{"by offsets", "0:[11,", "", []string{"--start-offsets", "0:11", "--end-offsets", "0:21"}},
		// Refused, but for the first transaction only: "10 records of the
		// range are older than that (partition:[offsets) 0:[0,10))".
		{"all", "0:[0,", "0:[0,10)", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			code, s, _, stderr := replayRun(t, ctx, replayArgs(cfg, out, append([]string{"--partitions", "0"}, tt.args...)...))
			if code != 1 || !strings.Contains(stderr, "retention would delete") || !strings.Contains(stderr, tt.want) ||
				tt.notWant != "" && strings.Contains(stderr, tt.notWant) {
				t.Errorf("replay of March 2024 events into %s (retention.ms=%s): exit %d, %d outputs written; want exit 1, refused for all the range's records (%s...)\n%s",
					out, day, code, s.Outputs, tt.want, stderr)
			}
		})
	}
}

// oldEventsForADaysRetention writes 3 events of March 2024 to the input,
// and creates an output topic that keeps records a day: a replay of them
// into it is refused.
func oldEventsForADaysRetention(t *testing.T) (*config.Config, string) {
	t.Helper()
	k, _, cfg, _, _ := replayFixture(t)
	out := k.Name("backfill")
	day := fmt.Sprint(int64(24 * time.Hour / time.Millisecond))
	k.CreateTopicsWith(1, map[string]*string{"retention.ms": &day}, out)
	var recs []*kgo.Record
	for i, m := range juhesim.Population(3) {
		recs = append(recs, &kgo.Record{Topic: cfg.Kafka.InputTopic, Partition: 0, Timestamp: time.Date(2024, 3, 1, 0, i, 0, 0, time.UTC),
			Value: fmt.Appendf(nil, `{"event_id":"e-%d","mobile":%q,"registered_at":"2020-01-01"}`, i, m)})
	}
	if err := k.Client(kgo.RecordPartitioner(kgo.ManualPartitioner())).ProduceSync(t.Context(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	return cfg, out
}

// A replay refused for its output topic's retention says why, and what to
// do; it is not a Kafka connection problem, and is not presented as one
// (found by review: "kafka (brokers ... without TLS, no SASL): the topic's
// retention would delete the replay's outputs: ...", the prefix
// explainKafka gives to errors of the cluster).
func TestReplayRetentionRefusalIsNotAKafkaError(t *testing.T) {
	cfg, out := oldEventsForADaysRetention(t)
	code, _, _, stderr := replayRun(t, t.Context(), replayArgs(cfg, out))
	if code != 1 || !strings.Contains(stderr, "retention would delete") {
		t.Fatalf("exit %d; want 1, refused for the retention\n%s", code, stderr)
	}
	if strings.Contains(stderr, "kafka (brokers ") {
		t.Errorf("the retention refusal is presented as a Kafka connection error:\n%s", stderr)
	}
}

// README: "A replay that refuses to start prints why, and no summary of
// nothing" (TestReplayRefusalHasNoSummary checks stdout only), and no
// progress either (found by review: the display started before Run checked
// the topics, and a refused replay showed "replay: 0/3 offsets (0.0%) ...
// ETA ?", on a terminal an empty bar, above its refusal).
func TestRefusedReplayShowsNoProgress(t *testing.T) {
	cfg, out := oldEventsForADaysRetention(t)
	for _, mode := range []string{"lines", "bar"} {
		args := replayArgs(cfg, out)
		for i, a := range args {
			switch a {
			case "--progress":
				args[i+1] = mode
			case "--progress-interval": // shorter than the checks: a line came before the refusal in CI
				args[i+1] = "1ns"
			}
		}
		code, _, stdout, stderr := replayRun(t, t.Context(), args)
		if code != 1 || stdout != "" || !strings.Contains(stderr, "retention would delete") {
			t.Fatalf("--progress %s: exit %d, stdout %q; want 1, refused for the retention\n%s", mode, code, stdout, stderr)
		}
		if strings.Contains(stderr, "0/3 offsets") || strings.Contains(stderr, "0/3   0.0%") {
			t.Errorf("--progress %s: a replay refused before it read anything shows progress:\n%s", mode, stderr)
		}
	}
}

// README (Replay): "Given offsets outside [what the partitions hold now] are
// clamped to it, with a WARN per partition that says what is not there:
// offsets before the log start were deleted (retention) and cannot be
// replayed". --end-offsets 0:3 on a partition whose log now starts at 5
// asks for offsets 0-2 (the start not given: the partition's), which
// retention deleted, and the WARN says so. Found by review: it said the
// range "ends at offset 3, before it starts (5)", blaming a start that was
// never given. (The converse, an end never given, was mended earlier: see
// resolveReplayRange.)
func TestReplayEndBeforeTheLogStartSaysDeleted(t *testing.T) {
	k, _, cfg, _, _ := replayFixture(t)
	mobiles := juhesim.Population(10)
	var recs []*kgo.Record
	for i, m := range mobiles {
		recs = append(recs, &kgo.Record{Topic: cfg.Kafka.InputTopic, Partition: 0,
			Value: fmt.Appendf(nil, `{"event_id":"e-%d","mobile":%q,"registered_at":"2020-01-01"}`, i, m)})
	}
	cl := k.Client(kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err := cl.ProduceSync(t.Context(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	deleted, err := kadm.NewClient(cl).DeleteRecords(t.Context(), kadm.Offsets{cfg.Kafka.InputTopic: {0: {Topic: cfg.Kafka.InputTopic, Partition: 0, At: 5}}})
	if err == nil {
		err = deleted.Error()
	}
	if err != nil {
		t.Fatal(err)
	}
	code, s, _, stderr := replayRun(t, t.Context(), replayArgs(cfg, k.Name("out"), "--partitions", "0", "--end-offsets", "0:3"))
	if code != 0 || s.Total != 0 {
		t.Fatalf("exit %d, summary %+v\n%s", code, s, stderr)
	}
	if !strings.Contains(stderr, "were deleted") || strings.Contains(stderr, "before it starts") {
		t.Errorf("--end-offsets 0:3 with the log starting at 5 (offsets 0-4 deleted): want a WARN that offsets 0 to 2 were deleted, got:\n%s", stderr)
	}
}

// A replay that started and then stopped on an error before any output (here
// the provider's fatal answer to its first call: a wrong key) prints its
// summary, of nothing done, and its error; only a replay refused before it
// started (Processor.Started not closed) prints none. (A review found a
// replay whose input topic was deleted before it read anything taken for
// refused, by its counts; the deletion itself is processor's
// TestReplayOfADeletedTopicEnds.)
func TestReplayStoppedBeforeAnyOutputHasASummary(t *testing.T) {
	k, sim, cfg, _, recs := replayFixture(t)
	if err := sim.SetFaults(juhesim.Faults{ErrorRates: map[int]float64{10001: 1}}); err != nil {
		t.Fatal(err)
	}
	k.Produce(recs[:3]...)
	code, s, stdout, stderr := replayRun(t, t.Context(), replayArgs(cfg, k.Name("out"), "--partitions", "0,1,2"))
	if code != 1 || stdout == "" || s.Complete || s.Outputs != 0 {
		t.Errorf("exit %d, summary %q (%+v); want exit 1 and a summary of an incomplete replay with no output\n%s", code, stdout, s, stderr)
	}
}
