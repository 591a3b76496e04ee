package processor

// Ledger records twosell cannot read, from a newer version or another tool,
// are skipped and counted.

import (
	"log/slog"
	"regexp"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/twosell/twosell/processor/kafkatest"
)

// An instance that loads a ledger holding records it cannot read (knowledge
// records of a later twosell, v 2, read after a rollback; records kcat or
// another tool wrote) skips them, and says how many: in the "ledger loaded"
// line, a warning after it, and CostStats. Before, it said once that it
// ignored "ledger records that are not twosell's", with the first one's
// offset, and never how many (found by review): an operator could not tell
// one stray record from a ledger whose whole knowledge (here 7 of 8
// records) is unusable and will be paid for again.
func TestLedgerUnreadableRecordsAreCounted(t *testing.T) {
	t.Parallel()
	k := kafkatest.New(t)
	topic := k.Name("ledger")
	k.CreateTopics(1, topic)
	var recs []*kgo.Record
	for _, m := range []string{"17300000010", "17300000011", "17300000012", "17300000013", "17300000014"} {
		// A later version's knowledge record.
		recs = append(recs, &kgo.Record{Topic: topic,
			Key:   []byte(ledgerKnowledgePrefix + HashMobile([]byte("test-secret"), m).String()),
			Value: []byte(`{"v":2,"instance":"run.later","facts":[{"kind":"recycled","date":"20200101","at":"2024-06-01T00:00:00Z"}]}`)})
	}
	recs = append(recs,
		&kgo.Record{Topic: topic, Key: []byte("k/not-a-key"), Value: []byte(`{"v":1}`)},       // by hand
		&kgo.Record{Topic: topic, Key: []byte("hello"), Value: []byte(`kcat test`)},           // a test message
		&kgo.Record{Topic: topic, Key: []byte("c/20240601/run.abc/JH9"), Value: []byte(`{}`)}, // a call: counted
	)
	k.Produce(recs...)

	log := &logLines{t: t}
	c := ledgerCost(t, k, topic, &fakeProvider{}, &fakeClock{t: t0}, func(c *CostConfig) {
		c.Logger = slog.New(slog.NewTextHandler(log, nil))
	})
	if got := c.CostStats().LedgerRecords; got != 8 {
		t.Fatalf("%d ledger records read, want 8", got)
	}
	if got := c.CostStats().LedgerUnreadable; got != 7 {
		t.Fatalf("the ledger counted %d unreadable records, want 7", got)
	}
	// The count, 7, reported anywhere the operator can see it: the log.
	if !regexp.MustCompile(`=7(\s|$)`).MatchString(log.String()) {
		t.Errorf("7 of the ledger's 8 records were skipped as unreadable, and no log line says how many (the count is kept, "+
			"ledger.bad, and never reported; nor in CostStats). Log:\n%s", log.String())
	}
}
