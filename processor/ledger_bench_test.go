package processor

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// BenchmarkLedgerLoad measures an instance's start on a ledger of n paid
// calls (a call and a knowledge record each) on the embedded broker: the
// fetches, the decoding and the knowledge merged. It reports records/s.
func BenchmarkLedgerLoad(b *testing.B) {
	const n = 50000
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, "ledger"))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	opts := []kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...)}
	cl, err := kgo.NewClient(append(opts, kgo.DefaultProduceTopic("ledger"))...)
	if err != nil {
		b.Fatal(err)
	}
	at := time.Date(2024, 6, 1, 12, 0, 0, 0, time.UTC)
	h := newMobileHasher([]byte("s"))
	for i := range n {
		key := h.key(fmt.Sprintf("138%08d", i)).String()
		call := LedgerCall{Key: key, Day: "20240601", At: at, Date: "20240102", Status: StatusNotRecycled, Res: 2,
			OrderID: fmt.Sprintf("JH%010d", i), Mode: "plain", Instance: "run.writer"}
		k := Knowledge{Upper: Fact{Kind: FactNotAfter, Date: "20240102", OrderID: call.OrderID, Mode: "plain", At: at}, BoundsAt: at}
		cl.Produce(context.Background(), &kgo.Record{Key: []byte(ledgerCallPrefix + "20240601/run.writer/" + call.OrderID), Value: call.appendJSON(nil)}, nil)
		cl.Produce(context.Background(), &kgo.Record{Key: []byte(ledgerKnowledgePrefix + key), Value: appendLedgerKnowledge(nil, "run.writer", k)}, nil)
	}
	if err := cl.Flush(context.Background()); err != nil {
		b.Fatal(err)
	}
	cl.Close()
	b.ResetTimer()
	for b.Loop() {
		known := 0
		l := newLedger(LedgerConfig{ClientOpts: opts, Topic: "ledger"}, slog.New(slog.DiscardHandler), func(r ledgerRecord) {
			if r.knowledge != nil {
				_ = r.knowledge.knowledge()
				known++
			}
		})
		if err := l.open(context.Background()); err != nil {
			b.Fatal(err)
		}
		l.close(context.Background())
		if known != n {
			b.Fatalf("loaded %d knowledge records, want %d", known, n)
		}
	}
	b.ReportMetric(float64(2*n)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
}
