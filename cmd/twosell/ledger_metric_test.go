package main

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twosell/twosell/processor"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// failingLedger is cost controls whose ledger cannot be read, or written.
type failingLedger struct{ read, write error }

func (failingLedger) CostStats() processor.CostStats { return processor.CostStats{} }
func (f failingLedger) LedgerUnreadable() error      { return f.read }
func (f failingLedger) LedgerUnwritable() error      { return f.write }

// twosell_ledger_failing says which of the ledger's reads and writes fail,
// as /readyz does, so that a dashboard and an alert name the cause; it is
// absent without a ledger.
func TestLedgerFailingGauge(t *testing.T) {
	broken := errors.New("ledger twosell.ledger: partitions [3] cannot be read")
	for _, tc := range []struct {
		name        string
		ledger      bool
		cost        failingLedger
		read, write int64 // -1: no series
	}{
		{"healthy", true, failingLedger{}, 0, 0},
		{"unreadable", true, failingLedger{read: broken}, 1, 0},
		{"unwritable", true, failingLedger{write: broken}, 0, 1},
		{"both", true, failingLedger{read: broken, write: broken}, 1, 1},
		{"no ledger", false, failingLedger{}, -1, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			proc, err := processor.New(processor.Config{
				InputTopic: "in", OutputTopic: "out", DLQTopic: "dlq", Group: "g",
				Codec:    processor.CodecConfig{Location: time.UTC},
				Enricher: juheEnricher{}, Cost: tc.cost,
			})
			if err != nil {
				t.Fatal(err)
			}
			reader := sdkmetric.NewManualReader()
			mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
			if err := observeProcessor(mp, proc, &lagMonitor{}, 0, tc.ledger); err != nil {
				t.Fatal(err)
			}
			var rm metricdata.ResourceMetrics
			if err := reader.Collect(context.Background(), &rm); err != nil {
				t.Fatal(err)
			}
			got := map[string]int64{"read": -1, "write": -1}
			for _, sm := range rm.ScopeMetrics {
				for _, m := range sm.Metrics {
					if m.Name != metricLedgerFail {
						continue
					}
					for _, dp := range m.Data.(metricdata.Gauge[int64]).DataPoints {
						op, _ := dp.Attributes.Value(attribute.Key("op"))
						got[op.AsString()] = dp.Value
					}
				}
			}
			if got["read"] != tc.read || got["write"] != tc.write {
				t.Errorf("twosell_ledger_failing read %d, write %d; want %d, %d (-1: absent)", got["read"], got["write"], tc.read, tc.write)
			}
		})
	}
}
