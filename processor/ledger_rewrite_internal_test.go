package processor

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/twosell/twosell/processor/kafkatest"
)

// refuseProduce makes the fake brokers refuse every produce request with
// NOT_ENOUGH_REPLICAS (retriable: franz-go retries until the write timeout)
// while refusing is set.
func refuseProduce(k *kafkatest.Cluster, refusing *atomic.Bool) {
	k.Fake.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		k.Fake.KeepControl()
		if !refusing.Load() {
			return nil, nil, false
		}
		return kafkatest.Refusal(req.(*kmsg.ProduceRequest), kerr.NotEnoughReplicas), nil, true
	})
}

// openTestLedger opens a ledger on a fresh kfake cluster.
func openTestLedger(t *testing.T, logs *logLines, opts ...kgo.Opt) (*ledger, *kafkatest.Cluster) {
	t.Helper()
	k := kafkatest.New(t)
	if k.Fake == nil {
		t.Skip("needs kfake's control functions")
	}
	l := newLedger(LedgerConfig{Topic: k.Name("ledger"), CreateTopic: true, WriteTimeout: time.Minute,
		ClientOpts: append([]kgo.Opt{kgo.SeedBrokers(k.Brokers...)}, opts...)},
		slog.New(slog.NewTextHandler(logs, nil)), func(ledgerRecord) {})
	if err := l.open(t.Context()); err != nil {
		t.Fatal(err)
	}
	return l, k
}

// pendRewrite leaves a call record waiting for its back-off, as rewrite
// leaves one after a few failed attempts (its timer an hour away).
func pendRewrite(l *ledger, id string) {
	rs := &l.rewrites
	key := "c/20240601/" + l.instance + "/" + id
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.pending == nil {
		rs.pending = map[string]*ledgerRewrite{}
	}
	rs.pending[key] = &ledgerRewrite{
		rec:      kgo.Record{Topic: l.cfg.Topic, Key: []byte(key), Value: []byte(`{}`)},
		call:     LedgerCall{Day: "20240601", Status: StatusNotRecycled, OrderID: id},
		attempts: 6,
		timer:    time.AfterFunc(time.Hour, func() { l.produceRewrite(key) }),
	}
	rs.n.Store(int64(len(rs.pending)))
}

// close's ctx bounds its wait for the ledger's records, the last tries of
// the call records waiting to be written again included: they are
// TryProduce'd, so a full client buffer fails them at once (and they are
// reported lost) rather than block until the brokers answer. Found by
// review: with Produce, close sat until records failed at the write
// timeout (30 s each round), whatever its ctx said, and a shutdown could
// be killed before the order ids were logged. Here: a buffer of one record,
// two call records waiting, the brokers refusing, and close called with its
// ctx already done.
func TestLedgerCloseDoesNotWaitForTheBrokers(t *testing.T) {
	logs := &logLines{t: t}
	l, k := openTestLedger(t, logs, kgo.MaxBufferedRecords(1), kgo.MetadataMinAge(50*time.Millisecond))
	var refusing atomic.Bool
	refusing.Store(true)
	refuseProduce(k, &refusing)
	defer refusing.Store(false)
	pendRewrite(l, "JH_A")
	pendRewrite(l, "JH_B")

	ctx, cancel := context.WithCancel(context.Background())
	cancel() // the shutdown's grace is over
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		l.close(ctx)
	}()
	kafkatest.WaitFor(t, func() bool { // its write timeout is a minute
		select {
		case <-closed:
			return true
		default:
			return false
		}
	})
	if out := logs.String(); !strings.Contains(out, "JH_A") || !strings.Contains(out, "JH_B") {
		t.Errorf("the call records never written are not both named:\n%s", out)
	}
}

// A paid answer whose call record's write failed and whose knowledge
// record's write succeeded is not logged as if the knowledge were lost too.
// Found by review: the WARN said other instances may pay for the number
// again, which they do not.
func TestLedgerFailedSaysWhichRecordFailed(t *testing.T) {
	k := kafkatest.New(t)
	logs := &logLines{t: t}
	c, err := NewCostControl(&fakeProvider{}, CostConfig{Secret: []byte("s"), Mode: "plain",
		Logger: slog.New(slog.NewTextHandler(logs, nil)),
		Ledger: &LedgerConfig{Topic: k.Name("ledger"), CreateTopic: true, ClientOpts: []kgo.Opt{kgo.SeedBrokers(k.Brokers...)}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Open(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	l := c.ledger
	w := &ledgerWrite{durable: durable{pending: 2}, l: l, call: LedgerCall{Day: "20240601", Status: StatusNotRecycled, OrderID: "JH_C"}}
	w.recs[0] = kgo.Record{Topic: l.cfg.Topic, Key: []byte("c/20240601/" + l.instance + "/JH_C"), Value: []byte(`{}`)}
	w.recs[1] = kgo.Record{Topic: l.cfg.Topic, Key: []byte("k/00"), Value: []byte(`{}`)}
	l.writing.Add(1)
	// As franz-go answers them: the call record refused, the knowledge
	// record acknowledged.
	w.promise(&w.recs[0], kerr.NotEnoughReplicas)
	w.promise(&w.recs[1], nil)
	out := logs.String()
	if !strings.Contains(out, "a paid answer could not be written") {
		t.Fatalf("no WARN of the failed write:\n%s", out)
	}
	if strings.Contains(out, "other instances may pay for the number again") {
		t.Errorf("the WARN says other instances may pay again, but the knowledge record was written; only the call record failed:\n%s", out)
	}
}

// A paid no-record answer (232703) has no order id. Its call record, never
// written before close, is reported as the no_record answer it is. Found
// by review: it was reported as "a request whose outcome is unknown", and
// whoever reconciles the bill would look for a request that never
// answered.
func TestRewritesLostNamesANoRecordAnswer(t *testing.T) {
	logs := &logLines{t: t}
	l, k := openTestLedger(t, logs)
	var refusing atomic.Bool
	refusing.Store(true)
	refuseProduce(k, &refusing)
	pendRewrite(l, "n1") // the key's sequence: no order id
	l.rewrites.pending["c/20240601/"+l.instance+"/n1"].call = LedgerCall{Day: "20240601", Status: StatusNoRecord}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	l.close(ctx)
	out := logs.String()
	if !strings.Contains(out, "could not be written before closing") {
		t.Fatalf("no ERROR of the call record never written:\n%s", out)
	}
	if strings.Contains(out, "whose outcome is unknown") || !strings.Contains(out, "a no_record answer of 20240601") {
		t.Errorf("a no_record answer (known, billed) is reported as a request whose outcome is unknown:\n%s", out)
	}
}

// The back-off before a call record's next try: 1 s, doubled, up to a
// minute (README: "1 s later, then after waits doubled up to a minute").
func TestRewriteBackoff(t *testing.T) {
	var got []time.Duration
	for n := 1; n <= 9; n++ {
		got = append(got, rewriteBackoff(n))
	}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second,
		32 * time.Second, time.Minute, time.Minute, time.Minute}
	if !slices.Equal(got, want) {
		t.Errorf("rewriteBackoff(1..9) = %v, want %v", got, want)
	}
}
