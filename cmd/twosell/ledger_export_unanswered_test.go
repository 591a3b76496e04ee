package main

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/twosell/twosell/processor/kafkatest"
)

// A request whose outcome is unknown (timed out, cut off) is written
// to the ledger as an "unavailable" call with no answer; the export shows it
// with code 0 and res 0. In the provider's codes 0 is "success" (and res 0 is
// no res at all), so a reconciliation reads a timed-out request as a
// successful call. The export's own rule for unreadable rows is "what is not
// known is left empty, not zero": the same should hold for a call that got
// no code (unavailable) or no res (no_record, unavailable).
func TestLedgerExportLeavesNoReplyCodeAndNoResEmpty(t *testing.T) {
	k := kafkatest.New(t)
	topic := k.Name("ledger")
	k.CreateTopics(1, topic)
	// Both records exactly as twosell writes them (kcat of a real ledger).
	k.Produce(&kgo.Record{Topic: topic, Key: []byte("c/20261202/replay.18579a74a783/n1"),
		Value: []byte(`{"key":"69fa89673369e80e349db70e9a85ffce8a22ec95044cd924dc7fba0af39c184f","day":"20261202","at":"2026-12-02T01:06:30.546661586Z","date":"20240101","status":"unavailable","code":0,"mode":"plain","instance":"replay.18579a74a783"}`)})
	k.Produce(&kgo.Record{Topic: topic, Key: []byte("c/20261202/replay.e4bf74ff4b21/n7"),
		Value: []byte(`{"key":"cbb09d74ae248c0270ef734dbe1a170704eb188cb702ce688e807bca89d969d4","day":"20261202","at":"2026-12-02T01:04:54.977675556Z","date":"20160915","status":"no_record","code":232703,"mode":"plain","instance":"replay.e4bf74ff4b21"}`)})

	rows := ledgerRows(t, k, topic)
	if len(rows) != 3 {
		t.Fatalf("%d rows, want the header and 2 calls:\n%q", len(rows), rows)
	}
	col := map[string]int{}
	for i, h := range rows[0] {
		col[h] = i
	}
	for _, row := range rows[1:] {
		status, res, code := row[col["status"]], row[col["res"]], row[col["code"]]
		if status == "unavailable" && code == "0" {
			t.Errorf("unavailable call exported with code 0 (the provider's success code): %q", row)
		}
		if res == "0" {
			t.Errorf("%s call exported with res 0, which the provider never answers (want it empty): %q", status, row)
		}
	}
}
