package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/twosell/twosell/processor/kafkatest"
)

// "twosell ledger export" as a user allowed to describe the ledger topic
// but not to read it (a reconciliation account given the wrong ACL): every
// fetch is refused with TOPIC_AUTHORIZATION_FAILED, and ReadLedgerCalls
// (processor/ledger.go) did not look at the fetches' errors, so the export
// polled for ever, printing nothing, instead of exiting 1 with the reason.
// (The deadline only ends the hang: as "twosell run did not fail at
// start" in TestSecuredClusterMisconfigured.)
func TestLedgerExportReportsAFetchItIsRefused(t *testing.T) {
	k := kafkatest.NewDescribeOnly(t, "finance", "finance-pw")
	topic := k.Name("ledger")
	k.CreateTopics(1, topic)
	k.Produce(&kgo.Record{Topic: topic, Key: []byte("c/20240601/run.ffffffffffff/JH1"),
		Value: []byte(`{"key":"00","day":"20240601","at":"2024-06-01T04:00:00Z","date":"20240101","status":"recycled","res":1,"code":0,"order_id":"JH1","mode":"plain","instance":"run.ffffffffffff"}`)})

	t.Setenv("TWOSELL_KAFKA_SASL_PASSWORD", "finance-pw")
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	var stdout, stderr syncBuffer
	code := Main(ctx, []string{"ledger", "export", "--brokers", strings.Join(k.Brokers, ","), "--ledger-topic", topic,
		"--sasl-mechanism", "plain", "--sasl-username", "finance"}, &stdout, &stderr)
	if ctx.Err() != nil || code != 1 || !strings.Contains(strings.ToLower(stderr.String()), "authoriz") {
		t.Errorf("export without READ on the ledger: exit %d, deadline reached %v, stderr %q; want exit 1 at once, naming the refused authorization",
			code, ctx.Err() != nil, stderr.String())
	}
}
