package main

import (
	"encoding/csv"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/twosell/twosell/processor/kafkatest"
)

// A hostile order id with a ';' in it (Go's csv writer does not quote it)
// is, in a spreadsheet whose list separator is ';' (Excel in de-DE, fr-FR
// and other locales opens a .csv with it), two cells, the second a
// formula: a DDE payload that runs a program. The export guards the part
// after the ';' too, and warns. (Found by review.)
func TestLedgerExportGuardsAFormulaAfterASemicolon(t *testing.T) {
	k := kafkatest.New(t)
	topic := k.Name("ledger")
	k.CreateTopics(1, topic)
	payload := `JH1;=cmd|' /C calc'!A0`
	k.Produce(&kgo.Record{Topic: topic, Key: []byte("c/20240601/other.ffffffffffff/" + payload), Value: []byte(`{"res":"1"}`)})

	var stdout, stderr syncBuffer
	if code := Main(t.Context(), []string{"ledger", "export", "--brokers", strings.Join(k.Brokers, ","),
		"--ledger-topic", topic}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	// As a spreadsheet with ';' as its list separator reads the file.
	r := csv.NewReader(strings.NewReader(stdout.String()))
	r.Comma, r.FieldsPerRecord, r.LazyQuotes = ';', -1, true
	rows, err := r.ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 {
		t.Fatalf("%d rows, want the header and the call:\n%s", len(rows), stdout.String())
	}
	for _, row := range rows {
		for _, cell := range row {
			if formulaSafe(cell) != cell {
				t.Errorf("a cell that runs as a formula where ';' separates cells: %q (row %q)", cell, row)
			}
		}
	}
	if !strings.Contains(stderr.String(), "cells began with") {
		t.Errorf("no warning of the formula: %q", stderr.String())
	}
}
