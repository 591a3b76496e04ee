package processor

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/twosell/twosell/processor/kafkatest"
)

// firstYoungRecords reads past transaction markers to the first record
// stamped at or after the time, and stops after maxYoungScan old records
// of a partition, saying so (capped): then only those are known to be old.
func TestFirstYoungRecords(t *testing.T) {
	k := kafkatest.New(t)
	in := k.Name("in")
	k.CreateTopics(2, in)
	old, young := time.Now().Add(-48*time.Hour), time.Now()
	txn := k.Client(kgo.TransactionalID(k.Name("txn")), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	// Partition 0: 6 old records in two transactions (markers at 3 and 7),
	// then 2 young ones (8, 9) and their marker (10). Partition 1: 6 old.
	for _, batch := range []struct {
		part int32
		n    int
		at   time.Time
	}{{0, 3, old}, {0, 3, old}, {0, 2, young}, {1, 6, old}} {
		if err := txn.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for range batch.n {
			r := &kgo.Record{Topic: in, Partition: batch.part, Timestamp: batch.at, Value: []byte("{}")}
			if err := txn.ProduceSync(t.Context(), r).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		if err := txn.EndTransaction(t.Context(), kgo.TryCommit); err != nil {
			t.Fatal(err)
		}
	}
	p := &Processor{cfg: Config{InputTopic: in, ClientOpts: []kgo.Opt{kgo.SeedBrokers(k.Brokers...)}}, log: slog.New(slog.DiscardHandler)}
	rng := map[int32]OffsetRange{0: {Start: 0, End: 11}, 1: {Start: 0, End: 7}}
	cutoff := time.Now().Add(-time.Hour).UnixMilli()

	// From the first marker, as the broker's time index answers.
	first, capped, err := p.firstYoungRecords(context.Background(), map[int32]int64{0: 3, 1: 0}, rng, cutoff)
	if err != nil {
		t.Fatal(err)
	}
	if first[0] != 8 || first[1] != 7 || capped {
		t.Errorf("first young records %v, capped %v; want 0:8 (past the markers), 1:7 (none: the range's end), not capped", first, capped)
	}

	defer func(n int) { maxYoungScan = n }(maxYoungScan)
	maxYoungScan = 4
	first, capped, err = p.firstYoungRecords(context.Background(), map[int32]int64{1: 0}, rng, cutoff)
	if err != nil {
		t.Fatal(err)
	}
	if first[1] != 4 || !capped { // records 0-3 are the 4 read: all old
		t.Errorf("with a scan of 4 records: %v, capped %v; want 1:4 (past the 4 old records read), capped", first, capped)
	}
}
