package processor

// A ledger topic that exists with the wrong cleanup policy.

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/twosell/twosell/processor/kafkatest"
)

// README, Ledger: "Every paid answer is written to a compacted topic ...
// Call records have unique keys, so compaction never removes them: they are
// the audit trail, and what the daily budget counts". The topic is created
// compacted only when twosell creates it. One created beforehand by an
// operator (kafka.create_topics: false, whose error says "create it
// compacted"; Terraform, Strimzi, or a broker's auto-creation) with the
// broker's default cleanup.policy=delete deletes knowledge and call records
// after retention.ms (7 days by default): the numbers are paid for again,
// and "twosell ledger export" of last month's bill finds nothing. Before,
// Open accepted such a topic without a word (found by review); now it warns
// that the broker deletes the ledger's records and how to fix it. A
// compacted topic gets no such warning.
func TestLedgerTopicThatDeletesRecordsIsWarnedOf(t *testing.T) {
	t.Parallel()
	k := kafkatest.New(t)
	topic := k.Name("ledger")
	k.CreateTopicsWith(1, map[string]*string{
		"cleanup.policy": kadm.StringPtr("delete"),
		"retention.ms":   kadm.StringPtr("86400000"), // a day
	}, topic)
	clock := &fakeClock{t: t0}
	log := &logLines{t: t}
	c := ledgerCost(t, k, topic, &fakeProvider{}, clock, func(c *CostConfig) {
		c.Logger = slog.New(slog.NewTextHandler(log, nil))
		c.Ledger.CreateTopic = false
	})
	_ = c
	got := log.String()
	if !strings.Contains(got, "level=WARN") || !strings.Contains(got, "--add-config cleanup.policy=compact") {
		t.Errorf("the ledger topic %q deletes its records after a day (cleanup.policy=delete, retention.ms=86400000), "+
			"and Open said nothing of it; want a WARN or an error naming cleanup.policy=compact. Log:\n%s", topic, got)
	}
	// Ready to paste (found by review): Kafka's tool needs the brokers, and
	// the topic's name is known.
	if want := "kafka-configs --bootstrap-server " + k.Brokers[0] + " --alter --entity-type topics --entity-name " + topic + " "; !strings.Contains(got, want) {
		t.Errorf("the warning's command is not ready to paste: want %q in it. Log:\n%s", want, got)
	}

	compacted := k.Name("ledger")
	k.CreateTopicsWith(1, map[string]*string{"cleanup.policy": kadm.StringPtr("compact")}, compacted)
	log = &logLines{t: t}
	ledgerCost(t, k, compacted, &fakeProvider{}, clock, func(c *CostConfig) {
		c.Logger = slog.New(slog.NewTextHandler(log, nil))
		c.Ledger.CreateTopic = false
	})
	if got := log.String(); strings.Contains(got, "cleanup.policy") {
		t.Errorf("a compacted ledger topic: a warning of its cleanup policy. Log:\n%s", got)
	}
}
