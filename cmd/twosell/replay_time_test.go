package main

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/twosell/twosell/juhe"
	"github.com/twosell/twosell/juhe/juhesim"
	"github.com/twosell/twosell/processor"
	"github.com/twosell/twosell/processor/kafkatest"
)

// A transactional input whose records carry their events' own times (a
// Kafka Streams or Flink exactly-once job keeps event time, an upstream
// backfill sets it): each transaction's marker is stamped by the broker with
// the time it is written, now. --from/--to went through the broker's time
// index alone, which answers the marker's offset (the first offset whose
// timestamp is at or after the time), not the first record's: the range of
// the README's example (--from/--to a past day) was empty, or reached far
// outside the times asked for. (Found by review.)
func TestReplayByTimeOfATransactionalInputWithEventTimes(t *testing.T) {
	k, _, cfg, _, _ := replayFixture(t)
	base := marchEventsInTransactions(t, k, cfg.Kafka.InputTopic)
	out := k.Name("replay")
	s, stderr := runReplayCmd(t, replayArgs(cfg, out, "--partitions", "0",
		"--from", base.Add(10*time.Minute).Format(time.RFC3339), "--to", base.Add(20*time.Minute).Format(time.RFC3339)))
	got := eventIDs(t, k, out)
	var wrong []string
	for i := range 30 {
		want := i >= 10 && i < 20
		if got[fmt.Sprintf("e-%d", i)] != want {
			wrong = append(wrong, fmt.Sprintf("e-%d replayed %v, want %v", i, !want, want))
		}
	}
	if len(wrong) > 0 || s.Outputs != 10 {
		t.Errorf("--from %s --to %s over events stamped %s + i minutes: %d outputs (summary total %d offsets), want e-10..e-19\n%s\nstderr:\n%s",
			base.Add(10*time.Minute).Format(time.RFC3339), base.Add(20*time.Minute).Format(time.RFC3339), base.Format(time.RFC3339),
			s.Outputs, s.Total, strings.Join(wrong, "\n"), stderr)
	}
}

// README: --dry-run "reads the range as the replay would" and prints the
// records read with "offsets that held no record, such as transaction
// markers, apart, as the replay's summary counts them". The replay counts
// records the broker deletes before they are read (retention catching up
// with an old range) as deleted, "NOT REPLAYED", and warns; readRange went on
// at the log start without a word and counted them as offsets that held no
// record (transaction markers, aborted or compacted records). (Found by
// review.)
func TestDryRunCountsRecordsDeletedWhileRead(t *testing.T) {
	k, _, cfg, _, _ := replayFixture(t)
	cl := k.Client(kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(0), kgo.ProducerBatchCompression(kgo.NoCompression()))
	pad := strings.Repeat("x", 100<<10) // about ten records a fetch (1 MiB a partition)
	for i := range 40 {                 // a batch each, on partition 0, no transaction
		r := &kgo.Record{Topic: cfg.Kafka.InputTopic, Partition: 0,
			Value: fmt.Appendf(nil, `{"event_id":"e-%d","mobile":"17312345678","registered_at":"2020-01-01","pad":%q}`, i, pad)}
		if err := cl.ProduceSync(t.Context(), r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	adm := kadm.NewClient(k.Client())
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	var read int64
	var delErr error
	empty, deleted, err := readRange(t.Context(), cfg, map[int32]processor.OffsetRange{0: {Start: 0, End: 40}}, log, func(*kgo.Record) {
		if read++; read == 1 { // retention deletes records 0-29 while the range is read
			_, delErr = adm.DeleteRecords(t.Context(), kadm.Offsets{cfg.Kafka.InputTopic: {0: {Topic: cfg.Kafka.InputTopic, Partition: 0, At: 30}}})
		}
	})
	if err != nil || delErr != nil {
		t.Fatal(err, delErr)
	}
	if read == 40 {
		t.Skip("every record was fetched before the deletion")
	}
	if deleted != 40-read {
		t.Errorf("%d records read of 40, the other %d deleted by the broker before they were read; readRange counts %d deleted", read, 40-read, deleted)
	}
	if !strings.Contains(logs.String(), "deleted records of a partition's range") {
		t.Errorf("no warning of the deleted records:\n%s", logs.String())
	}
	if empty != 0 {
		t.Errorf("%d records read of 40, the other %d deleted by the broker before they were read; readRange counts %d offsets that held no record "+
			"(want 0: no marker, no aborted or compacted record; the replay counts these as deleted, NOT REPLAYED)", read, 40-read, empty)
	}
}

// A replay of a topic that does not exist says which setting names it
// (found by a walk through README's commands: run's said so, replay's
// named only the topic).
func TestReplayOfAMissingTopicSaysWhatToCheck(t *testing.T) {
	k := kafkatest.New(t)
	_, url := newSim(t, juhesim.Faults{})
	cfg := testConfig(t, k, url, juhe.ModePlain)
	t.Setenv("TWOSELL_JUHE_KEY", testKey)
	cfg.Kafka.InputTopic = k.Name("nosuch")
	var stdout, stderr syncBuffer
	code := Main(t.Context(), replayArgs(cfg, k.Name("out")), &stdout, &stderr)
	if got := stderr.String(); code != 1 || !strings.Contains(got, "check kafka.input_topic (--input-topic") {
		t.Errorf("exit %d, stderr %q; want exit 1 saying which setting names the topic", code, got)
	}
}

// marchEventsInTransactions writes 30 events to partition 0 of topic in
// three committed transactions of 10, stamped one a minute from base, 1
// March 2024, which it returns: the broker stamps each transaction's
// marker with its own time.
func marchEventsInTransactions(t *testing.T, k *kafkatest.Cluster, topic string) time.Time {
	t.Helper()
	base := time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)
	mobiles := juhesim.Population(30)
	txn := k.Client(kgo.TransactionalID(k.Name("producer")), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	for from := 0; from < 30; from += 10 {
		if err := txn.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for i := from; i < from+10; i++ {
			r := &kgo.Record{Topic: topic, Partition: 0, Timestamp: base.Add(time.Duration(i) * time.Minute),
				Value: fmt.Appendf(nil, `{"event_id":"e-%d","mobile":%q,"registered_at":"2020-01-01"}`, i, mobiles[i])}
			if err := txn.ProduceSync(t.Context(), r).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		if err := txn.EndTransaction(t.Context(), kgo.TryCommit); err != nil {
			t.Fatal(err)
		}
	}
	return base
}
