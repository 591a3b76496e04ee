package main

import (
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/twosell/twosell/processor/kafkatest"
)

// Found by a walkthrough: the export's rows came in the ledger's order (by
// partition, then as written), and a bill reconciled day by day had to be
// sorted first. Rows now come by day, then by time; a call whose record
// could not be decoded has no time and comes first in its day.
func TestLedgerExportIsInTimeOrder(t *testing.T) {
	k := kafkatest.New(t)
	topic := k.Name("ledger")
	k.CreateTopics(1, topic)
	call := func(order, day, at string) *kgo.Record {
		return &kgo.Record{Topic: topic, Key: []byte("c/" + day + "/run.ffffffffffff/" + order),
			Value: []byte(`{"key":"69fa89673369e80e349db70e9a85ffce8a22ec95044cd924dc7fba0af39c184f","day":"` + day +
				`","at":"` + at + `","date":"20240101","status":"recycled","res":1,"code":0,"order_id":"` + order +
				`","mode":"plain","instance":"run.ffffffffffff"}`)}
	}
	k.Produce(
		call("JH3", "20261202", "2026-12-02T03:00:00Z"),
		call("JH1", "20261201", "2026-12-01T10:00:00Z"),
		call("JH2", "20261202", "2026-12-02T01:00:00Z"),
		&kgo.Record{Topic: topic, Key: []byte("c/20261202/run.ffffffffffff/JH4"), Value: []byte(`not json`)},
		call("JH0", "20261130", "2026-11-30T23:00:00Z"),
	)
	rows := ledgerRows(t, k, topic)
	var orders []string
	for _, row := range rows[1:] {
		orders = append(orders, row[2])
	}
	if got, want := strings.Join(orders, " "), "JH0 JH1 JH4 JH2 JH3"; got != want {
		t.Errorf("order ids in the order %s, want %s:\n%q", got, want, rows)
	}
}
